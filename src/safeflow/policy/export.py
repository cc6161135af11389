"""Export a certified release as a directory, atomically, and verify such a directory offline.

An export directory holds the value files, ``certificate.json`` (the canonical certificate)
and ``SUMMARY.txt`` (a human-readable summary: informational, not covered by the
certificate). It is written into a temporary directory next to the target, fsynced, checked
with :func:`verify_export`, and renamed into place in one step: after a crash or an error
either the whole export exists or nothing does (a stale ``.<name>.*.partial`` directory
may remain only after a power cut, never under the target name).

:func:`verify_export` is what a regulator runs on a received directory: it checks the
certificate's signatures and audit proof and that the files beside it are exactly the
certified ones (a swapped, edited, renamed, missing or extra file is named).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from safeflow.policy.cert_body import _example_keys
>>> from safeflow.policy.certificate import _example
>>> tmp = tempfile.TemporaryDirectory()
>>> cert = _example(cosigned=True)
>>> files = {"table1.csv": b"variable,level,n\\nsex,1,138\\nsex,2,90\\n"}
>>> out = export_release(Path(tmp.name) / "table1", files, cert, "Table 1, masking.\\n")
>>> sorted(p.name for p in out.iterdir())
['SUMMARY.txt', 'certificate.json', 'table1.csv']
>>> report = verify_export(out, trusted={n: k.verify_key for n, k in _example_keys().items()})
>>> report.files, report.outcome
(('table1.csv',), 'ALLOW')
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from safeflow.crypto.keys import VerifyKey
from safeflow.errors import ExportDenied, InvalidParameter, ReleaseError, VerificationError
from safeflow.policy.cert_body import value_manifest
from safeflow.policy.cert_schema import sha256_hex
from safeflow.policy.certificate import Certificate

CERTIFICATE_FILE: Final = "certificate.json"
SUMMARY_FILE: Final = "SUMMARY.txt"
_MAX_CERTIFICATE_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExportReport:
    """What :func:`verify_export` established about an export directory.

    Attributes
    ----------
    path : Path
    output_sha256 : str
        The certified digest, which the value files match.
    files : tuple of str
        The value files, in name order.
    signers : tuple of str
        Everyone whose signature verified (customs and every origin site).
    trusted_keys : bool
        Whether the signer keys were checked against a trusted set; if False, the
        certificate is intact but who signed it rests on the keys it carries.
    outcome : str
        The certified policy outcome.
    log_id : str
    audit_index : int
        Position of the release in customs' audit log.
    audit_size : int
        Size of the signed checkpoint the inclusion proof is for.
    summary_present : bool
        ``SUMMARY.txt`` exists (it is informational and not signed).
    """

    path: Path
    output_sha256: str
    files: tuple[str, ...]
    signers: tuple[str, ...]
    trusted_keys: bool
    outcome: str
    log_id: str
    audit_index: int
    audit_size: int
    summary_present: bool


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_existing(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InvalidParameter(
            f"{target} exists and is not a directory; choose a new directory name for the export"
        )
    if target.is_dir() and any(target.iterdir()):
        raise InvalidParameter(
            f"{target} exists and is not empty; refusing to overwrite it. Choose a new "
            f"directory, or remove the old export first (rm -r '{target}')"
        )


def export_release(
    dir: str | Path,
    files: Mapping[str, bytes],
    certificate: Certificate,
    summary_text: str,
    *,
    trusted: Mapping[str, VerifyKey] | None = None,
) -> Path:
    """Write a certified release's files, certificate and summary into ``dir``, atomically.

    Parameters
    ----------
    dir : str or Path
        The export directory; must not exist or be empty. Its parent is created if missing.
    files : Mapping[str, bytes]
        The value files, exactly as certified (names and bytes).
    certificate : Certificate
        Fully signed (customs and every origin site), with an exportable decision.
    summary_text : str
        Written as UTF-8 to ``SUMMARY.txt`` (not covered by the certificate).
    trusted : Mapping[str, VerifyKey], optional
        Passed to :meth:`Certificate.verify` before anything is written.

    Returns
    -------
    Path
        ``dir``.

    Raises
    ------
    InvalidParameter
        If ``dir`` exists and is not empty, or an argument is malformed.
    VerificationError
        If the certificate does not verify or ``files`` are not the certified files.
    ExportDenied
        If the certified decision does not allow export.
    ReleaseError
        If writing fails (disk full, permissions); nothing is left behind.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from safeflow.policy.certificate import _example
    >>> tmp = tempfile.TemporaryDirectory()
    >>> cert = _example(cosigned=True)
    >>> export_release(Path(tmp.name) / "t1", {"table1.csv": b"tampered"}, cert, "")
    Traceback (most recent call last):
    ...
    safeflow.errors.VerificationError: the files to export are not the certified ones: ...
    >>> list(Path(tmp.name).iterdir())
    []
    >>> tmp.cleanup()
    """
    target = Path(dir)
    if not isinstance(certificate, Certificate):
        raise InvalidParameter(
            f"certificate must be a Certificate; got {type(certificate).__name__}"
        )
    if not isinstance(summary_text, str):
        raise InvalidParameter(f"summary_text must be a str; got {type(summary_text).__name__}")
    certificate.verify(trusted=trusted)
    if not certificate.exportable:
        raise ExportDenied(
            f"the certified decision ({certificate.decision['outcome']}) does not allow export; "
            "keep the result inside the study environment"
        )
    mismatch = _compare(value_manifest(files), certificate.outputs)
    if mismatch:
        raise VerificationError(
            f"the files to export are not the certified ones: {mismatch}; "
            "export exactly the bytes the certificate was issued for"
        )
    _refuse_existing(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_temp_dir(target)
    try:
        for name, data in files.items():
            _write_file(tmp / name, bytes(data))
        _write_file(tmp / CERTIFICATE_FILE, certificate.to_json())
        _write_file(tmp / SUMMARY_FILE, summary_text.encode("utf-8"))
        _fsync_dir(tmp)
        verify_export(tmp, trusted=trusted)  # read back what is on disk before publishing
        try:
            os.rename(tmp, target)  # replaces an empty directory; fails on a non-empty one
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                _refuse_existing(target)  # something appeared meanwhile: say what
            raise
        _fsync_dir(target.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReleaseError(
            f"exporting to {target} failed ({e.strerror or e}); nothing was exported. Fix the "
            "cause (disk space, permissions) and export again"
        ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _make_temp_dir(target: Path) -> Path:
    """A new directory beside ``target`` (same file system, so the rename is atomic); its
    mode follows the umask like any ``mkdir``."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.partial")
        with contextlib.suppress(FileExistsError):
            tmp.mkdir(0o777)
            return tmp


def _compare(actual: Mapping[str, str], certified: Mapping[str, str]) -> str:
    """Describe how a manifest differs from the certified one ('' if equal)."""
    parts = []
    missing = sorted(set(certified) - set(actual))
    extra = sorted(set(actual) - set(certified))
    changed = sorted(n for n in set(actual) & set(certified) if actual[n] != certified[n])
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"not certified: {', '.join(extra)}")
    if changed:
        parts.append(f"content differs from the certified file: {', '.join(changed)}")
    return "; ".join(parts)


def verify_export(
    dir: str | Path, *, trusted: Mapping[str, VerifyKey] | None = None
) -> ExportReport:
    """Check an export directory offline: certificate, signatures, proof and files.

    Parameters
    ----------
    dir : str or Path
        A directory written by :func:`export_release`.
    trusted : Mapping[str, VerifyKey], optional
        The signers' public keys, obtained out of band; strongly recommended (see
        :meth:`Certificate.verify`).

    Returns
    -------
    ExportReport

    Raises
    ------
    VerificationError
        If the certificate does not parse or verify, or the value files are not exactly the
        certified ones (the message names each file that differs, is missing or is extra).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from safeflow.policy.certificate import _example
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = export_release(Path(tmp.name) / "t1", {"table1.csv":
    ...     b"variable,level,n\\nsex,1,138\\nsex,2,90\\n"}, _example(cosigned=True), "")
    >>> _ = (out / "table1.csv").write_bytes(b"variable,level,n\\nsex,1,139\\nsex,2,90\\n")
    >>> verify_export(out)
    Traceback (most recent call last):
    ...
    safeflow.errors.VerificationError: ... content differs from the certified file: table1.csv...
    >>> tmp.cleanup()
    """
    path = Path(dir)
    if not path.is_dir():
        raise VerificationError(f"{path} is not a directory; pass the export directory")
    cert_path = path / CERTIFICATE_FILE
    raw = _read_regular(cert_path, _MAX_CERTIFICATE_BYTES)
    if raw is None:
        raise VerificationError(
            f"{path} holds no {CERTIFICATE_FILE}: it is not an export, or "
            "the certificate was removed"
        )
    certificate = Certificate.from_json(raw)
    certificate.verify(trusted=trusted)
    actual: dict[str, str] = {}
    strange: list[str] = []
    summary = False
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.name == CERTIFICATE_FILE:
            continue
        if not entry.is_file(follow_symlinks=False):
            strange.append(entry.name)
            continue
        if entry.name == SUMMARY_FILE:
            summary = True
            continue
        data = _read_regular(Path(entry.path), None)
        if data is None:  # pragma: no cover (removed while scanning)
            strange.append(entry.name)
            continue
        actual[entry.name] = sha256_hex(data)
    problems = []
    if strange:
        problems.append(f"entries that are not regular files: {', '.join(strange)}")
    mismatch = _compare(actual, certificate.outputs)
    if mismatch:
        problems.append(mismatch)
    if problems:
        raise VerificationError(
            f"the files in {path} are not the certified release: {'; '.join(problems)}. "
            "Obtain the export again from its source"
        )
    return ExportReport(
        path=path,
        output_sha256=certificate.output_sha256,
        files=tuple(sorted(actual)),
        signers=tuple(certificate.signers),
        trusted_keys=trusted is not None,
        outcome=certificate.decision["outcome"],
        log_id=certificate.checkpoint.log_id,
        audit_index=certificate.body["audit"]["index"],
        audit_size=certificate.checkpoint.size,
        summary_present=summary,
    )


def _read_regular(path: Path, limit: int | None) -> bytes | None:
    """Bytes of a regular file (not following a symlink), or None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise VerificationError(
            f"cannot read {path} ({e.strerror}); it must be a regular file, not a symlink"
        ) from None
    with contextlib.closing(os.fdopen(fd, "rb")) as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise VerificationError(f"{path} must be a regular file")
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise VerificationError(f"{path} is larger than {limit} bytes: not a certificate")
    return data


__all__ = ["CERTIFICATE_FILE", "SUMMARY_FILE", "ExportReport", "export_release", "verify_export"]
