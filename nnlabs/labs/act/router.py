"""5.5's other half: depth experts. Instead of a halting unit asked after every pass "stop now?", a router
reads each input once, after the first pass, and sends the whole example down one of a few fixed paths —
the shared block run 2, 4 or 8 times — the way Part 4's router sends a token to one expert. Does it send
hard inputs deep?

Two losses. Every path learns to answer every input (as each expert of a dense mixture would): the paths'
mean loss, each path read out by the LM head after its last pass. The router is a classifier whose label
is the path worth its price: with L_k(x) path k's loss on example x (held fixed for the router),

    k*(x) = argmin_k  L_k(x) + τ · d_k / d_max,        L_router = cross-entropy(router(x), k*(x))

the cheapest path whose answer is as good as a deeper one's, up to τ nats per pass saved over the cap.
(Weighting the paths' losses by the router's softmax instead, PonderNet's expected loss, collapsed: started
from the 8-pass model, the 2- and 4-pass answers are wrong at first, the router leaves them within a few
steps, and its softmax gradient, g_k (c_k − c̄), vanishes before they learn — docs/act.md.) At evaluation
the router picks its top path and the example runs exactly that many passes; the others are never computed.
One decision per example (read at its first answer position; per position without targets, e.g. when
sampling), so all its positions run the same passes in training and evaluation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.labs.act.halting import RecurrentDepth


def depth_paths(max_steps: int) -> tuple[int, ...]:
    """The paths: a quarter, half and all of the pass cap (2, 4, 8 for a cap of 8)."""
    return tuple(sorted({max(1, max_steps // 4), max(1, max_steps // 2), max_steps}))


class DepthRouter(nn.Module):
    """Halting rule: after pass 0 the router picks one path of `depth_paths(cap)` per example; the example
    halts at the end of that path. In training every position runs to the cap, and `passes` keeps each
    pass's state for the paths' losses (`RoutedDepth.finish`)."""

    def __init__(self, n_embd: int, cfg):
        super().__init__()
        self.cfg, self.depths = cfg, depth_paths(cfg.max_steps)
        # uniform over the paths at the start
        self.linear = nn.Linear(n_embd, len(self.depths))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.aux_loss, self.stats, self.steps, self.target_mask = None, {}, None, None  # the spine sets target_mask

    def forward(self, s: torch.Tensor, n: int, rows: torch.Tensor):
        depths = torch.tensor(self.depths, device=s.device)  # [K]
        if n == 0:  # pass 0 runs every position: route once
            logits = self.linear(s)  # [BT, K]
            if self.target_mask is not None:  # the example's first answer position decides for all its positions
                B, T = self.target_mask.shape
                first = self.target_mask.int().argmax(1)  # [B]
                logits = logits.view(B, T, -1)[torch.arange(B), first].repeat_interleave(T, 0)  # [BT, K]
            self.logits, self.g = logits, logits.softmax(-1)  # [BT, K]
            self.route = depths[self.g.argmax(-1)]  # [BT] passes each position will run at evaluation
            self.reg = (self.g * depths).sum(-1) / self.cfg.max_steps  # [BT] expected depth, a fraction of the cap
            self.passes = []
        last = n == self.cfg.max_steps - 1
        if self.training:
            # p_n = g_k at the last pass of path k (n + 1 = d_k), else 0; all positions run to the cap
            at = (depths == n + 1).nonzero()
            p = self.g[rows, at[0, 0]] if len(at) else s.new_zeros(len(rows))  # [R]
            self.passes.append((rows, p, s))
            return p, torch.full_like(rows, last, dtype=torch.bool)
        halt = (self.route[rows] == n + 1) | last  # [R]
        return halt.to(s.dtype), halt

    def report(self, steps: torch.Tensor) -> None:
        self.steps = steps.detach()
        self.aux_loss = None  # set by RoutedDepth.finish, which has the targets
        self.stats = {"steps_mean": float(steps.float().mean()), "steps_max": int(steps.max()),
                      "expected_depth": float(self.reg.detach().mean()) * self.cfg.max_steps}


class RoutedDepth(RecurrentDepth):
    """`RecurrentDepth` whose halting unit is a `DepthRouter` (act.halting = 'router')."""

    def __init__(self, config, act):
        super().__init__(config, act)
        self.halting = DepthRouter(config.n_embd, act)

    def finish(self, logits, targets):
        if self.training and targets is not None:
            unit, (B, T), K = self.halting, targets.shape, len(self.halting.depths)
            flat = targets.reshape(-1)  # [BT]
            answers = flat >= 0
            # [BT, K] each path's loss, read out after its last pass (in training every position runs every pass)
            loss = torch.stack([F.cross_entropy(self.lm_head(self.ln_f(unit.passes[d - 1][2])), flat,
                                                ignore_index=-1, reduction="none") for d in unit.depths], -1)
            paths = loss[answers].mean()  # every path answers every input
            # k* = argmin_k L_k(x) + tau d_k / d_max, L_k(x) summed over the example's answer positions
            price = self.act.tau * torch.tensor(unit.depths, device=loss.device) / self.act.max_steps  # [K]
            best = ((loss.detach() * answers[:, None]).view(B, T, K).sum(1) + price).argmin(-1)  # [B]
            first = answers.view(B, T).int().argmax(1)  # [B] the position whose router logits decide
            router = F.cross_entropy(unit.logits.view(B, T, K)[torch.arange(B), first], best)
            unit.aux_loss = paths + router
            logits = logits.detach()  # the NLL of the p-weighted state is only reported
        return super().finish(logits, targets)
