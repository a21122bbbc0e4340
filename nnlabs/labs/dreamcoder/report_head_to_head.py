"""Part 7.5 in the report: accuracy by input band and against compute for the model, the programs and
the routers; three tasks side by side. Reads `neural/analysis.json` of every seed."""

from __future__ import annotations

from pathlib import Path

from nnlabs.labs.dreamcoder.neural import BANDS, show
from nnlabs.report.figures import new_figure, save
from nnlabs.report.runs import load_runs
from nnlabs.report.stats import LEVEL, cell, mean_ci
from nnlabs.report.tables import markdown_table

POLICIES = {"neural": "neural only", "symbolic": "symbolic only", "rule": "router (rule)",
            "learned": "router (learned)", "oracle": "oracle router"}
COLORS = {"neural": "C0", "symbolic": "C2", "rule": "C1", "learned": "C4", "oracle": "0.4"}
# hollow, larger markers for the routers: where two policies land on one point, both stay visible
MARKERS = {"neural": ("o", 8), "symbolic": ("s", 8), "rule": ("D", 13), "learned": ("o", 6), "oracle": ("^", 9)}


def head_to_head_runs(out: Path) -> list[dict]:
    """The analysis of every finished `neural` run (one per seed)."""
    return [r.analysis for r in load_runs(out) if r.name == "neural" and r.complete]


def mean(values: list[float]) -> float:
    return mean_ci(values).mean


def figure(runs: list[dict], figs: Path, source: str) -> None:
    bands = list(BANDS)
    fig, ax = new_figure(2, 1, width=5.2, height=3.8)
    width = 0.8 / len(POLICIES)
    for j, (key, label) in enumerate(POLICIES.items()):
        for i, band in enumerate(bands):
            values = [100 * r["by_band"][band][key]["accuracy"] for r in runs]
            x = i + (j - (len(POLICIES) - 1) / 2) * width
            ax[0][0].bar(x, mean(values), width, color=COLORS[key], label=label if i == 0 else None)
            ax[0][0].plot([x] * len(values), values, ".", color="k", ms=3, alpha=0.5)
    ax[0][0].set_xticks(range(len(bands)), bands)
    ax[0][0].set(title="Held-out tasks, fresh inputs", ylabel="exact answers (% of queries)", ylim=(0, 105))
    ax[0][0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    for key, label in POLICIES.items():
        xs = [r["policies"][key]["macs_per_query"] for r in runs]
        ys = [100 * r["policies"][key]["accuracy"] for r in runs]
        marker, size = MARKERS[key]
        ax[0][1].plot(xs, ys, marker, color=COLORS[key], alpha=0.35, ms=4)
        ax[0][1].plot(mean(xs), mean(ys), marker, color=COLORS[key], ms=size, label=label,
                      mfc="none" if key == "rule" else COLORS[key], mew=2)
    ax[0][1].set_xscale("log")
    ax[0][1].set(title="Accuracy against compute (all bands)", xlabel="forward MACs (or MAC-equivalents) per query",
                 ylabel="exact answers (% of queries)", ylim=(0, 105))
    ax[0][1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    save(fig, figs / "dreamcoder_neural_vs_symbolic", source=source)


def showcase(run: dict, n_tasks: int = 3) -> list[dict]:
    """Three held-out tasks where the two sides differ most, each with one query per band."""
    by_task: dict[str, list[dict]] = {}
    for q in run["queries"]:
        by_task.setdefault(q["task"], []).append(q)
    gap = lambda qs: abs(sum(q["neural_ok"] for q in qs) - sum(q["symbolic_ok"] for q in qs))  # noqa: E731
    picked = sorted(by_task, key=lambda t: (-gap(by_task[t]), t))[:n_tasks]
    return [{"task": t, "queries": list({q["band"]: q for q in by_task[t]}.values())} for t in picked]


def section(out: Path, figs: Path) -> list[str]:
    """The report.md lines of Part 7.5 (empty when the lab ran on task files without reference programs)."""
    runs = head_to_head_runs(out)
    if not runs:
        return []
    figure(runs, figs, str(out / "neural"))
    seeds = len(runs)
    rows = []
    for key, label in POLICIES.items():
        rows.append([label] + [cell([r["by_band"][b][key]["accuracy"] for r in runs], ".1f", 100) for b in BANDS]
                    + [cell([r["policies"][key]["accuracy"] for r in runs], ".1f", 100),
                       cell([r["policies"][key]["macs_per_query"] for r in runs], ",.0f")])
    bands = list(BANDS)
    found = {b: [r["found"][b]["accuracy"] for r in runs if r["found"][b]["n"]] for b in bands}
    neural_drop = [r["by_band"]["like examples"]["neural"]["accuracy"] - min(
        r["by_band"][b]["neural"]["accuracy"] for b in bands[1:]) for r in runs]
    r0 = runs[0]
    lines = [
        "## 7.5 The routing decision: a neural answer or a program's",
        "",
        "The spine's transformer (in-context induction: the task's examples and a new input in, the output out) "
        "against the programs the final wake found, on fresh inputs from each held-out task's generator in three "
        "bands. "
        + ("One seed: read differences as indicative only." if seeds == 1 else
           f"{seeds} seeds: mean ± the half-width of a {LEVEL:.0%} t-interval over seeds."),
        "",
        markdown_table(["policy", *[f"{b} (%)" for b in bands], "all (%)", "MACs per query"], rows),
        "Where a program was found, it answered "
        + ", ".join(f"{b} {100 * mean(v):.0f} %" for b, v in found.items() if v) + " of its queries exactly. "
        f"The neural model lost {100 * mean(neural_drop):.0f} points from the examples' band to its worst other "
        "band. "
        f"Compute: the model's forward MACs are counted; a program's are its search (programs tried in every wake, "
        f"shared by the task's queries) and one evaluation, at the measured exchange rate of "
        f"{mean([r['macs_per_program'] for r in runs]):,.0f} MAC-equivalents per program tried on this machine.",
        "",
        f"The learned router (logistic regression on {', '.join(r0['router']['features'])}; trained on "
        f"{r0['router']['trained_on']} training-task queries where the two sides disagree) is compared with the "
        "rule (the program whenever one fits every example) and the oracle.",
        "",
        "![neural vs symbolic](figures/dreamcoder_neural_vs_symbolic.png)",
        "",
        "Three held-out tasks (seed " f"{r0['seed']}" "), one fresh query per band:",
        "",
    ]
    table = []
    for item in showcase(r0):
        for q in item["queries"]:
            table.append([item["task"], q["band"], show(q["input"]), show(q["expected"]),
                          q["neural"], q["symbolic"] if q["symbolic"] is not None else "(no program)"])
    lines += [markdown_table(["task", "band", "input", "expected", "neural", "program"], table)]
    return lines
