"""The comparison report: ``compare.md`` with its tables and ``compare/*.png`` (matplotlib, Agg).

Examples
--------
>>> table(["a", "b"], [["1", "2"]])
['| a | b |', '|---|---|', '| 1 | 2 |']
>>> human_bytes(1_234_567)
'1.23 MB'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safeflow.benchmarking.estimands import Estimand
from safeflow.benchmarking.harness import FL_TITLE, Results, Row
from safeflow.benchmarking.measure import method
from safeflow.benchmarking.peers import FLOWER_HOOKS
from safeflow.benchmarking.scaling import AXES, Point, growth
from safeflow.benchmarking.variants import PROTOCOL_VARIANTS, dp_variants, views

#: the columns of every per-estimand table
COLUMNS = ["variant", "status", "error", "AUC gap", "bytes across borders", "rounds",
           "wall s", "peak MiB", "ε spent", "releases", "note"]
#: the figure files, relative to the output directory
FIGURES = {"protocols": "compare/protocols.png", "dp": "compare/dp_error.png",
           **{axis: f"compare/scaling_{axis}.png" for axis in AXES}}
_COLOURS = {"pooled": "black", "plain": "tab:gray", "masking": "tab:blue",
            "he-bfv": "tab:green", "he-ckks": "tab:olive", "dp-central": "tab:red",
            "dp-local": "tab:orange", "opendp": "tab:purple"}


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table (lines)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def human_bytes(n: float | None) -> str:
    """Bytes in B / kB / MB / GB (powers of 1000)."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.3g} {unit}"
    return f"{int(n)} B"


# --------------------------------------------------------------------------- figures


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_protocols(rows: Sequence[Row], path: Path) -> None:
    """Wall time and bytes of every estimand under every protocol (grouped bars, log y)."""
    plt = _plt()
    keys = list(dict.fromkeys(r.estimand for r in rows))
    labels = [v.label for v in PROTOCOL_VARIANTS]
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    width = 0.8 / len(labels)
    for i, lab in enumerate(labels):
        for ax, attr in zip(axes, ("seconds", "bytes"), strict=True):
            vals = []
            for k in keys:
                r = next((r for r in rows if r.estimand == k and r.variant == lab), None)
                v = getattr(r, attr) if r is not None and r.status == "ok" else None
                vals.append(np.nan if not v else float(v))
            ax.bar(np.arange(len(keys)) + (i - len(labels) / 2 + 0.5) * width, vals, width,
                   label=lab, color=_COLOURS.get(lab))
    axes[0].set_ylabel("wall time (s)")
    axes[1].set_ylabel("bytes across borders")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(np.arange(len(keys)), [k.split(" (")[0] for k in keys], rotation=20,
                       ha="right")
    axes[0].legend(ncol=len(labels), fontsize=8)
    axes[0].set_title("Same estimand, each protocol (pooled: peer library; bytes = rows "
                      "exported)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_dp(rows: Sequence[Row], path: Path) -> None:
    """Error against ε: DP central, DP local and OpenDP's single curator, per estimand."""
    plt = _plt()
    keys = [k for k in dict.fromkeys(r.estimand for r in rows)
            if any(r.estimand == k and r.family == "dp-central" and r.status == "ok"
                   for r in rows)]
    cols = 3
    nrows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, k in zip(axes.flat, keys, strict=False):
        for fam in ("dp-central", "dp-local", "opendp"):
            pts = [(float(r.epsilon or "nan"), r.error) for r in rows
                   if r.estimand == k and r.family == fam and r.status == "ok"
                   and r.error is not None]
            if pts:
                x, y = zip(*sorted(pts), strict=True)
                ax.plot(x, [max(v, 1e-12) for v in y], "o-", label=fam,
                        color=_COLOURS.get(fam))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("ε")
        ax.set_title(k.split(" (")[0], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for row in axes:
        row[0].set_ylabel("error against the pooled fit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(points: Sequence[Point], axis: str, path: Path) -> None:
    """Time and bytes against one axis, log-log, one line per protocol.

    Examples
    --------
    >>> import tempfile
    >>> pts = [Point("sites", "plain", k, seconds=0.1 * k, bytes=1000 * k, rounds=1)
    ...        for k in (2, 5)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     plot_scaling(pts, "sites", Path(d) / "s.png")
    ...     (Path(d) / "s.png").stat().st_size > 0
    True
    """
    plt = _plt()
    label, sym = AXES[axis]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    protos = list(dict.fromkeys(p.protocol for p in points if p.axis == axis))
    for proto in protos:
        pts = [p for p in points if p.axis == axis and p.protocol == proto and p.status == "ok"]
        if not pts:
            continue
        xs = [p.x for p in pts]
        axes[0].plot(xs, [p.seconds for p in pts], "o-", label=proto, color=_COLOURS.get(proto))
        axes[1].plot(xs, [p.bytes for p in pts], "o-", label=proto, color=_COLOURS.get(proto))
    xs_all = sorted({p.x for p in points if p.axis == axis and p.status == "ok"})
    for ax, what in zip(axes, ("wall time (s)", "bytes across borders"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        if xs_all:
            ax.set_xticks(xs_all, [f"{x:,}" for x in xs_all])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(f"{label} ({sym})")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Logistic regression: cost against {label} (pooled bytes = rows exported)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown


def _estimand_section(title: str, rows: Sequence[Row], est: Estimand | None) -> list[str]:
    head = f"### {title}"
    lines = [head, ""]
    if est is not None:
        lines += [f"Data: {est.data.source}. Error: {est.metric} against the pooled "
                  f"{est.peer} fit. Pooled bytes: the {len(est.columns)} used columns of "
                  "every row as float64, what exporting the rows would move.", ""]
    lines += table(COLUMNS, [r.cells() for r in rows])
    return [*lines, ""]


def _summary(rows: Sequence[Row]) -> list[str]:
    labels = [v.label for v in PROTOCOL_VARIANTS]
    out = []
    for what, attr, fmt in (("wall time (s)", "seconds", lambda v: f"{v:.3f}"),
                            ("bytes across borders", "bytes", human_bytes),
                            ("error against the pooled fit", "error", lambda v: f"{v:.2g}")):
        body = []
        for k in dict.fromkeys(r.estimand for r in rows):
            cells = [k]
            for lab in labels:
                r = next((r for r in rows if r.estimand == k and r.variant == lab), None)
                v = getattr(r, attr) if r is not None and r.status == "ok" else None
                cells.append("-" if v is None else fmt(v))
            body.append(cells)
        out += [f"**{what}**", "", *table(["estimand", *labels], body), ""]
    return out


def _views() -> list[str]:
    out = ["What every party receives in a run, read from the protocol specs "
           "(`safeflow.protocols.load_spec(name).messages[*].reveals`); DP and the pooled "
           "peer add the lines marked by their family.", ""]
    variants = [*PROTOCOL_VARIANTS, *dp_variants((1.0,))]
    for v in variants:
        fam = v.family
        title = fam if not v.is_dp else f"{fam} (over {v.protocol})"
        out += [f"**{title}**", ""]
        out += table(["party", "sees"], [[role, "; ".join(texts)]
                                        for role, texts in views(v).items()])
        out.append("")
    return out


def _scaling(res: Results) -> list[str]:
    b = res.profile.base
    out = [f"Estimand: logistic regression (`sf.glm(..., family='binomial')`) on seeded "
           f"synthetic rows; base point {b.rows:,} rows per site, {b.sites} sites, "
           f"{b.covariates} covariates; one axis moves at a time. A curve stops at the first "
           f"point over {res.profile.cap_s:.0f} s, or before a point whose time or peak "
           f"memory projected linearly from the previous point exceeds {res.profile.cap_s:.0f} "
           f"s or {res.profile.cap_mib / 1024:.0f} GiB (the machine is shared: a first full "
           "run was killed by the kernel's OOM killer when statsmodels fitted 3 x 10^7 "
           "pooled rows in over 22 GB). CKKS runs with tol=1e-6 (its flooding "
           "noise is above the default 1e-10). Pooled = statsmodels on the pooled rows; its "
           "bytes are the rows' float64 export.", ""]
    for axis, (label, sym) in AXES.items():
        pts = [p for p in res.points if p.axis == axis]
        if not pts:
            continue
        xs = sorted(dict.fromkeys(p.x for p in pts))
        protos = list(dict.fromkeys(p.protocol for p in pts))
        out += [f"### {label} ({sym})", "", f"![{label}]({FIGURES[axis]})", ""]
        for what, fmt in (("wall s", lambda p: f"{p.seconds:.3f}"),
                          ("bytes across borders", lambda p: f"{p.bytes:,}"),
                          ("rounds", lambda p: f"{p.rounds}"),
                          ("peak MiB", lambda p: f"{p.peak_mib:.1f}")):
            body = []
            for proto in protos:
                cells = [proto]
                for x in xs:
                    p = next((q for q in pts if q.protocol == proto and q.x == x), None)
                    cells.append("-" if p is None else (fmt(p) if p.status == "ok"
                                                         else p.status))
                body.append(cells)
            out += [f"{what}:", "", *table([f"protocol \\ {sym}", *(f"{x:,}" for x in xs)],
                                            body), ""]
        notes = [f"- {p.protocol} at {p.x:,}: {p.status}: {p.note}" for p in pts
                 if p.status != "ok" and p.note]
        out += [*dict.fromkeys(notes), ""] if notes else []
    fits = growth(res.points)
    out += ["### Fitted growth", "",
            "Least-squares slope of log10(time) and log10(bytes) against log10 of the axis "
            "(`numpy.linalg.lstsq`) over every measured point; the last-segment slopes use "
            "only the two largest points (fixed costs dominate the small ones, so the "
            "last segment is the better guide to the asymptotic law). Bytes per round "
            "removes the variation of Newton's iteration count (CKKS noise adds rounds).",
            ""]
    out += table(["axis", "protocol", "points", "time slope", "last-segment time slope",
                  "bytes slope", "bytes/round slope", "last-segment bytes/round slope",
                  "in words"],
                 [[AXES[g.axis][0], g.protocol, str(g.points), f"{g.time_slope:.2f}",
                   f"{g.last_time_slope:.2f}", f"{g.bytes_slope:.2f}",
                   f"{g.bytes_per_round_slope:.2f}", f"{g.last_bytes_per_round_slope:.2f}",
                   g.words()]
                  for g in fits])
    return [*out, ""]


def render(res: Results, estimands: Sequence[Estimand] = ()) -> str:
    """The markdown text of ``res``."""
    p = res.profile
    by_key = {e.title: e for e in estimands}
    lines = [
        "# Protocols compared on the same estimands",
        "",
        "Generated by `benchmarks/compare.py` (also `safeflow bench`); do not edit by hand. "
        "Code: `src/safeflow/benchmarking/`.",
        "",
        f"- date: {res.date}",
        f"- command: `{res.command}`",
        f"- profile: {p.name} (DP releases per ε: {p.dp_repeats}; FL rounds: {p.fl_rounds}; "
        f"rows per site {', '.join(f'{x:,}' for x in p.rows_per_site)}; sites "
        f"{', '.join(map(str, p.sites))}; covariates {', '.join(map(str, p.covariates))}; "
        f"time cap {p.cap_s:.0f} s and memory cap {p.cap_mib / 1024:.0f} GiB per scaling "
        "point)",
        f"- run time: {res.finished - res.started:.0f} s; load average (1/5/15 min) at start "
        f"{res.load_start}, at end {res.load_end}. The machine is shared with other work: "
        "timings are inflated and vary by tens of percent between runs; compare figures "
        "within this report.",
        *(f"- {k}: {v}" for k, v in res.machine.items()),
        f"- peak memory: {method()}",
        "- wall time: the whole `sf.*` call in one process over the local transport (real "
        "envelopes, export gates, policy and certificate): every site, the aggregator and "
        "customs run one after another, so this is total work, not the critical path of a "
        "deployment where sites run in parallel (see secure_sum.md for that)",
        "- bytes across borders: `release.bytes_cross_border` (envelopes included, set-up "
        "round included); customs and the aggregator are in NL and no site is, so every "
        "site<->aggregator byte crosses a border",
        "- data: all columns are declared `classes=(\"public\",)` (published open data, "
        "seeded synthetic rows): that lets `plain` cross a border under the default policy "
        "(GATE-public-data) and keeps disclosure control out of the measurement",
        "",
        "## Summary",
        "",
        *_summary(res.rows),
        f"![protocols]({FIGURES['protocols']})",
        "",
        "## 1. Protocols on the same estimand",
        "",
        "Rows: the pooled peer fit (pandas / statsmodels / lifelines on all rows in one "
        "place), `plain`, `masking`, `he` BFV (`protocol=\"he\"`), `he` CKKS "
        "(`protocol=\"he\", scheme=\"ckks\"`), DP releases over `masking` at ε ∈ "
        f"{{{', '.join(f'{e:g}' for e in p.epsilons)}}} in central and local mode "
        "(`dp=sf.DP(ε, mode=...)`), and OpenDP's single curator on the pooled rows with "
        "the same ε split the same way. DP errors are medians over the releases "
        "(`releases` column). ε spent is read from the release's facts.",
        "",
    ]
    for title in dict.fromkeys(r.estimand for r in res.rows):
        lines += _estimand_section(title, [r for r in res.rows if r.estimand == title],
                                   by_key.get(title))
        if title == FL_TITLE:
            lines += ["Error and AUC gap: |AUC of the trained model - AUC of the pooled "
                      "maximum-likelihood fit|, both on the pooled training rows. Bare "
                      "Flower FedAvg is looked up as "
                      + ", ".join(f"`{m}.{n}`" for m, n in FLOWER_HOOKS)
                      + " and called as `bare_fedavg(parts, rounds=R)` with one `(X, y)` "
                      "pair per site.", ""]
    lines += ["## 2. DP error against ε", "", f"![dp]({FIGURES['dp']})", "",
              "OpenDP's float sum (`then_clamp >> then_sum`) charges `upper - lower` per "
              "added or removed row when the bounds straddle 0, twice the half-range that "
              "safeflow's centred sums are charged, so its Table 1 sums carry twice the "
              "noise at the same ε; counts and histograms are charged the same.", "",
              "Kaplan-Meier and log-rank under DP noise every cell of the public 1-day grid "
              "(1,101 points, events and censorings): the noise of all earlier cells adds up "
              "in the numbers at risk, so at small ε the curve is far off; a coarser public "
              "grid (`time_grid=`) trades time resolution for accuracy. The DP linear "
              "regression has 226 patients and 5 parameters: the noisy XᵀX is close to "
              "singular and the coefficients are far off at every ε here (DP regression needs "
              "many more rows; GLM standard errors do not include the DP noise, and a noisy "
              "XᵀX can make them zero or undefined, which the warnings in the notes show).",
              "",
              "## 3. What each party sees", "", *_views(),
              "## 4. Scaling", "", *_scaling(res), "## 5. Not measured", ""]
    missing = [r for r in res.rows if r.status in ("not available", "skipped", "failed")]
    seen: dict[str, None] = {}
    for r in missing:
        label = r.family if r.variant.startswith(("dp-", "opendp")) else r.variant
        seen.setdefault(f"- {r.estimand} / {label}: {r.status}: {r.note}", None)
    lines += list(seen) or ["- nothing"]
    return "\n".join(lines) + "\n"


def write(res: Results, out: Path) -> Path:
    """Write ``out/compare.md`` and the figures; return the markdown path."""
    from safeflow.benchmarking import data as datasets
    from safeflow.benchmarking.estimands import estimands

    out = Path(out)
    (out / "compare").mkdir(parents=True, exist_ok=True)
    plot_protocols(res.rows, out / FIGURES["protocols"])
    plot_dp(res.rows, out / FIGURES["dp"])
    for axis in AXES:
        plot_scaling(res.points, axis, out / FIGURES[axis])
    ests = estimands(datasets.lung(), datasets.breast_cancer())
    path = out / "compare.md"
    path.write_text(render(res, ests))
    return path


__all__ = ["COLUMNS", "FIGURES", "human_bytes", "plot_dp", "plot_protocols", "plot_scaling",
           "render", "table", "write"]
