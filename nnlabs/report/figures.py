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


def _shared_area(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The area two boxes (x0, x1, y0, y1) share (0 if they do not overlap)."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[2], b[2]))


def text_size(ax, text: str, fontsize: float):
    """The display-space box `text` takes in ax at `fontsize` (measured by drawing it, then removed)."""
    probe = ax.text(0, 0, text, fontsize=fontsize, parse_math=False)
    size = probe.get_window_extent(ax.figure.canvas.get_renderer())
    probe.remove()
    return size


def place_labels(ax, points: list[tuple[float, float]], texts: list[str], right_first: list[bool] | None = None,
                 fontsize: float = 6.5, taken: list[tuple[float, float]] = (), avoid=()) -> None:
    """Write texts[i] beside points[i] (data coordinates) where it covers no label placed before, no marker
    (`points` and the other markers, `taken`) and nothing in `avoid` (display-space boxes: a legend), and
    stays inside the axes: beside the point, above or below it, else a row or more further away with a thin
    line back to its point; `right_first[i]` says which side to try first (default: right in the left
    half). Sizes are measured, so call it once the figure's layout is final (`Figure.draw_without_rendering`);
    labels stay out of the layout."""
    renderer = ax.figure.canvas.get_renderer()
    pt = ax.figure.dpi / 72  # display pixels per point
    xy = ax.transData.transform(points) if len(points) else []  # display pixels
    frame = ax.get_window_extent(renderer)
    box_of_frame = (frame.x0, frame.x1, frame.y0, frame.y1)
    # no label covers a marker (a frontier's rings included)
    boxes = [(x - 5 * pt, x + 5 * pt, y - 5 * pt, y + 5 * pt)
             for x, y in [*xy, *(ax.transData.transform(taken) if len(taken) else [])]]
    boxes += [(b.x0, b.x1, b.y0, b.y1) for b in avoid]
    for i, ((x, y), text) in enumerate(zip(xy, texts)):
        size = text_size(ax, text, fontsize)
        right = right_first[i] if right_first is not None else x < (frame.x0 + frame.x1) / 2
        spots = []
        for row in range(6):
            for side in (1, -1) if right else (-1, 1):
                for up in (1, -1):
                    dx, dy = 5 * side, up * (3 + row * 9)  # the label's anchor corner from its point, in points
                    x0 = x + dx * pt - (size.width if side < 0 else 0)
                    y0 = y + dy * pt - (size.height if up < 0 else 0)
                    spots.append((row, side, up, dx, dy, (x0, x0 + size.width, y0, y0 + size.height)))

        def cost(spot):  # the least outside the axes, then the least covering labels and markers, then near
            box = spot[5]
            outside = (box[1] - box[0]) * (box[3] - box[2]) - _shared_area(box, box_of_frame)
            return outside, sum(_shared_area(box, other) for other in boxes), spot[0]

        row, side, up, dx, dy, box = min(spots, key=cost)
        boxes.append(box)
        label = ax.annotate(text, points[i], xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha="left" if side > 0 else "right", va="bottom" if up > 0 else "top", color="#333",
                            clip_on=True, parse_math=False,
                            arrowprops=dict(arrowstyle="-", lw=0.4, color="#999", shrinkA=0, shrinkB=3)
                            if row else None)
        label.set_in_layout(False)
