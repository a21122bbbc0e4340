"""The tour's report: figures, report.md, the explorable and payoff.json, from the run directories only."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from nnlabs.labs.tour.diagnostics import DeepMLPRecorder
from nnlabs.labs.tour.experiment import DEEP_MODEL, DEEP_RUNS
from nnlabs.report.explorable import write_html
from nnlabs.report.figures import new_figure, save
from nnlabs.report.runs import Run, group_by_name, lab_files, load_runs
from nnlabs.report.stats import MIN_SEEDS, cell, paired, plot_seed_curves, seeds_sentence, verdict
from nnlabs.report.tables import markdown_table

SATURATED, MOSTLY = DeepMLPRecorder.SATURATED, DeepMLPRecorder.MOSTLY
BINS, GRAD_LOG_RANGE = DeepMLPRecorder.BINS, DeepMLPRecorder.GRAD_LOG_RANGE
LM_LABELS = {"mlp": "MLP (makemore size)", "transformer": "transformer (4 layers, 4 heads, 64-dim)"}


def val(run: Run) -> list[dict]:
    return [r for r in run.metrics if r["split"] == "val"]


def samples(run: Run) -> dict[int, list[tuple[str, str]]]:
    """samples.txt by training step: (prompt, sample) pairs."""
    by_step: dict[int, list[tuple[str, str]]] = {}
    for line in (run.path / "samples.txt").read_text(encoding="utf-8").splitlines():
        step, prompt, sample = line.split("\t", 2)
        by_step.setdefault(int(step), []).append((prompt, sample))
    return by_step


def last_samples(run: Run) -> list[tuple[str, str]]:
    by_step = samples(run)
    return by_step[max(by_step)] if by_step else []


def side_by_side(header: list[str], left: Run, right: Run) -> str:
    rows = [[f"`{p or '∅'}`", f"`{a}`", f"`{b}`"] for (p, a), (_, b) in zip(last_samples(left), last_samples(right))]
    return markdown_table(header, rows)


def layer_colors(n: int):
    import matplotlib

    return [matplotlib.colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def bin_centers(lo: float, hi: float) -> np.ndarray:
    edges = np.linspace(lo, hi, BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def curves(rs: list[Run], x: str = "step", offset: int = 0) -> list[tuple[list, list]]:
    """Each seed's validation curve: (x values, test NLL)."""
    return [([r[x] + offset for r in val(run)], [r["loss"] for r in val(run)]) for run in rs]


def by_seed(rs: list[Run], value) -> dict[int, float]:
    return {run.seed: float(value(run)) for run in rs}


def report_bigrams(groups: dict[str, list[Run]], figs: Path) -> list[str]:
    counts, learns = groups["bigram_count"], groups["bigram_learned"]
    # the probability tables are the first seed's; curves and numbers are every seed's
    count, learned = counts[0].analysis, learns[0].analysis
    count_nll = float(np.mean([r.analysis["test_nll"] for r in counts]))
    fig, ax = new_figure(3, 1, width=4.3, height=3.6)
    a = ax[0][0]
    learned_curves = curves(learns, offset=1)
    plot_seed_curves(a, learned_curves, color="C0", label="learned bigram (AdamW)")
    a.axhline(count_nll, color="k", lw=1, label=f"count bigram ({count_nll:.3f})")
    losses = [y for _, ys in learned_curves for y in ys]
    lo, hi = min(count_nll, min(losses)), min(3.4, max(losses))
    a.set(title="Counting vs learning: the same test NLL", xlabel="training step + 1 (log scale)",
          ylabel="test NLL (nats/token)", xscale="log", ylim=(lo - 0.05, hi + 0.05))
    a.legend()
    itos = ["."] + counts[0].config["vocab"]["chars"]
    for j, (name, d) in enumerate((("counted", count), ("learned", learned))):
        a = ax[0][j + 1]
        im = a.imshow(np.array(d["probs"]), cmap="Blues", norm=LogNorm(1e-4, 1.0))
        a.set(title=f"P(next | current), {name} (seed {counts[0].seed})", xlabel="next character",
              ylabel="current character")
        a.set_xticks(range(len(itos)), itos, fontsize=6)
        a.set_yticks(range(len(itos)), itos, fontsize=6)
        a.grid(False)
    fig.colorbar(im, ax=ax[0][2], fraction=0.046, label="probability (log scale)")
    save(fig, figs / "delta1_bigram", source=str(learns[0].path.parent))
    count_test = by_seed(counts, lambda r: r.analysis["test_nll"])
    gaps = [val(run)[-1]["loss"] - count_test[run.seed] for run in learns]
    diff = float(np.abs(np.array(count["probs"]) - np.array(learned["probs"])).max())
    close = [next((r["step"] for r in val(run) if r["loss"] - count_test[run.seed] <= 0.01), None) for run in learns]
    reached = [c for c in close if c is not None]
    steps = val(learns[0])[-1]["step"] + 1
    table = markdown_table(["model", "train NLL", "test NLL"], [
        ["count bigram (add-one smoothing)", cell([r.analysis["train_nll"] for r in counts], ".4f"),
         cell([r.analysis["test_nll"] for r in counts], ".4f")],
        [f"learned bigram ({steps} AdamW steps)", cell([r.analysis["train_nll"] for r in learns], ".4f"),
         cell([r.analysis["test_nll"] for r in learns], ".4f")]])
    return ["## 1. Counting → learned", "", "![bigram](figures/delta1_bigram.png)", "", table,
            f"The learned table ends {cell(gaps, '+.4f')} nats/token from the count table on the test set "
            f"(largest difference in any probability, seed {counts[0].seed}: {diff:.3f}); "
            + (f"it first comes within 0.01 nats at step {', '.join(map(str, reached))} "
               f"({len(reached)} of {len(close)} seeds)." if reached else
               f"at this budget it never came within 0.01 nats{' on any seed' * (len(close) > 1)}: train longer."),
            "", f"Samples (fixed prompts, seed {counts[0].seed}):", "",
            side_by_side(["prompt", "counted", "learned"], counts[0], learns[0])]


def mean_over_layers(layers: list[dict], key: str) -> float:
    return float(np.mean([s[key] for s in layers]))


def percent(layers: list[dict], key: str) -> str:
    return f"{mean_over_layers(layers, key) * 100:.1f}%"


def smooth(x: np.ndarray, k: int = 25) -> np.ndarray:
    """Moving average (window k, shorter at the start) so per-step noise does not hide the trend."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - k)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_histograms(deep: dict[str, dict], key: str, centers: np.ndarray, colors, title, label, xlabel, ylabel,
                    **axes) -> object:
    """One column per deep run, rows = at initialisation and at the end of training, one line per layer."""
    fig, ax = new_figure(3, 2, width=4.2, height=3.0, layout="constrained")
    for j, d in enumerate(deep.values()):
        for i, (rec, when) in enumerate(((d["records"][0], "at init"), (d["records"][-1], "at end"))):
            a = ax[i][j]
            for k, s in enumerate(rec["layers"]):
                if key in s:
                    a.plot(centers, np.array(s[key]) * 100, color=colors[k], label=label(k, s))
            a.set(title=title(d, when, rec), xlabel=xlabel, ylabel=ylabel, **axes)
            a.legend(fontsize=6)
    return fig


def report_deep(groups: dict[str, list[Run]], figs: Path) -> list[str]:
    # histograms and update ratios are the first seed's; the saturation curves and the table every seed's
    deep = {name: groups[name][0].analysis for name in DEEP_RUNS}
    seed = groups["mlp_deep_naive"][0].seed
    n_layers = len(next(iter(deep.values()))["records"][0]["layers"])
    colors = layer_colors(n_layers)
    source = str(groups["mlp_deep_naive"][0].path)
    fig = plot_histograms(
        deep, "act_hist", bin_centers(-1, 1), colors,
        title=lambda d, when, rec: f"{d['label']}, {when} (step {rec['step']}, seed {seed})",
        label=lambda k, s: f"layer {k + 1}: {s['saturated']:.0%} saturated, {s['mostly_dead']:.0%} mostly dead",
        xlabel="tanh output", ylabel="% of activations", yscale="log", ylim=(0.01, 100))
    save(fig, figs / "delta2_activations", source=source)
    # log10 |dL/dx| at each tanh input
    fig = plot_histograms(
        deep, "grad_hist", bin_centers(*GRAD_LOG_RANGE), colors,
        title=lambda d, when, rec: f"{d['label']}, {when} (seed {seed})",
        label=lambda k, s: f"layer {k + 1}: std {s['grad_std']:.1e}",
        xlabel="log10 |dL / d pre-activation|", ylabel="% of units x rows")
    save(fig, figs / "delta2_gradients", source=source)
    # saturation, dead units and loss over training: every seed faint, their mean on top
    fig, ax = new_figure(3, 1, width=4.3, height=3.4)
    for j, name in enumerate(DEEP_RUNS):
        label = deep[name]["label"]
        for a, key, style in ((ax[0][0], "saturated", "-"), (ax[0][1], "dead", "-"), (ax[0][1], "mostly_dead", "--")):
            per_seed = [([r["step"] for r in run.analysis["records"]],
                         [mean_over_layers(r["layers"], key) * 100 for r in run.analysis["records"]])
                        for run in groups[name]]
            plot_seed_curves(a, per_seed, color=f"C{j}", linestyle=style, label=label if key == "saturated" else None)
        plot_seed_curves(ax[0][2], curves(groups[name]), color=f"C{j}", label=label)
    ax[0][0].set(title="Saturated activations (|tanh| > 0.97)", xlabel="training step", ylabel="% (mean over layers)")
    ax[0][1].set(title="Dead units (saturated on the batch)", xlabel="training step",
                 ylabel="% of units (mean over layers)")
    ax[0][2].set(title="Test loss", xlabel="training step", ylabel="NLL (nats/token)")
    ax[0][1].plot([], [], color="k", label="dead: saturated on every row")
    ax[0][1].plot([], [], color="k", ls="--", label=f"mostly dead: on >= {MOSTLY:.0%} of rows")
    for a in ax[0]:
        a.legend(loc="center right" if a is ax[0][1] else "best")
    save(fig, figs / "delta2_saturation", source=source)
    # update-to-data ratio
    fig, ax = new_figure(3, 1, width=4.3, height=3.4, sharey=True)
    for j, d in enumerate(deep.values()):
        ratios = np.array(d["update_ratio_log10"])  # [steps, layers]
        a = ax[0][j]
        for k in range(ratios.shape[1]):
            a.plot(smooth(ratios[:, k]), color=colors[k], label=f"layer {k + 1}")
        a.axhline(-3, color="k", ls="--", lw=1, label="1e-3 (rule of thumb)")
        a.set(title=f"{d['label']} (seed {seed})", xlabel="training step", ylabel="log10 update / data (std ratio)")
        a.legend(fontsize=6)
    save(fig, figs / "delta2_update_ratio", source=source)

    def layers_mean(run: Run, when: int, key: str) -> float:
        return mean_over_layers(run.analysis["records"][when]["layers"], key)

    rows = []
    for name in DEEP_RUNS:
        rs = groups[name]
        rows.append([deep[name]["label"], *(cell([layers_mean(r, when, key) for r in rs], ".1f", scale=100)
                                            for when, key in ((0, "saturated"), (0, "dead"), (-1, "saturated"),
                                                              (-1, "dead"), (-1, "mostly_dead"))),
                     cell([float(np.median(np.array(r.analysis["update_ratio_log10"]))) for r in rs], ".2f"),
                     cell([min(e["loss"] for e in val(r)) for r in rs], ".4f")])
    table = markdown_table(["run", "saturated at init, %", "dead at init, %", "saturated at end, %",
                            "dead at end, %", "mostly dead at end, %", "median log10 update/data", "best test NLL"],
                           rows)
    # mostly-dead share at the last snapshot, in % of units, per seed
    naive, scaled, bn = (by_seed(groups[name], lambda r: layers_mean(r, -1, "mostly_dead") * 100)
                         for name in DEEP_RUNS)
    diff = paired(naive, scaled).diff
    word = verdict(diff, words=("more", "fewer", "no clearly different share of"))
    if diff.n < MIN_SEEDS:
        these = "this one seed" if diff.n == 1 else f"these {diff.n} seeds (too few for a verdict)"
        reading = (f"on {these}, the naive init ends with more mostly-dead units than the scaled init"
                   if diff.mean > 0 else
                   f"on {these} the naive init did NOT end with more mostly-dead units than the scaled init — "
                   "AdamW partly rescued it; compare the init-time histograms")
    else:
        reading = (f"over {diff.n} seeds the naive init ends with {word} mostly-dead units than the scaled init "
                   f"(naive − scaled, paired by seed: {diff.format('+.1f')} points)")
    strict = max(s["dead"] for rs in map(groups.get, DEEP_RUNS) for run in rs for r in run.analysis["records"]
                 for s in r["layers"])
    note = ("" if strict > 0.05 else f" Strictly dead units (saturated on every one of a batch's rows) stayed rare "
            f"at this scale — at most {strict * 100:.1f}% of a layer at any snapshot — because a batch of names "
            "has hundreds of rows and AdamW rescales small gradients; the mostly-dead count and the gradient "
            "histograms (a big mass below 1e-10 = blocked) carry the effect.")
    return ["## 2. MLP → stable deep training", "",
            f"A {n_layers}-tanh-layer MLP (width {DEEP_MODEL['n_embd2']}, embeddings {DEEP_MODEL['n_embd']}) trained "
            "three ways with the same AdamW recipe (lr 1e-2, no clipping). Saturated = share of activations "
            f"with |tanh| > {SATURATED}; dead = share of units saturated on every row (example x position) of a "
            f"training batch; mostly dead = saturated on >= {MOSTLY:.0%} of its rows.", "",
            "![activations](figures/delta2_activations.png)", "", "![saturation](figures/delta2_saturation.png)", "",
            "![gradients](figures/delta2_gradients.png)", "", "![update ratio](figures/delta2_update_ratio.png)", "",
            table, f"Percentages are means over the {n_layers} layers. Reading: {reading}. "
            f"Mostly dead at the last snapshot: naive {cell(naive.values(), '.1f')}%, scaled "
            f"{cell(scaled.values(), '.1f')}%, BatchNorm {cell(bn.values(), '.1f')}%.{note}", ""]


def report_attention(groups: dict[str, list[Run]], figs: Path) -> list[str]:
    fig, ax = new_figure(2, 1, width=4.8, height=3.6)
    rows = []
    for j, (kind, label) in enumerate(LM_LABELS.items()):
        rs = groups[kind]
        plot_seed_curves(ax[0][0], curves(rs), color=f"C{j}", label=label)
        # seeds do not share wall-clock x values, so each is drawn whole and only the first is labelled
        for i, (xs, ys) in enumerate(curves(rs, x="wall_s")):
            ax[0][1].plot(xs, ys, "o-", ms=3, color=f"C{j}", alpha=1.0 if i == 0 else 0.3,
                          label=label if i == 0 else None)
        last = val(rs[0])[-1]
        rows.append([label, cell([val(r)[-1]["loss"] for r in rs], ".4f"),
                     cell([min(e["loss"] for e in val(r)) for r in rs], ".4f"), f"{last['macs']:,.0f}",
                     cell([val(r)[-1]["wall_s"] for r in rs], ".0f")])
    ax[0][0].set(title="MLP vs transformer on names", xlabel="training step", ylabel="test NLL (nats/token)")
    ax[0][1].set(title="... against training time", xlabel="training wall time (s, this machine)",
                 ylabel="test NLL (nats/token)")
    for a in ax[0]:
        a.legend()
    save(fig, figs / "delta3_attention", source=str(groups["transformer"][0].path.parent))
    table = markdown_table(["model", "final test NLL", "best test NLL", "forward MACs/token", "training s"], rows)
    final = {kind: by_seed(groups[kind], lambda r: val(r)[-1]["loss"]) for kind in LM_LABELS}
    diff = paired(final["transformer"], final["mlp"]).diff
    word = verdict(diff, higher_is_better=False, words=("better", "worse", "within noise"))
    return ["## 3. Local → attention", "", "![attention](figures/delta3_attention.png)", "", table,
            f"Transformer − MLP final test NLL, paired by seed: {diff.format('+.4f')} nats/token ({word}). "
            "Training seconds are wall time on the machine that ran the lab (shared machines inflate "
            "them); compare the step axis.", "",
            f"Samples at the last evaluation (fixed prompts, seed {groups['mlp'][0].seed}):", "",
            side_by_side(["prompt", "MLP", "transformer"], groups["mlp"][0], groups["transformer"][0])]


def write_payoff(groups: dict[str, list[Run]], out: Path) -> None:
    """One point per run and seed: final test NLL against forward MACs per token (the count bigram's lookup is 0)."""
    points = [{"run": name, "label": run.analysis.get("label") or LM_LABELS.get(name, name.replace("_", " ")),
               "kind": "routed" if name == "transformer" else "baseline", "quality": val(run)[-1]["loss"],
               "compute": val(run)[-1]["macs"], "seed": run.seed}
              for name, rs in groups.items() for run in rs]
    payoff = {"lab": "tour", "quality": "test NLL, nats/token", "compute": "forward MACs per token",
              "better": "lower", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=2) + "\n", encoding="utf-8")


def report(out: Path) -> None:
    out = Path(out)
    figs = out / "figures"
    groups = group_by_name(load_runs(out))
    first = groups["bigram_count"][0].config
    seeds = sorted({r.seed for rs in groups.values() for r in rs})
    walls = [lab["wall_s"] for lab in lab_files(out, "lab.json")]  # end-to-end seconds per seed
    lines = ["# Part 3: a tour — three deltas", "",
             f"Budget `{first['budget']}`. {seeds_sentence(seeds)} "
             + (f"End to end: {cell(walls, '.0f')} s per seed. " if walls else "")
             + "All numbers below are read from the run directories.", ""]
    lines += report_bigrams(groups, figs) + report_deep(groups, figs) + report_attention(groups, figs)
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    write_explorable({name: rs[0] for name, rs in groups.items()}, out)
    write_payoff(groups, out)


def write_explorable(runs: dict[str, Run], out: Path) -> Path:
    """Pick a deep-MLP run and a step: per-layer histograms; pick any run and an evaluation: its samples."""
    deep = [{"name": name, "label": runs[name].analysis["label"], "records": runs[name].analysis["records"]}
            for name in DEEP_RUNS]
    evals = []
    for name in ("bigram_count", "bigram_learned", *DEEP_RUNS, *LM_LABELS):
        loss = {r["step"]: r["loss"] for r in val(runs[name])}
        evals.append({"name": name, "evals": [{"step": step, "loss": loss.get(step), "samples": [*map(list, pairs)]}
                                              for step, pairs in samples(runs[name]).items()]})
    data = {"deep": deep, "samples": evals, "threshold": SATURATED, "grad_range": list(GRAD_LOG_RANGE),
            "act_centers": [round(float(c), 4) for c in bin_centers(-1, 1)]}
    page = files(__package__)
    return write_html(out / "tour.html", "A tour: activations of a deep MLP, and samples over training", data,
                      (page / "explorable.html").read_text(encoding="utf-8"),
                      (page / "explorable.js").read_text(encoding="utf-8"),
                      (page / "explorable.css").read_text(encoding="utf-8"))
