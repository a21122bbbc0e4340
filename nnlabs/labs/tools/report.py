"""The tools lab's report: figures, report.md, the explorable and payoff.json, from the run directories only."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from nnlabs.labs.tools.metrics import FAMILIES, KINDS
from nnlabs.pack import tool_suite as suite
from nnlabs.report.runs import Run, load_runs
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError


def scored_runs(out: Path) -> tuple[list[dict], dict | None, list[Run]]:
    """The analysis of every call-cost run (sorted by cost) and of the dream run, for the lowest seed found,
    with every finished run (all seeds) for payoff.json."""
    done = [run for run in load_runs(out) if run.complete]
    costs = [run for run in done if run.name.startswith("cost_")]
    if not costs:
        raise UserError(f"{out} has no cost_*/analysis.json; run the lab first: nnlabs lab tools --out {out}")
    seed = min(run.seed for run in costs)
    runs = sorted(({**run.analysis, "run": run.name} for run in costs if run.seed == seed),
                  key=lambda an: an["call_cost"])
    dream = next((run.analysis for run in done if run.name == "dream" and run.seed == seed), None)
    return runs, dream, done


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
    plot_figures(out, runs, dream, mod)
    write_report(out, dream, model_rows(runs, dream), mod)
    write_explorable(out, mod, dream)
    write_payoff(out, done)


def plot_figures(out: Path, runs: list[dict], dream: dict | None, mod: dict) -> None:
    from nnlabs.report.figures import new_figure, save

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

    # 2. the accuracy–cost frontier over call costs
    fig, ax = new_figure(2, 1, width=5.2, height=3.8)
    for k, group in enumerate(("all", "needs_tool")):
        a = ax[0][k]
        learned = [(r["modes"]["learned"][group], r["call_cost"]) for r in runs]
        a.plot([s["compute_per_query"] / 1e6 for s, _ in learned], [s["accuracy"] for s, _ in learned], "o-",
               color="C0", label="learned policy (label: call cost c)")
        for s, c in learned:
            a.annotate(f"c={c:g}", (s["compute_per_query"] / 1e6, s["accuracy"]), fontsize=7,
                       xytext=(4, -10), textcoords="offset points")
        for label, mode, style, color in (("never call", "never", "s", "C2"), ("always call", "always", "^", "C1")):
            s = mod["modes"][mode][group]
            a.plot(s["compute_per_query"] / 1e6, s["accuracy"], style, ms=8, color=color, label=label)
        if dream:
            s = dream["modes"]["learned"][group]
            a.plot(s["compute_per_query"] / 1e6, s["accuracy"], "*", ms=12, color="C3", label="learned + dream")
        a.set(xlabel="compute per query (M MACs: model + declared call cost)", ylabel="accuracy (exact answer)",
              ylim=(-0.03, 1.03), title=f"Accuracy vs cost: {'all queries' if group == 'all' else 'needs-tool'}")
        a.legend(loc="lower right")
    save(fig, figs / "frontier", source=str(out))

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

    # 4. calibration: does π track how often the direct answer is wrong?
    fig, ax = new_figure(1, 1, width=4.6, height=4.0)
    for label, an in [(f"learned, c={mod['call_cost']:g}", mod)] + ([("learned + dream", dream)] if dream else []):
        # a bin of one or two queries is noise
        b = [t for t in an["calibration"]["bins"] if t["n"] >= 3]
        ax[0][0].plot([t["mean_p_call"] for t in b], [t["direct_wrong"] for t in b], "o-",
                      label=f"{label} (ECE {an['calibration']['ece']:.2f})")
    ax[0][0].plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    ax[0][0].set(xlabel="P(CALL) (10 bins; bins with ≥ 3 queries)", ylabel="fraction of direct answers wrong",
                 title="Calibration of the call decision", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax[0][0].legend()
    save(fig, figs / "calibration", source=str(out))


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def write_report(out: Path, dream: dict | None, rows: list[tuple[str, dict]], mod: dict) -> None:
    exp = json.loads((out / "experiment.json").read_text()) if (out / "experiment.json").exists() else {}
    learned_all = mod["modes"]["learned"]
    lines = ["# Part 6 — tool use: when is a call worth its cost?", "",
             f"Budget `{mod.get('budget', '?')}`, seed {exp.get('seed', '?')}, wall time "
             f"{exp.get('wall_s', '?')} s. Test queries: {learned_all['all']['n']} "
             f"({learned_all['memorizable']['n']} memorizable, {learned_all['needs_tool']['n']} needs-tool). "
             "Compute = model forward MACs over the whole sequence (query, decision, call, spliced output, answer) "
             f"+ the tool's declared cost (calc {suite.COST['calc']:,}, lookup {suite.COST['lookup']:,} "
             "MAC-equivalents).", "",
             "## Call rate and accuracy by query kind", "",
             markdown_table(["model", "call rate memorizable", "call rate needs-tool", "acc. memorizable",
                             "acc. needs-tool", "acc. all", "compute / query (M MACs)",
                             "cost / correct answer (M MACs)"],
                            [[label, pct(s["memorizable"]["call_rate"]), pct(s["needs_tool"]["call_rate"]),
                              pct(s["memorizable"]["accuracy"]), pct(s["needs_tool"]["accuracy"]),
                              pct(s["all"]["accuracy"]), f"{s['all']['compute_per_query'] / 1e6:.2f}",
                              "–" if s["all"]["cost_per_correct"] is None
                              else f"{s['all']['cost_per_correct'] / 1e6:.2f}"] for label, s in rows])]
    best = dream["modes"]["learned"] if dream else learned_all
    learned = [(label, s) for label, s in rows if label.startswith("learned")]
    met = [label for label, s in learned
           if s["needs_tool"]["call_rate"] >= 0.9 and s["memorizable"]["call_rate"] <= 0.2]
    lines += ["## Targets", "",
              "- Call on ≥ 90% of needs-tool and ≤ 20% of memorizable queries: "
              + (f"**met** by {' and '.join(met)}" if met else "**not met** by any learned policy at this budget")
              + "; " + "; ".join(f"{label}: {pct(s['needs_tool']['call_rate'])} / {pct(s['memorizable']['call_rate'])}"
                                 for label, s in learned) + " (needs-tool / memorizable call rate).",
              f"- Needs-tool accuracy: {pct(best['needs_tool']['accuracy'])} with the learned policy"
              f"{' + dream' if dream else ''} at c={mod['call_cost']:g} vs "
              f"{pct(mod['modes']['never']['needs_tool']['accuracy'])} for the same model never calling "
              f"(always calling: {pct(mod['modes']['always']['needs_tool']['accuracy'])}; the gap to 100% is the "
              "model mis-writing the call or mis-copying the tool's output).", "",
              "## By query family (learned policy)", ""]
    header = ["family", "kind", "call rate", "accuracy"] + (["call rate after dream", "accuracy after dream"]
                                                           if dream else [])
    table = []
    for f in FAMILIES:
        s = learned_all.get(f)
        if s is None:
            continue
        d = dream["modes"]["learned"][f] if dream else None
        table.append([f, suite.FAMILIES[f].replace("_", "-"), pct(s["call_rate"]), pct(s["accuracy"])]
                     + ([pct(d["call_rate"]), pct(d["accuracy"])] if d else []))
    calib = [[f"learned, c={mod['call_cost']:g}", f"{mod['calibration']['ece']:.3f}",
              f"{mod['calibration']['brier']:.3f}"]]
    if dream:
        calib.append(["learned + dream", f"{dream['calibration']['ece']:.3f}", f"{dream['calibration']['brier']:.3f}"])
    lines += [markdown_table(header, table), "## Calibration of the decision", "",
              "π = P(CALL) read as the probability that the direct answer would be wrong "
              "(see docs/tools.md). Lower is better.", "", markdown_table(["model", "ECE", "Brier"], calib)]
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
    lines += ["## Honest notes", "",
              "- Numbers come from one seed on a toy model; differences of a few points between call costs are noise.",
              "- The learned policy's outcome on a query is the branch its decision picks (π > 1/2); with greedy "
              "decoding that is exactly what generation with the tool in the loop writes.",
              "- Mid-size arithmetic (two-digit operands) never appears in training: even when forced to call, the "
              f"model gets {pct(mod['modes']['always'].get('mid_arith', {}).get('accuracy'))} of them right, because "
              "it cannot write a call of a length it never saw; only the dream state's perturbations reach them.",
              "- Near-miss keys (one letter off a famous key) look familiar: before the dream state the policy "
              f"calls on {pct(learned_all.get('near_miss_key', {}).get('call_rate'))} of them.", "",
              "Figures: `figures/call_rate_by_kind`, `figures/frontier`, `figures/dream_rounds`, "
              "`figures/calibration`. Explorable: `tools.html`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_explorable(out: Path, mod: dict, dream: dict | None, per_fam: int = 6) -> Path:
    from nnlabs.labs.tools.experiment import per_family
    from nnlabs.report.explorable import write_html

    keys = ("query", "kind", "family", "gold", "p_call", "call", "output", "tool_answer", "tool_ok", "direct_answer",
            "direct_ok", "direct_macs", "tool_macs", "call_cost")
    models = {f"learned, call cost {mod['call_cost']:g}": mod}
    if dream:
        models[f"learned + dream state, call cost {dream['call_cost']:g}"] = dream
    data = {"models": {name: [{k: r[k] for k in keys} for r in per_family(an["queries"], per_fam)]
                       for name, an in models.items()}}
    page = files(__package__)
    return write_html(out / "tools.html", "Tool use: the call decision, query by query", data,
                      (page / "explorable.html").read_text(encoding="utf-8"),
                      (page / "explorable.js").read_text(encoding="utf-8"),
                      (page / "explorable.css").read_text(encoding="utf-8"))


def write_payoff(out: Path, done: list[Run]) -> None:
    """One point per scored run and seed: accuracy on the test queries against compute per query; the
    never- and always-call modes of each cost run's weights are the baselines."""
    points = []
    for run in sorted(done, key=lambda r: (r.seed, r.name)):
        modes = run.analysis.get("modes")
        if not modes:
            continue
        label = f"learned, c={run.analysis['call_cost']:g}" + (" + dream" if run.name == "dream" else "")
        learned = modes["learned"]["all"]
        points.append({"run": run.name, "label": label, "kind": "routed", "quality": learned["accuracy"],
                       "compute": learned["compute_per_query"], "seed": run.seed})
        if run.name == f"cost_{run.analysis['call_cost']:g}":
            for mode in ("never", "always"):
                points.append({"run": run.name, "label": f"{mode} call (weights of c={run.analysis['call_cost']:g})",
                               "kind": "baseline", "quality": modes[mode]["all"]["accuracy"],
                               "compute": modes[mode]["all"]["compute_per_query"], "seed": run.seed})
    payoff = {"lab": "tools", "quality": "exact-answer accuracy on the test queries, fraction",
              "compute": "forward MACs per query incl. declared tool-call cost", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=1) + "\n", encoding="utf-8")
