"""Regenerate docs/report.png: a screenshot of a safeflow HTML report in headless Chromium.

Usage (from the repository root, in the project's venv)::

    .venv/bin/python scripts/report_screenshot.py                 # demo report -> docs/report.png
    .venv/bin/python scripts/report_screenshot.py out/report.html  # an existing report
    .venv/bin/python scripts/report_screenshot.py --html out/demo_report.html  # keep the demo

Without a report argument it builds the demo report: the NCCTG lung data of
``examples/data/ncctg_lung.csv`` split between a Beijing (CN) and an Amsterdam (NL) site as
health data, with Table 1, a logistic model, Kaplan-Meier curves, a log-rank test and a
Cox model under secure aggregation, and the manifest of the masking protocol.

Chromium is Debian's ``chromium`` (``scripts/install_chromium.sh``), or the binary named by
``$SAFEFLOW_CHROMIUM``. It runs headless with a throw-away profile, no network services and
a timeout; its whole process group is killed if it does not finish. The functions here are
also used by ``tests/system/test_report_chromium.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "report.png"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """``$SAFEFLOW_CHROMIUM``, else /usr/bin/chromium or a chromium/chrome on the PATH."""
    env = os.environ.get("SAFEFLOW_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(args: Sequence[str], *, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """Run headless Chromium with ``args`` in its own process group and a fresh profile.

    The process group is killed when Chromium times out or fails, and after it exits (so no
    helper process outlives the call). Raises ``FileNotFoundError`` without Chromium and
    ``subprocess.TimeoutExpired`` on timeout.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "Chromium not found: run `sudo bash scripts/install_chromium.sh` (Debian) or set "
            "SAFEFLOW_CHROMIUM to a Chromium/Chrome binary")
    with tempfile.TemporaryDirectory(prefix="safeflow-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            _kill_group(proc.pid)
            proc.communicate()
            raise
        _kill_group(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def screenshot(html: Path, png: Path, *, width: int = 1180, height: int = 2700,
               timeout: float = 90.0) -> Path:
    """Render ``html`` at ``width`` x ``height`` CSS pixels and save the viewport as ``png``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    try:
        res = run_chromium([f"--window-size={width},{height}", "--force-device-scale-factor=1",
                            "--virtual-time-budget=5000", f"--screenshot={tmp}",
                            Path(html).resolve().as_uri()], timeout=timeout)
        if res.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            raise RuntimeError(f"Chromium did not write a screenshot (exit {res.returncode}): "
                               f"{res.stderr.decode(errors='replace')[-2000:]}")
        _shrink(tmp)
        os.replace(tmp, png)
    finally:
        tmp.unlink(missing_ok=True)
    return png


def _shrink(png: Path) -> None:
    """Re-encode as an optimised 256-colour PNG (a third of the size; text stays sharp)."""
    from PIL import Image  # installed with matplotlib

    with Image.open(png) as im:
        small = im.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def dump_dom(url: str, *, extra: Sequence[str] = (), timeout: float = 90.0) -> str:
    """The DOM of ``url`` after load (``--dump-dom``), as text."""
    res = run_chromium(["--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
                        *extra, "--dump-dom", url], timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"Chromium --dump-dom failed (exit {res.returncode}): "
                           f"{res.stderr.decode(errors='replace')[-2000:]}")
    return res.stdout.decode("utf-8", errors="replace")


def manifest_rows(protocol: str) -> list[dict[str, object]]:
    """The "what was revealed to whom" rows of a protocol, from its spec."""
    from safeflow.protocols.spec import load_spec

    return [{"party": party, "message": f"{m.stage}: {m.sender} → {m.receiver}",
             "crosses_border": m.crosses_border, "protection": list(m.protections),
             "reveals": text}
            for m in load_spec(protocol).messages for party, text in m.reveals.items()]


def build_demo_report(path: Path) -> Path:
    """The demo report on the NCCTG lung data (two sites, CN and NL, health data)."""
    import warnings

    import pandas as pd

    import safeflow as sf
    from safeflow.report import write_report

    schema = sf.Schema([
        sf.Column("inst", role="group", kind="categorical", categories=tuple(range(1, 34)),
                  on_missing="drop"),
        sf.Column("time", role="time", bounds=(0, 1100), resolution=1.0),
        sf.Column("status", role="event", kind="binary", categories=(0, 1)),
        sf.Column("age", bounds=(18, 100)),
        sf.Column("sex", kind="categorical", categories=(1, 2)),
        sf.Column("ph.ecog", kind="categorical", categories=(0, 1, 2, 3), on_missing="drop"),
        sf.Column("wt.loss", bounds=(-30, 70), on_missing="drop"),
    ])
    lung = pd.read_csv(ROOT / "examples" / "data" / "ncctg_lung.csv")[list(schema.names)]
    odd = lung["inst"].fillna(0) % 2 == 1
    fed = sf.Federation.local(
        [sf.Site("beijing", lung[odd], jurisdiction="CN", schema=schema),
         sf.Site("amsterdam", lung[~odd], jurisdiction="NL", schema=schema)],
        destination="NL", purpose="scientific-research", study="ncctg-demo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = [
            ("Baseline characteristics", sf.describe(fed, ["age", "wt.loss", "ph.ecog"],
                                                     by="sex", protocol="masking")),
            ("Death during follow-up", sf.glm(fed, "status", ["age", "sex"],
                                              family="binomial", protocol="masking")),
            # health data: disclosure control needs >= 10 events and at risk per cell, so
            # the public time grids are coarse (finer ones are denied by SDC-acro-survival)
            ("Overall survival by sex", sf.kaplan_meier(
                fed, "time", "status", by="sex", time_grid=[0, 150, 300, 450],
                protocol="masking")),
            ("Survival by sex: log-rank", sf.logrank(
                fed, "time", "status", "sex", time_grid=[0, 150, 300, 450],
                protocol="masking")),
            ("Cox model", sf.cox(fed, "time", "status", ["age", "sex"],
                                 time_grid=list(range(0, 601, 100)), protocol="masking")),
        ]
    meta = {
        "purpose": "scientific research (demo on the published NCCTG lung cancer data)",
        "sites": [{"site": "beijing", "jurisdiction": "CN", "data": "health"},
                  {"site": "amsterdam", "jurisdiction": "NL", "data": "health"}],
        "destination": "NL (research)",
        "protocol": "masking (pairwise-masked secure aggregation)",
        "study": "ncctg-demo",
    }
    return write_report(path, items, title="NCCTG lung cancer: a two-hospital demo",
                        meta=meta, manifest=manifest_rows("masking"))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", nargs="?", type=Path,
                    help="report HTML to capture (default: build the demo report)")
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT,
                    help=f"PNG to write (default: {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--html", type=Path, help="where to keep the demo report's HTML")
    ap.add_argument("--width", type=int, default=1180)
    ap.add_argument("--height", type=int, default=2700)
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("Chromium not found: run `sudo bash scripts/install_chromium.sh`",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        report = args.report or build_demo_report(args.html or Path(tmp) / "report.html")
        out = screenshot(report, args.output, width=args.width, height=args.height)
    print(f"wrote {out} from {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
