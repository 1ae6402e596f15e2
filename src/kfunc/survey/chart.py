"""The cumulative timeline chart: BPF helpers vs kfuncs, as a PNG.

With first appearances (``--git``) the lines step at every commit that added a
name; from source trees alone they step at each release. matplotlib is
imported here only, with the Agg backend, so the rest of kfunc never pays for it;
it is an optional extra (``pip install 'kfunc[chart]'``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.outputs import open_output
from kfunc.survey.model import FirstSeen, ReleaseCount, Survey

__all__ = ["draw_chart", "require_matplotlib"]

HELPER_COLOR = "#1f77b4"
KFUNC_COLOR = "#d62728"


def require_matplotlib() -> None:
    """Fail early, with the fix, where matplotlib (the ``chart`` extra) is missing:
    before a survey spends minutes counting for a chart it cannot draw."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise KfuncError(
            "--chart: matplotlib is not installed (kfunc draws the chart with it)",
            "pip install 'kfunc[chart]' (or pip install matplotlib)",
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cumulative(first_seen: list[FirstSeen], kind: str) -> tuple[list[dt.datetime], list[int]]:
    dates = sorted(f.date for f in first_seen if f.kind == kind)
    return dates, list(range(1, len(dates) + 1))


def draw_chart(survey: Survey, out: str | Path, title: str | None = None) -> Path:
    """Draw ``survey`` into the PNG ``out`` and return its path."""
    out = Path(out)
    dated = [r for r in survey.releases if r.date is not None]
    if not dated and not survey.first_seen:
        raise KfuncError(
            "chart: no dated release and no history to draw",
            "survey trees whose release is known, or a git repository (--git)",
        )
    plt = _pyplot()
    from matplotlib import dates as mdates

    fig, ax = plt.subplots(figsize=(12, 6.75), dpi=120)
    if survey.first_seen:
        for kind, color, label in (
            ("helper", HELPER_COLOR, "BPF helpers"),
            ("kfunc", KFUNC_COLOR, "kfuncs"),
        ):
            xs, ys = _cumulative(survey.first_seen, kind)
            if xs:
                end = max(xs[-1], *(_as_datetime(r.date) for r in dated)) if dated else xs[-1]
                xs, ys = [xs[0], *xs, end], [0, *ys, ys[-1]]
                ax.step(xs, ys, where="post", color=color, lw=2.4, label=label)
                _label_end(ax, end, ys[-1], color)
        _release_marks(ax, dated, markers=False)
        kind_note = "first appearance of each name on mainline (git history)"
    else:
        _release_lines(ax, dated)
        kind_note = "names present in each release's sources"
    ax.set_title(title or "BPF helpers vs kfuncs in Linux: cumulative count", fontsize=15, pad=12)
    ax.set_ylabel("number of functions", fontsize=12)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    # Below the release names that run along the top.
    ax.legend(loc="upper left", bbox_to_anchor=(0.005, 0.86), fontsize=12, frameon=False)
    fig.text(
        0.01,
        0.01,
        f"{kind_note}; helpers: include/uapi/linux/bpf.h, kfuncs: registered kfunc ID sets "
        "(tests, tools/ and fmodret sets excluded). Drawn by `kfunc survey`.",
        fontsize=8,
        color="#555555",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    try:
        with open_output(out, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return out


def _as_datetime(d: dt.date | None) -> dt.datetime:
    assert d is not None
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def _label_end(ax: Any, x: Any, y: int, color: str) -> None:
    ax.annotate(
        str(y),
        (x, y),
        xytext=(6, 0),
        textcoords="offset points",
        color=color,
        fontsize=12,
        fontweight="bold",
        va="center",
    )


def _release_lines(ax: Any, releases: list[ReleaseCount]) -> None:
    releases = sorted(releases, key=lambda r: r.date or dt.date.min)
    xs = [_as_datetime(r.date) for r in releases]
    for attr, color, label in (
        ("n_helpers", HELPER_COLOR, "BPF helpers"),
        ("n_kfuncs", KFUNC_COLOR, "kfuncs"),
    ):
        ys = [getattr(r, attr) for r in releases]
        # Counts are known at releases only: join them, a dot at each release.
        ax.plot(xs, ys, "-o", color=color, lw=2.4, ms=7, label=label)
        _label_end(ax, xs[-1], ys[-1], color)
    _release_marks(ax, releases, markers=True)


def _release_marks(ax: Any, releases: list[ReleaseCount], markers: bool) -> None:
    """A faint vertical line and the name at each release (thinned when crowded)."""
    releases = sorted(releases, key=lambda r: r.date or dt.date.min)
    step = max(1, len(releases) // 14)
    keep = releases[::step]
    if releases and releases[-1] not in keep:
        keep.append(releases[-1])
    for r in keep:
        x = _as_datetime(r.date)
        ax.axvline(x, color="#999999", lw=0.6, alpha=0.5, zorder=0)
        # x in data, y in axes coordinates: the names run along the top edge.
        ax.text(
            x,
            0.985,
            _short(r.release),
            transform=ax.get_xaxis_transform(),
            rotation=90,
            fontsize=8,
            color="#555555",
            ha="right",
            va="top",
        )
    ax.margins(y=0.2)


def _short(release: str) -> str:
    """``v6.12`` stays; a stable release ``6.12.117`` shows as ``6.12 (.117)``."""
    if release.startswith("v"):
        return release
    m = re.fullmatch(r"(\d+\.\d+)\.(\d+)", release)
    return f"{m[1]} (.{m[2]})" if m else release
