"""Signing keys on disk: one Ed25519 key per name in a site's state directory.

Layout under ``state_dir``::

    keys/                  mode 0700
      <name>.ed25519       mode 0600: the 32-byte RFC 8032 seed, as one line of hex
      <name>.pub           the 32-byte public key, as one line of hex (share it freely)

A key file is created atomically (written to a temporary file, fsynced, then linked into
place without replacing anything, and the directory fsynced), so a crash never leaves a
half-written key and two processes creating the same key at once end up with the same
one. A key file or directory that group or others may read or write is refused with the
``chmod`` that fixes it. Key bytes never appear in an error message, a log or a ``repr``.

POSIX permissions are assumed (Linux, macOS).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> tmp = tempfile.TemporaryDirectory()
>>> key = load_or_create_signing_key(Path(tmp.name), "customs")
>>> key == load_or_create_signing_key(Path(tmp.name), "customs")
True
>>> load_verify_key(Path(tmp.name), "customs") == key.verify_key
True
>>> oct((Path(tmp.name) / "keys" / "customs.ed25519").stat().st_mode & 0o777)
'0o600'
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Final

from safeflow.crypto.keys import ED25519_SEED_SIZE, SigningKey, VerifyKey
from safeflow.errors import CryptoError, InvalidParameter, VerificationError

KEY_DIR: Final = "keys"
PRIVATE_SUFFIX: Final = ".ed25519"
PUBLIC_SUFFIX: Final = ".pub"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEX_LINE = re.compile(rb"([0-9a-f]{64})\n?")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None or ".." in name:
        raise InvalidParameter(
            f"key name must be 1-64 letters, digits and _.- starting with a letter or digit "
            f"(e.g. 'customs' or 'beijing'); got {name!r:.60}"
        )
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _key_dir(state_dir: Path) -> Path:
    """Create ``state_dir/keys`` with mode 0700 if missing; refuse it if others can enter."""
    keys = Path(state_dir) / KEY_DIR
    if not keys.exists():
        keys.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            keys.mkdir(mode=0o700)
            os.chmod(keys, 0o700)  # mkdir's mode is filtered by the umask
            _fsync_dir(keys.parent)
    info = keys.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidParameter(
            f"{keys} must be a directory (not a file or a symlink); move it "
            "away and let safeflow create the key directory"
        )
    if info.st_mode & 0o077:
        raise InvalidParameter(
            f"the key directory {keys} is accessible to group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); restrict it with: chmod 700 '{keys}'"
        )
    return keys


def _write_atomic(path: Path, data: bytes, mode: int, *, replace: bool) -> bool:
    """Write ``data`` to ``path`` via a fsynced temporary file in the same directory.

    With ``replace=False`` the file is linked into place only if ``path`` does not exist
    (returns False, leaving the existing file, when another writer got there first).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
            created = True
        else:
            try:
                os.link(tmp, path)
                created = True
            except FileExistsError:
                created = False
        _fsync_dir(path.parent)
        return created
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read_key_file(path: Path, what: str, *, private: bool) -> bytes:
    """Read one line of hex from ``path``; for private keys refuse loose permissions."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise InvalidParameter(
            f"cannot open the {what} {path} ({e.strerror}); it must be a "
            "regular file, not a symlink"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidParameter(f"the {what} {path} must be a regular file")
        if private and info.st_mode & 0o077:
            raise InvalidParameter(
                f"the {what} {path} is readable or writable by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); refusing to use it. Restrict it with: "
                f"chmod 600 '{path}' (and consider the key exposed: rotate it if others could "
                "read it)"
            )
        data = os.read(fd, 256)
    finally:
        os.close(fd)
    match = _HEX_LINE.fullmatch(data)
    if match is None:
        # Never echo the content: it may be key material.
        raise InvalidParameter(
            f"the {what} {path} is malformed: it must hold exactly 64 lower-case hex digits "
            f"({ED25519_SEED_SIZE} bytes) and an optional newline. Restore it from a backup"
        )
    return bytes.fromhex(match.group(1).decode())


def key_paths(state_dir: str | Path, name: str) -> tuple[Path, Path]:
    """The private and public key file paths of key ``name`` under ``state_dir``.

    Examples
    --------
    >>> [p.as_posix() for p in key_paths("/srv/site", "beijing")]
    ['/srv/site/keys/beijing.ed25519', '/srv/site/keys/beijing.pub']
    """
    name = _check_name(name)
    keys = Path(state_dir) / KEY_DIR
    return keys / f"{name}{PRIVATE_SUFFIX}", keys / f"{name}{PUBLIC_SUFFIX}"


def load_or_create_signing_key(state_dir: str | Path, name: str) -> SigningKey:
    """Load the signing key ``name`` from ``state_dir/keys``, creating it on first use.

    Parameters
    ----------
    state_dir : str or Path
        The site's (or customs') private state directory; created if missing.
    name : str
        Key name, e.g. ``"customs"`` or the site name.

    Returns
    -------
    SigningKey

    Raises
    ------
    InvalidParameter
        If the key file or directory is accessible to group or others (the message gives
        the ``chmod`` that fixes it), is a symlink or is malformed.
    VerificationError
        If ``<name>.pub`` exists and does not match the private key.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> key = load_or_create_signing_key(tmp.name, "beijing")
    >>> key
    SigningKey(verify_key=...)
    >>> os.chmod(Path(tmp.name) / "keys" / "beijing.ed25519", 0o644)
    >>> load_or_create_signing_key(tmp.name, "beijing")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: the Ed25519 key file ... chmod 600 ...
    >>> tmp.cleanup()
    """
    private, public = key_paths(state_dir, name)
    _key_dir(Path(state_dir))
    if not private.exists():
        # If another process links its key first, ours is dropped and theirs is read below.
        fresh = SigningKey.generate().to_bytes().hex().encode() + b"\n"
        _write_atomic(private, fresh, 0o600, replace=False)
    key = SigningKey.from_bytes(_read_key_file(private, "Ed25519 key file", private=True))
    expected = key.verify_key.to_bytes().hex().encode() + b"\n"
    if public.exists():
        stored = _read_key_file(public, "public key file", private=False)
        if stored != key.verify_key.to_bytes():
            raise VerificationError(
                f"the public key file {public} does not match the private key {private.name}; "
                "one of them was replaced. Find out which, then delete the wrong .pub file "
                "(safeflow re-exports it from the private key)"
            )
    else:
        _write_atomic(public, expected, 0o644, replace=True)
    return key


def load_verify_key(state_dir: str | Path, name: str) -> VerifyKey:
    """Load the public key ``name`` exported by :func:`load_or_create_signing_key`.

    Parameters
    ----------
    state_dir : str or Path
    name : str

    Returns
    -------
    VerifyKey

    Raises
    ------
    InvalidParameter
        If the file is missing or malformed.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> load_verify_key(tmp.name, "nobody")
    Traceback (most recent call last):
    ...
    safeflow.errors.InvalidParameter: no public key file .../keys/nobody.pub; ...
    >>> tmp.cleanup()
    """
    _, public = key_paths(state_dir, name)
    if not public.exists():
        raise InvalidParameter(
            f"no public key file {public}; create the key with "
            "load_or_create_signing_key(state_dir, name) on the machine that owns it and copy "
            "its .pub file here"
        )
    try:
        return VerifyKey.from_bytes(_read_key_file(public, "public key file", private=False))
    except CryptoError:
        raise InvalidParameter(
            f"the public key file {public} does not hold a valid Ed25519 "
            "public key; copy it again from its owner"
        ) from None


__all__ = ["KEY_DIR", "key_paths", "load_or_create_signing_key", "load_verify_key"]
