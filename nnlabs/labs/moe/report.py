"""The MoE lab's report: figures, report.md and the routing explorable, from the run directories alone."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nnlabs.labs.moe.experiment import RUNS, control_run
from nnlabs.labs.moe.explorable import balancing, write_explorable
from nnlabs.labs.moe.metrics import CLASSES, DOMAINS
from nnlabs.report.runs import Run, group_by_name, load_runs
from nnlabs.report.stats import mean_ci, paired, verdict
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError

SUMMARY_KEYS = ("load_balance_ratio", "utilisation_entropy", "routing_entropy", "dropped_frac", "mi_domain",
                "mi_char", "mi_domain_given_char", "mi_char_given_domain", "maxvio_global", "top_prob")
# the balancers compared at the lab's default router initialisation
ARCHITECTURES = ("dense", "dense_x4", "top1_e4", "top1_e8", "top2_e4", "top2_e8")  # dense vs sparse
DEFAULT_BALANCING = ("top1_e8_nobal", "top1_e8", "top1_e8_lossfree", "top1_e8_lossfree_fast", "top1_e8_lossfree_sign")
TOP2_BALANCING = ("top2_e8", "top2_e8_lossfree", "top2_e8_lossfree_nostart")


def balancer(name: str) -> str:
    """How a run keeps its router balanced, in words (the explorable's), read off its RunSpec (the run's name
    where it has none)."""
    moe = RUNS[name].moe if name in RUNS else None
    return name if moe is None else balancing(asdict(moe))


def lab_runs(out: Path) -> dict[str, list[Run]]:
    """{run name: its runs, one per seed} for every run under `out` (and `out/seed-<s>/`) that has logged
    an evaluation, in the order of RUNS."""
    runs = [r for r in load_runs(out) if r.metrics]
    if not runs:
        raise UserError(f"{out} holds no MoE run directories; run `nnlabs lab moe --out {out}` first")
    order = {name: i for i, name in enumerate(RUNS)}
    # a seed still training stays out while another seed of the same run has finished
    groups = {name: [r for r in rs if r.complete] or rs for name, rs in group_by_name(runs).items()}
    return {name: groups[name] for name in sorted(groups, key=lambda n: (order.get(n, len(order)), n))}


def last_eval_summary(run: Run) -> dict:
    """The numbers the report quotes for one run: its last evaluation; routing metrics mean over layers."""
    last = [r for r in run.metrics if r["split"] == "val"][-1]
    moe = run.config["moe"]
    s = {"label": f"top-{moe['top_k']} of {moe['n_experts']}" if moe else f"dense, {run.config['ffn_mult']}x wide",
         "params_total": run.config["params_total"], "params_active": run.config["params_active"],
         "macs": last["macs"], "ms_per_step": 1000 * last["wall_s"] / (last["step"] + 1), "val": last["loss"],
         "step": last["step"], **{d: last.get(f"val_loss_{d}") for d in DOMAINS}}
    evals = run.analysis.get("evals")
    if evals:
        def mean(key, e=evals[-1]):
            return float(np.mean([m[key] for m in e["layers"]]))

        s.update({k: mean(k) for k in SUMMARY_KEYS})
        # None after a resume: the evaluation before it is not in memory
        later = [m["instability"] for e in evals[1:] for m in e["layers"] if m["instability"] is not None]
        s["instability"] = float(np.mean(later)) if later else float("nan")
        s["lbr_first"] = mean("load_balance_ratio", evals[0])
        s["maxvio_batch"] = evals[-1].get("maxvio_batch")
        # the line start: the share of steps since the evaluation before at which it switched experts, worst layer
        switched = [m["start_switch_rate"] for m in evals[-1]["layers"] if "start_switch_rate" in m]
        s["start_switches"] = max(switched) if switched else None
        s["start_share"] = evals[-1].get("start_share")
        s["removal"] = evals[-1].get("removal")
        last = evals[-1]["layers"]
        if "domain_given_char_null" in last[0]:
            null = [m["domain_given_char_null"] for m in last]
            s.update(cmi_observed=float(np.mean([n["observed"] for n in null])),
                     cmi_null=float(np.mean([n["null_mean"] for n in null])),
                     cmi_null_q95=float(np.mean([n["null_q95"] for n in null])),
                     cmi_p=max(n["p_value"] for n in null))
            s["same_rate"] = float(np.mean([m["same_expert"]["rate"] for m in last]))
            s["same_chance"] = float(np.mean([m["same_expert"]["utilisation"] for m in last]))
            s["same_uniform"] = last[0]["same_expert"]["uniform"]
    return s


def mean_over_seeds(summaries: list[dict]) -> dict:
    """One summary per run name: numbers averaged over its seeds, labels kept; `seeds` counts them."""
    out = {"seeds": len(summaries)}
    for key, value in summaries[0].items():
        values = [s.get(key) for s in summaries]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[key] = float(np.mean(values)) if numeric else value
    return out


def _colour(name: str):
    import matplotlib.pyplot as plt

    # one colour per run of RUNS (20), the same in every figure
    return plt.get_cmap("tab20")(list(RUNS).index(name) % 20 if name in RUNS else 19)


def _fig_quality(runs: dict[str, Run], S, per_seed, figs, source):
    from nnlabs.report.figures import new_figure, save

    fig, ax = new_figure(2, 1, width=5.2)
    for name, run in runs.items():
        for i, split in enumerate(("train", "val")):
            recs = [r for r in run.metrics if r["split"] == split]
            ax[0][i].plot([r["step"] for r in recs], [r["loss"] for r in recs], label=name, lw=1.2,
                          color=_colour(name))
    for i, split in enumerate(("train", "val")):
        ax[0][i].set(title=f"{split} loss", xlabel="step", ylabel="loss (nats/char)")
    ax[0][1].legend(ncol=2)
    save(fig, figs / "loss_curves", source)

    fig, ax = new_figure(1, 1, width=8)
    width = 0.8 / len(runs)
    for j, name in enumerate(runs):
        ax[0][0].bar(np.arange(3) + j * width, [S[name][d] for d in DOMAINS], width, label=name,
                     color=_colour(name))
    lows = [S[n][d] for n in runs for d in DOMAINS]
    ax[0][0].set_ylim(min(lows) - 0.1 * (max(lows) - min(lows) + 0.1), max(lows) + 0.05)
    ax[0][0].set_xticks(np.arange(3) + 0.4 - width / 2, DOMAINS)
    ax[0][0].set(title="Final validation loss per domain (y axis zoomed)", ylabel="loss (nats/char)")
    ax[0][0].legend(ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left")
    save(fig, figs / "val_loss_by_domain", source)

    fig, ax = new_figure(1, 1, width=6)
    # the architectures only: the balancing, capacity and collapse variants share top1_e8's compute
    shapes = {n: r for n, r in runs.items() if n in ARCHITECTURES}
    for j, (name, run) in enumerate(shapes.items()):
        s, ci = S[name], mean_ci([x["val"] for x in per_seed[name]])
        # the bar: the 95 % t-interval over seeds (none for one seed); every other run nudged right, so bars at
        # the same compute stay apart
        ax[0][0].errorbar(s["macs"] * (1 + 0.015 * (j % 2)), s["val"], yerr=0 if ci.n < 2 else ci.half,
                          fmt="o" if run.config["moe"] else "s", ms=6, capsize=3, color=_colour(name), label=name)
    ax[0][0].legend(fontsize=8)
    ax[0][0].set_xscale("log")
    ax[0][0].set(title="Validation loss vs active compute (squares: dense; bars: 95 % interval over seeds)",
                 ylabel="final val loss (nats/char)",
                 xlabel="forward MACs per token, active only (log scale)")
    save(fig, figs / "loss_vs_compute", source)


def _fig_heatmaps(run: Run, figs, source, name):
    from nnlabs.report.figures import new_figure, save

    ev = run.analysis["evals"][-1]
    fig, ax = new_figure(3, len(ev["layers"]), width=4.2, height=2.4, gridspec_kw={"wspace": 0.45})
    titles = ("each expert's tokens, by domain", "each domain's tokens, by expert",
              "each char class, by expert")
    for li, m in enumerate(ev["layers"]):
        de, ce = np.array(m["domain_expert"], float), np.array(m["class_expert"], float)
        mats = (de / np.maximum(de.sum(0, keepdims=True), 1), de / np.maximum(de.sum(1, keepdims=True), 1),
                ce / np.maximum(ce.sum(1, keepdims=True), 1))
        for j, (mat, rows) in enumerate(zip(mats, (DOMAINS, DOMAINS, CLASSES))):
            a = ax[li][j]
            im = a.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            a.set_yticks(range(len(rows)), rows)
            a.set_xticks(range(mat.shape[1]))
            a.set(title=titles[j] if li == 0 else "", xlabel="expert" if li == len(ev["layers"]) - 1 else "")
            a.grid(False)
        ax[li][0].set_ylabel(f"layer {li}", fontsize=10)
    fig.colorbar(im, ax=[a for row in ax for a in row], shrink=0.7, label="fraction of probe tokens")
    fig.suptitle(f"Routing of the probe set (top-1 expert per token): {name}, step {ev['step']}")
    save(fig, figs / "routing_heatmaps", source)


def _fig_balance(runs: dict[str, Run], figs, source, moe_runs):
    from nnlabs.report.figures import new_figure, save

    shown = [n for n in ("top1_e8", "top1_e8_nobal", "top1_e8_lossfree") if n in moe_runs] or moe_runs[:1]
    fig, ax = new_figure(1 + len(shown), 1, width=3.8)
    for name in moe_runs:
        evals = runs[name].analysis["evals"]
        ax[0][0].plot([e["step"] for e in evals], [np.mean([m["load_balance_ratio"] for m in e["layers"]])
                                                   for e in evals], label=name, lw=1.2, color=_colour(name))
    ax[0][0].set(title="Load-balance ratio", xlabel="step", ylabel="max / mean expert load (1 = even)")
    ax[0][0].legend()
    for j, name in enumerate(shown, start=1):
        evals = runs[name].analysis["evals"]
        util = np.array([e["layers"][0]["utilisation"] for e in evals]).T
        ax[0][j].stackplot([e["step"] for e in evals], util, labels=[f"expert {i}" for i in range(len(util))])
        ax[0][j].set(title=f"{name}\nexpert utilisation, layer 0", xlabel="step", ylim=(0, 1),
                     ylabel="share of routing assignments")
    ax[0][-1].legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Balance over training: Switch loss vs none vs loss-free bias", y=1.04)
    save(fig, figs / "balance_over_training", source)

    fig, ax = new_figure(2, 1, width=4.8)
    for name in moe_runs:
        evals, n_experts = runs[name].analysis["evals"], runs[name].config["moe"]["n_experts"]
        for i, key in enumerate(("routing_entropy", "utilisation_entropy")):
            ax[0][i].plot([e["step"] for e in evals],
                          [np.mean([m[key] for m in e["layers"]]) / math.log2(n_experts) for e in evals],
                          label=name, lw=1.2, color=_colour(name))
    ax[0][0].set(title="Per-token routing entropy H(p(x))", xlabel="step",
                 ylabel="fraction of log2 E (1 = uniform router)")
    ax[0][1].set(title="Entropy of expert utilisation H(u)", xlabel="step",
                 ylabel="fraction of log2 E (1 = perfectly even)")
    ax[0][1].legend()
    save(fig, figs / "routing_entropy", source)


def _fig_maxvio(groups: dict[str, list[Run]], figs, source):
    """MaxVio over training per balancer: over the validation set (global) and per training batch."""
    from nnlabs.report.figures import new_figure, save

    families = [("collapse setting", [n for n in groups if n.startswith("collapse_")]),
                ("default setting, top-1", [n for n in DEFAULT_BALANCING if n in groups]),
                ("default setting, top-2", [n for n in TOP2_BALANCING if n in groups])]
    # a row needs two balancers to compare
    families = [(title, names) for title, names in families if len(names) > 1]
    if not families:
        return
    fig, ax = new_figure(2, len(families), width=6.0, gridspec_kw={"hspace": 0.45})
    for row, (title, names) in enumerate(families):
        for name in names:
            colour = _balancer_colour(name)
            for col, key in enumerate(("maxvio_global", "maxvio_batch")):
                lines = []
                for run in groups[name]:
                    evals = [e for e in run.analysis.get("evals", []) if e.get("maxvio_batch") is not None
                             or key == "maxvio_global"]
                    steps = [e["step"] for e in evals]
                    ys = [np.mean([m["maxvio_global"] for m in e["layers"]]) if key == "maxvio_global"
                          else e["maxvio_batch"] for e in evals]
                    ax[row][col].plot(steps, ys, color=colour, lw=0.6, alpha=0.4)
                    lines.append((steps, ys))
                if lines and all(len(ys) == len(lines[0][1]) for _, ys in lines):
                    ax[row][col].plot(lines[0][0], np.mean([ys for _, ys in lines], axis=0), color=colour, lw=1.8,
                                      label=f"{name} ({len(lines)} seed{'s' * (len(lines) > 1)})")
        moe = groups[names[0]][0].config["moe"]
        ceiling = moe["n_experts"] / moe["top_k"] - 1
        # the collapse row shows the ceiling; a balanced row zooms in, names the ceiling in the title and draws the
        # loss-free paper's regime; both panels of a row on one scale, so global and per batch read side by side
        top = max([line.get_ydata().max() for a in ax[row] for line in a.get_lines()] + [0.1])
        collapsed = top > ceiling / 2
        line, words = (ceiling, f"ceiling E/k - 1 = {ceiling:g} ") if collapsed else (0.1, "0.1, Wang et al.'s regime ")
        for col, what in enumerate(("global (validation set)", "per training batch")):
            ax[row][col].axhline(line, color="k", ls="--" if collapsed else ":", lw=0.8)
            # the 0.1 label on the left, where training starts far above it, clear of the curves' ends
            ax[row][col].text(1 if collapsed else 0.01, line, words, va="bottom", ha="right" if collapsed else "left",
                              fontsize=7, transform=ax[row][col].get_yaxis_transform())
            ax[row][col].set(title=f"{title}: MaxVio {what}" + ("" if collapsed else f" (ceiling {ceiling:g})"),
                             xlabel="step", ylabel="MaxVio = (max load - mean) / mean",
                             ylim=(0, ceiling * 1.45 if collapsed else top * 1.15))  # room for the legend
        ax[row][0].legend(fontsize=6, ncol=2, loc="upper left")
    save(fig, figs / "maxvio_over_training", source)


# one tab10 colour per way of balancing, matched on the start of `balancer`'s words (the longest match wins): the
# Switch loss with or without the z-loss alike; the paper's rate apart from other rates and from the line start left
# to the router (tab10's grey, 7, is left for runs the lab no longer has)
BALANCER_COLOURS = {"no balancing": 0, "Switch loss": 1, "loss-free bias (proportional, u = 0.001)": 2,
                    "router z-loss": 3, "noisy top-k": 4, "loss-free bias (sign": 5, "loss-free bias (proportional": 6,
                    "loss-free bias (proportional, u = 0.001, not at the line start)": 9}


def _balancer_colour(name: str):
    """The same colour for one balancer in every row of a figure (no balancing blue, Switch orange, loss-free
    green, ...), so a colour means one balancer wherever a reader meets it; grey for a run the lab no longer has."""
    import matplotlib.pyplot as plt

    words = balancer(name)
    start = max((start for start in BALANCER_COLOURS if words.startswith(start)), key=len, default=None)
    return "grey" if start is None else plt.get_cmap("tab10")(BALANCER_COLOURS[start])


def _fig_control(run: Run, figs, source, name):
    """The specialisation control for one run's last evaluation, per layer: the characters two domains
    share, by domain; and each domain's loss change when one expert is removed."""
    from nnlabs.report.figures import new_figure, save

    last = run.analysis["evals"][-1]
    layers = last["layers"]
    fig, ax = new_figure(2, len(layers), width=5.6, height=2.8, gridspec_kw={"wspace": 0.5, "hspace": 0.7})
    for li, m in enumerate(layers):
        shared = np.array(m["shared_domain_expert"], float)
        rows = shared / np.maximum(shared.sum(1, keepdims=True), 1)
        im = ax[li][0].imshow(rows, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax[li][0].set_yticks(range(len(DOMAINS)), DOMAINS)
        null = m.get("domain_given_char_null", {})
        ax[li][0].set(title=f"layer {li}: characters two domains share\n"
                      f"I(E; D | c) {null.get('observed', float('nan')):.3f} bits, "
                      f"null {null.get('null_mean', float('nan')):.3f} (95%: {null.get('null_q95', float('nan')):.3f})",
                      xlabel="expert")
        ax[li][0].grid(False)
        fig.colorbar(im, ax=ax[li][0], shrink=0.8, label="share of row")
        if "removal" in last:
            delta = np.array([[r[d] for d in DOMAINS] for r in last["removal"][li]]).T
            lim = max(abs(delta).max(), 1e-3)
            im2 = ax[li][1].imshow(delta, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
            ax[li][1].set_yticks(range(len(DOMAINS)), DOMAINS)
            ax[li][1].set(title=f"layer {li}: val loss change, one expert removed\n(its tokens to their next choice)",
                          xlabel="expert removed")
            ax[li][1].grid(False)
            fig.colorbar(im2, ax=ax[li][1], shrink=0.8, label="nats/char")
    fig.suptitle(f"Specialisation, controlled for token identity: {name}, step {last['step']}", y=1.02)
    save(fig, figs / "specialisation_control", source)


def _interval(per_seed: dict[str, list[dict]], name: str, key: str, spec: str = ".3f") -> str:
    values = [s[key] for s in per_seed[name] if s.get(key) is not None]
    return mean_ci(values).format(spec) if values else "—"


def _paired_text(per_seed, a: str, b: str, key: str, words: tuple[str, str, str]) -> str:
    """'a - b = +0.012 ± 0.010 (helped)' over the seeds both runs share; lower is better for `key`."""
    va = {s["seed"]: s[key] for s in per_seed[a] if s.get(key) is not None}
    vb = {s["seed"]: s[key] for s in per_seed[b] if s.get(key) is not None}
    if not set(va) & set(vb):
        return "no shared seed"
    diff = paired(va, vb).diff
    return f"{diff.format('+.3f')} ({verdict(diff, higher_is_better=False, words=words)})"


def _findings(S: dict, per_seed: dict[str, list[dict]], main: str | None, moe_runs: list[str]) -> list[str]:
    """The report's sentences, every number computed from the runs."""
    md = []
    if "dense" in S:
        d = S["dense"]
        for n in ("top1_e4", "top1_e8", "top2_e4", "top2_e8", "dense_x4"):
            if n in S:
                r = {k: S[n][k] / d[k] for k in ("macs", "params_total", "ms_per_step")}
                md.append(f"- {n} vs dense: val loss {_paired_text(per_seed, n, 'dense', 'val', WORDS_LOSS)} "
                          f"nats/char at {r['macs']:.2f}x the MACs/token, {r['params_total']:.1f}x the parameters "
                          f"and {r['ms_per_step']:.2f}x the time per step.")
    if not moe_runs:
        return md
    md += ["\n## Routing health (probe set, last evaluation, mean over layers and seeds)\n",
           markdown_table(["run", "load-balance ratio, first eval → last", "H(utilisation), bits",
                           "routing entropy, bits", "mean top probability", "dropped",
                           "instability, mean over evals"],
                          [[n, f"{S[n]['lbr_first']:.2f} → {S[n]['load_balance_ratio']:.2f}",
                            S[n]["utilisation_entropy"], S[n]["routing_entropy"], S[n]["top_prob"],
                            S[n]["dropped_frac"], S[n]["instability"]] for n in moe_runs])]
    md += _balance_section(S, per_seed)
    md += _capacity_section(S, per_seed)
    if main:
        md += _control_section(S, per_seed, main)
    return md


def _capacity_section(S: dict, per_seed: dict[str, list[dict]]) -> list[str]:
    """The capacity sweep: how many assignments overflow, and what it costs in loss (Switch Table 1)."""
    capped = [n for n in RUNS if n.startswith("top1_e8_cap") and n in S]
    if not capped:
        return []
    runs = capped + (["top1_e8"] if "top1_e8" in S else [])  # the factor each ran with, from its RunSpec
    factor = {n: RUNS[n].moe.capacity_factor for n in runs}
    md = ["\n## Capacity factor\n",
          "Each expert takes at most ⌈cf · k · N / E⌉ of a batch's N tokens; the overflow skips the FFN and rides "
          "the residual (Switch Transformer, Table 1: cf 1.0–1.25 was best there). Dropped = share of the "
          "probe set's assignments over capacity at the last evaluation (eval batches, mean over layers and "
          "seeds); unlimited = top1_e8.\n",
          markdown_table(["run", "capacity factor", "dropped", "val loss", "MACs/token", "seeds"],
                         [[n, f"{factor[n]:g}" if factor[n] else "unlimited",
                           f"{100 * S[n]['dropped_frac']:.1f}%", _interval(per_seed, n, "val"),
                           f"{S[n]['macs']:,.0f}", S[n]["seeds"]] for n in runs])]
    if "top1_e8" in S:
        md += [f"- {n} minus unlimited capacity: val loss {_paired_text(per_seed, n, 'top1_e8', 'val', WORDS_LOSS)}."
               for n in runs if n != "top1_e8"]
    return md


WORDS_LOSS = ("lower", "higher", "within noise")
WORDS_VIO = ("more even", "less even", "within noise")


def _balance_section(S: dict, per_seed: dict[str, list[dict]]) -> list[str]:
    """Collapse and its cures (the collapse setting), and loss-free balancing as published (default setting)."""
    md = []
    header = ["run", "balancer", "MaxVio global, last eval", "MaxVio per batch, last eval", "val loss", "seeds"]
    collapse = [n for n in S if n.startswith("collapse_")]
    if collapse:
        first = per_seed[collapse[0]][0]
        md += ["\n## Collapse and its cures\n",
               f"The collapse setting (docs/moe.md records the search): top-1 of 8, no router noise, the router "
               f"initialised at std {first['router_std']}{' with a bias per expert' * first['router_bias']} "
               f"(learning rate {first['learning_rate']}). "
               "MaxVio = (max_i load_i − mean load) / mean load (Wang et al. 2024): 0 is even, E/k − 1 = 7 is "
               "every token on one expert. Global = over the whole validation set; per batch = mean over the "
               "training batches since the previous evaluation (real positions only). Mean ± 95 % interval "
               "over seeds.\n",
               markdown_table(header, [[n, balancer(n),
                                        _interval(per_seed, n, "maxvio_global", ".2f"),
                                        _interval(per_seed, n, "maxvio_batch", ".2f"),
                                        _interval(per_seed, n, "val"), S[n]["seeds"]] for n in collapse])]
        if "collapse_none" in S:
            none = S["collapse_none"]
            cured = [n for n in collapse if n != "collapse_none"]
            best = min(cured, key=lambda n: S[n]["val"]) if cured else None
            md.append(f"- Without balancing, MaxVio_global ends at {none['maxvio_global']:.2f} "
                      f"({'≥' if none['maxvio_global'] >= 3 else '<'} 3, the target of a collapse; ceiling 7), "
                      f"val loss {none['val']:.3f}"
                      + (f"; the best cure by val loss is {best} at {S[best]['val']:.3f}." if best else "."))
            for n in cured:
                md.append(f"- {n}: val loss minus no balancing "
                          f"{_paired_text(per_seed, n, 'collapse_none', 'val', WORDS_LOSS)}; MaxVio_global minus "
                          f"no balancing {_paired_text(per_seed, n, 'collapse_none', 'maxvio_global', WORDS_VIO)}.")
    top2 = [n for n in TOP2_BALANCING if n in S]
    default = [n for n in DEFAULT_BALANCING if n in S] + (top2 if len(top2) > 1 else [])
    if len(default) > 1:
        md += ["\n## Loss-free balancing as published (default setting)\n",
               "Wang et al. 2024: the bias b steers which experts are selected, never the gate values; after "
               "every batch b_i += u·e_i (proportional, their Appendix C for softmax gates) or u·sign(e_i), with "
               "e_i = (mean load − load_i) / mean load, then b is re-centred to mean 0.\n",
               markdown_table(header + ["line start switched experts (steps, worst layer)"],
                              [[n, balancer(n), _interval(per_seed, n, "maxvio_global", ".2f"),
                                _interval(per_seed, n, "maxvio_batch", ".2f"), _interval(per_seed, n, "val"),
                                S[n]["seeds"], _interval(per_seed, n, "start_switches", ".0%")] for n in default])]
        for n in default:
            moe = RUNS[n].moe
            # beside the Switch-loss run with the same experts per token
            switch = f"top{moe.top_k}_e{moe.n_experts}"
            if moe.bias_rate and switch in S:
                md.append(f"- {n}, {balancer(n)}: MaxVio_global {_regime(per_seed, n)} vs the Switch loss "
                          f"{S[switch]['maxvio_global']:.3f} ({switch}): difference "
                          f"{_paired_text(per_seed, n, switch, 'maxvio_global', WORDS_VIO)}; val loss "
                          f"difference {_paired_text(per_seed, n, switch, 'val', WORDS_LOSS)}.")
        share = next((S[n]["start_share"] for n in default if S[n].get("start_share")), None)
        skips, published = [n for n in default if RUNS[n].moe.bias_skips_start], "top2_e8_lossfree"
        if share and skips:
            moe = RUNS[skips[0]].moe
            md.append(f"- The line start (position 0) has one hidden state in every line, so it is one routing "
                      f"decision for {share:.1%} of the real validation tokens; with top-{moe.top_k} of "
                      f"{moe.n_experts} each of its experts gets {share * moe.n_experts / moe.top_k:.0%} of a mean "
                      "load from it as one block (in the paper's 4,096-token "
                      "sequences, 1 token in 4,096). A bias shifts a spread of tokens between experts; this block it "
                      "can only move whole. The table's last column counts how often it switched experts from one "
                      "training step to the next. Left to its router (`_nostart`), the start still counts in the load "
                      "the bias balances.")
        for n in (n for n in skips if published in S):
            md.append(f"- {n} minus {published} (the published rule): MaxVio_global "
                      f"{_paired_text(per_seed, n, published, 'maxvio_global', WORDS_VIO)}; val loss "
                      f"{_paired_text(per_seed, n, published, 'val', WORDS_LOSS)}.")
    return md


WORDS_REGIME = ("≤ 0.1, the paper's regime", "above 0.1, the paper's regime", "the interval straddles 0.1, the "
                "paper's regime")


def _regime(per_seed: dict[str, list[dict]], name: str) -> str:
    """MaxVio_global's mean and interval against Wang et al.'s regime (≤ 0.1): in it only if the interval is."""
    ci = mean_ci([s["maxvio_global"] for s in per_seed[name]])
    return f"{ci.format('.3f')} ({verdict(ci, higher_is_better=False, words=WORDS_REGIME, than=0.1)})"


def _control_section(S: dict, per_seed: dict[str, list[dict]], main: str) -> list[str]:
    """Does gating follow domains? Read off the control for token identity, not the raw heatmap."""
    s = S[main]
    md = ["\n## Does routing follow domains or tokens?\n",
          f"Mutual information between {main}'s top-1 expert and what each probe token is (bits, mean over "
          "layers and seeds):\n",
          markdown_table(["I(expert; domain)", "I(expert; character)", "I(expert; domain given character)",
                          "I(expert; character given domain)"],
                         [[s["mi_domain"], s["mi_char"], s["mi_domain_given_char"], s["mi_char_given_domain"]]])]
    if "cmi_observed" not in s:
        return md
    excess = s["cmi_observed"] - s["cmi_null"]
    follows = s["cmi_p"] < 0.05 and excess > 0.05
    md += [f"\nThe raw domain × expert heatmap is confounded: the domains barely share characters, so a router "
           f"that only reads the character already looks specialised (I(expert; character) = {s['mi_char']:.2f} "
           "bits). The control: I(expert; domain | character) against its permutation null (domain labels "
           "shuffled within each character, 200 times), at the last evaluation:\n",
           markdown_table(["observed, bits", "null mean", "null 95th percentile", "largest p over layers",
                           "excess over null", "seeds"],
                          [[s["cmi_observed"], s["cmi_null"], s["cmi_null_q95"], s["cmi_p"], excess, s["seeds"]]]),
           "\nVerdict, from the control: routing follows **"
           + (f"tokens first, and domains beyond token identity**: the character carries {s['mi_char']:.2f} bits "
              f"about the expert, and the domain adds {excess:.3f} bits beyond it over the shuffled-domain null "
              f"(p ≤ {s['cmi_p']:.3f} in every layer)" if follows else
              f"token identity, not domains**: the character carries {s['mi_char']:.2f} bits about the expert, "
              f"and the domain adds only {excess:.3f} bits beyond it over what shuffled domains give")
           + f". Consecutive tokens of a line share their top-1 expert {100 * s['same_rate']:.1f}% of the time, "
           f"against {100 * s['same_uniform']:.1f}% for a uniform router and {100 * s['same_chance']:.1f}% for "
           "two tokens drawn from the actual "
           "utilisation (Mixtral reports 23.6–28.4 % against 12.5 %).\n", *_removal_lines(s.get("removal")),
           "\nfigures/specialisation_control.png: the "
           "characters two domains share, split by domain, and each domain's loss change when one expert is "
           "removed (its tokens re-routed to their next choice).\n"]
    return md


def _removal_lines(removal: list[list[dict]] | None) -> list[str]:
    """Per layer and domain: the expert whose removal hurts that domain most, beside what it costs the others."""
    if not removal:
        return []
    lines = ["Removing one expert (its tokens re-routed to their next choice), first seed, val loss change in "
             "nats/char — for each domain the expert it depends on most (not controlled for token identity: "
             "an expert that handles the digits hurts arithmetic when removed):\n"]
    for li, experts in enumerate(removal):
        parts = []
        for d in DOMAINS:
            e = max(range(len(experts)), key=lambda i: experts[i][d])
            others = ", ".join(f"{o} {experts[e][o]:+.3f}" for o in DOMAINS if o != d)
            parts.append(f"{d} {experts[e][d]:+.3f} without expert {e} ({others})")
        lines.append(f"- layer {li}: " + "; ".join(parts) + ".")
    return lines


GAP = """
## The honest gap

- Toy scale: two to four layers, a few hundred thousand parameters, minutes of CPU. MoE's quality gains in
  the literature come at scales where expert capacity, not data, is the bottleneck; here the differences
  between runs are small. Intervals are over the seeds present (a t-interval; one seed gives none).
- The collapse setting is found, not natural: a router initialised saturated, with a bias per expert, at a
  high learning rate (values in "Collapse and its cures"). At the lab's default initialisation routing did
  not collapse without balancing (MaxVio_global 1–2.5).
- Padding positions are routed (as the dense FFN computes them) but count in no balancing statistic.
- One device: no expert parallelism and no all-to-all, the communication costs that dominate real MoE
  systems. The experts run as one grouped matmul (torch._grouped_mm); step times are from a shared machine.
"""


def payoff(groups: dict[str, list[Run]]) -> dict:
    """The series' closing figure's points: one per run and seed, from the run directories."""
    points = []
    for name, runs in groups.items():
        for run in runs:
            last = [r for r in run.metrics if r["split"] == "val"][-1]
            moe = run.config["moe"]
            # the plain architectures by their FFN, the balancing variants by name
            variant = name.startswith(("collapse", "top1_e8_"))
            label = name.replace("_", " ") if variant else last_eval_summary(run)["label"]
            points.append({"run": name, "label": label,
                           "kind": "routed" if moe else "baseline", "quality": last["loss"],
                           "compute": last["macs"], "seed": run.config["train"]["seed"]})
    return {"lab": "moe", "quality": "validation loss, nats/char", "better": "lower",
            "compute": "forward MACs per token position", "points": points}


def report(out: Path) -> None:
    """figures/, report.md, moe.html and payoff.json under `out`, from the run directories alone."""
    out = Path(out)
    groups = lab_runs(out)
    # curves, heatmaps and the explorable show each run's first seed; tables average over seeds
    runs = {name: rs[0] for name, rs in groups.items()}
    per_seed = {name: [{**last_eval_summary(r), "seed": r.config["train"]["seed"],
                        "router_std": r.config.get("router_std"),
                        "router_bias": bool((r.config["moe"] or {}).get("router_bias")),
                        "learning_rate": r.config["train"]["learning_rate"]} for r in rs]
                for name, rs in groups.items()}
    S = {name: mean_over_seeds(ss) for name, ss in per_seed.items()}
    figs = out / "figures"
    moe_runs = [n for n, r in runs.items() if r.config["moe"] and r.analysis.get("evals")]
    main = control_run(moe_runs)
    _fig_quality(runs, S, per_seed, figs, str(out))
    if moe_runs:
        _fig_heatmaps(runs[main], figs, str(out / main), main)
        _fig_balance(runs, figs, str(out), moe_runs)
        _fig_maxvio({n: groups[n] for n in moe_runs}, figs, str(out))
        if "removal" in runs[main].analysis["evals"][-1]:
            _fig_control(runs[main], figs, str(out / main), main)
        write_explorable(runs, out, moe_runs)
    first = next(iter(runs.values())).config
    mc, tc = first["model"], first["train"]
    seeds = sorted({s["seed"] for ss in per_seed.values() for s in ss})
    md = [f"# Part 4 — Mixture of experts on the domain mixture ({first['budget']} budget)\n",
          f"Every run is a {mc['n_layer']}-layer transformer of width {mc['n_embd']} ({mc['n_head']} heads, "
          f"block size {mc['block_size']}) trained for {tc['max_steps']} steps of batch {tc['batch_size']} "
          f"with seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))} on the same names / arithmetic / Python "
          "mixture; only the feed-forward differs. MACs are forward multiply-accumulates per token position, "
          "counted from the rows each expert actually ran; ms/step is wall-clock training time per step "
          "(evaluation excluded) on the machine that ran it, beside the MACs as OLMoE reports them — runs that "
          "shared their cores with other jobs are slowed unevenly, so compare speeds with "
          "`benchmarks/bench_moe.py`, which times the models side by side in one process.\n",
          "## Quality and compute (last evaluation, mean over seeds)\n",
          markdown_table(["run", "FFN", "params", "active params", "MACs/token", "ms/step", "val loss", *DOMAINS],
                         [[n, s["label"], int(s["params_total"]), int(s["params_active"]), int(s["macs"]),
                           s["ms_per_step"], _interval(per_seed, n, "val"), *(s[d] for d in DOMAINS)]
                          for n, s in S.items()]),
          *_findings(S, per_seed, main, moe_runs), GAP,
          "Figures: " + ", ".join(f"figures/{p.name}" for p in sorted(figs.glob("*.png")))
          + ("; explorable: moe.html" if moe_runs else "") + ".\n"]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out / "payoff.json").write_text(json.dumps(payoff(groups), indent=1) + "\n", encoding="utf-8")
