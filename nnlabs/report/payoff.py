"""The series payoff: quality against compute for every lab, one panel each (small multiples).

Each lab's `report(out)` writes `out/payoff.json` from its run directories:
`{"lab", "quality": "<what, unit>", "compute": "<unit>", "points": [{"run", "label", "kind": "baseline" |
"routed", "quality", "compute", "seed"}]}` — one point per run and seed. This module only reads those
files; nothing here is typed in. A lab may add `"better": "higher" | "lower"` (which way quality improves);
without it, a quality named as a loss, NLL, error, perplexity or bits is read as lower-is-better.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from matplotlib.ticker import EngFormatter

from nnlabs.labs import LABS
from nnlabs.report.figures import new_figure, place_labels, save, text_size
from nnlabs.report.stats import mean_ci
from nnlabs.spine.errors import UserError

KINDS = ("baseline", "routed")
LOWER_IS_BETTER = re.compile(r"\b(loss|nll|nats?|bits|error|perplexity|bpc)\b", re.IGNORECASE)
COLORS = {"baseline": "#7a7a7a", "routed": "#1f77b4"}
MARKERS = {"baseline": "s", "routed": "o"}


@dataclass(frozen=True)
class Payoff:
    lab: str
    quality: str  # what quality is, with its unit
    compute: str  # the compute unit
    lower_is_better: bool
    points: list[dict]


@dataclass(frozen=True)
class RunPoint:
    """One run's point on a panel: the mean over its seeds, with every seed kept."""

    run: str
    label: str
    kind: str
    quality: float
    compute: float
    seeds: list[dict]


def read_payoff(path: str | Path) -> Payoff:
    """payoff.json, checked against the contract; a malformed file is one sentence naming it."""
    path = Path(path)

    def bad(what: str):
        return UserError(f"{path}: {what}; rerun `nnlabs report` so the lab rewrites it")

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise bad("not valid JSON") from None
    for key in ("lab", "quality", "compute", "points"):
        if key not in data:
            raise bad(f"missing {key!r}")
    points = data["points"]
    if not isinstance(points, list):
        raise bad("'points' is not a list")
    for i, p in enumerate(points):
        missing = {"run", "label", "kind", "quality", "compute", "seed"} - set(p)
        if missing:
            raise bad(f"point {i} lacks {', '.join(sorted(missing))}")
        if p["kind"] not in KINDS:
            raise bad(f"point {i} has kind {p['kind']!r} (baseline or routed)")
        if not all(isinstance(p[k], (int, float)) and math.isfinite(p[k]) for k in ("quality", "compute")):
            raise bad(f"point {i} has a quality or compute that is not a finite number")
    better = data.get("better")
    if better not in (None, "higher", "lower"):
        raise bad(f"'better' is {better!r} (higher or lower)")
    lower = better == "lower" if better else bool(LOWER_IS_BETTER.search(data["quality"]))
    return Payoff(lab=data["lab"], quality=data["quality"], compute=data["compute"], lower_is_better=lower,
                  points=points)


def run_points(payoff: Payoff) -> list[RunPoint]:
    """Points grouped across seeds, in the order they first appear; quality and compute averaged over seeds.
    A group is a run, label and kind: one run's weights may give several points (tools: never/always call)."""
    groups: dict[tuple, list[dict]] = {}
    for p in payoff.points:
        groups.setdefault((p["run"], p["label"], p["kind"]), []).append(p)
    return [RunPoint(run=run, label=label, kind=kind,
                     quality=mean_ci([p["quality"] for p in ps]).mean,
                     compute=mean_ci([p["compute"] for p in ps]).mean,
                     seeds=sorted(ps, key=lambda p: p["seed"]))
            for (run, label, kind), ps in groups.items()]


def pareto_front(points: list[RunPoint], lower_is_better: bool) -> list[RunPoint]:
    """The points no other point beats: none with less-or-equal compute and better-or-equal quality
    (strictly better in one). Sorted by compute, so quality improves along the list."""
    sign = 1 if lower_is_better else -1
    # scan by compute (ties: best quality first); a point is on the front if it beats every cheaper one
    front, best = [], math.inf
    for p in sorted(points, key=lambda p: (p.compute, sign * p.quality)):
        if sign * p.quality < best:
            front.append(p)
            best = sign * p.quality
    return front


def _staircase(front: list[RunPoint], x_end: float) -> tuple[list[float], list[float]]:
    """The best quality reachable with at most x compute: flat until the next front point, then a step."""
    xs = [p.compute for p in front] + [x_end]
    ys = [p.quality for p in front] + [front[-1].quality]
    return xs, ys


def _panel(ax, lab: str, payoff: Payoff | None) -> tuple[list[RunPoint], float] | None:
    """Draw one lab's points and fronts; returns its points and the middle of its compute axis for
    `_label_points` (None for a panel without data)."""
    info = LABS[lab]
    ax.set_title(f"Part {info.part} · {info.title.split(':')[0]}")
    if payoff is None or not payoff.points:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="#888",
                fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        return None
    runs = run_points(payoff)
    computes = [p.compute for p in runs]
    if min(computes) > 0 and max(computes) / min(computes) > 20:
        ax.set_xscale("log")
    x_end = max(computes)
    # labels need room at the edges; engineering ticks (200k, 1.2M) read faster than 1e6 offsets
    ax.margins(x=0.1, y=0.12)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    x_mid = (min(computes) * max(computes)) ** 0.5 if ax.get_xscale() == "log" else (min(computes) + x_end) / 2
    for kind in KINDS:
        for p in (p for p in runs if p.kind == kind):
            if len(p.seeds) > 1:
                # every seed stays visible, faint, under the mean and its 95 % t-interval
                ax.scatter([s["compute"] for s in p.seeds], [s["quality"] for s in p.seeds], s=12,
                           color=COLORS[kind], alpha=0.25, linewidths=0, zorder=2)
                q = mean_ci([s["quality"] for s in p.seeds])
                ax.errorbar([p.compute], [q.mean], yerr=[[q.mean - q.low], [q.high - q.mean]], fmt="none",
                            ecolor=COLORS[kind], elinewidth=1, capsize=2, zorder=2)
            ax.scatter([p.compute], [p.quality], s=36, marker=MARKERS[kind], color=COLORS[kind], zorder=3,
                       edgecolors="white", linewidths=0.6)
    baselines = [p for p in runs if p.kind == "baseline"]
    if baselines:
        xs, ys = _staircase(pareto_front(baselines, payoff.lower_is_better), x_end)
        ax.plot(xs, ys, drawstyle="steps-post", color=COLORS["baseline"], ls="--", lw=1, zorder=1)
    front = pareto_front(runs, payoff.lower_is_better)
    xs, ys = _staircase(front, x_end)
    ax.plot(xs, ys, drawstyle="steps-post", color="#d62728", lw=1.3, zorder=1)
    ax.scatter([p.compute for p in front], [p.quality for p in front], s=90, facecolors="none",
               edgecolors="#d62728", linewidths=1, zorder=4)
    ax.set_xlabel(textwrap.fill(payoff.compute, 48))
    ax.set_ylabel(textwrap.fill(f"{payoff.quality} ({'lower' if payoff.lower_is_better else 'higher'} is better)",
                                40))
    return runs, x_mid


def _label_points(ax, runs: list[RunPoint], x_mid: float) -> None:
    """One short tag per point (`figures.place_labels`: inside the panel, off every tag and marker); points
    drawn on top of each other share one ("a / b", as many as fit in half the panel, the rest counted).
    Words every label starts with (a task name, say) go to the panel's title instead of onto every tag.
    Call it once the figure's layout is final."""
    labels = [p.label.split() for p in runs]
    common = 0
    while len(runs) > 1 and all(len(w) > common + 1 and w[common] == labels[0][common] for w in labels):
        common += 1
    if common:
        ax.set_title(f"{ax.get_title()} ({' '.join(labels[0][:common])})")
    tags = [" ".join(w[common:]) for w in labels]
    tags = [t if len(t) <= 26 else t[:25] + "…" for t in tags]
    xy = ax.transData.transform([(p.compute, p.quality) for p in runs])  # display pixels
    # points drawn on top of each other share one tag
    groups: list[list[int]] = []
    for i, (x, y) in enumerate(xy):
        same = next((g for g in groups if abs(x - xy[g[0]][0]) < 6 and abs(y - xy[g[0]][1]) < 6), None)
        if same is None:
            groups.append([i])
        else:
            same.append(i)
    half = ax.get_window_extent().width / 2
    texts = []
    for group in groups:
        for shown in range(min(len(group), 3), 0, -1):
            rest = len(group) - shown
            text = " / ".join(tags[i] for i in group[:shown]) + (f" +{rest}" if rest else "")
            if text_size(ax, text, 6.5).width <= half:
                break
        texts.append(text)
    lead = [runs[g[0]] for g in groups]
    place_labels(ax, [(p.compute, p.quality) for p in lead], texts, right_first=[p.compute <= x_mid for p in lead],
                 taken=[(runs[i].compute, runs[i].quality) for g in groups for i in g[1:]])


def payoff_figure(payoffs: dict[str, Payoff | None], path: str | Path, ncols: int = 3,
                  width: float = 3.6, height: float = 2.9) -> list[Path]:
    """`draw_payoff`, written to `path`.png and .svg; returns their paths."""
    return save(draw_payoff(payoffs, ncols, width, height), path, source="runs/<lab>/payoff.json")


def draw_payoff(payoffs: dict[str, Payoff | None], ncols: int = 3, width: float = 3.6, height: float = 2.9):
    """One panel per registered lab (`payoffs[lab]` None: "no data yet"), `ncols` panels a row of
    `width x height` inches each, and one legend for them all."""
    labs = list(LABS)
    nrows = math.ceil((len(labs) + 1) / ncols)  # +1: the legend gets a cell of its own
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=width, height=height, layout="constrained")
    cells = [ax for row in axes for ax in row]
    drawn = {ax: _panel(ax, lab, payoffs.get(lab)) for ax, lab in zip(cells, labs)}
    legend_ax = cells[len(labs)]
    legend_ax.axis("off")
    handles = [
        legend_ax.scatter([], [], marker=MARKERS["baseline"], color=COLORS["baseline"],
                          label="baseline (dense, fixed depth,\nnever/always call, no learning)"),
        legend_ax.scatter([], [], marker=MARKERS["routed"], color=COLORS["routed"], label="routed variant"),
        legend_ax.scatter([], [], color=COLORS["routed"], alpha=0.25, s=12,
                          label="one seed (mean and 95% interval on top)"),
        legend_ax.plot([], [], color=COLORS["baseline"], ls="--", label="frontier of the baselines")[0],
        legend_ax.plot([], [], color="#d62728", marker="o", mfc="none", label="frontier with routing")[0],
    ]
    legend_ax.legend(handles=handles, loc="center left", fontsize=7.5)
    for ax in cells[len(labs) + 1:]:
        ax.axis("off")
    fig.suptitle("All routing is resource allocation:\nquality vs compute, one panel per part" if ncols == 1 else
                 "All routing is resource allocation: quality vs compute, one panel per part", fontsize=11)
    # the tags go on last, where the final layout puts the panels
    fig.draw_without_rendering()
    for ax, panel in drawn.items():
        if panel is not None:
            _label_points(ax, *panel)
    return fig
