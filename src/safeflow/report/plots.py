"""The report's figures: forest plots, Kaplan-Meier curves, bar charts, as embeddable PNGs.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` and rendered by the Agg canvas
directly: no ``pyplot``, no backend switch, no ``rcParams`` change, so building a report
leaves the caller's matplotlib state as it was. Every function returns a :class:`Plot`
(PNG bytes and the size to show it at); a figure that cannot be drawn raises
:class:`~safeflow.report.ReportError`.

Examples
--------
>>> p = forest_plot(["age", "sex=2"], [1.02, 0.58], [1.00, 0.42], [1.04, 0.81],
...                 xlabel="hazard ratio (95% CI)")
>>> p.png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", p.width > 0
(True, True)
>>> p.uri[:22]
'data:image/png;base64,'
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from safeflow.errors import SafeflowError
from safeflow.report._markup import ReportError, missing

#: Okabe-Ito: distinguishable with every common colour-vision deficiency, and in grey.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_DENSITY = 1.5  # pixels per CSS pixel in the PNG (sharp on high-density screens and print)
_CSS_DPI = 96
_FONT = 10.0


@dataclass(frozen=True)
class Plot:
    """A rendered figure: PNG bytes and its display size in CSS pixels."""

    png: bytes
    width: int
    height: int

    @property
    def uri(self) -> str:
        """The PNG as a ``data:`` URI, for an ``<img src>`` that needs no file or network."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def render(draw: Callable[[Figure], None], *, size: tuple[float, float], what: str) -> Plot:
    """Draw a figure of ``size`` inches with ``draw(fig)`` and render it to PNG.

    Any failure while drawing becomes a :class:`ReportError` naming ``what``.

    Examples
    --------
    >>> render(lambda fig: fig.add_subplot().plot([0, 1]), size=(2, 1), what="a line").height
    96
    >>> render(lambda fig: 1 / 0, size=(2, 1), what="a bad plot")
    Traceback (most recent call last):
    ...
    safeflow.report.ReportError: could not draw a bad plot (ZeroDivisionError: ...
    """
    try:
        fig = Figure(figsize=size, dpi=_CSS_DPI * _DENSITY, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None}, facecolor="white")
    except SafeflowError:
        raise
    except Exception as e:  # matplotlib raises many types; the report names what failed
        raise ReportError(
            f"could not draw {what} ({type(e).__name__}: {e}); no report was written. "
            "Check the release's value, or report this as a safeflow bug"
        ) from e
    return Plot(buf.getvalue(), round(size[0] * _CSS_DPI), round(size[1] * _CSS_DPI))


def _style(ax: Any) -> None:
    ax.tick_params(labelsize=_FONT - 1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color="#e3e6eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _ratio_ticks(lo: float, hi: float) -> list[float]:
    """Readable ticks on a log axis from ``lo`` to ``hi`` (both > 0), 1 included if in range.

    The coarsest of a few "nice" mantissa sets that gives at least three ticks; a very
    narrow range falls back to evenly spaced ticks.
    """
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 5, 7),
                      (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**e for e in range(-6, 7) for m in mantissas]
        ticks = sorted(round(t, 9) for t in ticks if lo <= t <= hi)
        if len(ticks) >= 3:
            while len(ticks) > 8:  # only decades get here: every other one, keeping 1
                keep = ticks.index(1.0) % 2 if 1.0 in ticks else 0
                ticks = ticks[keep::2]
            return ticks
    loc = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10])
    return [float(t) for t in loc.tick_values(lo, hi) if lo <= t <= hi and t > 0]


def forest_plot(names: Sequence[str], estimate: Sequence[float], low: Sequence[float],
                high: Sequence[float], *, xlabel: str, ratio: bool = True) -> Plot:
    """Point estimates with confidence intervals, one row per term, first term on top.

    Parameters
    ----------
    names : list of str
    estimate, low, high : list of float
        On the scale shown: ratios (``ratio=True``, log axis, reference line at 1) or
        coefficients (linear axis, reference at 0).
    xlabel : str

    Examples
    --------
    >>> forest_plot(["x"], [0.4], [0.1], [0.7], xlabel="coefficient", ratio=False).width
    672
    """
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    k = len(names)
    ref = 1.0 if ratio else 0.0

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _style(ax)
        y = np.arange(k)[::-1]
        ax.axvline(ref, color="#8a93a3", linestyle="--", linewidth=1)
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="s", color=COLOURS[0],
                    ecolor="#33415c", elinewidth=1.6, capsize=4, markersize=7)
        ax.set_yticks(y, [str(n) for n in names], fontsize=_FONT)
        ax.set_ylim(-0.7, k - 0.05)
        ax.grid(False, axis="y")
        left, right = min(lo.min(), ref), max(hi.max(), ref)
        if ratio:
            ax.set_xscale("log")
            pad = (right / left) ** 0.08
            ax.set_xlim(left / pad, right * pad)
            ax.xaxis.set_major_locator(FixedLocator(_ratio_ticks(left / pad, right * pad)))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            pad = 0.08 * ((right - left) or 1.0)
            ax.set_xlim(left - pad, right + pad)
        ax.set_xlabel(xlabel, fontsize=_FONT)
        ax.text(1.02, k - 0.35, xlabel, transform=ax.get_yaxis_transform(), va="center",
                ha="left", fontsize=_FONT - 1, fontweight="bold")
        for yi, e, a, b in zip(y, est, lo, hi, strict=True):
            ax.text(1.02, yi, f"{e:.2f} ({a:.2f}–{b:.2f})", transform=ax.get_yaxis_transform(),
                    va="center", ha="left", fontsize=_FONT - 1)

    return render(draw, size=(7.0, 0.45 * k + 1.45), what=f"the forest plot of {k} term(s)")


def km_ticks(t_max: float) -> list[float]:
    """Round times from 0 to ``t_max`` for the axis and the numbers-at-risk table.

    Examples
    --------
    >>> km_ticks(1022.0)
    [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
    """
    if not t_max > 0 or math.isinf(t_max):
        return [0.0]
    loc = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=t_max >= 5)
    return [float(t) for t in loc.tick_values(0.0, t_max) if 0.0 <= t <= t_max]


def km_curves(result: Any) -> list[tuple[str, np.ndarray, Any]]:
    """``(group, times, frame)`` for each non-empty curve of a KaplanMeierResult.

    Examples
    --------
    >>> km_curves(type("R", (), {"groups": [], "by": None, "survival": None})())
    []
    """
    out = []
    frame = result.survival
    for g in result.groups:
        if result.by is None:
            c = frame
        elif g in frame.index.get_level_values("group"):
            c = frame.xs(g, level="group")
        else:
            continue
        if len(c):
            out.append((str(g), c.index.to_numpy(dtype=np.float64), c))
    return out


def km_plot(result: Any, ticks: Sequence[float]) -> Plot:
    """Kaplan-Meier step curves with their confidence bands, one colour per group.

    Parameters
    ----------
    result : KaplanMeierResult
    ticks : list of float
        x-axis ticks (the times of the numbers-at-risk table under the plot).

    Examples
    --------
    >>> import pandas as pd
    >>> from safeflow.analyses.survival_results import KaplanMeierResult
    >>> s = pd.DataFrame({"survival": [1.0, 0.5], "ci_lower": [1.0, 0.1],
    ...                   "ci_upper": [1.0, 0.9], "at_risk": [2, 2], "events": [0, 1],
    ...                   "censored": [0, 1]}, index=pd.Index([0.0, 3.0], name="time"))
    >>> km_plot(KaplanMeierResult("t", "e", None, ["all"], s, 0.05), [0, 1, 2, 3]).height
    384
    """
    curves = km_curves(result)
    level = f"{100 * (1 - result.alpha):.0f}%"

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _style(ax)
        for i, (g, t, c) in enumerate(curves):
            colour = COLOURS[i % len(COLOURS)]
            n = int(c["at_risk"].iloc[0])
            label = f"{g} (n={n})" if result.by is None else f"{result.by} = {g} (n={n})"
            ax.step(t, c["survival"].to_numpy(), where="post", color=colour, linewidth=1.8,
                    label=label)
            ax.fill_between(t, c["ci_lower"].to_numpy(), c["ci_upper"].to_numpy(),
                            step="post", alpha=0.18, color=colour, linewidth=0)
        t_end = max((float(t[-1]) for _, t, _ in curves), default=1.0)
        ax.set_xlim(0.0 if min(ticks, default=0.0) >= 0 else min(ticks), max(t_end, 1e-9))
        ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(f"{result.duration}", fontsize=_FONT)
        ax.set_ylabel("survival probability", fontsize=_FONT)
        if curves:
            ax.legend(fontsize=_FONT - 1, frameon=False, loc="lower left",
                      title=f"shaded: {level} confidence band", title_fontsize=_FONT - 2)

    return render(draw, size=(7.0, 4.0), what="the Kaplan-Meier plot")


def bar_plot(labels: Sequence[str], series: Mapping[str, Sequence[Any]], *, xlabel: str,
             ylabel: str = "count") -> Plot:
    """Grouped bars: one bar per label and series; a missing (suppressed) value shows "S".

    Examples
    --------
    >>> bar_plot(["[0, 10)", "[10, 20]"], {"all": [3, None]}, xlabel="age").width
    672
    """
    names = list(series)
    k = max(len(names), 1)
    width = 0.8 / k

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _style(ax)
        ax.grid(False, axis="x")
        x = np.arange(len(labels))
        for i, name in enumerate(names):
            vals = list(series[name])
            h = [0.0 if missing(v) else float(v) for v in vals]
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, h, width=width * 0.92, color=COLOURS[i % len(COLOURS)],
                   label=None if len(names) == 1 else str(name))
            for p, v in zip(pos, vals, strict=True):
                if missing(v):
                    ax.text(p, 0, "S", ha="center", va="bottom", fontsize=_FONT - 1,
                            color="#8a5a00", fontweight="bold")
        ax.set_xticks(x, [str(s) for s in labels], fontsize=_FONT - 1,
                      rotation=30 if len(labels) > 6 else 0)
        ax.set_xlabel(xlabel, fontsize=_FONT)
        ax.set_ylabel(ylabel, fontsize=_FONT)
        if len(names) > 1:
            ax.legend(fontsize=_FONT - 1, frameon=False)

    return render(draw, size=(7.0, 3.4), what=f"the bar chart of {xlabel}")


def budget_plot(rows: Sequence[tuple[str, float, float]]) -> Plot:
    """Horizontal bars of ε spent (dark) against each dataset's total budget (light).

    Parameters
    ----------
    rows : list of (label, spent, total)

    Examples
    --------
    >>> budget_plot([("beijing / trial", 0.5, 2.0)]).width
    672
    """
    k = len(rows)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        _style(ax)
        ax.grid(False, axis="y")
        y = np.arange(k)[::-1]
        spent = np.array([r[1] for r in rows], dtype=float)
        total = np.array([r[2] for r in rows], dtype=float)
        ax.barh(y, total, height=0.55, color="#cfe0f1", label="total budget")
        ax.barh(y, spent, height=0.55, color=COLOURS[0], label="spent")
        for yi, s, t in zip(y, spent, total, strict=True):
            share = f"{100 * s / t:.0f}% spent" if t > 0 else "no budget"
            ax.text(t, yi, f"  {share}", va="center", ha="left", fontsize=_FONT - 1)
        ax.set_yticks(y, [r[0] for r in rows], fontsize=_FONT)
        ax.set_xlim(0, max(float(total.max(initial=0.0)), 1e-9) * 1.25)
        ax.set_xlabel("privacy loss ε", fontsize=_FONT)
        ax.legend(fontsize=_FONT - 1, frameon=False, loc="lower right")

    return render(draw, size=(7.0, 0.42 * k + 1.2), what="the privacy budget chart")


__all__ = ["COLOURS", "Plot", "bar_plot", "budget_plot", "forest_plot", "km_curves",
           "km_plot", "km_ticks", "render"]
