"""Export directories: atomic writes, refusal to overwrite, and offline verification that
detects swapped, edited, renamed, missing and extra files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import safeflow.policy.export as export_module
from safeflow.errors import ExportDenied, InvalidParameter, ReleaseError, VerificationError
from safeflow.policy.certificate import Certificate
from safeflow.policy.export import (
    CERTIFICATE_FILE,
    SUMMARY_FILE,
    export_release,
    verify_export,
)
from tests.unit.policy_cert.test_cert_certificate import (
    DECISION,
    FILES,
    KEYS,
    TRUSTED,
    full,
    make_body,
)

SUMMARY = "Logistic regression of anastomotic leak on arm and age (masking, 2 sites).\n"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return full(make_body(tmp_path_factory.mktemp("cert")))


@pytest.fixture
def out(tmp_path: Path, cert: Certificate) -> Path:
    return export_release(tmp_path / "exports" / "glm", FILES, cert, SUMMARY, trusted=TRUSTED)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_export_writes_everything_and_verifies(out: Path, cert: Certificate) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, CERTIFICATE_FILE, SUMMARY_FILE])
    for name, data in FILES.items():
        assert (out / name).read_bytes() == data
    assert (out / CERTIFICATE_FILE).read_bytes() == cert.to_json()
    assert (out / SUMMARY_FILE).read_text(encoding="utf-8") == SUMMARY
    assert leftovers(out.parent) == ["glm"]  # no temporary directory left
    report = verify_export(out, trusted=TRUSTED)
    assert report.files == tuple(sorted(FILES))
    assert report.output_sha256 == cert.output_sha256
    assert report.signers == ("amsterdam", "beijing", "customs")
    assert report.trusted_keys and report.summary_present
    assert (report.outcome, report.log_id, report.audit_index, report.audit_size) == (
        "ALLOW_WITH_OBLIGATIONS",
        "customs",
        5,
        7,
    )
    assert not verify_export(out).trusted_keys


def test_export_into_an_existing_empty_directory(tmp_path: Path, cert: Certificate) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    assert export_release(target, FILES, cert, SUMMARY) == target
    assert verify_export(target, trusted=TRUSTED)


def test_refuses_to_overwrite(out: Path, cert: Certificate) -> None:
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(
        InvalidParameter,
        match=r"exists and is not empty; refusing to "
        r"overwrite it.*rm -r",
    ):
        export_release(out, FILES, cert, "other summary")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(out.parent) == ["glm"]
    file_target = out.parent / "a-file"
    file_target.write_text("x")
    with pytest.raises(InvalidParameter, match="is not a directory"):
        export_release(file_target, FILES, cert, SUMMARY)


def test_failure_midway_leaves_nothing(
    tmp_path: Path, cert: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = []
    real = export_module._write_file

    def failing(path: Path, data: bytes) -> None:
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(path.name)
        real(path, data)

    monkeypatch.setattr(export_module, "_write_file", failing)
    with pytest.raises(ReleaseError, match=r"No space left on device\); nothing was exported"):
        export_release(tmp_path / "glm", FILES, cert, SUMMARY)
    assert leftovers(tmp_path) == []

    def interrupted(path: Path, data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_release(tmp_path / "glm", FILES, cert, SUMMARY)
    assert leftovers(tmp_path) == []


def test_export_checks_before_writing(tmp_path: Path, cert: Certificate) -> None:
    with pytest.raises(
        VerificationError,
        match=r"not the certified ones: content differs from "
        r"the certified file: model.json",
    ):
        export_release(tmp_path / "a", {**FILES, "model.json": b"{}"}, cert, SUMMARY)
    with pytest.raises(VerificationError, match=r"missing model.json; not certified: x.csv"):
        export_release(
            tmp_path / "a", {"estimates.csv": FILES["estimates.csv"], "x.csv": b""}, cert, SUMMARY
        )
    half = Certificate.issue(make_body(tmp_path), "customs", KEYS["customs"])
    with pytest.raises(VerificationError, match="missing co-signature"):
        export_release(tmp_path / "a", FILES, half, SUMMARY)
    with pytest.raises(VerificationError, match="not the trusted key"):
        export_release(
            tmp_path / "a",
            FILES,
            cert,
            SUMMARY,
            trusted={**TRUSTED, "customs": KEYS["mallory"].verify_key},
        )
    denied = full(
        make_body(tmp_path, decision={**DECISION, "outcome": "DENY_SDC", "exportable": False})
    )
    with pytest.raises(ExportDenied, match=r"DENY_SDC.*does not allow export"):
        export_release(tmp_path / "a", FILES, denied, SUMMARY)
    with pytest.raises(InvalidParameter, match="summary_text must be a str"):
        export_release(tmp_path / "a", FILES, cert, b"bytes")  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists()
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


# ------------------------------------------------------------------ tampered exports


def test_swapped_files_are_detected(out: Path) -> None:
    a, b = (out / "estimates.csv"), (out / "model.json")
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(
        VerificationError,
        match=r"content differs from the certified file: "
        r"estimates.csv, model.json",
    ):
        verify_export(out, trusted=TRUSTED)


def test_edited_file_is_detected(out: Path) -> None:
    path = out / "estimates.csv"
    path.write_bytes(path.read_bytes().replace(b"-0.41", b"-0.42"))
    with pytest.raises(
        VerificationError,
        match=r"content differs from the certified file: "
        r"estimates.csv",
    ):
        verify_export(out)


def test_file_swapped_with_another_release_is_detected(out: Path, tmp_path: Path) -> None:
    other_files = {**FILES, "estimates.csv": b"term,coef,se\narm,-0.90,0.17\n"}
    other = full(make_body(tmp_path, files=other_files))
    other_out = export_release(tmp_path / "other", other_files, other, SUMMARY)
    assert verify_export(other_out, trusted=TRUSTED)
    (out / "estimates.csv").write_bytes((other_out / "estimates.csv").read_bytes())
    with pytest.raises(VerificationError, match=r"estimates.csv"):
        verify_export(out, trusted=TRUSTED)
    # ... and the other release's certificate does not vouch for the original files.
    (out / "estimates.csv").write_bytes(FILES["estimates.csv"])
    (out / CERTIFICATE_FILE).write_bytes((other_out / CERTIFICATE_FILE).read_bytes())
    with pytest.raises(VerificationError, match=r"estimates.csv"):
        verify_export(out, trusted=TRUSTED)


def test_renamed_missing_and_extra_files_are_detected(out: Path) -> None:
    (out / "model.json").rename(out / "model2.json")
    (out / "notes.txt").write_text("added later")
    with pytest.raises(
        VerificationError,
        match=r"missing model.json; not certified: "
        r"model2.json, notes.txt",
    ):
        verify_export(out)


def test_symlinks_and_subdirectories_are_refused(out: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    target.write_bytes(FILES["estimates.csv"])
    (out / "estimates.csv").unlink()
    os.symlink(target, out / "estimates.csv")
    (out / "sub").mkdir()
    with pytest.raises(VerificationError, match=r"not regular files: estimates.csv, sub"):
        verify_export(out)


def test_certificate_tampering_is_detected(out: Path) -> None:
    path = out / CERTIFICATE_FILE
    raw = path.read_bytes()
    obj = json.loads(raw)
    obj["body"]["decision"]["obligations"] = []
    from tests.unit.policy_cert.test_cert_certificate import json_bytes

    path.write_bytes(json_bytes(obj))
    with pytest.raises(VerificationError, match="signature of 'customs' does not verify"):
        verify_export(out)
    path.write_bytes(raw.replace(b"{", b"{ ", 1))
    with pytest.raises(VerificationError, match="not in canonical form"):
        verify_export(out)
    path.unlink()
    with pytest.raises(VerificationError, match=r"holds no certificate.json"):
        verify_export(out)
    with pytest.raises(VerificationError, match="is not a directory"):
        verify_export(out / "missing")


def test_summary_is_informational(out: Path) -> None:
    (out / SUMMARY_FILE).write_text("edited summary")
    assert verify_export(out).summary_present
    (out / SUMMARY_FILE).unlink()
    assert not verify_export(out).summary_present
