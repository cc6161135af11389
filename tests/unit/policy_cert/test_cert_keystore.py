"""Key files: created atomically with strict modes, loaded back, refused when exposed."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from safeflow.crypto.keys import SigningKey
from safeflow.errors import InvalidParameter, VerificationError
from safeflow.policy.keystore import key_paths, load_or_create_signing_key, load_verify_key

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_then_load(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    key = load_or_create_signing_key(state, "customs")
    private, public = key_paths(state, "customs")
    assert private == state / "keys" / "customs.ed25519"
    assert mode(state / "keys") == 0o700 and mode(private) == 0o600
    assert private.read_text() == key.to_bytes().hex() + "\n"
    assert public.read_text() == key.verify_key.to_bytes().hex() + "\n"
    assert load_or_create_signing_key(state, "customs") == key
    assert load_verify_key(state, "customs") == key.verify_key
    assert load_or_create_signing_key(state, "beijing") != key
    assert sorted(p.name for p in (state / "keys").iterdir()) == [
        "beijing.ed25519",
        "beijing.pub",
        "customs.ed25519",
        "customs.pub",
    ]  # no temp files
    secret = key.to_bytes().hex()
    assert secret not in repr(key) and secret[:8] not in repr(key)
    assert secret not in caplog.text


def test_umask_does_not_loosen_modes(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_signing_key(tmp_path, "site")
    finally:
        os.umask(old)
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / "site.ed25519") == 0o600


@pytest.mark.parametrize("loose", [0o640, 0o604, 0o660, 0o606])
def test_readable_key_file_is_refused_with_the_fix(tmp_path: Path, loose: int) -> None:
    load_or_create_signing_key(tmp_path, "site")
    private, _ = key_paths(tmp_path, "site")
    os.chmod(private, loose)
    with pytest.raises(InvalidParameter, match=rf"mode {loose:04o}.*chmod 600 '{private}'"):
        load_or_create_signing_key(tmp_path, "site")


def test_open_key_directory_is_refused_with_the_fix(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path, "site")
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(InvalidParameter, match=r"chmod 700"):
        load_or_create_signing_key(tmp_path, "site")


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path / "a", "site")
    (tmp_path / "b" / "keys").mkdir(parents=True, mode=0o700)
    os.chmod(tmp_path / "b" / "keys", 0o700)
    os.symlink(tmp_path / "a" / "keys" / "site.ed25519", tmp_path / "b" / "keys" / "site.ed25519")
    with pytest.raises(InvalidParameter, match="not a symlink"):
        load_or_create_signing_key(tmp_path / "b", "site")


def test_malformed_key_file_does_not_echo_its_content(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path, "site")
    private, _ = key_paths(tmp_path, "site")
    private.write_text("SECRETSECRET" * 5 + "\n")
    with pytest.raises(InvalidParameter, match="malformed") as e:
        load_or_create_signing_key(tmp_path, "site")
    assert "SECRET" not in str(e.value)


def test_public_key_mismatch_is_detected(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path, "site")
    _, public = key_paths(tmp_path, "site")
    public.write_text(SigningKey.from_bytes(bytes(32)).verify_key.to_bytes().hex() + "\n")
    with pytest.raises(VerificationError, match="does not match the private key"):
        load_or_create_signing_key(tmp_path, "site")
    public.unlink()
    key = load_or_create_signing_key(tmp_path, "site")  # re-exported
    assert load_verify_key(tmp_path, "site") == key.verify_key


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 65, "a..b", 3])
def test_bad_names(tmp_path: Path, name: object) -> None:
    with pytest.raises(InvalidParameter, match="key name"):
        load_or_create_signing_key(tmp_path, name)  # type: ignore[arg-type]


def test_missing_public_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="no public key file"):
        load_verify_key(tmp_path, "nobody")


def test_concurrent_creation_yields_one_key(tmp_path: Path) -> None:
    """Writers racing to create the same key all end up with the one key on disk."""
    for attempt in range(10):
        state = tmp_path / str(attempt)
        barrier = threading.Barrier(6)
        keys: list[SigningKey] = []

        def create(
            state: Path = state,
            barrier: threading.Barrier = barrier,
            keys: list[SigningKey] = keys,
        ) -> None:
            barrier.wait()
            keys.append(load_or_create_signing_key(state, "customs"))

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(keys) == 6 and len(set(keys)) == 1
        assert load_verify_key(state, "customs") == keys[0].verify_key
        assert sorted(p.name for p in (state / "keys").iterdir()) == [
            "customs.ed25519",
            "customs.pub",
        ]
