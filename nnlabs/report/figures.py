"""One figure style for the whole series: matplotlib, Agg backend, PNG + SVG side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 140,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "font.size": 9,
    "svg.hashsalt": "nnlabs",  # stable SVG ids, so regenerated figures diff cleanly
}
plt.rcParams.update(STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    """A figure with `nrows x ncols` axes, each about `width x height` inches."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save(fig, path: str | Path, source: str | None = None) -> list[Path]:
    """Write `path`.png and `path`.svg; `source` (the run it came from) goes in the PNG/SVG metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        p = path.with_suffix("." + ext)
        meta = {"Description": f"nnlabs figure from {source}"} if source else {}
        if ext == "svg":
            meta["Date"] = None  # no timestamp: the same run gives the same bytes
        fig.savefig(p, metadata=meta)
        out.append(p)
    plt.close(fig)
    return out
