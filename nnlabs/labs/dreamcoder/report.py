"""Figures, report.md and the explorable for the DreamCoder lab — from the run directories only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from nnlabs.labs.dreamcoder.dsl import library_calls, symbols
from nnlabs.labs.dreamcoder.explorable import write_explorable
from nnlabs.labs.dreamcoder.report_head_to_head import section as head_to_head_section
from nnlabs.report.figures import new_figure, save
from nnlabs.report.runs import Run, group_by_name, lab_files, load_runs
from nnlabs.report.stats import cell, paired, plot_seed_curves, seeds_sentence, verdict
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError

COLORS = {"full": "tab:blue", "no_recognition": "tab:orange", "no_learning": "tab:gray"}
LABELS = {"full": "library + recognition", "no_recognition": "library, no recognition",
          "no_learning": "no learning (base DSL, same total budget)"}


def leaves(program: str) -> int:
    """Program length in library tokens: primitives, abstractions and variables (lambdas not counted)."""
    return sum(1 for t in symbols(program) if t != "lam")


def load(out: Path) -> dict[str, list[Run]]:
    """The three conditions' finished runs, by name, one per seed (lowest first)."""
    return {name: [r for r in rs if r.complete] for name, rs in group_by_name(load_runs(out)).items()
            if name in COLORS and any(r.complete for r in rs)}


def series(run: Run, split: str, key: str):
    rows = [m for m in run.metrics if m["split"] == split]
    return [m["step"] for m in rows], [m[key] for m in rows]


def search_cost(run: Run) -> tuple[list, list]:
    """(cycles, programs tried per solved held-out task); a wake that solved no held-out task has no such
    cost and is left out."""
    pairs = [(c, v) for c, v in zip(*series(run, "test", "tried_per_solved")) if v is not None]
    return [c for c, _ in pairs], [v for _, v in pairs]


def held_out_solved(run: Run, any_wake: bool = False) -> set[str]:
    """Names of the held-out tasks a run's last wake solved, or (any_wake) any of its wakes: every wake
    searches every held-out task again, so over all its wakes a learner has spent on each held-out task
    the total budget no_learning spends in its one search (no_learning has one wake, of held-out tasks only)."""
    a = run.analysis
    wakes = [c["wake"] for c in a["cycles"]] if "cycles" in a else [[{**r, "split": "test"} for r in a["wake"]]]
    return {r["name"] for wake in (wakes if any_wake else wakes[-1:]) for r in wake
            if r["split"] == "test" and r["solved"]}


def mcnemar(a: set, b: set) -> tuple[int, int, float]:
    """Exact McNemar test on the same tasks: only_a, only_b (the discordant tasks) and the two-sided p of
    seeing a split at least this uneven if either run were equally likely to be the one that solves a
    discordant task: p = min(1, 2 * P[Binomial(only_a + only_b, 1/2) <= min(only_a, only_b)])."""
    only_a, only_b = len(a - b), len(b - a)
    n, k = only_a + only_b, min(only_a, only_b)
    return only_a, only_b, min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def paired_verdict(a: set, b: set, better: str, worse: str, over: str = "the held-out tasks of one seed") -> str:
    """One sentence: did run A solve more held-out tasks than run B beyond what chance would give? Sets of
    task names (one seed) or of (seed, task) pairs (pooled over seeds)."""
    only_a, only_b, p = mcnemar(a, b)
    shown = f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"  # 0.0005, not 0.00
    test = f"{only_a} task(s) solved only with it, {only_b} only without; exact McNemar p = {shown}, over {over}"
    if p < 0.05:
        return f"{better if only_a > only_b else worse} ({test})."
    return f"the difference is within noise at this scale ({test})."


def before_after(analysis: dict):
    """A training task found with the base DSL (cycle 1) whose solution shrank most once rewritten in
    the final library (a later-found task if no cycle-1 one shrank)."""
    first = {}
    for c in analysis["cycles"]:
        for r in c["wake"]:
            if r["split"] == "train" and r["solved"] and r["name"] not in first:
                first[r["name"]] = (c["cycle"], r["program"])
    final = analysis["cycles"][-1]["solutions"] if analysis["cycles"] else {}
    options = []
    for name, (cycle, prog) in sorted(first.items()):
        after = final.get(name, prog)
        # a program that became one abstraction is true, but shows nothing
        if leaves(after) >= 2:
            options.append({"task": name, "cycle": cycle, "before": prog, "after": after,
                            "gain": leaves(prog) - leaves(after)})
    if not options:
        return None
    return max(options, key=lambda o: (o["gain"] > 0, o["cycle"] == 1, o["gain"], o["task"]))


def report(out: str | Path) -> None:
    out = Path(out)
    groups = load(out)
    # the library, the before/after picture and the per-cycle table are the lowest seed's; *Across seeds*
    # and the solved-per-cycle figure use every seed
    runs = {name: rs[0] for name, rs in groups.items()}
    if "full" not in runs:
        raise UserError(f"{out}/full/metrics.jsonl is missing; run `nnlabs lab dreamcoder --out {out}` first")
    figs = out / "figures"
    src = str(out / "full")
    full = runs["full"]

    # --- library growth
    fig, ax = new_figure(1, 1)
    for name, style in (("full", "o-"), ("no_recognition", "s--")):
        if name in runs:
            x, y = series(runs[name], "train", "library_size")
            ax[0][0].plot(x, y, style, color=COLORS[name], label=LABELS[name], mfc="none" if "s" in style else None)
    ax[0][0].set(title="Library growth", xlabel="wake-sleep cycle (after its sleep)",
                 ylabel="abstractions in library (count)")
    for axis in (ax[0][0].xaxis, ax[0][0].yaxis):  # cycles and abstractions are counts
        axis.set_major_locator(MaxNLocator(integer=True))
    ax[0][0].legend()
    save(fig, figs / "dreamcoder_library", source=src)

    # --- solved fraction and search cost
    fig, ax = new_figure(2, 1)
    for name in ("full", "no_recognition"):
        if name in groups:
            for split, style in (("test", "-"), ("train", "--")):
                plot_seed_curves(ax[0][0], [(x, [100 * v for v in y]) for x, y in
                                            (series(r, split, "solved_frac") for r in groups[name])],
                                 color=COLORS[name], linestyle=style, marker="o" if split == "test" else "s",
                                 label=f"{LABELS[name]} ({split})")
            plot_seed_curves(ax[0][1], [search_cost(r) for r in groups[name]], color=COLORS[name], marker="o",
                             label=LABELS[name] + " (held-out)")
    if "no_learning" in groups:
        level = sum(r.metrics[0]["solved_frac"] for r in groups["no_learning"]) / len(groups["no_learning"])
        ax[0][0].axhline(100 * level, color=COLORS["no_learning"], ls=":", label=LABELS["no_learning"])
    seeds = sorted({r.seed for rs in groups.values() for r in rs})
    ax[0][0].set(title="Tasks solved" + (f" (mean of {len(seeds)} seeds; faint: each)" if len(seeds) > 1 else ""),
                 xlabel="wake-sleep cycle", ylabel="solved (% of tasks)")
    ax[0][0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    ax[0][1].set(title="Search cost (held-out tasks)", xlabel="wake-sleep cycle",
                 ylabel="programs tried per solved task")
    ax[0][1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.18))
    for a in ax[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    save(fig, figs / "dreamcoder_solved", source=src)

    # --- one task before and after the library
    ba = before_after(full.analysis)
    fig, ax = new_figure(1, 1, width=9, height=3.0)
    a = ax[0][0]
    a.axis("off")
    if ba:
        esc = lambda t: t.replace("$", r"\$")  # noqa: E731  ($0 is a de Bruijn variable, not mathtext)
        bodies = {x["name"]: x["body"] for x in full.analysis["library"]}
        used = library_calls(ba["after"], bodies)
        a.set_title(f"Task '{ba['task']}': the same task, before and after the library")
        a.text(0.0, 0.85, f"found in cycle {ba['cycle']} ({leaves(ba['before'])} tokens):", fontsize=9)
        a.text(0.02, 0.72, esc(ba["before"]), family="monospace", fontsize=8)
        a.text(0.0, 0.52, f"rewritten with the final library ({leaves(ba['after'])} tokens):", fontsize=9)
        a.text(0.02, 0.39, esc(ba["after"]), family="monospace", fontsize=8)
        for i, name in enumerate(used[:3]):
            a.text(0.02, 0.2 - 0.12 * i, esc(f"where {name} = {bodies[name]}"), family="monospace", fontsize=8,
                   color="0.35")
    save(fig, figs / "dreamcoder_before_after", source=src)

    write_report(out, runs, ba, groups)
    write_explorable(out, runs)
    write_payoff(out, groups)


def fmt_pct(x) -> str:
    return f"{100 * x:.1f}%"


def held_out_uses(analysis: dict) -> dict:
    """abstraction name -> held-out tasks whose found program uses it (in any wake)."""
    uses: dict = {}
    for c in analysis["cycles"]:
        for r in c["wake"]:
            if r["split"] == "test" and r["solved"]:
                for tok in set(symbols(r["program"])):
                    if tok.startswith("fn_"):
                        uses.setdefault(tok, set()).add(r["name"])
    return {k: sorted(v) for k, v in uses.items()}


def cost_verdict(first: dict, last: dict) -> str:
    """Did the programs tried per solved held-out task fall from the first wake to the last? A wake that
    solved no held-out task has no such cost: say so instead of comparing."""
    before, after = first["tried_per_solved"], last["tried_per_solved"]
    if before is None or after is None:
        unsolved = " and ".join(f"cycle {m['step']}" for m in (first, last) if m["tried_per_solved"] is None)
        return (f"Search cost per solved held-out task cannot be compared: the wake of {unsolved} solved no "
                f"held-out task ({first['programs_tried']:,} and {last['programs_tried']:,} programs tried).")
    return (f"Search cost per solved held-out task went from {before} programs (cycle 1, base DSL) to {after} "
            f"(cycle {last['step']}); " + ("it fell." if after < before else "it did **not** fall."))


def write_payoff(out: Path, groups: dict[str, list[Run]]) -> None:
    """One point per run and seed: held-out tasks solved by its last wake against the programs it searched
    per held-out task over all its wakes (no_learning: its one search with the learners' total budget)."""
    points = []
    for name, run in ((name, run) for name, rs in groups.items() for run in rs):
        held_out = [m for m in run.metrics if m["split"] == "test"]
        points.append({"run": name, "label": LABELS[name], "kind": "routed" if name == "full" else "baseline",
                       "quality": 100 * held_out[-1]["solved_frac"],
                       "compute": sum(m["programs_tried"] for m in held_out) / max(1, held_out[-1]["n_tasks"]),
                       "seed": run.seed})
    payoff = {"lab": "dreamcoder", "quality": "held-out tasks solved by the last wake, %", "better": "higher",
              "compute": "programs tried per held-out task, all wakes", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=2) + "\n", encoding="utf-8")


def seeds_section(groups: dict[str, list[Run]]) -> list[str]:
    """Each condition's last-wake held-out solved % and search cost as mean ± interval over seeds, and the
    verdicts: full vs no learning and vs no recognition, as McNemar pooled over (seed, task) pairs and as a
    paired t-test on the solved % per seed."""
    def held_out(run: Run) -> dict:
        return [m for m in run.metrics if m["split"] == "test"][-1]

    def solved_pct(run: Run, any_wake: bool = False) -> float:
        return 100 * len(held_out_solved(run, any_wake)) / held_out(run)["n_tasks"]

    rows = [[name, ", ".join(str(r.seed) for r in rs), cell([solved_pct(r) for r in rs], ".1f"),
             cell([solved_pct(r, any_wake=True) for r in rs], ".1f"),
             cell([held_out(r)["tried_per_solved"] for r in rs if held_out(r)["tried_per_solved"] is not None],
                  ",.0f")] for name, rs in groups.items()]
    lines = ["## Across seeds", "", markdown_table(["run", "seeds", "held-out solved by the last wake, %",
                                                    "by any wake (equal total programs), %",
                                                    "programs tried / solved held-out task"], rows)]
    # any wake: each held-out task searched with the same total number of programs by both, the learner over
    # its wakes (base grammar first, then each cycle's library and weights), no_learning in one search
    for other, any_wake, what, better, worse in (
            ("no_learning", False, "held-out solved", "learning clearly helped", "learning hurt"),
            ("no_recognition", False, "held-out solved", "the recognition model helped", "the recognition model hurt"),
            ("no_learning", True, "at equal total programs per held-out task (solved by any wake)",
             "learning clearly helped", "learning hurt")):
        if other not in groups:
            continue
        pairs = {name: {(r.seed, task) for r in groups[name] for task in held_out_solved(r, any_wake)}
                 for name in ("full", other)}
        diff = paired({r.seed: solved_pct(r, any_wake) for r in groups["full"]},
                      {r.seed: solved_pct(r, any_wake) for r in groups[other]}).diff
        lines.append(f"- full − {other}, {what}: {diff.format('+.1f')} points per seed ({verdict(diff)}); pooled "
                     "over seeds, " + paired_verdict(pairs["full"], pairs[other], better, worse,
                                                     over=f"the held-out tasks of {len(groups['full'])} seed(s)"))
    return lines + [""]


def tasks_sentence(tasks: dict | None) -> str:
    """Which tasks the run used: how many of how many, from where, and what was skipped and why."""
    if tasks is None:
        return "Tasks: not recorded (a run from before tasks.json)."
    used, available = tasks["used"], tasks["available"]
    parts = [f"{used[s]} of {available[s]}" if used[s] < available[s] else f"all {used[s]}" for s in ("train", "test")]
    text = f"Tasks: {parts[0]} training and {parts[1]} held-out tasks from {tasks['source']}"
    text += " (subsampled, spread over levels)." if used != available else "."
    skipped = [f"{len(names)} {split} task(s) with {reason}" for split, reasons in tasks["skipped"].items()
               for reason, names in reasons.items()]
    return text + (f" Skipped: {'; '.join(skipped)}." if skipped else "")


def write_report(out: Path, runs: dict, ba, groups: dict[str, list[Run]]) -> None:
    full = runs["full"]
    seeds = sorted({r.seed for rs in groups.values() for r in rs})
    timing = next(iter(lab_files(out, "timing.json")), {})  # the lowest seed's, in a sweep
    cfg = full.analysis["config"]
    lines = ["# Part 7 — DreamCoder lab: library learning on list programs", "",
             f"Budget `{timing.get('budget', '?')}`: {cfg['cycles']} wake–sleep cycles, at most "
             f"{cfg['programs']} programs tried and {cfg['seconds']} s per task per wake, compressor "
             f"`{cfg['compressor']}`. Whole run (three conditions + report): {timing.get('wall_s', '?')} s with "
             f"{timing.get('processes', '?')} search worker process(es), {timing.get('cores_used', '?')} cores busy on "
             "average (CPU seconds per second).", "", tasks_sentence(next(iter(lab_files(out, "tasks.json")), None)),
             "", seeds_sentence(seeds)
             + (f" The per-cycle table, the library and the before/after example are seed {seeds[0]}'s; *Across "
                "seeds* decides the verdicts." if len(seeds) > 1 else ""), "",
             "## Solved fraction per cycle", ""]
    rows = []
    for name in ("full", "no_recognition"):
        if name not in runs:
            continue
        tr = {m["step"]: m for m in runs[name].metrics if m["split"] == "train"}
        te = {m["step"]: m for m in runs[name].metrics if m["split"] == "test"}
        rows += [[name, str(c), f"{tr[c]['solved']}/{tr[c]['n_tasks']}", f"{te[c]['solved']}/{te[c]['n_tasks']}",
                  str(te[c]["tried_per_solved"]), str(tr[c]["library_size"]), str(tr[c]["avg_solution_size"])]
                 for c in sorted(tr)]
    verdicts = []
    if "no_learning" in runs:
        nl = runs["no_learning"].metrics[0]
        rows.append(["no_learning", f"all ({cfg['cycles']}x budget)", "–", f"{nl['solved']}/{nl['n_tasks']}",
                     str(nl["tried_per_solved"]), "0", str(nl["avg_solution_size"])])
        last = [m for m in full.metrics if m["split"] == "test"][-1]
        first = [m for m in full.metrics if m["split"] == "test"][0]
        diff = last["solved"] - nl["solved"]
        if diff > 0:
            verdicts.append(f"After learning, the final wake solves {last['solved']}/{last['n_tasks']} held-out tasks "
                            f"({fmt_pct(last['solved_frac'])}) with one cycle's budget, against {nl['solved']}/"
                            f"{nl['n_tasks']} ({fmt_pct(nl['solved_frac'])}) for the base DSL given all "
                            f"{cfg['cycles']} cycles' budget at once: {diff} more task(s); "
                            + paired_verdict(held_out_solved(full), held_out_solved(runs["no_learning"]),
                                             "learning clearly helped", "learning hurt"))
        else:
            verdicts.append(f"The target was **not** met at this budget: the final wake solves {last['solved']}/"
                            f"{last['n_tasks']} held-out tasks, the base DSL with the same total budget "
                            f"{nl['solved']}/{nl['n_tasks']}.")
        union = held_out_solved(full, any_wake=True)
        verdicts.append(f"Over all {cfg['cycles']} wakes, the same total programs per held-out task as the base "
                        f"DSL's one search, the learner solved {len(union)}/{last['n_tasks']} held-out tasks "
                        f"(base DSL: {nl['solved']}/{nl['n_tasks']}); "
                        + paired_verdict(union, held_out_solved(runs["no_learning"]), "learning clearly helped",
                                         "learning hurt"))
        if "no_recognition" in runs:
            nr1 = [m for m in runs["no_recognition"].metrics if m["split"] == "test"][0]
            if nr1["solved"] != first["solved"]:
                verdicts.append(f"Cycle 1 is the same search in both learning runs (base DSL, no model yet), yet "
                                f"they solved {first['solved']} and {nr1['solved']} held-out tasks: the per-task "
                                "wall-clock cap bound before the programs cap, so cycle-to-cycle differences of a "
                                "task or two are timing noise on this machine.")
            nr = [m for m in runs["no_recognition"].metrics if m["split"] == "test"][-1]
            verdicts.append(f"Without the recognition model the last wake solves {nr['solved']}/{nr['n_tasks']} "
                            f"held-out tasks (with it: {last['solved']}/{last['n_tasks']}); "
                            + paired_verdict(held_out_solved(full), held_out_solved(runs["no_recognition"]),
                                             "the recognition model helped", "the recognition model hurt"))
        if len([m for m in full.metrics if m["split"] == "test"]) > 1:
            verdicts.append(cost_verdict(first, last))
    lines += [markdown_table(["run", "cycle", "train solved", "held-out solved",
                              "programs tried / solved held-out task", "library size",
                              "avg solution length (tokens)"], rows), *verdicts, ""]
    lines += seeds_section(groups)
    test_uses = held_out_uses(full.analysis)
    rows = []
    for c in full.analysis["cycles"]:
        for a in c.get("new_abstractions", []):
            helps = ", ".join(a["helps"][:6]) + (" …" if len(a["helps"]) > 6 else "")
            tu = test_uses.get(a["name"], [])
            rows.append([a["name"], a["suggested"], f"`{a['body']}`", f"{len(a['helps'])}: {helps}",
                         f"{len(tu)}: {', '.join(tu)}"])
    lines += ["## The library", "", markdown_table(["name", "suggested", "body", "training solutions using it",
                                                    "held-out tasks solved with it"], rows).rstrip("\n")]
    kinds = [a["suggested"] for c in full.analysis["cycles"] for a in c.get("new_abstractions", [])]
    found_filter = any(k.startswith("filter") or k == "count-where" for k in kinds)
    found_foldmap = any("fold" in k or k.startswith("map") for k in kinds)
    lines += ["", f"Filter-like abstraction discovered: **{'yes' if found_filter else 'no'}**; fold/map-derived: "
              f"**{'yes' if found_foldmap else 'no'}**."]
    if cfg.get("base", "lab") == "lab":
        lines += ["Note: `filter` is a base primitive here (`--base lab`); what is learned is filter *with a "
                  "predicate shape* (e.g. by threshold), not filter itself from `fold`. `--base dreamcoder` "
                  "(DreamCoder's list primitives, no filter) asks the harder question."]
    else:
        from_fold = [(c["cycle"], a["name"], a["suggested"]) for c in full.analysis["cycles"]
                     for a in c.get("new_abstractions", []) if "fold" in a["suggested"]]
        lines += ["Base `dreamcoder` (no `filter`): discovered from fold — " + (
            "; ".join(f"`{name}` ({kind}, cycle {cycle}, held-out tasks solved with it: "
                      f"{len(test_uses.get(name, []))})" for cycle, name, kind in from_fold)
            if from_fold else "**nothing** at this budget") + "."]
    lines += [""]
    if ba:
        lines += ["## One task before and after", "", f"Task `{ba['task']}`, found in cycle {ba['cycle']}:", "",
                  f"    {ba['before']}    ({leaves(ba['before'])} tokens)", "", "rewritten in the final library:", "",
                  f"    {ba['after']}    ({leaves(ba['after'])} tokens)", ""]
    comps = [c["compression"] for c in full.analysis["cycles"] if "compression" in c]
    if comps:
        rows = []
        for c, comp in zip([c["cycle"] for c in full.analysis["cycles"] if "compression" in c], comps):
            o, s = comp["ours"], comp["stitch"]
            # runs before session 16 recorded it under another name
            free = comp.get("ours_stitch_objective", comp.get("ours_no_penalty"))
            rows.append([str(c), str(comp["corpus_size"]), f"{o['ratio']:.3f}", f"{s['ratio']:.3f}",
                         # two decimals: issue 17's 95 % bar, where 94.998 % must not print as 95.0 %
                         f"{100 * o['ratio'] / s['ratio']:.2f}%",
                         f"{100 * free['ratio'] / s['ratio']:.2f}%" if free else "–",
                         f"{o['seconds']:.3f}", f"{s['seconds']:.3f}",
                         f"{o['seconds'] / max(1e-6, s['seconds']):.1f}x"])
        lines += ["## Our compressor vs Stitch (same corpus each sleep)", "",
                  markdown_table(["cycle", "corpus programs", "ours ratio", "Stitch ratio", "ours / Stitch",
                                  "ours on Stitch's objective / Stitch", "ours s", "Stitch s", "time ratio"], rows),
                  "Compression ratio = corpus cost before / after rewriting (Stitch's definition and cost "
                  "model: primitive or variable 100, application or lambda 1; library bodies not counted). "
                  "Our compressor keeps only what DreamCoder's rule calls nontrivial (two primitives, or one with a "
                  "variable used twice); Stitch also keeps wrappers such as `(lam (car $0))`, so on corpora where "
                  "it does our ratio is lower by that much. Without the rule our compressor optimises Stitch's "
                  "objective, which compares the two searches.", ""]
    speeds = [m["programs_per_s"] for m in full.metrics]
    errors = {name: sum(m.get("search_errors", 0) for m in run.metrics) for name, run in runs.items()}
    lines += ["## Search speed", "", f"Programs tried per second per worker (complete programs run on a task's "
              f"examples, after observational-equivalence pruning): median {sorted(speeds)[len(speeds) // 2]}.", "",
              "Searches that ended on an error (counted apart, never as unsolved): "
              + ", ".join(f"{name} {n}" for name, n in errors.items()) + ".", "",
              "Metric definitions: docs/dreamcoder.md. Figures: figures/dreamcoder_*.png. "
              "Explorable: dreamcoder.html.", ""]
    lines += head_to_head_section(out, out / "figures")
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
