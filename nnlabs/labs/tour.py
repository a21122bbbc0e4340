"""Part 3, "A tour": three deltas on makemore's names, each one model change and the evidence for it.

  1. counting -> learned: the bigram count table and a bigram trained by gradient descent reach the
     same NLL; the learned loss curve converges onto the count model's line.
  2. MLP -> stable deep training: a 5-tanh-layer MLP with a naive init (N(0,1) weights), a scaled init
     (gain / sqrt(fan_in)) and BatchNorm (on the naive init). Forward hooks on every hidden Tanh record
     activation histograms, the saturated and dead-unit fractions and the pre-activation gradients; global
     optimizer hooks record each layer's update-to-data ratio. Nothing in the spine is modified.
  3. local -> attention: the transformer against the MLP on names, same recipe, same data.

`nnlabs lab tour --budget {tiny,quick,full}` trains every run through `nnlabs.spine.train.train`,
then `report(out)` turns the run directories into figures, report.md and tour.html.
`nnlabs diff tour` prints delta 1 as code: the learned bigram against the counting one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.optim.optimizer as optim_hooks
from matplotlib.colors import LogNorm

from nnlabs.labs import lab_parser
from nnlabs.report.explorable import write_html
from nnlabs.report.figures import new_figure, save
from nnlabs.report.runs import read_jsonl
from nnlabs.spine.data import create_datasets
from nnlabs.spine.models import CountBigram, ModelConfig, build_model
from nnlabs.spine.sample import NAMES_PROMPTS, sample_prompts
from nnlabs.spine.train import TrainConfig, evaluate, train, write_json

# Delta 1 as a diff between two spine classes: the table stops being counted and starts being learned.
PATCHES = [("nnlabs.spine.models:CountBigram", "nnlabs.spine.models:Bigram")]

SATURATED = 0.97  # |tanh(x)| > 0.97 <=> |x| > 2.09: the local gradient 1 - tanh^2 is below 0.06
MOSTLY = 0.95  # a unit saturated on >= 95% of a batch's rows counts as mostly dead
HIST_BINS = 40
GRAD_LOG_RANGE = (-10.0, -1.0)  # histogram of log10 |dL/dx| of each tanh's pre-activation x
DEEP_RUNS = {  # run name -> (init, batchnorm, label)
    "mlp_deep_naive": ("naive", False, "naive init"),
    "mlp_deep_scaled": ("scaled", False, "scaled init (5/3 / sqrt(fan_in))"),
    "mlp_deep_batchnorm": ("naive", True, "naive init + BatchNorm"),
}
DEEP_MODEL = dict(n_embd=16, n_embd2=100, mlp_layers=5)
BUDGETS = {  # steps per run; `record` = training steps between activation snapshots of the deep MLPs
    "tiny": dict(bigram_steps=40, bigram_eval=10, deep_steps=30, lm_steps=30, eval_interval=15, record=5),
    "quick": dict(bigram_steps=1000, bigram_eval=10, deep_steps=2000, lm_steps=2000, eval_interval=200, record=50),
    "full": dict(bigram_steps=3000, bigram_eval=10, deep_steps=6000, lm_steps=6000, eval_interval=250, record=100),
}


# -----------------------------------------------------------------------------
# diagnostics of a batch of tanh activations a: (N examples, H units)


def saturated_fraction(a: torch.Tensor, threshold: float = SATURATED) -> float:
    """Fraction of all activations in the flat tails of tanh: mean over (n, h) of [|a_nh| > threshold]."""
    return float((a.abs() > threshold).float().mean())


def dead_fraction(a: torch.Tensor, threshold: float = SATURATED) -> float:
    """Fraction of units saturated on every example of the batch: mean over h of prod_n [|a_nh| > threshold].
    Such a unit passes (almost) no gradient for any input: it has stopped learning."""
    return float((a.abs() > threshold).all(dim=0).float().mean())


def mostly_dead_fraction(a: torch.Tensor, threshold: float = SATURATED, share: float = MOSTLY) -> float:
    """Fraction of units saturated on at least `share` of the batch: mean over h of [mean_n |a_nh| > thr >= share].
    A softer count than `dead_fraction`: with B*T = 512 rows a batch rarely saturates a unit on every row."""
    return float(((a.abs() > threshold).float().mean(dim=0) >= share).float().mean())


def histogram(values: torch.Tensor, lo: float, hi: float, bins: int = HIST_BINS) -> list[float]:
    """Fraction of values per bin over [lo, hi] (values outside are clamped into the end bins)."""
    v = values.detach().float().flatten().clamp(lo, hi)
    h = torch.histc(v, bins=bins, min=lo, max=hi)
    return [round(float(x), 5) for x in h / max(v.numel(), 1)]


def preact_grad_stats(grad_out: torch.Tensor, a: torch.Tensor) -> dict:
    """Gradient reaching a tanh's input x, where a = tanh(x):  dL/dx = dL/da * (1 - a^2).
    A saturated unit (a -> +-1) multiplies its gradient by ~0: this is how it stops learning. Rows whose
    targets are all ignored (padding) get exactly zero gradient and are left out."""
    g = grad_out * (1 - a * a)
    g = g[grad_out.abs().sum(dim=1) > 0]
    return {"grad_std": float(g.std()) if g.numel() > 1 else 0.0,
            "grad_hist": histogram(g.abs().clamp_min(1e-30).log10(), *GRAD_LOG_RANGE)}


class DeepMLPRecorder:
    """Watches an MLP's hidden layers during training without touching its code:
    a forward hook on each `model.hidden[i]` Tanh (activations; a tensor hook on the output catches the
    gradient in backward) every `every` training steps, and global optimizer step hooks that
    measure each hidden weight's update-to-data ratio  r = std(W_after - W_before) / std(W_before)."""

    def __init__(self, model, every: int):
        self.every, self.step = every, 0
        self.linears = [block[0] for block in model.hidden]
        self.records: list[dict] = []
        self.update_ratio: list[list[float]] = []  # per optimizer step: log10 r per layer
        self._before: list[torch.Tensor] | None = None
        self._handles = [block[-1].register_forward_hook(self._hook(i)) for i, block in enumerate(model.hidden)]
        self._handles += [optim_hooks.register_optimizer_step_pre_hook(self._pre_step),
                          optim_hooks.register_optimizer_step_post_hook(self._post_step)]

    def _hook(self, layer: int):
        def hook(module, inputs, out):
            if not module.training or self.step % self.every:
                return  # evaluation, sampling, or a step we don't record
            if layer == 0:
                self.records.append({"step": self.step, "layers": []})
            a = out.detach()
            stats = {"saturated": round(saturated_fraction(a), 5), "dead": round(dead_fraction(a), 5),
                     "mostly_dead": round(mostly_dead_fraction(a), 5),
                     "mean": round(float(a.mean()), 5), "std": round(float(a.std()), 5),
                     "act_hist": histogram(a, -1.0, 1.0)}
            self.records[-1]["layers"].append(stats)
            if out.requires_grad:
                out.register_hook(lambda g: stats.update(preact_grad_stats(g, a)))
        return hook

    def _mine(self, optimizer) -> bool:
        return any(p is self.linears[0].weight for g in optimizer.param_groups for p in g["params"])

    def _pre_step(self, optimizer, args, kwargs):
        if self._mine(optimizer):
            self._before = [lin.weight.detach().clone() for lin in self.linears]

    def _post_step(self, optimizer, args, kwargs):
        if self._before is None:
            return
        self.update_ratio.append([round(math.log10(max(float((lin.weight.detach() - w).std() / w.std()), 1e-12)), 4)
                                  for lin, w in zip(self.linears, self._before)])
        self._before = None
        self.step += 1

    def latest(self) -> dict:
        """Mean saturated / dead fraction over layers at the latest snapshot (added to metrics.jsonl)."""
        layers = self.records[-1]["layers"] if self.records else []
        if not layers:
            return {}
        keys = ("saturated", "dead", "mostly_dead")
        return {f"{key}_frac": sum(s[key] for s in layers) / len(layers) for key in keys}

    def close(self):
        for h in self._handles:
            h.remove()


# -----------------------------------------------------------------------------
# running the three deltas


def _sampler(data):
    prompts = [p for p in NAMES_PROMPTS if all(c in data.vocab.stoi for c in p)]
    return lambda m: sample_prompts(m, data.vocab, prompts, data.block_size, block_size=data.block_size,
                                    device=next(iter(m.state_dict().values())).device)


def _train_run(out: Path, name: str, kind: str, mcfg: ModelConfig, tcfg: TrainConfig, data, seed: int,
               progress: bool | None):
    torch.manual_seed(seed)
    model = build_model(kind, mcfg)
    run_config = {"type": kind, "input_file": "names.txt", "model": vars(mcfg).copy(),
                  "vocab": data.vocab.to_dict(), "lab": "tour"}
    train(model, data.train, data.test, tcfg, out / name, run_config=run_config, sample_fn=_sampler(data),
          progress=progress)
    return model


def run_bigrams(out: Path, data, b: dict, seed: int, progress) -> None:
    mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size)
    # counting: one pass over the training pairs, add-one smoothing
    t0 = time.perf_counter()
    count = CountBigram(mcfg, alpha=1.0).fit(data.train.x, data.train.y)
    fit_s = time.perf_counter() - t0
    run = out / "bigram_count"
    run.mkdir(parents=True, exist_ok=True)
    train_nll, _ = evaluate(count, data.train)
    test_nll, _ = evaluate(count, data.test)
    write_json(run / "config.json", {"type": "count_bigram", "alpha": 1.0, "input_file": "names.txt",
                                     "model": vars(mcfg).copy(), "vocab": data.vocab.to_dict(), "lab": "tour"})
    tokens = int((data.train.y >= 0).sum())
    base = {"step": 0, "tokens": tokens, "macs": 0.0, "wall_s": round(fit_s, 4)}
    (run / "metrics.jsonl").write_text(json.dumps({**base, "split": "train", "loss": train_nll}) + "\n"
                                       + json.dumps({**base, "split": "val", "loss": test_nll}) + "\n")
    (run / "samples.txt").write_text("".join(f"0\t{p}\t{s}\n" for p, s in _sampler(data)(count)))
    smoothed = count.counts + count.alpha
    write_json(run / "analysis.json", {"train_nll": train_nll, "test_nll": test_nll,
                                       "probs": _table(smoothed / smoothed.sum(1, keepdim=True))})
    # learning: the same table as free logits, by AdamW on the same NLL (no weight decay: it would pull
    # the logits toward 0, a different smoothing than add-one)
    tcfg = TrainConfig(max_steps=b["bigram_steps"], batch_size=64, learning_rate=0.1, warmup_steps=0,
                       min_lr_frac=0.1, weight_decay=0.0, eval_interval=b["bigram_eval"],
                       seed=seed, device="cpu")
    model = _train_run(out, "bigram_learned", "bigram", mcfg, tcfg, data, seed, progress)
    write_json(out / "bigram_learned" / "analysis.json",
               {"probs": _table(torch.softmax(model.logits_table.detach(), dim=1)),
                "train_nll": evaluate(model, data.train)[0], "test_nll": evaluate(model, data.test)[0]})


def _table(p: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), 6) for v in row] for row in p]


def run_deep_mlps(out: Path, data, b: dict, seed: int, progress) -> None:
    for name, (init, bn, label) in DEEP_RUNS.items():
        mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, init=init, batchnorm=bn,
                           **DEEP_MODEL)
        # plain AdamW at a brisk learning rate, no clipping: nothing that hides the problem
        tcfg = TrainConfig(max_steps=b["deep_steps"], batch_size=32, learning_rate=1e-2, warmup_steps=0,
                           min_lr_frac=0.1, weight_decay=0.0, grad_clip=0.0, eval_interval=b["eval_interval"],
                           seed=seed, device="cpu")
        torch.manual_seed(seed)
        model = build_model("mlp", mcfg)
        rec = DeepMLPRecorder(model, b["record"])
        try:
            train(model, data.train, data.test, tcfg, out / name, on_eval=lambda m, s, rec=rec: rec.latest(),
                  sample_fn=_sampler(data), progress=progress,
                  run_config={"type": "mlp", "input_file": "names.txt", "model": vars(mcfg).copy(),
                              "vocab": data.vocab.to_dict(), "lab": "tour", "label": label})
        finally:
            rec.close()
        write_json(out / name / "analysis.json", {"label": label, "init": init, "batchnorm": bn,
                                                  "saturated_threshold": SATURATED, "grad_log_range": GRAD_LOG_RANGE,
                                                  "records": rec.records, "update_ratio_log10": rec.update_ratio})


def run_attention(out: Path, data, b: dict, seed: int, progress) -> None:
    tcfg = TrainConfig(max_steps=b["lm_steps"], eval_interval=b["eval_interval"], seed=seed, device="cpu")
    for kind in ("mlp", "transformer"):  # the spine's defaults for both; one recipe
        mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size)
        _train_run(out, kind, kind, mcfg, tcfg, data, seed, progress)


def main(argv: list[str]) -> int:
    p = lab_parser("tour", "Part 3: counting -> learned bigram, stable deep MLP training, MLP -> transformer.",
                   BUDGETS, seed=3407)
    args = p.parse_args(argv)
    out, b = Path(args.out), BUDGETS[args.budget]
    data = create_datasets("names.txt")
    progress = None if args.budget != "tiny" else False
    t0 = time.perf_counter()
    for stage in (run_bigrams, run_deep_mlps, run_attention):
        stage(out, data, b, args.seed, progress)
    write_json(out / "lab.json", {"budget": args.budget, "seed": args.seed, "input_file": "names.txt",
                                  "wall_s": round(time.perf_counter() - t0, 1)})
    report(out)
    print(f"wrote {out / 'report.md'}, {out / 'tour.html'} and {out / 'figures'}/ "
          f"({time.perf_counter() - t0:.0f}s)")
    return 0


# -----------------------------------------------------------------------------
# report: figures, report.md and the explorable, from the run directories only


def _val(run: Path) -> list[dict]:
    return [r for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]


def _samples(run: Path) -> dict[int, list[str]]:
    by_step: dict[int, list[str]] = {}
    for line in (run / "samples.txt").read_text(encoding="utf-8").splitlines():
        step, _prompt, sample = line.split("\t", 2)
        by_step.setdefault(int(step), []).append(sample)
    return by_step


def _last_samples(run: Path) -> list[str]:
    s = _samples(run)
    return s[max(s)] if s else []


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _layer_colors(n: int):
    import matplotlib

    return [matplotlib.colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def report_bigrams(out: Path, figs: Path) -> list[str]:
    count, learned = _load(out / "bigram_count" / "analysis.json"), _load(out / "bigram_learned" / "analysis.json")
    val = _val(out / "bigram_learned")
    fig, ax = new_figure(3, 1, width=4.3, height=3.6)
    a = ax[0][0]
    a.plot([r["step"] + 1 for r in val], [r["loss"] for r in val], "o-", ms=3, label="learned bigram (AdamW)")
    a.axhline(count["test_nll"], color="k", lw=1, label=f"count bigram ({count['test_nll']:.3f})")
    lo, hi = min(count["test_nll"], min(r["loss"] for r in val)), min(3.4, max(r["loss"] for r in val))
    a.set(title="Counting vs learning: the same test NLL", xlabel="training step + 1 (log scale)",
          ylabel="test NLL (nats/token)", xscale="log", ylim=(lo - 0.05, hi + 0.05))
    a.legend()
    itos = ["."] + _load(out / "bigram_count" / "config.json")["vocab"]["chars"]
    for j, (name, d) in enumerate((("counted", count), ("learned", learned))):
        a = ax[0][j + 1]
        im = a.imshow(np.array(d["probs"]), cmap="Blues", norm=LogNorm(1e-4, 1.0))
        a.set(title=f"P(next | current), {name}", xlabel="next character", ylabel="current character")
        a.set_xticks(range(len(itos)), itos, fontsize=6)
        a.set_yticks(range(len(itos)), itos, fontsize=6)
        a.grid(False)
    fig.colorbar(im, ax=ax[0][2], fraction=0.046, label="probability (log scale)")
    save(fig, figs / "delta1_bigram", source=str(out / "bigram_learned"))
    gap = val[-1]["loss"] - count["test_nll"]
    diff = float(np.abs(np.array(count["probs"]) - np.array(learned["probs"])).max())
    half = next((r["step"] for r in val if r["loss"] - count["test_nll"] <= 0.01), None)
    lines = ["## 1. Counting → learned", "",
             "![bigram](figures/delta1_bigram.png)", "",
             "| model | train NLL | test NLL |", "|---|---|---|",
             f"| count bigram (add-one smoothing) | {count['train_nll']:.4f} | {count['test_nll']:.4f} |",
             f"| learned bigram ({val[-1]['step'] + 1} AdamW steps) | {learned['train_nll']:.4f} | "
             f"{learned['test_nll']:.4f} |", "",
             f"The learned table ends {gap:+.4f} nats/token from the count table on the test set "
             f"(largest difference in any probability: {diff:.3f}); "
             + (f"it first comes within 0.01 nats at step {half}." if half is not None else
                "at this budget it never came within 0.01 nats: train longer."),
             "", "Samples (fixed prompts, same seed):", "", "| prompt | counted | learned |", "|---|---|---|"]
    prompts = [line.split("\t")[1] for line in (out / "bigram_count" / "samples.txt").read_text().splitlines()]
    for p, c, lrn in zip(prompts, _last_samples(out / "bigram_count"), _last_samples(out / "bigram_learned")):
        lines.append(f"| `{p or '∅'}` | `{c}` | `{lrn}` |")
    return lines + [""]


def report_deep(out: Path, figs: Path) -> list[str]:
    runs = {name: _load(out / name / "analysis.json") for name in DEEP_RUNS}
    L = len(next(iter(runs.values()))["records"][0]["layers"])
    colors = _layer_colors(L)
    centers = np.linspace(-1, 1, HIST_BINS + 1)
    centers = (centers[:-1] + centers[1:]) / 2
    # activation histograms at initialisation and at the end of training
    fig, ax = new_figure(3, 2, width=4.2, height=3.0, layout="constrained")
    for j, d in enumerate(runs.values()):
        for i, (rec, when) in enumerate(((d["records"][0], "at init"), (d["records"][-1], "at end"))):
            a = ax[i][j]
            for k, s in enumerate(rec["layers"]):
                a.plot(centers, np.array(s["act_hist"]) * 100, color=colors[k],
                       label=f"layer {k + 1}: {s['saturated']:.0%} saturated, {s['mostly_dead']:.0%} mostly dead")
            a.set(title=f"{d['label']}, {when} (step {rec['step']})", xlabel="tanh output",
                  ylabel="% of activations", yscale="log", ylim=(0.01, 100))
            a.legend(fontsize=6)
    save(fig, figs / "delta2_activations", source=str(out / "mlp_deep_naive"))
    # gradient histograms (log10 |dL/dx| at each tanh input) at initialisation and at the end
    g_edges = np.linspace(*GRAD_LOG_RANGE, HIST_BINS + 1)
    g_centers = (g_edges[:-1] + g_edges[1:]) / 2
    fig, ax = new_figure(3, 2, width=4.2, height=3.0, layout="constrained")
    for j, d in enumerate(runs.values()):
        for i, (rec, when) in enumerate(((d["records"][0], "at init"), (d["records"][-1], "at end"))):
            a = ax[i][j]
            for k, s in enumerate(rec["layers"]):
                if "grad_hist" in s:
                    a.plot(g_centers, np.array(s["grad_hist"]) * 100, color=colors[k],
                           label=f"layer {k + 1}: std {s['grad_std']:.1e}")
            a.set(title=f"{d['label']}, {when}", xlabel="log10 |dL / d pre-activation|", ylabel="% of units x rows")
            a.legend(fontsize=6)
    save(fig, figs / "delta2_gradients", source=str(out / "mlp_deep_naive"))
    # saturation, dead units and loss over training
    fig, ax = new_figure(3, 1, width=4.3, height=3.4)
    for j, (name, d) in enumerate(runs.items()):
        steps = [r["step"] for r in d["records"]]
        sat = [np.mean([s["saturated"] for s in r["layers"]]) * 100 for r in d["records"]]
        dead = [np.mean([s["dead"] for s in r["layers"]]) * 100 for r in d["records"]]
        mostly = [np.mean([s["mostly_dead"] for s in r["layers"]]) * 100 for r in d["records"]]
        ax[0][0].plot(steps, sat, color=f"C{j}", label=d["label"])
        ax[0][1].plot(steps, dead, color=f"C{j}")
        ax[0][1].plot(steps, mostly, color=f"C{j}", ls="--")
        val = _val(out / name)
        ax[0][2].plot([r["step"] for r in val], [r["loss"] for r in val], "o-", ms=3, color=f"C{j}", label=d["label"])
    ax[0][0].set(title="Saturated activations (|tanh| > 0.97)", xlabel="training step", ylabel="% (mean over layers)")
    ax[0][1].set(title="Dead units (saturated on the batch)", xlabel="training step",
                 ylabel="% of units (mean over layers)")
    ax[0][2].set(title="Test loss", xlabel="training step", ylabel="NLL (nats/token)")
    ax[0][1].plot([], [], color="k", label="dead: saturated on every row")
    ax[0][1].plot([], [], color="k", ls="--", label=f"mostly dead: on >= {MOSTLY:.0%} of rows")
    for a in ax[0]:
        a.legend(loc="center right" if a is ax[0][1] else "best")
    save(fig, figs / "delta2_saturation", source=str(out / "mlp_deep_naive"))
    # update-to-data ratio
    fig, ax = new_figure(3, 1, width=4.3, height=3.4, sharey=True)
    for j, d in enumerate(runs.values()):
        r = np.array(d["update_ratio_log10"])
        a = ax[0][j]
        for k in range(r.shape[1]):
            a.plot(_smooth(r[:, k]), color=colors[k], label=f"layer {k + 1}")
        a.axhline(-3, color="k", ls="--", lw=1, label="1e-3 (rule of thumb)")
        a.set(title=d["label"], xlabel="training step", ylabel="log10 update / data (std ratio)")
        a.legend(fontsize=6)
    save(fig, figs / "delta2_update_ratio", source=str(out / "mlp_deep_naive"))

    lines = ["## 2. MLP → stable deep training", "",
             f"A {L}-tanh-layer MLP (width {DEEP_MODEL['n_embd2']}, embeddings {DEEP_MODEL['n_embd']}) trained "
             "three ways with the same AdamW recipe (lr 1e-2, no clipping). Saturated = share of activations "
             f"with |tanh| > {SATURATED}; dead = share of units saturated on every row (example x position) of a "
             f"training batch; mostly dead = saturated on >= {MOSTLY:.0%} of its rows.", "",
             "![activations](figures/delta2_activations.png)", "", "![saturation](figures/delta2_saturation.png)", "",
             "![gradients](figures/delta2_gradients.png)", "", "![update ratio](figures/delta2_update_ratio.png)", "",
             "| run | saturated at init | dead at init | saturated at end | dead at end | mostly dead at end | "
             "median log10 update/data | best test NLL |", "|---|---|---|---|---|---|---|---|"]
    for name, d in runs.items():
        first, last = d["records"][0]["layers"], d["records"][-1]["layers"]
        ud = float(np.median(np.array(d["update_ratio_log10"])))
        best = min(r["loss"] for r in _val(out / name))
        lines.append(f"| {d['label']} | {_pct(first, 'saturated')} | {_pct(first, 'dead')} | "
                     f"{_pct(last, 'saturated')} | {_pct(last, 'dead')} | {_pct(last, 'mostly_dead')} | {ud:.2f} | "
                     f"{best:.4f} |")
    naive, scaled = runs["mlp_deep_naive"], runs["mlp_deep_scaled"]
    bn = runs["mlp_deep_batchnorm"]
    dn, ds, db = (np.mean([s["mostly_dead"] for s in r["records"][-1]["layers"]]) for r in (naive, scaled, bn))
    verdict = ("the naive init ends with more mostly-dead units than the scaled init" if dn > ds else
               "at this budget the naive init did NOT end with more mostly-dead units than the scaled init — "
               "AdamW partly rescued it; compare the init-time histograms")
    strict = max(s["dead"] for d in runs.values() for r in d["records"] for s in r["layers"])
    note = ("" if strict > 0.05 else f" Strictly dead units (saturated on every one of a batch's rows) stayed rare "
            f"at this scale — at most {strict * 100:.1f}% of a layer at any snapshot — because a batch of names "
            "has hundreds of rows and AdamW rescales small gradients; the mostly-dead count and the gradient "
            "histograms (a big mass below 1e-10 = blocked) carry the effect.")
    return lines + ["", f"Percentages are means over the {L} layers. Reading: {verdict} "
                    f"({dn * 100:.1f}% vs {ds * 100:.1f}%; BatchNorm {db * 100:.1f}%, at the last snapshot).{note}", ""]


def _pct(layers: list[dict], key: str) -> str:
    return f"{np.mean([s[key] for s in layers]) * 100:.1f}%"


def _smooth(x: np.ndarray, k: int = 25) -> np.ndarray:
    """Moving average (window k, shorter at the start) so per-step noise does not hide the trend."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - k)
    return (c[idx] - c[lo]) / (idx - lo)


def report_attention(out: Path, figs: Path) -> list[str]:
    fig, ax = new_figure(2, 1, width=4.8, height=3.6)
    rows = []
    for j, kind in enumerate(("mlp", "transformer")):
        val = _val(out / kind)
        label = {"mlp": "MLP (makemore size)", "transformer": "transformer (4 layers, 4 heads, 64-dim)"}[kind]
        ax[0][0].plot([r["step"] for r in val], [r["loss"] for r in val], "o-", ms=3, color=f"C{j}", label=label)
        ax[0][1].plot([r["wall_s"] for r in val], [r["loss"] for r in val], "o-", ms=3, color=f"C{j}", label=label)
        best = min(val, key=lambda r: r["loss"])
        rows.append(f"| {label} | {val[-1]['loss']:.4f} | {best['loss']:.4f} (step {best['step']}) | "
                    f"{val[-1]['macs']:,.0f} | {val[-1]['wall_s']:.0f} |")
    ax[0][0].set(title="MLP vs transformer on names", xlabel="training step", ylabel="test NLL (nats/token)")
    ax[0][1].set(title="... against training time", xlabel="training wall time (s, this machine)",
                 ylabel="test NLL (nats/token)")
    for a in ax[0]:
        a.legend()
    save(fig, figs / "delta3_attention", source=str(out / "transformer"))
    lines = ["## 3. Local → attention", "", "![attention](figures/delta3_attention.png)", "",
             "| model | final test NLL | best test NLL | forward MACs/token | training s |", "|---|---|---|---|---|",
             *rows, "", "Training seconds are wall time on the machine that ran the lab (shared machines inflate "
             "them); compare the step axis.", "", "Samples at the last evaluation (fixed prompts, same seed):", "",
             "| prompt | MLP | transformer |", "|---|---|---|"]
    prompts = [line.split("\t")[1] for line in (out / "mlp" / "samples.txt").read_text().splitlines()]
    for p, m, t in zip(prompts, _last_samples(out / "mlp"), _last_samples(out / "transformer")):
        lines.append(f"| `{p or '∅'}` | `{m}` | `{t}` |")
    return lines + [""]


def report(out: Path) -> None:
    out = Path(out)
    figs = out / "figures"
    lab = _load(out / "lab.json") if (out / "lab.json").exists() else {}
    lines = ["# Part 3: a tour — three deltas", "",
             f"Budget `{lab.get('budget', '?')}`, seed {lab.get('seed', '?')}, "
             f"{lab.get('wall_s', '?')} s end to end. All numbers below are read from the run directories.", ""]
    lines += report_bigrams(out, figs) + report_deep(out, figs) + report_attention(out, figs)
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    write_explorable(out)


# -----------------------------------------------------------------------------
# the explorable: pick a deep-MLP run and a step -> per-layer histograms; pick any run and an eval -> samples

BODY = """
<p class="note">Part 3, delta 2: a 5-tanh-layer MLP trained with a naive init, a scaled init and BatchNorm.
Pick a run and a training step to see each layer's activations (tanh output) and the gradient reaching
its input x (log10 |dL/dx|: a saturated unit passes almost none).
Red bars are the saturated tails (|tanh| &gt; 0.97); bar heights are proportional to the square root of
each bin's share, so small bins stay visible.</p>
<div class="controls"><label>run <select id="run"></select></label>
<label>step <input id="step" type="range" min="0" value="0"></label> <span id="steplabel" class="mono"></span></div>
<div id="layers"></div>
<h2>Samples at each evaluation</h2>
<div class="controls"><label>run <select id="srun"></select></label>
<label>evaluation <input id="sstep" type="range" min="0" value="0"></label> <span id="sinfo" class="mono"></span></div>
<table class="heat mono" id="samples"></table>
"""

CSS = """
.layer { display: flex; gap: 1.5em; align-items: flex-end; margin: .4em 0; }
.hist { display: flex; align-items: flex-end; height: 70px; border-bottom: 1px solid #999; }
.hist div { width: 6px; margin-right: 1px; background: #4a7ab5; }
.hist div.sat { background: #c0392b; }
.hist.grad div { background: #6a9955; }
.layer .label { width: 13em; font-size: .85em; }
.axis { font-size: .7em; color: #666; display: flex; justify-content: space-between; }
"""

SCRIPT = """
const runSel = document.getElementById('run'), stepIn = document.getElementById('step');
for (const r of DATA.deep) runSel.append(el('option', {value: r.name}, r.label));
function bars(hist, cls, satMask) {
  const peak = Math.max(...hist, 1e-9), box = el('div', {class: 'hist ' + cls});
  hist.forEach((v, i) => box.append(el('div', {class: satMask && satMask[i] ? 'sat' : '',
    style: {height: (70 * Math.sqrt(v / peak)).toFixed(1) + 'px'}, title: (100 * v).toFixed(2) + '%'})));
  return box;
}
function drawDeep() {
  const run = DATA.deep.find(r => r.name === runSel.value);
  stepIn.max = run.records.length - 1;
  const rec = run.records[Math.min(+stepIn.value, run.records.length - 1)];
  document.getElementById('steplabel').textContent = 'training step ' + rec.step;
  const box = clear(document.getElementById('layers'));
  const sat = DATA.act_centers.map(c => Math.abs(c) > DATA.threshold);
  rec.layers.forEach((s, i) => {
    const label = el('div', {class: 'label'}, el('b', {}, 'layer ' + (i + 1)), el('br'),
      'saturated ' + (100 * s.saturated).toFixed(1) + '%', el('br'), 'dead units ' + (100 * s.dead).toFixed(1) + '%'
      + ' (mostly dead ' + (100 * s.mostly_dead).toFixed(1) + '%)',
      el('br'), 'mean ' + s.mean.toFixed(3) + ', std ' + s.std.toFixed(3));
    const act = el('div', {}, bars(s.act_hist, '', sat), el('div', {class: 'axis'}, el('span', {}, '-1'),
      el('span', {}, 'tanh output'), el('span', {}, '1')));
    const grad = s.grad_hist ? el('div', {}, bars(s.grad_hist, 'grad'), el('div', {class: 'axis'},
      el('span', {}, String(DATA.grad_range[0])), el('span', {}, 'log10 |dL/dx|'),
      el('span', {}, String(DATA.grad_range[1]))))
      : el('div', {}, '');
    box.append(el('div', {class: 'layer'}, label, act, grad));
  });
}
const srun = document.getElementById('srun'), sstep = document.getElementById('sstep');
for (const r of DATA.samples) srun.append(el('option', {value: r.name}, r.name));
function drawSamples() {
  const run = DATA.samples.find(r => r.name === srun.value);
  sstep.max = run.evals.length - 1;
  const ev = run.evals[Math.min(+sstep.value, run.evals.length - 1)];
  document.getElementById('sinfo').textContent =
    'step ' + ev.step + (ev.loss === null ? '' : ', test NLL ' + ev.loss.toFixed(4));
  const t = clear(document.getElementById('samples'));
  t.append(el('tr', {}, el('th', {}, 'prompt'), el('th', {}, 'sample')));
  ev.samples.forEach(([p, s]) => t.append(el('tr', {}, el('td', {}, p || '(start)'), el('td', {}, s))));
}
runSel.onchange = () => { stepIn.value = 0; drawDeep(); }; stepIn.oninput = drawDeep;
srun.onchange = () => { sstep.value = 0; drawSamples(); }; sstep.oninput = drawSamples;
drawDeep(); drawSamples();
"""


def write_explorable(out: Path) -> Path:
    edges = np.linspace(-1, 1, HIST_BINS + 1)
    deep = []
    for name in DEEP_RUNS:
        d = _load(out / name / "analysis.json")
        deep.append({"name": name, "label": d["label"], "records": d["records"]})
    samples = []
    for name in ("bigram_count", "bigram_learned", *DEEP_RUNS, "mlp", "transformer"):
        loss = {r["step"]: r["loss"] for r in _val(out / name)}
        evals: dict[int, list] = {}
        for line in (out / name / "samples.txt").read_text(encoding="utf-8").splitlines():
            step, prompt, sample = line.split("\t", 2)
            evals.setdefault(int(step), []).append([prompt, sample])
        samples.append({"name": name,
                        "evals": [{"step": s, "loss": loss.get(s), "samples": v} for s, v in evals.items()]})
    data = {"deep": deep, "samples": samples, "threshold": SATURATED, "grad_range": list(GRAD_LOG_RANGE),
            "act_centers": [round(float(c), 4) for c in (edges[:-1] + edges[1:]) / 2]}
    return write_html(out / "tour.html", "A tour: activations of a deep MLP, and samples over training", data,
                      BODY, SCRIPT, CSS)
