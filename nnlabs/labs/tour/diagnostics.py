"""Delta 2's instruments: what a deep tanh MLP's hidden layers do during training, read through hooks.

`a` is a batch of one hidden tanh's outputs, [N, H]: N rows (every position of every item of the batch),
H units. Nothing in the spine changes: `DeepMLPRecorder` attaches forward hooks to each `model.hidden[i]`
Tanh and global optimizer step hooks, and removes them all on `close()`.
"""

from __future__ import annotations

import math

import torch
import torch.optim.optimizer as optim_hooks


def saturation(a: torch.Tensor, threshold: float, share: float) -> dict:
    """Shares of saturated activations, of dead units (saturated on every row: no gradient for any input
    of the batch) and of mostly dead units (saturated on >= `share` of the rows)."""
    tails = (a.abs() > threshold).float()  # [N, H]
    # mean_{n,h} [|a_nh| > t];  mean_h prod_n [|a_nh| > t];  mean_h [mean_n [|a_nh| > t] >= share]
    return {"saturated": float(tails.mean()), "dead": float(tails.min(dim=0).values.mean()),
            "mostly_dead": float((tails.mean(dim=0) >= share).float().mean())}


def histogram(values: torch.Tensor, lo: float, hi: float, bins: int) -> list[float]:
    """Share of values per bin over [lo, hi]; values outside are clamped into the end bins."""
    clamped = values.detach().float().flatten().clamp(lo, hi)
    counts = torch.histc(clamped, bins=bins, min=lo, max=hi)
    return [round(float(c), 5) for c in counts / max(clamped.numel(), 1)]


def preact_grad_stats(grad_out: torch.Tensor, a: torch.Tensor, log_range: tuple, bins: int) -> dict:
    """The gradient reaching a tanh's input x, where a = tanh(x): its std and a histogram of log10 |dL/dx|.
    Rows whose targets are all ignored (padding) get exactly zero gradient and are left out."""
    # dL/dx = dL/da * (1 - a^2): a saturated unit (a -> +-1) multiplies its gradient by ~0
    g = (grad_out * (1 - a * a))[grad_out.abs().sum(dim=1) > 0]  # [N', H]
    return {"grad_std": float(g.std()) if g.numel() > 1 else 0.0,
            "grad_hist": histogram(g.abs().clamp_min(1e-30).log10(), *log_range, bins)}


class DeepMLPRecorder:
    """Every `every` training steps each hidden tanh's activations and the gradient at its input; on every
    optimizer step log10 of each hidden weight's update-to-data ratio std(W_after - W_before) / std(W_before)."""

    # |tanh(x)| > 0.97 <=> |x| > 2.09, where the local gradient 1 - tanh^2 is below 0.06; a unit saturated on
    # >= 95% of a batch's rows counts as mostly dead; input gradients are histogrammed as log10 |dL/dx|
    SATURATED, MOSTLY, GRAD_LOG_RANGE, BINS = 0.97, 0.95, (-10.0, -1.0), 40

    def __init__(self, model, every: int):
        self.every, self.step = every, 0
        self.linears = [block[0] for block in model.hidden]
        self.records: list[dict] = []
        self.update_ratio: list[list[float]] = []
        self._before: list[torch.Tensor] | None = None
        self._handles = [block[-1].register_forward_hook(self._hook(i)) for i, block in enumerate(model.hidden)]
        self._handles += [optim_hooks.register_optimizer_step_pre_hook(self._pre_step),
                          optim_hooks.register_optimizer_step_post_hook(self._post_step)]

    def _hook(self, layer: int):
        def hook(module, inputs, out):
            # evaluation, sampling, or a step we don't record
            if not module.training or self.step % self.every:
                return
            if layer == 0:
                self.records.append({"step": self.step, "layers": []})
            a = out.detach()  # [N, H]
            stats = {k: round(v, 5) for k, v in saturation(a, self.SATURATED, self.MOSTLY).items()}
            stats |= {"mean": round(float(a.mean()), 5), "std": round(float(a.std()), 5),
                      "act_hist": histogram(a, -1.0, 1.0, self.BINS)}
            self.records[-1]["layers"].append(stats)
            if out.requires_grad:
                # a tensor hook on the output catches its gradient in backward
                out.register_hook(lambda grad: stats.update(preact_grad_stats(grad, a, self.GRAD_LOG_RANGE, self.BINS)))
        return hook

    def _pre_step(self, optimizer, args, kwargs):
        # global hooks see every optimizer: measure only the one training this model
        if any(p is self.linears[0].weight for group in optimizer.param_groups for p in group["params"]):
            self._before = [lin.weight.detach().clone() for lin in self.linears]

    def _post_step(self, optimizer, args, kwargs):
        if self._before is None:
            return
        self.update_ratio.append([round(math.log10(max(float((lin.weight.detach() - w).std() / w.std()), 1e-12)), 4)
                                  for lin, w in zip(self.linears, self._before)])
        self._before = None
        self.step += 1

    def close(self):
        for handle in self._handles:
            handle.remove()


def latest_layer_means(recorder: DeepMLPRecorder) -> dict:
    """Mean saturated / dead fractions over layers at the recorder's latest snapshot (for metrics.jsonl)."""
    layers = recorder.records[-1]["layers"] if recorder.records else []
    keys = ("saturated", "dead", "mostly_dead") if layers else ()
    return {f"{key}_frac": sum(s[key] for s in layers) / len(layers) for key in keys}
