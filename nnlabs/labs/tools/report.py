"""The tools lab's report: figures, report.md, the explorable and payoff.json, from the run directories only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from nnlabs.labs.tools.explorable import write_explorable
from nnlabs.labs.tools.metrics import FAMILIES, KINDS, area_fraction, oracle_curve
from nnlabs.pack import tool_suite as suite
from nnlabs.report.runs import Run, load_runs
from nnlabs.report.stats import ONE_SEED, SEED_ALPHA, cell, mean_ci, paired, plot_seed_curves, seeds_sentence, verdict
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError


def scored_runs(out: Path) -> tuple[list[dict], dict | None, list[Run]]:
    """The analysis of every call-cost run (sorted by cost) and of the dream run, for the lowest seed found,
    with every finished run (all seeds) for payoff.json."""
    done = [run for run in load_runs(out) if run.complete]
    every = seed_runs(done)
    if not every:
        raise UserError(f"{out} has no cost_*/analysis.json; run the lab first: nnlabs lab tools --out {out}")
    runs, dream = every[min(every)]
    return runs, dream, done


def seed_runs(done: list[Run]) -> dict[int, tuple[list[dict], dict | None]]:
    """{seed: (its call-cost analyses sorted by price, its dream analysis or None)} for every seed that has
    a finished call-cost run."""
    every = {}
    for seed in sorted({run.seed for run in done}):
        costs = sorted(({**run.analysis, "run": run.name} for run in done
                        if run.seed == seed and run.name.startswith("cost_")), key=lambda an: an["call_cost"])
        if costs:
            every[seed] = costs, next((run.analysis for run in done if run.name == "dream" and run.seed == seed), None)
    return every


def model_rows(runs: list[dict], dream: dict | None) -> list[tuple[str, dict]]:
    """(label, summary by group) for: never call, always call, learned at each cost, learned + dream."""
    mod = moderate_run(runs, dream)
    rows = [("never call", mod["modes"]["never"]), ("always call", mod["modes"]["always"])]
    rows += [(f"learned, c={r['call_cost']:g}", r["modes"]["learned"]) for r in runs]
    if dream:
        rows.append((f"learned + dream, c={dream['call_cost']:g}", dream["modes"]["learned"]))
    return rows


def moderate_run(runs: list[dict], dream: dict | None) -> dict:
    target = dream["call_cost"] if dream else 0.5
    return min(runs, key=lambda r: abs(r["call_cost"] - target))


def report(out: Path) -> None:
    out = Path(out)
    runs, dream, done = scored_runs(out)
    mod = moderate_run(runs, dream)
    sweep = price_sweep(runs, mod)
    every = seed_runs(done)
    memo = memorisation(out, mod["call_cost"])
    plot_figures(out, runs, dream, mod, sweep, every)
    plot_memorisation(out, memo, mod["call_cost"])
    write_report(out, runs, dream, mod, sweep, every, memo)
    write_explorable(out, runs, dream, mod, sweep)
    write_payoff(out, done)


def price_sweep(runs: list[dict], mod: dict) -> dict:
    """The learned policies on the (call rate, accuracy) plane against the oracle of the moderate run's
    weights, the area fraction, and the price at which needed calls stop."""
    oracle = oracle_curve(mod["queries"])
    learned = sorted((r["modes"]["learned"]["all"]["call_rate"], r["modes"]["learned"]["all"]["accuracy"])
                     for r in runs)
    curve = [oracle[0]] + learned + [(1.0, mod["modes"]["always"]["all"]["accuracy"])]
    return {"oracle": oracle, "curve": curve, "area_fraction": area_fraction(curve, oracle),
            "calls_stop": calls_stop(runs)}


def calls_stop(runs: list[dict]) -> float | None:
    """The price at which the policy stops making needed calls: where the fraction of needed calls it makes
    crosses ½, interpolated on log price between the two swept prices around it (None: it never crosses)."""
    rates = [(r["call_cost"], r["needed_call_rate"]) for r in runs
             if r["call_cost"] > 0 and r.get("needed_call_rate") is not None]
    for (c0, r0), (c1, r1) in zip(rates, rates[1:]):
        if r0 >= 0.5 > r1:
            return math.exp(math.log(c0) + (r0 - 0.5) / (r0 - r1) * (math.log(c1) - math.log(c0)))
    return None


def memorisation(out: Path, moderate: float) -> dict[int, dict]:
    """Per seed, the val call rate (π > ½) and mean π per family at every evaluation of the base run and of its
    continuation at the moderate price (the same price, so only training moves them; the run the dream state
    continues), steps counted from the base run's start: {seed: {"steps", "join", "call_rate": {family: [...]},
    "p_call": {family: [...]}}}. Seeds whose runs predate the per-family log are left out."""
    by_seed: dict[int, dict[str, Run]] = {}
    for run in load_runs(out):
        if run.name in ("base", f"cost_{moderate:g}"):
            by_seed.setdefault(run.seed, {})[run.name] = run
    curves = {}
    for seed, named in sorted(by_seed.items()):
        if "base" not in named:
            continue
        join = named["base"].config["train"]["max_steps"]
        # the continuation's steps restart at 0: shifted to follow the base run
        rows = [(r["step"], r) for r in named["base"].metrics if r["split"] == "val"]
        if f"cost_{moderate:g}" in named:
            rows += [(join + r["step"], r) for r in named[f"cost_{moderate:g}"].metrics if r["split"] == "val"]
        fams = [f for f in FAMILIES if rows and all(f"p_call_{f}" in r for _, r in rows)]
        if fams:
            curves[seed] = {"steps": [step for step, _ in rows], "join": join,
                            **{key: {f: [r[f"{key}_{f}"] for _, r in rows] for f in fams}
                               for key in ("call_rate", "p_call")}}
    return curves


# the memorisation figure's colour per family: famous keys red and marked, the other memorizable family
# orange, needs-tool families cool and dashed
FAMILY_STYLE = {"famous_key": ("C3", "-"), "small_arith": ("C1", "-"), "rare_key": ("C0", "--"),
                "unseen_key": ("C9", "--"), "near_miss_key": ("C4", "--"), "mid_arith": ("C2", ":"),
                "large_arith": ("C7", ":")}


def plot_memorisation(out: Path, memo: dict[int, dict], moderate: float) -> None:
    """Call rate (π > ½, left) and mean P(CALL) (right) on the val queries of each family against the
    training step: each seed faint, their mean on top."""
    from nnlabs.report.figures import new_figure, save

    if not memo:
        return
    first = memo[min(memo)]
    fig, ax = new_figure(2, 1, width=5.2, height=3.8)
    for a, key, ylabel in ((ax[0][0], "call_rate", "tool call rate, val queries (π > ½)"),
                           (ax[0][1], "p_call", "mean P(CALL), val queries")):
        # famous keys drawn last: on top of the families that stay at 1
        for f in sorted(first[key], key=lambda f: f == "famous_key"):
            color, style = FAMILY_STYLE.get(f, ("k", "-"))
            plot_seed_curves(a, [(c["steps"], c[key][f]) for c in memo.values() if f in c[key]], color=color,
                             linestyle=style, marker="o" if f == "famous_key" else None,
                             label=f + (" (memorizable)" if suite.FAMILIES[f] == "memorizable" else ""))
        a.axvline(first["join"], color="gray", ls=":", lw=0.8)
        a.annotate(f"c={moderate:g} continues", (first["join"], 0.55), fontsize=7, ha="right", va="bottom",
                   rotation=90, color="gray")
        a.set(xlabel="training step (base run, then its continuation at the same price)", ylabel=ylabel,
              ylim=(-0.03, 1.03))
    ax[0][0].set_title("Memorisation: calls per family over training"
                       + (f" (mean of {len(memo)} seeds; faint: each)" if len(memo) > 1 else ""), fontsize=9)
    ax[0][1].set_title(f"The decision's confidence, price c={moderate:g}", fontsize=9)
    ax[0][1].legend(fontsize=7)
    save(fig, out / "figures" / "memorisation", source=str(out))


def memorisation_lines(memo: dict[int, dict], moderate: float) -> list[str]:
    """The memorisation section of report.md: the famous keys' call rate at the first, highest and last
    evaluation (mean over seeds) against the rare and unseen keys' at the last, and whether it fell."""
    if not memo:
        return []
    steps = sorted(set.intersection(*(set(c["steps"]) for c in memo.values())))

    def mean(key, f, seeds=memo):
        # the mean over `seeds` at each shared step
        at = [dict(zip(memo[seed]["steps"], memo[seed][key][f])) for seed in seeds if f in memo[seed][key]]
        return [sum(a[s] for a in at) / len(at) for s in steps] if at else None

    def fell(seeds) -> bool:
        # the fall, as the post tells it: famous-key calls end at most half their peak and below the rare and
        # unseen keys', which the weights cannot hold
        famous = mean("call_rate", "famous_key", seeds)
        ends = [v[-1] for v in (mean("call_rate", f, seeds) for f in ("rare_key", "unseen_key")) if v]
        return max(famous) > 0 and famous[-1] <= max(famous) / 2 and all(famous[-1] < v for v in ends)

    famous, p_famous = mean("call_rate", "famous_key"), mean("p_call", "famous_key")
    if not steps or famous is None:
        return []
    peak = max(range(len(steps)), key=lambda i: famous[i])
    half = next((steps[i] for i in range(peak, len(steps)) if famous[i] < 0.5), None)
    last = {f: mean("call_rate", f) for f in ("rare_key", "unseen_key", "near_miss_key")}
    others = {f: v[-1] for f, v in last.items() if v}
    # a verdict per seed: an all-or-nothing outcome is counted over seeds, not averaged
    falls = sum(fell([seed]) for seed in memo)
    return ["## Memorisation over training", "",
            f"`figures/memorisation`: the policy's call rate (π > ½) and mean P(CALL) on each family's val "
            f"queries at every evaluation of the base run and of its continuation at c={moderate:g}"
            + (f" (mean of {len(memo)} seeds)" if len(memo) > 1 else "") + ". "
            f"On famous keys the call rate is {pct(famous[0])} at the first evaluation (step {steps[0]}"
            + (", the untrained decision" if steps[0] == 0 else "") + f"), highest at step {steps[peak]} "
            f"({pct(famous[peak])}), " + ("" if half is None else f"below half from step {half}, ")
            + f"and {pct(famous[-1])} at the last (step {steps[-1]}); mean P(CALL) "
            f"{p_famous[0]:.2f} → {p_famous[peak]:.2f} → {p_famous[-1]:.2f}. At the last evaluation the policy "
            "calls on " + ", ".join(f"{pct(v)} of {f.replace('_key', ' key').replace('_', '-')}s"
                                    for f, v in others.items())
            + " (one letter off a famous key)" * ("near_miss_key" in others) + ". "
            + (f"Calls on famous keys fall as their facts enter the weights, while the keys the weights cannot hold "
               f"keep theirs: on {falls} of {len(memo)} seed(s)" + (" (one seed: no interval)." if len(memo) == 1
                                                                     else ".") if falls else
               f"No seed of {len(memo)} shows the fall the post describes (famous-key calls ending at most half "
               "their peak and below rare and unseen keys')."), ""]


def plot_figures(out: Path, runs: list[dict], dream: dict | None, mod: dict, sweep: dict,
                 every: dict[int, tuple[list[dict], dict | None]]) -> None:
    from nnlabs.report.figures import new_figure, place_labels, save

    rows = model_rows(runs, dream)
    figs = out / "figures"

    # 1. call rate by query kind (left) and by family (right)
    fig, ax = new_figure(2, 1, width=6.2, height=3.8)
    width = 0.8 / len(KINDS)
    for j, kind in enumerate(KINDS):
        ax[0][0].bar([i + j * width for i in range(len(rows))], [s[kind]["call_rate"] for _, s in rows], width,
                     label=kind.replace("_", "-"))
    ax[0][0].set_xticks([i + width / 2 for i in range(len(rows))], [label for label, _ in rows], rotation=35,
                        ha="right")
    ax[0][0].set(ylabel="tool call rate (fraction of test queries)", ylim=(0, 1.05),
                 title="Who calls the tool, by query kind")
    ax[0][0].legend()
    fams = [f for f in FAMILIES if f in mod["modes"]["learned"]]
    pair = [(f"learned, c={mod['call_cost']:g}", mod["modes"]["learned"])]
    if dream:
        pair.append(("learned + dream", dream["modes"]["learned"]))
    width = 0.8 / len(pair)
    for j, (label, summ) in enumerate(pair):
        ax[0][1].bar([i + j * width for i in range(len(fams))], [summ[f]["call_rate"] for f in fams], width,
                     label=label)
    ax[0][1].set_xticks([i + width / 2 for i in range(len(fams))], fams, rotation=35, ha="right")
    ax[0][1].set(ylabel="tool call rate", ylim=(0, 1.05), title="By query family (first two: memorizable)")
    ax[0][1].legend()
    save(fig, figs / "call_rate_by_kind", source=str(out))

    # 2. the price sweep on the oracle's axes: accuracy against call rate (left), against compute (right)
    fig, ax = new_figure(2, 1, width=5.4, height=4.0)
    tags = []  # per panel: its axes, the tagged points and their price tags
    ox, oy = zip(*sweep["oracle"])
    ax[0][0].plot(ox, oy, "--", color="k", label="oracle (calls exactly where the no-tool answer is wrong)")
    area = "–" if sweep["area_fraction"] is None else f"{sweep['area_fraction']:.2f}"
    ax[0][0].fill_between([x for x, _ in sweep["curve"]], oy[0], [y for _, y in sweep["curve"]], color="C0",
                          alpha=0.12, label=f"area: {area} of the oracle's gain")
    for k, (xkey, xlabel) in enumerate((("call_rate", "tool call rate (fraction of test queries)"),
                                        ("compute_per_query", "compute per query (M MACs incl. call cost)"))):
        a, scale = ax[0][k], 1 if k == 0 else 1e6
        learned = [(r["modes"]["learned"]["all"], r["call_cost"]) for r in runs]
        for other, _ in (v for seed, v in every.items() if seed != min(every)):
            # the other seeds' sweeps, faint
            a.plot([r["modes"]["learned"]["all"][xkey] / scale for r in other],
                   [r["modes"]["learned"]["all"]["accuracy"] for r in other], "o-", ms=3, color="C0",
                   alpha=SEED_ALPHA)
        a.plot([s[xkey] / scale for s, _ in learned], [s["accuracy"] for s, _ in learned], "o-", color="C0",
               label=f"learned policy, one per price c (seed {min(every)})"
               + ("; faint: other seeds" if len(every) > 1 else ""))
        # points near a label's anchor (within its width, ~10 % of the x axis, and 3 % of y) share its label:
        # "c=0.1–0.5"
        span = max(s[xkey] for s, _ in learned) / scale or 1
        groups: list[list[tuple[dict, float]]] = []
        for s, c in learned:
            anchor = groups[-1][0][0] if groups else None
            near = anchor and abs(s[xkey] - anchor[xkey]) / scale < 0.1 * span
            if near and abs(s["accuracy"] - anchor["accuracy"]) < 0.03:
                groups[-1].append((s, c))
            else:
                groups.append([(s, c)])
        tags.append((a, [(g[0][0][xkey] / scale, g[0][0]["accuracy"]) for g in groups],
                     [f"c={g[0][1]:g}" + (f"–{g[-1][1]:g}" if len(g) > 1 else "") for g in groups]))
        for label, mode, style, color in (("never call", "never", "s", "C2"), ("always call", "always", "^", "C1"),
                                          ("oracle", "oracle", "D", "k")):
            s = mod["modes"][mode]["all"]
            a.plot(s[xkey] / scale, s["accuracy"], style, ms=8, color=color, label=label if k else None)
        if dream:
            s = dream["modes"]["learned"]["all"]
            a.plot(s[xkey] / scale, s["accuracy"], "*", ms=12, color="C3", label="learned + dream")
        a.set(xlabel=xlabel, ylabel="accuracy, all test queries (exact answer)",
              title="Price sweep: accuracy vs " + ("call rate" if k == 0 else "compute"))
        a.legend(loc="lower right", fontsize=7)
    # the price tags go on last, where the layout puts the panels: inside them, off each other and the markers
    fig.draw_without_rendering()
    for a, points, texts in tags:
        markers = [tuple(xy) for line in a.lines if line.get_marker() not in (None, "None", "")
                   for xy in line.get_xydata()]
        place_labels(a, points, texts, fontsize=7, taken=markers, avoid=[a.get_legend().get_window_extent()])
    save(fig, figs / "frontier", source=str(out))

    # 2b. what each price buys: call rates against the price, and where needed calls stop
    fig, ax = new_figure(1, 1, width=5.4, height=3.8)
    for j, (label, value) in enumerate((
            ("needs-tool queries", lambda r: r["modes"]["learned"]["needs_tool"]["call_rate"]),
            ("memorizable queries", lambda r: r["modes"]["learned"]["memorizable"]["call_rate"]),
            ("needed calls (no-tool wrong, tool right)", lambda r: r["needed_call_rate"]))):
        plot_seed_curves(ax[0][0], [([r["call_cost"] for r in rs], [value(r) for r in rs]) for rs, _ in every.values()],
                         color=f"C{j}", label=label, marker="o")
    if sweep["calls_stop"]:
        ax[0][0].axvline(sweep["calls_stop"], color="C3", ls=":",
                         label=f"needed calls stop: c ≈ {sweep['calls_stop']:.2g}")
    ax[0][0].set(xscale="log", xlabel="price of a call c (fraction of a correct answer)",
                 ylabel="tool call rate (learned policy)", ylim=(-0.03, 1.03),
                 title="What each price buys" + (f" (mean of {len(every)} seeds; faint: each)" if len(every) > 1
                                                 else ""))
    ax[0][0].legend(fontsize=7)
    save(fig, figs / "price_sweep", source=str(out))

    # 3. the dream state, round by round
    if dream:
        fig, ax = new_figure(2, 1, width=5.2, height=3.6)
        rs = dream["rounds"]
        x = [r["round"] for r in rs]
        for group in ("memorizable", "needs_tool", "near_miss_key", "mid_arith"):
            ax[0][0].plot(x, [r["call_rate"].get(group, float("nan")) for r in rs], "o-", label=group)
            ax[0][1].plot(x, [r["accuracy"].get(group, float("nan")) for r in rs], "o-", label=group)
        ax[0][1].plot(x[1:], [r["diverge_rate"] for r in rs[1:]], "k--", label="dreams that diverge")
        ax[0][0].set(xlabel="dream round (0 = before)", ylabel="tool call rate (test)", ylim=(-0.03, 1.03),
                     title="Dream state: when the policy calls")
        ax[0][1].set(xlabel="dream round (0 = before)", ylabel="accuracy (test) / fraction", ylim=(-0.03, 1.03),
                     title="Dream state: what it gets right")
        for a in ax[0]:
            a.set_xticks(x)
            a.legend()
        save(fig, figs / "dream_rounds", source=str(out / "dream"))

    # 4. calibration: does π track how often a call pays?
    fig, ax = new_figure(1, 1, width=4.6, height=4.0)
    for label, an in [(f"learned, c={mod['call_cost']:g}", mod)] + ([("learned + dream", dream)] if dream else []):
        cal = an["calibration"]
        (lo, hi), ece = cal["ece_interval"], cal["ece"]
        # a bin of one or two queries is noise
        b = [t for t in cal["bins"] if t["n"] >= 3]
        ax[0][0].plot([t["mean_p_call"] for t in b], [t["call_pays"] for t in b], "o-",
                      label=f"{label} (ECE {ece:.2f} [{lo:.2f}, {hi:.2f}])")
    ax[0][0].plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    ax[0][0].set(xlabel="P(CALL) (10 bins; bins with ≥ 3 queries)",
                 ylabel="fraction where a call pays (tool right, no-tool wrong)",
                 title="Reliability of the call decision", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax[0][0].legend(fontsize=7)
    save(fig, figs / "calibration", source=str(out))


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def write_report(out: Path, runs: list[dict], dream: dict | None, mod: dict, sweep: dict,
                 every: dict[int, tuple[list[dict], dict | None]], memo: dict[int, dict]) -> None:
    rows = model_rows(runs, dream)
    exp = json.loads((out / "experiment.json").read_text()) if (out / "experiment.json").exists() else {}
    learned_all = mod["modes"]["learned"]
    lines = ["# Part 6 — tool use: when is a call worth its cost?", "",
             f"Budget `{mod.get('budget', '?')}`. {seeds_sentence(list(every))} "
             + (f"The tables down to the dream state show seed {min(every)}; *Across seeds* gives means, intervals "
                "and the verdicts. " if len(every) > 1 else "")
             + (f"Wall time {exp['wall_s']} s. " if "wall_s" in exp else "")
             + f"Test queries: {learned_all['all']['n']} "
             f"({learned_all['memorizable']['n']} memorizable, {learned_all['needs_tool']['n']} needs-tool). "
             "Compute = model forward MACs over the whole sequence (query, decision, call, spliced output, answer) "
             f"+ the tool's declared cost (calc {suite.COST['calc']:,}, lookup {suite.COST['lookup']:,} "
             "MAC-equivalents). Never, always and oracle use the weights of the "
             f"c={mod['call_cost']:g} run.", "",
             "## Call rate and accuracy by query kind", "",
             markdown_table(["model", "call rate memorizable", "call rate needs-tool", "acc. memorizable",
                             "acc. needs-tool", "acc. all", "compute / query (M MACs)",
                             "cost / correct answer (M MACs)"],
                            [[label, pct(s["memorizable"]["call_rate"]), pct(s["needs_tool"]["call_rate"]),
                              pct(s["memorizable"]["accuracy"]), pct(s["needs_tool"]["accuracy"]),
                              pct(s["all"]["accuracy"]), f"{s['all']['compute_per_query'] / 1e6:.2f}",
                              "–" if s["all"]["cost_per_correct"] is None
                              else f"{s['all']['cost_per_correct'] / 1e6:.2f}"] for label, s in rows])]
    learned = [(label, s) for label, s in rows if label.startswith("learned")]
    met = [label for label, s in learned
           if s["needs_tool"]["call_rate"] >= 0.9 and s["memorizable"]["call_rate"] <= 0.2]
    needs = [f for f in FAMILIES if suite.FAMILIES[f] == "needs_tool" and f in learned_all]
    always = mod["modes"]["always"]
    exact = min(always[f]["accuracy"] for f in needs)
    lines += ["## Targets", "",
              "- Call on ≥ 90% of needs-tool and ≤ 20% of memorizable queries: "
              + (f"**met** by {' and '.join(met)}" if met else "**not met** by any learned policy at this budget")
              + "; " + "; ".join(f"{label}: {pct(s['needs_tool']['call_rate'])} / {pct(s['memorizable']['call_rate'])}"
                                 for label, s in learned) + " (needs-tool / memorizable call rate).",
              "- An exact tool path (≥ 99% on every needs-tool family when calling): "
              f"{'**met**' if exact >= 0.99 else '**not met**'}; "
              f"the worst family reaches {pct(exact)} with every call forced (c={mod['call_cost']:g} weights). "
              "The engine copies the query into the call, writes the tool's output as the answer and ends the "
              "row; the model takes the decision.",
              f"- Price sweep: {len(runs)} prices; the learned policies cover "
              + ("–" if sweep["area_fraction"] is None else f"{sweep['area_fraction']:.2f}")
              + " of the oracle's area over never-call (RouteLLM's APGR, with the oracle as the ceiling, on the "
              "call-rate axis); needed calls stop at c ≈ "
              + ("(no crossing in the swept range)" if sweep["calls_stop"] is None else f"{sweep['calls_stop']:.2g}")
              + ".", "",
              "## By query family: the tool path, and Toolformer's split", "",
              "Learned policy: accuracy on the queries where it called and where it did not (– : none).", ""]
    header = ["family", "kind", "always call: acc.", "learned: call rate", "acc. when calling", "acc. when not",
              "accuracy"] + (["call rate after dream", "accuracy after dream"] if dream else [])
    table = []
    for f in FAMILIES:
        s = learned_all.get(f)
        if s is None:
            continue
        d = dream["modes"]["learned"][f] if dream else None
        table.append([f, suite.FAMILIES[f].replace("_", "-"), pct(always[f]["accuracy"]), pct(s["call_rate"]),
                      pct(s["accuracy_called"]), pct(s["accuracy_not_called"]), pct(s["accuracy"])]
                     + ([pct(d["call_rate"]), pct(d["accuracy"])] if d else []))
    lines += [markdown_table(header, table), "## The price sweep", "",
              "Each price continues the same base run with its own price on calls. *Needed calls*: of the queries "
              "whose no-tool answer is wrong and whose tool answer is right, the fraction the policy calls.", "",
              markdown_table(["price c", "call rate needs-tool", "call rate memorizable", "needed calls", "acc. all",
                              "compute / query (M MACs)"],
                             [[f"{r['call_cost']:g}", pct(r["modes"]["learned"]["needs_tool"]["call_rate"]),
                               pct(r["modes"]["learned"]["memorizable"]["call_rate"]), pct(r["needed_call_rate"]),
                               pct(r["modes"]["learned"]["all"]["accuracy"]),
                               f"{r['modes']['learned']['all']['compute_per_query'] / 1e6:.2f}"] for r in runs])]
    lines += memorisation_lines(memo, mod["call_cost"])
    calib = [(f"learned, c={mod['call_cost']:g}", mod)] + ([("learned + dream", dream)] if dream else [])
    lines += ["## Calibration of the decision", "",
              "π = P(CALL) read as the probability that a call pays (the tool's answer right, the no-tool answer "
              "wrong); ECE over 10 bins with its 95% interval from 1000 resamples of the queries. Lower is better.",
              "", markdown_table(["model", "ECE", "ECE 95% interval", "Brier"],
                                 [[label, f"{an['calibration']['ece']:.3f}",
                                   "[{:.3f}, {:.3f}]".format(*an["calibration"]["ece_interval"]),
                                   f"{an['calibration']['brier']:.3f}"] for label, an in calib])]
    if dream:
        lines += ["## The dream state, round by round", "",
                  markdown_table(["round", "dreamed queries", "diverge (no-tool ≠ tool)", "mean regret",
                                  "call rate memorizable", "call rate needs-tool", "call rate near-miss keys",
                                  "acc. needs-tool"],
                                 [[str(r["round"]), str(r.get("dreamed", "–")), pct(r.get("diverge_rate")),
                                   "–" if "mean_regret" not in r else f"{r['mean_regret']:.2f}",
                                   pct(r["call_rate"]["memorizable"]), pct(r["call_rate"]["needs_tool"]),
                                   pct(r["call_rate"].get("near_miss_key")), pct(r["accuracy"]["needs_tool"])]
                                  for r in dream["rounds"]])]
        last = dream["rounds"][-1].get("examples", [])
        if last:
            lines += ["The queries that fooled the policy most in the last round (adversarial search):", ""]
            lines += [f"- `{e['query']}` → {e['answer']} (no-tool answer {'agrees' if e['agree'] else 'diverges'}, "
                      f"P(CALL) = {e['p_call']:.2f})" for e in last[:6]]
            lines += [""]
    lines += seeds_section(every)
    lines += ["## Honest notes", "",
              ("- Numbers come from one seed on a toy model; differences of a few points between prices are noise."
               if len(every) == 1 else f"- A toy model over {len(every)} seeds: read a difference only where "
               "*Across seeds* gives it an interval that excludes zero."),
              "- The learned policy's outcome on a query is the branch its decision picks (π > 1/2); with greedy "
              "decoding that is exactly what generation with the tool in the loop writes.",
              "- The oracle curve is the best any router could do with these weights: first the calls that fix a "
              "wrong answer, then the harmless ones, then the harmful ones.",
              "- Near-miss keys (one letter off a famous key) look familiar: before the dream state the policy "
              f"calls on {pct(learned_all.get('near_miss_key', {}).get('call_rate'))} of them.", "",
              "Figures: `figures/call_rate_by_kind`, `figures/frontier`, `figures/price_sweep`, "
              "`figures/dream_rounds`, `figures/calibration`, `figures/memorisation`. Explorable: `tools.html`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def seeds_section(every: dict[int, tuple[list[dict], dict | None]]) -> list[str]:
    """Every model row as mean ± interval over seeds, the sweep's summary numbers per seed, and the verdicts,
    paired by seed: does the learned policy beat never-call, save compute over always-call, and does the
    dream state improve the decision?"""
    per_seed = {seed: (runs, dream, moderate_run(runs, dream)) for seed, (runs, dream) in every.items()}
    rows: dict[str, dict[int, dict]] = {}  # label -> seed -> summary by group
    for seed, (runs, dream, _) in per_seed.items():
        for label, summary in model_rows(runs, dream):
            rows.setdefault(label, {})[seed] = summary

    def col(label, group, key, scale=100.0, spec=".0f"):
        return cell([s[group][key] for s in rows[label].values() if s[group][key] is not None], spec, scale)

    table = markdown_table(
        ["model", "seeds", "acc. all, %", "acc. needs-tool, %", "call rate needs-tool, %",
         "call rate memorizable, %", "compute / query (M MACs)"],
        [[label, str(len(by_seed)), col(label, "all", "accuracy"), col(label, "needs_tool", "accuracy"),
          col(label, "needs_tool", "call_rate"), col(label, "memorizable", "call_rate"),
          col(label, "all", "compute_per_query", 1e-6, ".2f")] for label, by_seed in rows.items()])
    sweeps = {seed: price_sweep(runs, mod) for seed, (runs, _, mod) in per_seed.items()}
    stops = [sw["calls_stop"] for sw in sweeps.values() if sw["calls_stop"] is not None]

    def mode(seed, name, key="accuracy", group="all"):
        return per_seed[seed][2]["modes"][name][group][key]

    seeds = list(per_seed)
    acc_never = paired({s: 100 * mode(s, "learned") for s in seeds}, {s: 100 * mode(s, "never") for s in seeds}).diff
    # compute saved against always calling, per seed: 100 (1 - C_learned / C_always)
    saved = mean_ci([100 * (1 - mode(s, "learned", "compute_per_query") / mode(s, "always", "compute_per_query"))
                     for s in seeds])
    acc_always = paired({s: 100 * mode(s, "learned") for s in seeds}, {s: 100 * mode(s, "always") for s in seeds}).diff
    apgr = cell([sw["area_fraction"] for sw in sweeps.values() if sw["area_fraction"] is not None], ".2f")
    lines = ["## Across seeds", "", table, "",
             f"Price sweep per seed: the learned policies cover {apgr} of the oracle's area (APGR); "
             f"needed calls stop at c ≈ {cell(stops, '.2g')} "
             f"({len(stops)} of {len(sweeps)} seeds cross ½ in the swept range).", "",
             f"- Learned (c={per_seed[seeds[0]][2]['call_cost']:g}) − never call, accuracy: {acc_never.format('+.1f')} "
             f"points ({verdict(acc_never)}).",
             f"- Learned − always call: accuracy {acc_always.format('+.1f')} points "
             f"({verdict(acc_always, words=('higher', 'lower', 'no different within noise'))}), compute saved "
             f"{saved.format('+.0f')}% ({verdict(saved, words=('cheaper', 'dearer', 'no cheaper within noise'))})."]
    dreamt = [s for s in seeds if per_seed[s][1]]
    if dreamt:
        def dream_diff(value, higher_is_better, words, scale, unit):
            diff = paired({s: scale * value(per_seed[s][1]) for s in dreamt},
                          {s: scale * value(per_seed[s][2]) for s in dreamt}).diff
            return f"{diff.format('+.1f' if scale == 100 else '+.3f')}{unit} ({verdict(diff, higher_is_better, words)})"

        def learned(group, key):
            return lambda a: a["modes"]["learned"][group][key]

        helped = ("helped", "hurt", "within noise")
        # (what, its value in a run's analysis, higher is better, the verdict's words, scale, unit)
        effects = [("ECE", lambda a: a["calibration"]["ece"], False,
                    ("better calibrated", "worse calibrated", "within noise"), 1.0, ""),
                   ("call rate on near-miss keys", learned("near_miss_key", "call_rate"), True,
                    ("calls more", "calls less", "within noise"), 100.0, " points"),
                   ("accuracy on near-miss keys", learned("near_miss_key", "accuracy"), True, helped, 100.0, " points"),
                   ("needs-tool accuracy", learned("needs_tool", "accuracy"), True, helped, 100.0, " points"),
                   ("on the frontier, accuracy over all queries", learned("all", "accuracy"), True, helped, 100.0,
                    " points"),
                   ("compute per query", learned("all", "compute_per_query"), False,
                    ("cheaper", "dearer", "no different within noise"), 1e-6, " M MACs")]
        lines.append("- The dream state, against the run it continues (same seed, same price): "
                     + "; ".join(f"{what} {dream_diff(value, better, words, scale, unit)}"
                                 for what, value, better, words, scale, unit in effects) + ".")
    if len(seeds) == 1:
        lines.append(f"- One seed: every difference above is a single run's ({ONE_SEED}); "
                     "`nnlabs sweep tools --seeds 3` gives intervals.")
    return lines + [""]


def write_payoff(out: Path, done: list[Run]) -> None:
    """One point per scored run and seed: accuracy on the test queries against compute per query; never-,
    always-call and the oracle on the weights of the moderate run (the one the dream state continues) are
    the baselines."""
    points = []
    for seed in sorted({run.seed for run in done}):
        scored = [run for run in done if run.seed == seed and run.analysis.get("modes")]
        costs = [run for run in scored if run.name.startswith("cost_")]
        if not costs:
            continue
        dream = next((run for run in scored if run.name == "dream"), None)
        target = dream.analysis["call_cost"] if dream else 0.5
        mod = min(costs, key=lambda run: abs(run.analysis["call_cost"] - target))
        for run in scored:
            label = f"learned, c={run.analysis['call_cost']:g}" + (" + dream" if run is dream else "")
            points.append(payoff_point(run, "learned", label, "routed"))
        points += [payoff_point(mod, mode, f"{mode} (weights of c={mod.analysis['call_cost']:g})", "baseline")
                   for mode in ("never", "always", "oracle")]
    payoff = {"lab": "tools", "quality": "exact-answer accuracy on the test queries, fraction", "better": "higher",
              "compute": "forward MACs per query incl. the declared cost of tool calls", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=1) + "\n", encoding="utf-8")


def payoff_point(run: Run, mode: str, label: str, kind: str) -> dict:
    summary = run.analysis["modes"][mode]["all"]
    return {"run": run.name, "label": label, "kind": kind, "quality": summary["accuracy"],
            "compute": summary["compute_per_query"], "seed": run.seed}
