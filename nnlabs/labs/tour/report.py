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
from nnlabs.report.runs import Run, load_runs
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


def report_bigrams(runs: dict[str, Run], figs: Path) -> list[str]:
    count, learned = runs["bigram_count"].analysis, runs["bigram_learned"].analysis
    curve = val(runs["bigram_learned"])
    fig, ax = new_figure(3, 1, width=4.3, height=3.6)
    a = ax[0][0]
    a.plot([r["step"] + 1 for r in curve], [r["loss"] for r in curve], "o-", ms=3, label="learned bigram (AdamW)")
    a.axhline(count["test_nll"], color="k", lw=1, label=f"count bigram ({count['test_nll']:.3f})")
    lo, hi = min(count["test_nll"], min(r["loss"] for r in curve)), min(3.4, max(r["loss"] for r in curve))
    a.set(title="Counting vs learning: the same test NLL", xlabel="training step + 1 (log scale)",
          ylabel="test NLL (nats/token)", xscale="log", ylim=(lo - 0.05, hi + 0.05))
    a.legend()
    itos = ["."] + runs["bigram_count"].config["vocab"]["chars"]
    for j, (name, d) in enumerate((("counted", count), ("learned", learned))):
        a = ax[0][j + 1]
        im = a.imshow(np.array(d["probs"]), cmap="Blues", norm=LogNorm(1e-4, 1.0))
        a.set(title=f"P(next | current), {name}", xlabel="next character", ylabel="current character")
        a.set_xticks(range(len(itos)), itos, fontsize=6)
        a.set_yticks(range(len(itos)), itos, fontsize=6)
        a.grid(False)
    fig.colorbar(im, ax=ax[0][2], fraction=0.046, label="probability (log scale)")
    save(fig, figs / "delta1_bigram", source=str(runs["bigram_learned"].path))
    gap = curve[-1]["loss"] - count["test_nll"]
    diff = float(np.abs(np.array(count["probs"]) - np.array(learned["probs"])).max())
    close = next((r["step"] for r in curve if r["loss"] - count["test_nll"] <= 0.01), None)
    table = markdown_table(["model", "train NLL", "test NLL"], [
        ["count bigram (add-one smoothing)", f"{count['train_nll']:.4f}", f"{count['test_nll']:.4f}"],
        [f"learned bigram ({curve[-1]['step'] + 1} AdamW steps)", f"{learned['train_nll']:.4f}",
         f"{learned['test_nll']:.4f}"]])
    return ["## 1. Counting → learned", "", "![bigram](figures/delta1_bigram.png)", "", table,
            f"The learned table ends {gap:+.4f} nats/token from the count table on the test set "
            f"(largest difference in any probability: {diff:.3f}); "
            + (f"it first comes within 0.01 nats at step {close}." if close is not None else
               "at this budget it never came within 0.01 nats: train longer."),
            "", "Samples (fixed prompts, same seed):", "",
            side_by_side(["prompt", "counted", "learned"], runs["bigram_count"], runs["bigram_learned"])]


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


def report_deep(runs: dict[str, Run], figs: Path) -> list[str]:
    deep = {name: runs[name].analysis for name in DEEP_RUNS}
    n_layers = len(next(iter(deep.values()))["records"][0]["layers"])
    colors = layer_colors(n_layers)
    source = str(runs["mlp_deep_naive"].path)
    fig = plot_histograms(
        deep, "act_hist", bin_centers(-1, 1), colors,
        title=lambda d, when, rec: f"{d['label']}, {when} (step {rec['step']})",
        label=lambda k, s: f"layer {k + 1}: {s['saturated']:.0%} saturated, {s['mostly_dead']:.0%} mostly dead",
        xlabel="tanh output", ylabel="% of activations", yscale="log", ylim=(0.01, 100))
    save(fig, figs / "delta2_activations", source=source)
    # log10 |dL/dx| at each tanh input
    fig = plot_histograms(
        deep, "grad_hist", bin_centers(*GRAD_LOG_RANGE), colors,
        title=lambda d, when, rec: f"{d['label']}, {when}",
        label=lambda k, s: f"layer {k + 1}: std {s['grad_std']:.1e}",
        xlabel="log10 |dL / d pre-activation|", ylabel="% of units x rows")
    save(fig, figs / "delta2_gradients", source=source)
    # saturation, dead units and loss over training
    fig, ax = new_figure(3, 1, width=4.3, height=3.4)
    for j, (name, d) in enumerate(deep.items()):
        steps = [r["step"] for r in d["records"]]
        for a, key, style in ((ax[0][0], "saturated", "-"), (ax[0][1], "dead", "-"), (ax[0][1], "mostly_dead", "--")):
            a.plot(steps, [mean_over_layers(r["layers"], key) * 100 for r in d["records"]], color=f"C{j}", ls=style,
                   label=d["label"] if key == "saturated" else None)
        curve = val(runs[name])
        ax[0][2].plot([r["step"] for r in curve], [r["loss"] for r in curve], "o-", ms=3, color=f"C{j}",
                      label=d["label"])
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
        a.set(title=d["label"], xlabel="training step", ylabel="log10 update / data (std ratio)")
        a.legend(fontsize=6)
    save(fig, figs / "delta2_update_ratio", source=source)

    rows = []
    for name, d in deep.items():
        first, last = d["records"][0]["layers"], d["records"][-1]["layers"]
        rows.append([d["label"], percent(first, "saturated"), percent(first, "dead"), percent(last, "saturated"),
                     percent(last, "dead"), percent(last, "mostly_dead"),
                     f"{float(np.median(np.array(d['update_ratio_log10']))):.2f}",
                     f"{min(r['loss'] for r in val(runs[name])):.4f}"])
    table = markdown_table(["run", "saturated at init", "dead at init", "saturated at end", "dead at end",
                            "mostly dead at end", "median log10 update/data", "best test NLL"], rows)
    naive, scaled, bn = (mean_over_layers(deep[name]["records"][-1]["layers"], "mostly_dead") for name in DEEP_RUNS)
    verdict = ("on this one seed, the naive init ends with more mostly-dead units than the scaled init"
               if naive > scaled else
               "on this one seed the naive init did NOT end with more mostly-dead units than the scaled init — "
               "AdamW partly rescued it; compare the init-time histograms")
    strict = max(s["dead"] for d in deep.values() for r in d["records"] for s in r["layers"])
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
            table, f"Percentages are means over the {n_layers} layers. Reading: {verdict} "
            f"({naive * 100:.1f}% vs {scaled * 100:.1f}%; BatchNorm {bn * 100:.1f}%, at the last snapshot).{note}", ""]


def report_attention(runs: dict[str, Run], figs: Path) -> list[str]:
    fig, ax = new_figure(2, 1, width=4.8, height=3.6)
    rows = []
    for j, (kind, label) in enumerate(LM_LABELS.items()):
        curve = val(runs[kind])
        ax[0][0].plot([r["step"] for r in curve], [r["loss"] for r in curve], "o-", ms=3, color=f"C{j}", label=label)
        ax[0][1].plot([r["wall_s"] for r in curve], [r["loss"] for r in curve], "o-", ms=3, color=f"C{j}",
                      label=label)
        best = min(curve, key=lambda r: r["loss"])
        rows.append([label, f"{curve[-1]['loss']:.4f}", f"{best['loss']:.4f} (step {best['step']})",
                     f"{curve[-1]['macs']:,.0f}", f"{curve[-1]['wall_s']:.0f}"])
    ax[0][0].set(title="MLP vs transformer on names", xlabel="training step", ylabel="test NLL (nats/token)")
    ax[0][1].set(title="... against training time", xlabel="training wall time (s, this machine)",
                 ylabel="test NLL (nats/token)")
    for a in ax[0]:
        a.legend()
    save(fig, figs / "delta3_attention", source=str(runs["transformer"].path))
    table = markdown_table(["model", "final test NLL", "best test NLL", "forward MACs/token", "training s"], rows)
    return ["## 3. Local → attention", "", "![attention](figures/delta3_attention.png)", "", table,
            "Training seconds are wall time on the machine that ran the lab (shared machines inflate "
            "them); compare the step axis.", "", "Samples at the last evaluation (fixed prompts, same seed):", "",
            side_by_side(["prompt", "MLP", "transformer"], runs["mlp"], runs["transformer"])]


def write_payoff(runs: dict[str, Run], out: Path) -> None:
    """One point per run: final test NLL against forward MACs per token (the count bigram's lookup is 0)."""
    points = [{"run": name, "label": run.analysis.get("label") or LM_LABELS.get(name, name.replace("_", " ")),
               "kind": "routed" if name == "transformer" else "baseline", "quality": val(run)[-1]["loss"],
               "compute": val(run)[-1]["macs"], "seed": run.seed}
              for name, run in runs.items()]
    payoff = {"lab": "tour", "quality": "test NLL, nats/token", "compute": "forward MACs per token", "points": points}
    (out / "payoff.json").write_text(json.dumps(payoff, indent=2) + "\n", encoding="utf-8")


def report(out: Path) -> None:
    out = Path(out)
    figs = out / "figures"
    runs = {run.name: run for run in load_runs(out)}
    lab = json.loads((out / "lab.json").read_text()) if (out / "lab.json").exists() else {}
    lines = ["# Part 3: a tour — three deltas", "",
             f"Budget `{lab.get('budget', '?')}`, seed {lab.get('seed', '?')}, "
             f"{lab.get('wall_s', '?')} s end to end. All numbers below are read from the run directories.", ""]
    lines += report_bigrams(runs, figs) + report_deep(runs, figs) + report_attention(runs, figs)
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    write_explorable(runs, out)
    write_payoff(runs, out)


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
