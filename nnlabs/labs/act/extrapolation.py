"""The ACT report's section on thinking longer than in training (issue 19's parity extrapolation): the looped
models (looped.py) against every fixed-depth model, by input length, over the seeds that ran them. Reads
analysis.json files only; `report.report` calls `split_looped` and `write`."""

from __future__ import annotations

from pathlib import Path

from nnlabs.labs.act.metrics import by_bucket
from nnlabs.pack import algorithmic
from nnlabs.report.figures import new_figure, save
from nnlabs.report.stats import cell, plot_seed_curves
from nnlabs.report.tables import markdown_table

TARGET = 0.95  # issue 19: an adaptive model at least this accurate on every length beyond training, together
SPLIT_NAMES = {"lengthgen": "cap T (grows with the input)", "lengthgen_capped": "capped at the training cap"}


def split_looped(every_seed: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Take the looped runs out of `every_seed` (in place: the main tables, figures and verdicts compare the
    models that share one curriculum) and return them, {task: [analysis, ...]}."""
    looped = {}
    for task in list(every_seed):
        looped[task] = [a for a in every_seed[task] if a.get("looped")]
        every_seed[task] = [a for a in every_seed[task] if not a.get("looped")]
        if not looped[task]:
            del looped[task]
    return looped


def rows_by_length(group: list[dict], split: str, field: str) -> dict[int, list[dict]]:
    """{length: [that length's summary on each seed]} over the test split and `split` (a lengthgen one)."""
    per_seed = [by_bucket(a["splits"]["test"]["examples"] + a["splits"][split]["examples"], field) for a in group]
    lengths = sorted({k for b in per_seed for k in b})
    return {k: [b[k] for b in per_seed if k in b] for k in lengths}


def lines_of(looped: list[dict], fixed: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(label, split, runs over seeds) for each line of the table and figure: every looped model with the cap
    growing with the input and held to its training cap, then every fixed-depth model at its depth."""
    by_model: dict[str, list[dict]] = {}
    for a in looped + [a for a in fixed if a["kind"] == "fixed" and not a.get("experts")]:
        by_model.setdefault(a["model"], []).append(a)
    out = []
    for name, group in by_model.items():
        if group[0].get("looped"):
            cap = group[0]["max_steps"]
            out += [(f"{name} (cap T)", "lengthgen", group), (f"{name} (cap {cap})", "lengthgen_capped", group)]
        else:
            out.append((f"{name} (cap {group[0]['max_steps']})", "lengthgen", group))
    return out


def section(task: str, looped: list[dict], fixed: list[dict]) -> list[str]:
    field = algorithmic.FIELDS[task][0]
    lo, hi = algorithmic.LENGTHS[task][0]
    glo, ghi = algorithmic.LENGTHS[task][1]
    lines = lines_of(looped, fixed)
    lengths = sorted({k for _, split, g in lines for k in rows_by_length(g, split, field)})
    beyond = [k for k in lengths if k > hi]
    acc_rows, pass_rows = [], []
    for label, split, group in lines:
        per = rows_by_length(group, split, field)
        gen = [sum(s["acc"] for s in (by_bucket(a["splits"][split]["examples"], field)).values()) /
               max(1, len(by_bucket(a["splits"][split]["examples"], field))) for a in group]
        acc_rows.append([label, cell([a["splits"]["test"]["acc"] for a in group], ".1f", 100), cell(gen, ".1f", 100)]
                        + [cell([s["acc"] for s in per.get(k, [])], ".0f", 100) for k in lengths])
        if group[0]["kind"] != "fixed":
            pass_rows.append([label] + [cell([s["steps_answer"] for s in per.get(k, [])], ".1f") for k in lengths])
    seeds = sorted({a["seed"] for a in looped})
    out = [f"## {task}: thinking longer than in training", "",
           f"Trained on {field} {lo}–{hi}, tested on {glo}–{ghi} (up to twice the training length). The looped "
           "models (nnlabs/labs/act/looped.py) have no position or step embedding and renormalise their state after "
           "every pass, so a pass means the same at any position and any depth; at evaluation their pass cap is T, "
           "the row's length (a window of two carries the first position to the last in T passes), where every "
           "other model stops at the cap it trained with. `loop_horizon` halts position t after t + 1 passes (no "
           "learning: the passes the start token needs to reach it); `loop_act` is ACT fine-tuned from it, "
           "deciding its own halting; `loop_wave` is `loop_horizon` fine-tuned with a gate: a position keeps its "
           "state until the start token's information reaches it, updates, and halts one pass later (t + 2 "
           "passes; the schedule is set by position, the update rule is learned). Each looped model is also "
           "shown held to its training cap: the same weights, no extra thinking. Fixed-depth models run their "
           "training depth, as always. "
           + (f"Seeds {', '.join(map(str, seeds))}; cells are mean ± 95 % t-interval half-width." if len(seeds) > 1
              else f"One seed ({seeds[0]}): no interval."), "",
           f"Accuracy (%) by {field} (beyond-training mean = the mean over {glo}–{ghi} of each length's accuracy):", "",
           markdown_table(["model", f"test ({lo}–{hi})", f"{glo}–{ghi} mean"] + [str(k) for k in lengths], acc_rows),
           "", f"Mean passes at the answer position by {field}:", "",
           markdown_table(["model"] + [str(k) for k in lengths], pass_rows), ""]
    out += verdict_lines(lines, beyond, field)
    out += ["![extrapolation](figures/extrapolation.png)", ""]
    return out


def verdict_lines(lines, beyond: list[int], field: str) -> list[str]:
    """Did an adaptive model reach the target on every length beyond training, with passes rising there?"""
    said = []
    for label, split, group in lines:
        if group[0]["kind"] == "fixed" or split != "lengthgen":
            continue
        per_seed = [by_bucket(a["splits"][split]["examples"], field) for a in group]
        worst = [min(b[k]["acc"] for k in beyond if k in b) for b in per_seed]
        passes = [[b[k]["steps_answer"] for k in beyond if k in b] for b in per_seed]
        rising = all(all(y > x for x, y in zip(p, p[1:])) for p in passes)
        met = sum(w >= TARGET for w in worst)
        act = group[0]["kind"] == "act"
        adaptive = "adaptive (ACT)" if act else "passes set by position (no learned halting)"
        outcome = "missed" if not met else "met" if act else "met on accuracy; its passes are set, not learned"
        # ACT that never halts before the cap: its passes rise only because the cap T does
        at_cap = all(r["steps_answer"] == len(r["input"]) + 2 for a in group for r in a["splits"][split]["examples"])
        said.append(f"- **{label}**, {adaptive}: worst length beyond training {cell(worst, '.1f', 100)}%; "
                    f"{met} of {len(group)} seeds at ≥ {TARGET:.0%} on every length "
                    f"{beyond[0]}–{beyond[-1]} (target {outcome}); passes at the answer "
                    + ("rise with every length on every seed" if rising else "do not rise with every length")
                    + ("; its halting unit never stopped the answer before the cap T, so they rise only because "
                       "the cap does." if act and at_cap else "."))
    return ["Target (issue 19): an adaptive model ≥ 95 % on the lengths beyond training, its passes rising there.",
            "", *said, ""] if said else []


def figure(looped: dict[str, list[dict]], every_seed: dict[str, list[dict]], out: Path) -> None:
    tasks = list(looped)
    fig, axes = new_figure(2, len(tasks), width=4.4, height=3.4)
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#17becf", "#e377c2"]
    for row, task in zip(axes, tasks):
        field = algorithmic.FIELDS[task][0]
        lo, hi = algorithmic.LENGTHS[task][0]
        lines = lines_of(looped[task], every_seed.get(task, []))
        models = list(dict.fromkeys(group[0]["model"] for _, _, group in lines))
        for label, split, group in lines:
            # one colour per model; the looped models held to their training cap dashed
            color = colors[models.index(group[0]["model"]) % len(colors)]
            style = "--" if split == "lengthgen_capped" else "-"
            curves = []
            for a in group:
                b = by_bucket(a["splits"]["test"]["examples"] + a["splits"][split]["examples"], field)
                curves.append((list(b), [100 * v["acc"] for v in b.values()], [v["steps_answer"] for v in b.values()]))
            plot_seed_curves(row[0], [(x, y) for x, y, _ in curves], color=color, label=label, linestyle=style,
                             marker=".")
            if group[0]["kind"] != "fixed":
                plot_seed_curves(row[1], [(x, p) for x, _, p in curves], color=color, label=label, linestyle=style,
                                 marker=".")
        for ax in row:
            ax.axvspan(lo - 0.5, hi + 0.5, color="#eee", zorder=0)
            ax.set_xlabel(f"{field} (shaded = training range)")
        row[0].axhline(50, color="#bbb", lw=0.8, ls=":")
        row[0].set_ylim(-2, 104)
        row[0].set_ylabel("exact-match accuracy (%)")
        row[0].set_title(f"{task}: accuracy by {field}")
        row[1].set_ylabel("mean passes at the answer")
        row[1].set_title(f"{task}: passes by {field}")
        row[1].legend(*row[0].get_legend_handles_labels(), fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save(fig, out / "figures" / "extrapolation", source=str(out))


def write(looped: dict[str, list[dict]], every_seed: dict[str, list[dict]], out: Path, alone: bool = False) -> None:
    """Append the section to report.md (or write it as the whole report, `alone`) and draw its figure;
    nothing when no looped model ran."""
    if not looped:
        return
    figure(looped, every_seed, out)
    lines = ["# Part 5 — adaptive computation: the looped models alone", ""] if alone else []
    lines += [line for task, rs in looped.items() for line in section(task, rs, every_seed.get(task, []))]
    with open(out / "report.md", "w" if alone else "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
