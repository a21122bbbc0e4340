"""Thinking longer than in training: the recurrent-depth model made position-free, so that one pass means
the same at every position and every depth, with a pass cap that grows with the input at evaluation. After
Fan et al. 2024 ("Looped transformers for length generalization": no position embeddings, one block looped
a number of times that grows with the input) and Bansal et al. 2022 ("End-to-end algorithm synthesis with
recurrent networks": extra iterations at test time extrapolate when the state cannot drift).

Three changes to `halting.RecurrentDepth`, one method each:
  * `embed`: the token embedding alone. Order comes from the attention window (a position sees itself and
    the one before), so a longer input holds no position embedding that training never reached.
  * `step`: one step embedding for every pass (a pass beyond the training cap is the same function as the
    others), and the state renormalised after each pass, s_n <- LayerNorm(s_n) without parameters: the
    residual stream would otherwise grow with every pass, and forty passes would leave it on a scale that
    eight never showed.
  * `run_blocks`: at evaluation, a cap of T passes (the row's length) instead of the training cap: with a
    window of two, information crosses one position per pass, so T passes carry the first position to the
    last. `capped = True` keeps the training cap (the "same model, no extra thinking" baseline).
`Horizon` is a halting rule that needs no learning: position t halts after t + 1 passes, the passes the
start token needs to reach it (Fan et al.'s "loops = length", per position). ACT on top learns its own.
`halting = 'wavefront'` adds a gate: a position keeps its state until pass t, when the start token's
information reaches it, updates from then on and halts one pass later (t + 2 passes; its keys and values
are those of its last pass's input, so the pass after its update is the one its successor reads). Every
position then computes the same function of (its token, its predecessor's settled state) however long the
input: a running XOR cannot drift while it waits, which is what the ungated model does beyond training."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.labs.act.halting import RecurrentDepth


class Horizon(nn.Module):
    """Halting rule: position t of a row of length T halts after t + 1 passes (or at the cap); p_n = 1 at
    the halting pass, so the output is the state after it."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.T, self.aux_loss, self.stats, self.steps, self.target_mask = cfg, 1, None, {}, None, None

    def forward(self, s: torch.Tensor, n: int, rows: torch.Tensor):
        # pass n (from 0) is position t's last when n = t: the start token's state has reached it (wavefront:
        # one pass later, so that its successor reads its updated state)
        lag = int(self.cfg.halting == "wavefront")
        halt = (rows % self.T + lag <= n) | (n == self.cfg.max_steps - 1)  # [R]
        return halt.to(s.dtype), halt

    def report(self, steps: torch.Tensor) -> None:
        self.steps = steps.detach()
        self.stats = {"steps_mean": float(steps.float().mean()), "steps_max": int(steps.max())}


class LoopedDepth(RecurrentDepth):
    """`RecurrentDepth` without position or step embeddings, its state renormalised after each pass, and a
    pass cap of T at evaluation (see the module's docstring). `act.halting` may also be 'horizon' or
    'wavefront'."""

    def __init__(self, config, act):
        super().__init__(config, act)
        self.trained, self.capped = act, False
        if act.halting in ("horizon", "wavefront"):
            self.halting = Horizon(act)

    def embed(self, idx, positions=None):
        return self.wte(idx)  # [B, T, C], no position embedding

    def step(self, state, n, rows, kv, T):
        s, kv = super().step(state, 0, rows, kv, T)  # [R, C]: e_0 on every pass
        s = F.layer_norm(s, s.shape[-1:])
        if self.act.halting == "wavefront":  # position t keeps its state until pass t
            s = torch.where((rows % T > n)[:, None], state[rows], s)
        return s, kv

    def run_blocks(self, x, mask=None, rule=None):
        T, train_cap = x.size(1), self.trained.max_steps
        cap = train_cap if self.training or self.capped else max(train_cap, T)
        # the halting unit reads its cap from the config it shares with the model
        self.act = self.halting.cfg = replace(self.trained, max_steps=cap)
        self.halting.T = T
        try:
            return super().run_blocks(x, mask, rule)
        finally:
            self.act = self.halting.cfg = self.trained
