"""The MoE lab's report: figures, report.md and the routing explorable, from the run directories alone."""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import numpy as np

from nnlabs.labs.moe.experiment import RUNS
from nnlabs.labs.moe.metrics import CLASSES, DOMAINS
from nnlabs.report.runs import Run, load_runs
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError

SUMMARY_KEYS = ("load_balance_ratio", "utilisation_entropy", "routing_entropy", "dropped_frac", "mi_domain",
                "mi_char", "mi_domain_given_char", "mi_char_given_domain")


def lab_runs(out: Path) -> dict[str, Run]:
    """{run name: Run} for every run under `out` that has logged an evaluation, in the order of RUNS."""
    runs = [r for r in load_runs(out) if r.metrics]
    if not runs:
        raise UserError(f"{out} holds no MoE run directories; run `nnlabs lab moe --out {out}` first")
    order = {name: i for i, name in enumerate(RUNS)}
    return {r.name: r for r in sorted(runs, key=lambda r: (order.get(r.name, len(order)), r.name))}


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
        later = [m["instability"] for e in evals[1:] for m in e["layers"]]
        s["instability"] = float(np.mean(later)) if later else float("nan")
        s["lbr_first"] = mean("load_balance_ratio", evals[0])
    return s


def _colour(name: str):
    import matplotlib.pyplot as plt

    return plt.get_cmap("tab10")(list(RUNS).index(name) % 10 if name in RUNS else 9)


def _fig_quality(runs: dict[str, Run], S, figs, source):
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
    for j, (name, run) in enumerate(runs.items()):
        s = S[name]
        ax[0][0].scatter(s["macs"], s["val"], s=36, marker="o" if run.config["moe"] else "s",
                         color=_colour(name))
        # alternate offsets: neighbours' labels don't collide
        ax[0][0].annotate(name, (s["macs"], s["val"]), fontsize=7, xytext=(5, -7 + 6 * (j % 2)),
                          textcoords="offset points")
    ax[0][0].set_xscale("log")
    ax[0][0].set(title="Validation loss vs active compute (squares: dense)",
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


def _explorable(runs: dict[str, Run], out: Path, moe_runs):
    from nnlabs.report.explorable import write_html

    data = {"domains": DOMAINS, "classes": CLASSES, "runs": {}}
    for name in moe_runs:
        evals = runs[name].analysis["evals"]
        data["runs"][name] = {
            "experts": runs[name].config["moe"]["n_experts"], "steps": [e["step"] for e in evals],
            "domain_expert": [[m["domain_expert"] for m in e["layers"]] for e in evals],
            "class_expert": [[m["class_expert"] for m in e["layers"]] for e in evals],
            "lbr": [[round(m["load_balance_ratio"], 3) for m in e["layers"]] for e in evals],
            "strings": [e["strings"] for e in evals]}
    page = files(__package__)
    write_html(out / "moe.html", "Part 4 — where does each token go? A routing explorer", data,
               (page / "explorable.html").read_text(encoding="utf-8"),
               (page / "explorable.js").read_text(encoding="utf-8"))


def _findings(S: dict, main: str | None, moe_runs: list[str]) -> list[str]:
    """The report's sentences, every number computed from the runs."""
    md = []
    if "dense" in S:
        d = S["dense"]
        for n in ("top1_e4", "top1_e8", "top2_e4", "top2_e8", "dense_x4"):
            if n in S:
                r = {k: S[n][k] / d[k] for k in ("macs", "params_total", "ms_per_step")}
                md.append(f"- {n} vs dense: val loss {S[n]['val'] - d['val']:+.3f} nats/char at "
                          f"{r['macs']:.2f}x the MACs/token, {r['params_total']:.1f}x the parameters and "
                          f"{r['ms_per_step']:.2f}x the time per step.")
    if not moe_runs:
        return md
    md += ["\n## Routing health (probe set, last evaluation, mean over layers)\n",
           markdown_table(["run", "load-balance ratio, first eval → last", "H(utilisation), bits",
                           "routing entropy, bits", "dropped", "instability, mean over evals"],
                          [[n, f"{S[n]['lbr_first']:.2f} → {S[n]['load_balance_ratio']:.2f}",
                            S[n]["utilisation_entropy"], S[n]["routing_entropy"], S[n]["dropped_frac"],
                            S[n]["instability"]] for n in moe_runs])]
    if "top1_e8_nobal" in S and "top1_e8" in S:
        nb, sw = S["top1_e8_nobal"], S["top1_e8"]
        collapsed = nb["load_balance_ratio"] > 1.5 * sw["load_balance_ratio"]
        verdict = ("collapsed towards a few experts" if collapsed
                   else "**did not clearly collapse** at this scale")
        md.append(f"- Without any balancing (top1_e8_nobal), routing {verdict}: load-balance ratio "
                  f"{nb['load_balance_ratio']:.2f} vs {sw['load_balance_ratio']:.2f} with the Switch loss "
                  f"(8 = all tokens on one expert, 1 = even); utilisation entropy "
                  f"{nb['utilisation_entropy']:.2f} vs {sw['utilisation_entropy']:.2f} bits (max 3); "
                  f"val loss {nb['val']:.3f} vs {sw['val']:.3f}.")
    if "top1_e8_lossfree" in S and "top1_e8" in S:
        lf, sw = S["top1_e8_lossfree"], S["top1_e8"]
        md.append(f"- Loss-free bias balancing (DeepSeek-V3, no auxiliary loss): load-balance ratio "
                  f"{lf['load_balance_ratio']:.2f}, val loss {lf['val']:.3f} (Switch loss: "
                  f"{sw['load_balance_ratio']:.2f}, {sw['val']:.3f}).")
    if "top1_e8_cap1" in S:
        c = S["top1_e8_cap1"]
        md.append(f"- Capacity factor 1.0 (top1_e8_cap1) dropped {100 * c['dropped_frac']:.1f}% of the probe "
                  f"assignments at the last evaluation (they skip the FFN and ride the residual); val loss "
                  f"{c['val']:.3f}, MACs/token {c['macs']:,.0f}.")
    s = S[main]
    tokens = s["mi_char_given_domain"] > s["mi_domain_given_char"]
    md += ["\n## Does routing follow domains or tokens?\n",
           f"Mutual information between {main}'s top-1 expert and what each probe token is (bits, mean over "
           "layers):\n",
           markdown_table(["I(expert; domain)", "I(expert; character)", "I(expert; domain given character)",
                           "I(expert; character given domain)"],
                          [[s["mi_domain"], s["mi_char"], s["mi_domain_given_char"], s["mi_char_given_domain"]]]),
           f"\nThe character alone carries {s['mi_char']:.2f} bits about the expert; knowing the domain as "
           f"well adds {s['mi_domain_given_char']:.2f} bits, while knowing the character on top of the "
           f"domain adds {s['mi_char_given_domain']:.2f}. At this scale routing follows **"
           + ("tokens** (which character is being processed) more than domains" if tokens
              else "domains** more than the character being processed")
           + ". Heatmaps per layer: figures/routing_heatmaps.png; per character: moe.html.\n"]
    return md


GAP = """
## The honest gap

- Toy scale: two to four layers, a few hundred thousand parameters, minutes of CPU, one seed per run (no
  error bars). MoE's quality gains in the literature come at scales where expert capacity, not data, is the
  bottleneck; here the differences between runs are small and partly noise.
- Padding positions after each line's end are routed too and count in the balancing losses during training
  (the spine's padded batches; the FFN does not see the mask); the probe analysis uses real positions only.
- Dispatch is a Python loop over experts on one device: no expert parallelism, no all-to-all, no grouped
  GEMM — the communication costs that dominate real MoE systems are absent; step times are from a shared
  machine.
"""


def report(out: Path) -> None:
    """figures/, report.md and moe.html under `out`, from the run directories alone."""
    out = Path(out)
    runs = lab_runs(out)
    figs = out / "figures"
    moe_runs = [n for n, r in runs.items() if r.config["moe"] and r.analysis.get("evals")]
    main = "top1_e8" if "top1_e8" in moe_runs else (moe_runs[0] if moe_runs else None)
    S = {n: last_eval_summary(r) for n, r in runs.items()}
    _fig_quality(runs, S, figs, str(out))
    if moe_runs:
        _fig_heatmaps(runs[main], figs, str(out / main), main)
        _fig_balance(runs, figs, str(out), moe_runs)
        _explorable(runs, out, moe_runs)
    first = next(iter(runs.values())).config
    mc, tc = first["model"], first["train"]
    md = [f"# Part 4 — Mixture of experts on the domain mixture ({first['budget']} budget)\n",
          f"Every run is a {mc['n_layer']}-layer transformer of width {mc['n_embd']} ({mc['n_head']} heads, "
          f"block size {mc['block_size']}) trained for {tc['max_steps']} steps of batch {tc['batch_size']} "
          f"with seed {tc['seed']} on the same names / arithmetic / Python mixture; only the feed-forward "
          "differs. MACs are forward multiply-accumulates per token position, counted from the rows each "
          "Linear actually ran; time is training time per step (evaluation excluded) on the machine that "
          "ran it.\n",
          "## Quality and compute (last evaluation)\n",
          markdown_table(["run", "FFN", "params", "active params", "MACs/token", "ms/step", "val loss", *DOMAINS],
                         [[n, s["label"], s["params_total"], s["params_active"], int(s["macs"]), s["ms_per_step"],
                           s["val"], *(s[d] for d in DOMAINS)] for n, s in S.items()]),
          *_findings(S, main, moe_runs), GAP,
          "Figures: " + ", ".join(f"figures/{p.name}" for p in sorted(figs.glob("*.png")))
          + ("; explorable: moe.html" if moe_runs else "") + ".\n"]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
