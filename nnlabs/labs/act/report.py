"""The ACT lab's report: figures, report.md, payoff.json and the explorable (act.html), from the run
directories alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nnlabs.labs.act import extrapolation
from nnlabs.labs.act.explorable import write_explorable
from nnlabs.labs.act.metrics import by_bucket, halting_correlation, pearson, routing_by_pass, routing_by_pass_null
from nnlabs.labs.act.router import depth_paths
from nnlabs.pack import algorithmic
from nnlabs.report.figures import new_figure, place_labels, plt, save
from nnlabs.report.runs import lab_files, load_runs
from nnlabs.report.stats import (
    LEVEL,
    MIN_SEEDS,
    SEED_ALPHA,
    cell,
    mean_ci,
    no_verdict,
    paired,
    seeds_sentence,
    verdict,
)
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError

COLORS = {"fixed": "#7f7f7f", "act": "#1f77b4", "ponder": "#2ca02c", "router": "#9467bd", "exit": "#ff7f0e"}
# the models that choose their own depth (the early exit reuses a fixed model; it joins where said)
ADAPTIVE = ("act", "ponder", "router")


def accuracy_frontier(rs: list[dict]) -> list[dict]:
    """The models on the in-distribution accuracy-compute frontier: every cheaper model is less accurate.
    Only these are labelled; at 100 % a dozen labels ran into one another (every model is in the table)."""
    frontier, best = [], -1.0
    for a in sorted(rs, key=lambda a: (a["splits"]["test"]["macs_per_example"], -a["splits"]["test"]["acc"])):
        if a["splits"]["test"]["acc"] > best:
            frontier.append(a)
            best = a["splits"]["test"]["acc"]
    return frontier


def fig_accuracy_vs_compute(runs, out: Path, every_seed):
    fig, axes = new_figure(len(runs), 1, width=4.6, height=3.8, layout="constrained")
    tags = []  # per panel: its axes, the labelled points, their labels, every marker and the chance note
    for ax, (task, rs) in zip(axes[0], runs.items()):
        # every seed's point faint; the seed mean (what `runs` holds when there are several seeds) on top
        if len(seeds_of(every_seed)) > 1:
            for a in every_seed[task]:
                for split, marker in (("test", "o"), ("lengthgen", "s")):
                    s = a["splits"][split]
                    ax.scatter(s["macs_per_example"] / 1e6, 100 * s["acc"], marker=marker, s=16, linewidths=0,
                               color=COLORS[a["kind"]], alpha=SEED_ALPHA)
        for a in rs:
            for split, marker, fill in (("test", "o", True), ("lengthgen", "s", False)):
                s = a["splits"][split]
                moe = {"edgecolors": "k", "linewidths": 1.2} if a.get("experts") else {}
                ax.scatter(s["macs_per_example"] / 1e6, 100 * s["acc"], marker=marker, s=36, color=COLORS[a["kind"]],
                           facecolors=COLORS[a["kind"]] if fill else "none", **moe)
        labels: dict[tuple, list] = {}  # label anchor -> the models labelled there
        width = max(b["splits"]["test"]["macs_per_example"] for b in rs) / 1e6
        for a in accuracy_frontier(rs):
            s = a["splits"]["test"]
            point = (s["macs_per_example"] / 1e6, 100 * s["acc"])
            near = next((p for p in labels if abs(p[0] - point[0]) < 0.04 * width and abs(p[1] - point[1]) < 4), None)
            labels.setdefault(near or point, []).append(a)  # points closer than a label's size share one label
        markers = [(a["splits"][split]["macs_per_example"] / 1e6, 100 * a["splits"][split]["acc"])
                   for a in rs for split in ("test", "lengthgen")]
        ax.set_ylim(-2, 104)
        ax.axhline(50, color="#bbb", lw=0.8, ls="--")
        chance = ax.text(ax.get_xlim()[1], 45, "chance (binary answers) ", fontsize=6, color="#888", ha="right")
        tags.append((ax, list(labels), [", ".join(a["model"].replace("act_tau", "τ=") for a in same)
                                        for same in labels.values()], markers, chance))
        # the task alone on each panel: four "task: accuracy vs ..." titles ran into each other at full
        ax.set_title(task + seed_note(every_seed))
        ax.set_xlabel("forward MACs per example, millions (measured)")
        ax.set_ylabel("exact-match accuracy (%)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=k) for k, c in COLORS.items()]
    handles += [plt.Line2D([], [], color="k", marker="o", ls="", label="in-distribution test"),
                plt.Line2D([], [], color="k", marker="s", mfc="none", ls="", label="length-generalisation")]
    if any(a.get("experts") for rs in runs.values() for a in rs):
        handles.append(plt.Line2D([], [], color="#ccc", marker="o", mec="k", mew=1.2, ls="",
                                  label="MoE feed-forward (5.5)"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Accuracy vs measured compute, per task\n(labelled: the in-distribution frontier, where no model is "
                 "as accurate for less; every model is in report.md's tables)", fontsize=10)
    # the labels go on last, where the layout puts the panels: inside them, off each other, the markers and
    # the chance line's note
    fig.draw_without_rendering()
    for ax, points, texts, markers, chance in tags:
        place_labels(ax, points, texts, fontsize=6, taken=markers, avoid=[chance.get_window_extent()])
    save(fig, out / "figures" / "accuracy_vs_compute", source=str(out))


def fig_halting_by_difficulty(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.2, height=3.4)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        field = algorithmic.FIELDS[task][0]
        adaptive = [a for a in dense(rs) if a["kind"] in ADAPTIVE + ("exit",)]  # the same models per task
        for i, a in enumerate(adaptive):
            ex = a["splits"]["test"]["examples"] + a["splits"]["lengthgen"]["examples"]
            b = by_bucket(ex, field)
            style = ("-", "--", ":", "-.")[i % 4]  # one colour per kind, one line style per setting
            ax.plot(list(b), [v["steps_answer"] for v in b.values()], style, marker=".", color=COLORS[a["kind"]],
                    label=a["model"])
        lo, hi = algorithmic.LENGTHS[task][0]
        ax.axvspan(lo, hi, color="#eee", zorder=0)
        ax.set_ylim(0.5, max(a["max_steps"] for a in rs) + 0.5)
        ax.set_title(f"{task}: passes at the answer position")
        ax.set_xlabel(f"difficulty: {field} (shaded = training range)")
        ax.set_ylabel("mean passes (halting step)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # one legend: beside a panel it hides the next
    save(fig, out / "figures" / "halting_by_difficulty", source=str(out))


def fig_tau_tradeoff(runs, out: Path, every_seed):
    fig, axes = new_figure(len(runs), 1, width=4.2, height=3.4)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        act = [a for a in dense(rs) if a["kind"] == "act"]
        if len(seeds_of(every_seed)) > 1:
            for a in dense(every_seed[task]):
                if a["kind"] == "act":
                    for split, marker in (("test", "o"), ("lengthgen", "s")):
                        ax.scatter(a["splits"][split]["steps_position"], 100 * a["splits"][split]["acc"], s=14,
                                   marker=marker, color=COLORS["act"], alpha=SEED_ALPHA, linewidths=0)
        for split, marker in (("test", "o-"), ("lengthgen", "s--")):
            ax.plot([a["splits"][split]["steps_position"] for a in act], [100 * a["splits"][split]["acc"] for a in act],
                    marker, color=COLORS["act"], label=split)
        for a in act:
            s = a["splits"]["test"]
            ax.annotate(f"τ={a['tau']:g}", (s["steps_position"], 100 * s["acc"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_title(f"{task}: the τ tradeoff (ACT)" + seed_note(every_seed))
        ax.set_xlabel("mean passes per position (ponder cost N)")
        ax.set_ylabel("accuracy (%)")
        ax.legend()
    save(fig, out / "figures" / "tau_tradeoff", source=str(out))


def dense(rs: list[dict]) -> list[dict]:
    """The main comparison's runs; the MoE ones (5.5) get their own section."""
    return [a for a in rs if not a.get("experts")]


def best_adaptive(rs: list[dict]) -> dict | None:
    adaptive = [a for a in dense(rs) if a["kind"] in ADAPTIVE]
    return max(adaptive, key=accuracy_then_cheapness) if adaptive else None


def accuracy_then_cheapness(a: dict) -> tuple[float, float]:
    return a["splits"]["test"]["acc"], -a["splits"]["test"]["macs_per_example"]


def example_picture(a: dict, per_bucket: int = 1, limit: int = 10) -> list[dict]:
    """A few examples, one per difficulty value, from both splits: characters and passes per position."""
    seen, picked = {}, []
    field = algorithmic.FIELDS[a["task"]][0]
    for split in ("test", "lengthgen"):
        for r in a["splits"][split]["examples"]:
            if seen.get(r[field], 0) < per_bucket:
                seen[r[field]] = seen.get(r[field], 0) + 1
                picked.append({"chars": "." + r["input"] + "=" + r["answer"][:-1], "steps": r["steps"],
                               "correct": r["correct"], "answer": r["answer"], "difficulty": r[field],
                               "split": split})
    picked.sort(key=lambda e: e["difficulty"])
    step = max(1, len(picked) // limit)
    return picked[::step][:limit]


def fig_per_example(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.6, height=3.6)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        a = best_adaptive(rs)
        if a is None:
            ax.set_axis_off()
            continue
        ex = example_picture(a)
        width = max(len(e["chars"]) for e in ex)
        grid = torch.full((len(ex), width), float("nan"))
        for i, e in enumerate(ex):
            grid[i, :len(e["steps"])] = torch.tensor(e["steps"], dtype=torch.float)
        im = ax.imshow(grid.numpy(), cmap="viridis", vmin=1, vmax=a["max_steps"], aspect="auto")
        for i, e in enumerate(ex):
            for j, ch in enumerate(e["chars"]):
                dark = grid[i, j] < (1 + a["max_steps"]) / 2
                ax.text(j, i, ch, ha="center", va="center", fontsize=7, color="w" if dark else "k")
            ax.text(width - 0.3, i, "✓" if e["correct"] else "✗", fontsize=8, va="center")
        ax.set_yticks(range(len(ex)), [f"{e['split'][:4]} {e['difficulty']}" for e in ex], fontsize=6)
        ax.set_xticks([])
        ax.grid(False)
        ax.set_title(f"{task}: passes per character ({a['model']})")
        fig.colorbar(im, ax=ax, label="passes taken")
    save(fig, out / "figures" / "per_example_compute", source=str(out))


def moe_runs(rs: list[dict]) -> list[dict]:
    """The 5.5 runs whose routing the report reads: the deepest fixed MoE model and the adaptive ones."""
    deepest = max(a["max_steps"] for a in rs)
    return [a for a in rs if a.get("experts") and (a["kind"] != "fixed" or a["max_steps"] == deepest)]


def pass_verdict(a: dict, r: dict) -> tuple[float, dict, bool]:
    """5.5's verdict for one run (r = routing_by_pass(a)): the share of the routing entropy the pass carries beyond
    the character, its shuffled-pass null, and whether both clear their bars (≥ 10 %, p ≤ 0.05)."""
    beyond = r["mi_pass_given_char"] / r["h_expert"] if r["h_expert"] > 0 else 0.0
    null = routing_by_pass_null(a)
    return beyond, null, beyond >= 0.1 and null["p_value"] <= 0.05


def moe_section(task: str, rs: list[dict], every: list[dict]) -> list[str]:
    """5.5 in the report: each MoE run beside its dense twin (the lowest seed's, `rs`), what its routing depends
    on, and the verdict counted over every seed's run of it (`every`)."""
    twins = {a["model"]: a for a in rs}
    moe = next(a["config"].get("moe") or {"top_k": "k", "n_experts": a["experts"]} for a in moe_runs(rs))
    lines = [f"## 5.5 — a mixture of experts inside the shared block ({task})", "",
             f"The block's feed-forward replaced by Part 4's top-{moe['top_k']} mixture of {moe['n_experts']} "
             "experts, each as large as the dense feed-forward (composed through the spine's `ffn_factory`; "
             "the balancing loss is "
             "counted on every pass), upcycled from the deepest dense fixed model (every expert a copy of its "
             "feed-forward, a fresh router), trained as a fixed-depth model and then with ACT. The question: does "
             "the expert a position is sent to change with the pass, i.e. does the shared block behave like "
             "different layers at different depths? Information in bits over every (position, pass) of the test "
             "set, about the expert the router ranked first.", ""]
    rows, findings = [], []
    for a in moe_runs(rs):
        twin = twins.get(a["model"].removesuffix(f"_moe{a['experts']}"))
        r, t = routing_by_pass(a), a["splits"]["test"]
        tw = twin["splits"]["test"] if twin else None
        twin_acc, twin_macs = (f"{100 * tw['acc']:.1f}%", f"{tw['macs_per_example']:,.0f}") if tw else ("—", "—")
        rows.append([a["model"], f"{100 * t['acc']:.1f}%", twin_acc, f"{t['macs_per_example']:,.0f}", twin_macs,
                     *(f"{v:.2f}" for v in (t["steps_position"], r["h_expert"], r["mi_pass"], r["mi_char"],
                                            r["mi_pass_given_char"]))])
        # every seed's run of this model, this one (the lowest seed) among them: each routed and tested once
        seeds = [b for b in every if b["model"] == a["model"]] or [a]
        routed = [r if b["seed"] == a["seed"] else routing_by_pass(b) for b in seeds]
        verdicts = [pass_verdict(b, rb) for b, rb in zip(seeds, routed)]
        beyond, null, changes = next(v for b, v in zip(seeds, verdicts) if b["seed"] == a["seed"])
        top = [int(i) for i in np.array(r["share"]).argmax(1)]
        findings.append(f"{a['model']} (seed {a['seed']}): the most used expert per pass is "
                        f"{', '.join(f'E{i}' for i in top)}; the pass carries {r['mi_pass']:.2f} of the "
                        f"{r['h_expert']:.2f} bits of routing entropy, {r['mi_pass_given_char']:.2f} beyond the "
                        f"character ({100 * beyond:.0f}%; with the passes shuffled within each character "
                        f"{null['null_mean']:.2f}, 95th percentile {null['null_q95']:.2f}, p = "
                        f"{null['p_value']:.3f} over {null['n_perm']} shuffles): expert choice "
                        + ("**changes with the pass**." if changes else "**barely changes with the pass**."))
        if len(seeds) > 1:  # the sentence above is one seed's; the count and the interval are every seed's
            cmi = mean_ci([rb["mi_pass_given_char"] for rb in routed])
            findings.append(f"Over {len(seeds)} seeds, {a['model']}: I(expert; pass | character) "
                            f"{cmi.format('.2f')} bits; it changes with the pass on {sum(v[2] for v in verdicts)} of "
                            f"{len(seeds)} seeds.")
    findings.append("Caveat: in an adaptive run a later pass holds only the positions still running, so part of "
                    "its I(expert; pass) is *which* positions remain; the fixed-depth run, where every position "
                    "runs every pass, has no such selection.")
    header = ["model", "test acc", "dense twin", "MACs / example", "dense twin", "passes / position", "H(expert)",
              "I(expert; pass)", "I(expert; character)", "I(expert; pass | character)"]
    figure = "![routing by pass](figures/moe_routing_by_pass.png)"
    return lines + [markdown_table(header, rows)] + findings + ["", figure, ""]


def fig_routing_by_pass(runs, out: Path):
    panels = [a for rs in runs.values() for a in moe_runs(rs)]
    if not panels:
        return
    fig, axes = new_figure(len(panels), 1, width=3.6, height=3.4)
    for ax, a in zip(axes[0], panels):
        r = routing_by_pass(a)
        share = np.array(r["share"])
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (n, e), v in np.ndenumerate(share):
            ax.text(e, n, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v > 0.6 else "k")
        ax.set_xticks(range(share.shape[1]), [f"E{i}" for i in range(share.shape[1])])
        ax.set_yticks(range(share.shape[0]), [str(i + 1) for i in range(share.shape[0])])
        ax.grid(False)
        ax.set_xlabel("expert (router's first choice)")
        ax.set_ylabel("pass")
        ax.set_title(f"{a['task']} {a['model']}\nI(expert; pass) = {r['mi_pass']:.2f} bits", fontsize=9)
    fig.colorbar(im, ax=axes[0][-1], label="share of the pass's positions")
    save(fig, out / "figures" / "moe_routing_by_pass", source=str(out))


ORDER = {"fixed": 0, "act": 1, "ponder": 2, "router": 3, "exit": 4, "horizon": 5, "wavefront": 6}


def analyses(out: Path) -> dict[str, list[dict]]:
    """{task: [analysis, ...]} of the finished runs, each with its `run` name and `config`, in a stable
    order: dense before MoE, then fixed by depth, ACT by tau, PonderNet, early exit."""
    runs: dict[str, list[dict]] = {}
    for run in load_runs(out):
        if run.complete:
            runs.setdefault(run.analysis["task"], []).append({**run.analysis, "run": run.path.name,
                                                              "config": run.config, "seed": run.seed})
    for rs in runs.values():
        rs.sort(key=lambda a: (a.get("experts", 0), ORDER[a["kind"]], a["max_steps"] if a["kind"] == "fixed" else 0,
                               a["tau"] or 0, a["exit_threshold"] or 0))
    return {t: runs[t] for t in algorithmic.TASKS if t in runs}


def one_seed(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each model's run at its lowest seed: what the figures, the explorable and the single-run tables show."""
    first: dict[str, list[dict]] = {}
    for task, rs in runs.items():
        lowest = {}
        for a in rs:
            if a["model"] not in lowest or (a["seed"] or 0) < (lowest[a["model"]]["seed"] or 0):
                lowest[a["model"]] = a
        first[task] = [a for a in rs if lowest[a["model"]] is a]
    return first


def seeds_of(every_seed: dict[str, list[dict]]) -> list[int]:
    return sorted({a["seed"] for rs in every_seed.values() for a in rs})


def seed_note(every_seed) -> str:
    seeds = seeds_of(every_seed)
    return f"\nmean of {len(seeds)} seeds; faint: each seed" if len(seeds) > 1 else f" (seed {seeds[0]})"


MEAN_KEYS = ("acc", "macs_per_example", "steps_position", "steps_answer")


def seed_means(every_seed: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each model's lowest-seed analysis with its split summaries (accuracy, MACs, passes) replaced by the
    mean over its seeds: what the accuracy-vs-compute and τ figures plot."""
    means: dict[str, list[dict]] = {}
    for task, rs in one_seed(every_seed).items():
        means[task] = []
        for a in rs:
            group = [b for b in every_seed[task] if b["model"] == a["model"]]
            splits = {split: {**a["splits"][split], **{k: float(np.mean([b["splits"][split][k] for b in group]))
                                                      for k in MEAN_KEYS}} for split in a["splits"]}
            means[task].append({**a, "splits": splits})
    return means


SOLVED = 0.95  # a seed "solved" the task when its test accuracy reaches this


def seeds_section(task: str, rs: list[dict]) -> list[str]:
    """Every model over the seeds that ran it: mean ± t-interval of accuracy, passes and compute, how many
    seeds solved the task (accuracy is all-or-nothing on parity, where an interval says little), the
    verdict on adaptive depth, and PonderNet's settled step count beside its prior's lambda_p."""
    by_model: dict[str, list[dict]] = {}
    for a in rs:
        by_model.setdefault(a["model"], []).append(a)
    rows = []
    for name, group in by_model.items():
        test, gen = [a["splits"]["test"] for a in group], [a["splits"]["lengthgen"] for a in group]
        rows.append([name, ", ".join(str(a["seed"]) for a in sorted(group, key=lambda a: a["seed"] or 0)),
                     cell([t["acc"] for t in test], ".1f", 100), cell([g["acc"] for g in gen], ".1f", 100),
                     f"{sum(t['acc'] >= SOLVED for t in test)} / {len(test)}",
                     cell([t["steps_answer"] for t in test], ".2f"), cell([t["steps_position"] for t in test], ".2f"),
                     cell([t["macs_per_example"] for t in test], ".3f", 1e-6)])
    lines = [f"### {task}: every seed", "",
             f"Mean ± the half-width of a {LEVEL:.0%} t-interval over the seeds listed (the value itself for one "
             f"seed); accuracies in %, compute in millions of MACs per example (test); solved = test accuracy "
             f">= {SOLVED:.0%}.", "",
             markdown_table(["model", "seeds", "test acc", "lengthgen acc", "seeds solved", "passes at answer",
                             "passes / position", "MACs / example (M)"], rows), ""]
    lines += adaptive_verdict(by_model)
    lines += difficulty_slopes(task, by_model)
    lines += router_lines(task, by_model)
    ponder = [(name, group) for name, group in by_model.items() if group[0]["kind"] == "ponder"]
    if ponder:
        rule = ponder[0][1][0]["config"]["act"].get("ponder_eval", "sample")
        lines += [("PonderNet halts at evaluation at the median of its halting distribution p (the first pass n "
                   "with p_1 + ... + p_n >= 1/2; the paper samples n ~ p instead, which docs/act.md compares)"
                   if rule == "median" else
                   "PonderNet halts at evaluation by sampling its halting pass (probability lambda_n at pass n), "
                   "as in the paper")
                  + "; its loss is the expected loss over the halting pass plus beta KL(p || p_G) against "
                  f"the renormalised truncated geometric prior (beta = {ponder[0][1][0]['config']['act']['beta']:g}). "
                  "Settled step count by the prior's lambda_p "
                  f"(cap {ponder[0][1][0]['max_steps']} passes): "
                  + "; ".join(f"lambda_p = {g[0]['config']['act']['prior']}: "
                              f"{cell([a['splits']['test']['steps_position'] for a in g], '.2f')} passes per "
                              f"position, {cell([a['splits']['test']['steps_answer'] for a in g], '.2f')} at the "
                              f"answer, {cell([a['splits']['test']['acc'] for a in g], '.1f', 100)}% on test"
                              for _, g in ponder) + ".", ""]
        lines += ponder_bar(ponder)
    return lines


# a PonderNet "that halts" (docs/act.md): this accurate on test, with at most this share of the cap at the answer
PONDER_ACC, PONDER_SHARE = 0.99, 0.6


def ponder_bar(ponder: list[tuple[str, list[dict]]]) -> list[str]:
    """Which PonderNet settings reach PONDER_ACC on test within PONDER_SHARE of the pass cap (means over
    seeds), and, where none does, the cheapest one that reaches the accuracy and the most accurate one
    within the passes: how far the trade-off is from the bar."""
    cap = ponder[0][1][0]["max_steps"]
    limit = PONDER_SHARE * cap
    means = {name: (float(np.mean([a["splits"]["test"]["acc"] for a in g])),
                    float(np.mean([a["splits"]["test"]["steps_answer"] for a in g]))) for name, g in ponder}
    met = [n for n, (acc, passes) in means.items() if acc >= PONDER_ACC and passes <= limit]

    def say(n):
        return f"{n} ({100 * means[n][0]:.1f}% at {means[n][1]:.2f} passes)"

    seeds = len(ponder[0][1])
    head = (f"Halting early enough? The bar: ≥ {PONDER_ACC:.0%} on test with at most {PONDER_SHARE:.0%} of the "
            f"cap ({limit:g} passes) at the answer, " + (f"means over {seeds} seeds — " if seeds >= MIN_SEEDS else
                                                         f"{no_verdict(seeds)} beyond these runs — "))
    if met:
        return [head + "met by " + ", ".join(map(say, met)) + ".", ""]
    accurate = [n for n, (acc, _) in means.items() if acc >= PONDER_ACC]
    quick = [n for n, (_, passes) in means.items() if passes <= limit]
    closest = []
    if accurate:
        closest.append(f"the cheapest setting that accurate is {say(min(accurate, key=lambda n: means[n][1]))}")
    if quick:
        closest.append(f"the most accurate within the passes is {say(max(quick, key=lambda n: means[n][0]))}")
    return [head + "**not met**" + (": " + "; ".join(closest) if closest else "") + ".", ""]


def answer_passes(record: dict) -> float:
    """Mean passes over an example's answer positions (the last len(answer) positions predict it)."""
    return float(np.mean(record["steps"][-len(record["answer"]):]))


def difficulty_slopes(task: str, by_model: dict[str, list[dict]]) -> list[str]:
    """Graves' question: does pondering rise with difficulty? Per adaptive model, the least-squares slope of
    an example's mean passes per answer position against each difficulty field (test split), per seed, then
    mean ± interval; the sign is decided by the interval."""
    fields, rows = algorithmic.FIELDS[task][:2], []
    for name, group in by_model.items():
        if group[0]["kind"] not in ADAPTIVE or group[0].get("experts"):
            continue
        row = [name]
        for field in fields:
            slopes = []
            for a in group:
                ex = a["splits"]["test"]["examples"]
                x = np.array([r[field] for r in ex], dtype=float)
                if x.std() > 0:  # passes = slope * difficulty + intercept
                    slopes.append(float(np.polyfit(x, [answer_passes(r) for r in ex], 1)[0]))
            slope = mean_ci(slopes)
            row.append(f"{slope.format('+.2f')} ({verdict(slope, words=('rises', 'falls', 'flat within noise'))})"
                       if slope.n > 1 else f"{slope.mean:+.2f} (one seed)")
        rows.append(row)
    if not rows:
        return []
    return [f"Passes per answer position against difficulty (test; least-squares slope per seed, passes per unit of "
            f"{' and of '.join(fields)}):", "",
            markdown_table(["model"] + [f"slope per {f}" for f in fields], rows), ""]


def router_lines(task: str, by_model: dict[str, list[dict]]) -> list[str]:
    """Depth experts (router.py): the path the router chose by difficulty over test ∪ lengthgen (mean passes
    and share of examples sent down the deepest path, mean ± interval over seeds), and whether it sends
    harder inputs deeper: the per-seed Pearson r of difficulty and the chosen depth on test (the lengths it
    trained on), decided by its interval; lengthgen's r beside it, without a verdict."""
    field, lines = algorithmic.FIELDS[task][0], []
    for name, group in by_model.items():
        if group[0]["kind"] != "router" or group[0].get("experts"):
            continue
        examples = [a["splits"]["test"]["examples"] + a["splits"]["lengthgen"]["examples"] for a in group]
        buckets = [by_bucket(ex, field) for ex in examples]
        deepest = group[0]["max_steps"]
        # per seed and difficulty: the share of examples the router sent down the deepest path
        deep = [{k: sum(r["steps_answer"] == deepest for r in ex if r[field] == k) / b[k]["n"] for k in b}
                for ex, b in zip(examples, buckets)]
        keys = sorted({k for b in buckets for k in b})
        rows = [[str(k), cell([b[k]["steps_answer"] for b in buckets if k in b], ".2f"),
                 cell([d[k] for d in deep if k in d], ".0f", 100),
                 cell([b[k]["acc"] for b in buckets if k in b], ".1f", 100)] for k in keys]
        # the verdict reads the training lengths: beyond them the router meets inputs it was never trained on
        rs = [x for x in (halting_correlation(a, field, ("test",)) for a in group) if x is not None]
        r = mean_ci(rs) if rs else None
        word = r and verdict(r, words=("sends harder inputs deeper", "sends harder inputs shallower",
                                       "does not route by difficulty, within noise"))
        beyond = [x for x in (halting_correlation(a, field, ("lengthgen",)) for a in group) if x is not None]
        lo, hi = algorithmic.LENGTHS[task][0]
        lines += [f"**Depth experts ({name}):** after the first pass a router picks one path per example — "
                  f"{', '.join(map(str, depth_paths(deepest)))} passes — trained on the expected loss over the "
                  f"paths plus τ = {group[0]['tau']:g} times the expected depth (router.py). Its choice by {field} "
                  f"(training {lo}–{hi}; test ∪ lengthgen; mean ± interval over {len(group)} seed(s)):", "",
                  markdown_table([field, "passes chosen", f"% sent {deepest} deep", "accuracy %"], rows), "",
                  "The router chose one path for every test input on every seed." if r is None else
                  f"On the test split ({field} {lo}–{hi}), r({field}, passes chosen) per seed: {r.format('+.2f')} — "
                  + (f"{no_verdict(r.n)}." if r.n < MIN_SEEDS else f"the router {word}.")
                  + (f" Beyond the training range (lengthgen, inputs it never saw): r = "
                     f"{mean_ci(beyond).format('+.2f')}." if beyond else ""), ""]
    return lines


def adaptive_verdict(by_model: dict[str, list[dict]]) -> list[str]:
    """Did adaptive depth help? The adaptive model with the best mean accuracy (then the least compute)
    against the cheapest fixed depth as accurate as the best fixed one (mean within 1 point) — beating a
    deeper fixed model than needed saves nothing depth did not — paired by seed: accuracy in points,
    compute saved in % of the fixed model's."""
    dense_models = {m: g for m, g in by_model.items() if not g[0].get("experts")}
    fixed = [g for g in dense_models.values() if g[0]["kind"] == "fixed"]
    adaptive = [g for g in dense_models.values() if g[0]["kind"] in ADAPTIVE + ("exit",)]
    if not fixed or not adaptive:
        return []

    def mean(g, key):
        return float(np.mean([a["splits"]["test"][key] for a in g]))

    top = max(mean(g, "acc") for g in fixed)
    yardstick = min((g for g in fixed if mean(g, "acc") >= top - 0.01), key=lambda g: mean(g, "macs_per_example"))
    best = max(adaptive, key=lambda g: (mean(g, "acc"), -mean(g, "macs_per_example")))
    base = {a["seed"]: a["splits"]["test"] for a in yardstick}
    acc = paired({a["seed"]: 100 * a["splits"]["test"]["acc"] for a in best},
                 {s: 100 * t["acc"] for s, t in base.items()}).diff
    # compute saved, per seed: 100 (1 - MACs_adaptive / MACs_fixed)
    saved = mean_ci([100 * (1 - a["splits"]["test"]["macs_per_example"] / base[a["seed"]]["macs_per_example"])
                     for a in best if a["seed"] in base])
    a_word = verdict(acc, words=("more accurate", "less accurate", "as accurate within noise"))
    c_word = verdict(saved, words=("cheaper", "dearer", "no cheaper within noise"))
    name, fix = best[0]["model"], yardstick[0]["model"]
    if acc.n < MIN_SEEDS:
        return [f"Adaptive depth, {no_verdict(acc.n)}: {name} (best adaptive) vs {fix} (the cheapest fixed depth "
                f"within 1 point of the best fixed one): {acc.mean:+.1f} points of test accuracy, "
                f"{saved.mean:+.0f}% compute saved.", ""]
    helped = a_word != "less accurate" and c_word == "cheaper"
    return [f"**Adaptive depth, over {acc.n} seeds:** {name} (the adaptive model with the best mean accuracy) vs "
            f"{fix} (the cheapest fixed depth within 1 point of the best fixed one), paired by seed: test accuracy "
            f"{acc.format('+.1f')} points ({a_word}), compute saved {saved.format('+.0f')}% ({c_word}). Verdict: "
            "adaptive depth " + ("**helped** (as accurate or better, for less compute)." if helped else
                                 "**did not clearly help** at this budget."), ""]


def report(out: Path) -> None:
    out = Path(out)
    every_seed = analyses(out)
    if not every_seed:
        raise UserError(f"no run directories with analysis.json under {out}; run `nnlabs lab act` first")
    # the looped models (looped.py) get their own section: extrapolation by length beside the fixed depths
    looped = extrapolation.split_looped(every_seed)
    every_seed = {task: rs for task, rs in every_seed.items() if rs}
    if not every_seed:  # only looped models ran (--models): their section is the whole report
        return extrapolation.write(looped, {}, out, alone=True)
    runs = one_seed(every_seed)
    means = seed_means(every_seed)
    fig_accuracy_vs_compute(means, out, every_seed)
    fig_halting_by_difficulty(runs, out)
    fig_tau_tradeoff(means, out, every_seed)
    fig_per_example(runs, out)
    fig_routing_by_pass(runs, out)
    write_report(runs, out, every_seed)
    extrapolation.write(looped, every_seed, out)
    write_explorable(runs, out)
    write_payoff(every_seed, out)


def write_payoff(runs, out: Path) -> None:
    """One point per run and seed for the series' closing figure: test accuracy against measured MACs."""
    points = [{"run": a["run"], "label": f"{task} {a['model']}", "kind": "baseline" if a["kind"] == "fixed"
               else "routed", "quality": 100 * a["splits"]["test"]["acc"],
               "compute": a["splits"]["test"]["macs_per_example"], "seed": a["seed"]}
              for task, rs in runs.items() for a in rs]
    payoff = {"lab": "act", "quality": "exact-match accuracy on the in-distribution test, %", "better": "higher",
              "compute": "forward MACs per example (measured)", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=1) + "\n", encoding="utf-8")


def write_report(runs, out: Path, every_seed) -> None:
    walls = [lab["wall_s"] for lab in lab_files(out, "lab.json")]
    first = next(iter(runs.values()))[0]
    seeds = seeds_of(every_seed)
    lines = ["# Part 5 — adaptive computation: passes of one shared block, with a halting unit", "",
             f"Budget `{first['config']['budget']}`. {seeds_sentence(seeds)} "
             + (f"Wall time {cell(walls, '.0f')} s per seed. " if walls else "")
             + f"Tasks: {', '.join(runs)} (the `full` budget runs all four). "
             + (f"The per-task tables and the per-example figures show seed {seeds[0]}; the every-seed tables "
                "give means and intervals and decide the verdicts. " if len(seeds) > 1 else "")
             + "Every number below is computed from the run directories beside this file. "
             "Compute = forward MACs per example, measured by `count_macs` on the rows actually run "
             "(halted positions are gathered out of the computation, so they cost nothing).", "",
             "Every model is one transformer block applied for several passes (its attention window per task "
             "below). "
             "Training is a depth curriculum: the shallowest fixed model trains from scratch, each deeper one "
             "starts from the previous, and ACT and PonderNet models start from the deepest fixed model and "
             "fine-tune with their halting unit (training steps below), so later models have seen more steps. "
             "The in-distribution test shares most inputs with train at these lengths "
             "(docs/datasheets/algorithmic.md); `lengthgen` is the generalisation test.", ""]
    for task, rs in runs.items():
        field = algorithmic.FIELDS[task][0]
        lo, hi = algorithmic.LENGTHS[task][0]
        window = rs[0]["config"]["act"]["window"]
        sees = f"a window of {window} positions" if window else "the whole prefix"
        lines += [f"## {task}", "", f"Training {field} {lo}–{hi}; the length-generalisation split is longer. "
                  f"Attention sees {sees}.", ""]
        rows = []
        for a in rs:
            cfg = a["config"]
            a["train_steps"] = cfg.get("train", {}).get("max_steps")
            t, g = a["splits"]["test"], a["splits"]["lengthgen"]
            r = ["—" if r is None else f"{r:+.2f}" for r in
                 (halting_correlation(a, field, splits) if a["kind"] != "fixed" else None
                  for splits in (("test",), ("test", "lengthgen")))]
            init = f" more, from {cfg['init_from']}" if cfg.get("init_from") else ""
            steps = f"none (uses {cfg['derived_from']})" if a["kind"] == "exit" else f"{a['train_steps']}{init}"
            rows.append([a["model"], steps, f"{100 * t['acc']:.1f}%", f"{100 * g['acc']:.1f}%",
                         f"{t['macs_per_example']:,.0f}", f"{t['steps_answer']:.2f}", *r])
        lines.append(markdown_table(["model", "training steps", "test acc", "lengthgen acc", "MACs / example (test)",
                                     "passes at answer (test)", f"r({field}, passes) test", "r test ∪ lengthgen"],
                                    rows))
        fixed1 = next((a for a in dense(rs) if a["kind"] == "fixed" and a["max_steps"] == 1), None)
        deepest = max((a for a in dense(rs) if a["kind"] == "fixed"), key=lambda a: a["max_steps"], default=None)
        best = best_adaptive(rs)
        lines.append("")
        if best and fixed1 and deepest:
            acc = {k: a["splits"]["test"]["acc"] for k, a in (("best", best), ("one", fixed1), ("deep", deepest))}
            lines.append(f"Most accurate adaptive model: **{best['model']}**, {100 * acc['best']:.1f}% on test "
                         f"(one pass: {100 * acc['one']:.1f}%, {deepest['model']}: {100 * acc['deep']:.1f}%).")
            # the yardstick is the cheapest *fixed* depth as accurate as the deepest (within 1 point), not the
            # deepest itself: an adaptive model that beats fixed8 but not fixed4 saved nothing depth did not
            good = [a for a in dense(rs) if a["splits"]["test"]["acc"] >= acc["deep"] - 0.01]
            def macs(a):
                return a["splits"]["test"]["macs_per_example"]

            fixed = min((a for a in good if a["kind"] == "fixed"), key=macs)
            cheapest = min((a for a in good if a["kind"] in ADAPTIVE + ("exit",)), key=macs, default=None)
            saved = 1 - macs(cheapest) / macs(fixed) if cheapest else 0.0
            if cheapest and saved > 0.05:
                lines.append(f"The cheapest adaptive model within 1 point of {deepest['model']} is "
                             f"**{cheapest['model']}** ({100 * cheapest['splits']['test']['acc']:.1f}%) with "
                             f"{100 * saved:.0f}% less compute than the cheapest fixed depth that good "
                             f"({fixed['model']}) on seed {cheapest['seed']} — one seed, so no verdict here; the "
                             "every-seed table below gives the interval that decides whether adaptive depth helped.")
            else:
                lines.append(f"No adaptive model came within 1 point of {deepest['model']} with more than 5% less "
                             f"compute than {fixed['model']}, the cheapest fixed depth that good, on this seed (one "
                             "seed: the every-seed table below decides).")
        act = [a for a in dense(rs) if a["kind"] == "act"]
        if len(act) > 1:  # a best of one is no finding
            good = max(act, key=accuracy_then_cheapness)
            each = ", ".join(f"τ={a['tau']:g}: {100 * a['splits']['test']['acc']:.1f}% at "
                             f"{a['splits']['test']['steps_position']:.2f} passes/position" for a in act)
            lines.append(f"Among ACT settings, τ = {good['tau']:g} worked best (accuracy first, then compute; {each}).")
            collapsed = [a for a in act if a["splits"]["test"]["steps_position"] < 1.1]
            if collapsed:
                lines.append(f"Collapsed to a single pass everywhere (the ponder cost won before the task gave any "
                             f"signal): {', '.join(a['model'] for a in collapsed)}.")
        gen = max(rs, key=lambda a: a["splits"]["lengthgen"]["acc"])
        gen_acc = gen["splits"]["lengthgen"]["acc"]
        lines.append(f"Length generalisation: the best model on `lengthgen` reaches {100 * gen_acc:.1f}% "
                     f"({gen['model']}){' — near chance' if gen_acc < 0.6 else ''}. Longer inputs use position "
                     "embeddings that training never reached, and the longest need more passes than the cap.")
        for a in rs:
            if a["kind"] == "ponder" and a["splits"]["test"]["steps_position"] > 0.95 * a["max_steps"]:
                lines.append(f"{a['model']} kept (almost) every position at the cap of {a['max_steps']} passes.")
        lines.append("")
        lines += seeds_section(task, every_seed[task])
        if best:
            b = by_bucket(best["splits"]["test"]["examples"], field)
            r = pearson(list(b), [v["steps_answer"] for v in b.values()])
            lines.append(f"{best['model']}: mean passes at the answer position by {field} on test: "
                         + ", ".join(f"{k}: {v['steps_answer']:.2f}" for k, v in b.items())
                         + ("" if r is None else f" (r of these means with {field}: {r:+.2f})") + ".")
            lines.append("")
        if best and fixed1:
            lines += ["Accuracy by difficulty (test ∪ lengthgen), best adaptive model vs one pass:", ""]
            ex_b = by_bucket(best["splits"]["test"]["examples"] + best["splits"]["lengthgen"]["examples"], field)
            ex_1 = by_bucket(fixed1["splits"]["test"]["examples"] + fixed1["splits"]["lengthgen"]["examples"], field)
            lines += [f"| {field} | " + " | ".join(str(k) for k in ex_b) + " |", "|---" * (len(ex_b) + 1) + "|",
                      f"| {best['model']} acc | " + " | ".join(f"{100 * v['acc']:.0f}" for v in ex_b.values()) + " |",
                      f"| {best['model']} passes | " + " | ".join(f"{v['steps_answer']:.1f}" for v in ex_b.values())
                      + " |",
                      "| fixed1 acc | " + " | ".join(f"{100 * ex_1[k]['acc']:.0f}" if k in ex_1 else "—" for k in ex_b)
                      + " |", ""]
    for task, rs in runs.items():
        if moe_runs(rs):
            lines += moe_section(task, rs, every_seed[task])
    lines += ["## Figures", "", "![accuracy vs compute](figures/accuracy_vs_compute.png)", "",
              "![halting by difficulty](figures/halting_by_difficulty.png)", "", "![tau](figures/tau_tradeoff.png)",
              "", "![per example](figures/per_example_compute.png)", "",
              "Definitions of every metric: docs/act.md. Interactive version: act.html.", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
