"""Recurrent depth with a halting unit: one shared transformer block applied pass after pass, and a
rule, per position, for when to stop (Graves 2016, "Adaptive Computation Time"; Banino et al. 2021,
"PonderNet"). The patch on the spine (`nnlabs diff act`) is `RecurrentDepth.step` and `.run_blocks`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.spine.models import FeedForward, ModelConfig, Transformer


@dataclass(frozen=True)
class ActConfig:
    # 'fixed' (always max_steps passes) | 'act' (Graves) | 'ponder' (PonderNet) | 'horizon'/'wavefront' (looped.py)
    # | 'router' (router.py: one of a few depths per example)
    halting: str = "act"
    max_steps: int = 8  # passes of the shared block: exactly this many when fixed, at most this many otherwise
    tau: float = 0.01  # ACT: weight of the ponder cost in the loss
    eps: float = 0.01  # halt once the halting mass reaches 1 - eps
    prior: float = 0.5  # PonderNet: lambda_p of the (truncated, renormalised) geometric prior over halting steps
    beta: float = 0.01  # PonderNet: weight of KL(p || geometric prior)
    ponder_eval: str = "median"  # PonderNet at evaluation: halt at the median of p ('median') or sample n ~ p
    window: int = 0  # attention sees the last `window` positions (itself included); 0 = the whole prefix
    halt_bias: float = -1.0  # initial halting logit: sigmoid(-1) = 0.27, so ~4 passes before training


# confidence exit: stop once the least confident answer position has max_v softmax(logits)_v >= threshold
def confident(logits, threshold):
    return logits.softmax(-1).amax(-1).amin(-1) >= threshold


class HaltingUnit(nn.Module):
    # Graves: N = min{n : sum_{i<=n} p_i >= 1 - eps} (or the cap); p_N = R = 1 - sum_{n<N} p_n; ponder cost N + R
    @staticmethod
    def graves_halt(p, mass, eps, n, last):
        halt = (mass + p >= 1 - eps) | last
        return (p := torch.where(halt, 1 - mass, p)), halt, torch.where(halt, (n + 1) + p, torch.zeros_like(p))
    # PonderNet: p_n = lambda_n prod_{i<n} (1 - lambda_i); and the product, now to i <= n, at the running `rows`
    @staticmethod
    def ponder_p(lam, survive, rows):
        return lam * survive[rows], survive.index_copy(0, rows, survive[rows] * (1 - lam))
    # a term of KL(p || p_G) = sum_n p_n log(p_n / p_G(n)); p_G(n) = lambda_p (1-lambda_p)^(n-1) / (1 - (1-lambda_p)^N)
    @staticmethod
    def kl_term(p, n, prior, cap):
        return p * (torch.log(p.clamp_min(1e-8)) - math.log(prior * (1 - prior) ** n / (1 - (1 - prior) ** cap)))

    def __init__(self, n_embd: int, cfg):
        super().__init__()
        self.cfg, self.linear = cfg, nn.Linear(n_embd, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, cfg.halt_bias)
        self.aux_loss, self.stats, self.steps, self.target_mask = None, {}, None, None  # the spine sets target_mask

    def forward(self, s: torch.Tensor, n: int, rows: torch.Tensor):
        cfg, zeros, last = self.cfg, s.new_zeros(len(rows)), n == self.cfg.max_steps - 1
        if n == 0:  # pass 0 runs all: [BT] sum_{i<n} p_i, prod_{i<n} (1 - lambda_i), rho or KL; fixed: h_n = 0
            self.mass, self.survive, self.reg, self.passes = zeros, zeros + 1, zeros, []
        p, mass = zeros if cfg.halting == "fixed" else torch.sigmoid(self.linear(s)).squeeze(-1), self.mass[rows]
        if cfg.halting == "ponder":  # from here on p_n; lam = lambda_n
            lam, (p, self.survive) = p, self.ponder_p(p, self.survive, rows)
        if cfg.halting == "ponder" and not self.training:  # halt at the median of p (docs/act.md) or draw n ~ p
            draw = ((self.survive[rows] <= 0.5).to(p.dtype) if cfg.ponder_eval == "median"  # sum_{i<=n} p_i >= 1/2
                    else torch.bernoulli(lam, generator=torch.Generator(s.device).manual_seed(n)))  # [R] the paper's
            self.mass = self.mass.index_copy(0, rows, torch.maximum(mass, draw))  # [BT] 1 once a position drew "halt"
            # one halting pass per example, as the paper's one per input: once each answer position drew "halt"
            answers = self.target_mask if self.target_mask is not None else torch.ones(len(self.mass), 1).bool()
            halt = ((answers * (1 - self.mass.view_as(answers))).amax(1) == 0)[rows // answers.size(1)] | last
            return halt.to(p.dtype), halt
        p, halt, rho = self.graves_halt(p, mass, cfg.eps, n, last)
        cost = self.kl_term(p, n, cfg.prior, cfg.max_steps) if cfg.halting == "ponder" else rho
        self.reg, self.mass = self.reg.index_add(0, rows, cost), self.mass.index_copy(0, rows, mass + p)
        self.passes.append((rows, p, s))  # for PonderNet's loss, sum_n p_n L(y_n) (RecurrentDepth.finish)
        return p, halt

    def report(self, steps: torch.Tensor) -> None:
        self.steps, act = steps.detach(), self.cfg.halting == "act"
        self.stats = {"steps_mean": float(steps.float().mean()), "steps_max": int(steps.max())}
        if self.cfg.halting != "fixed":  # tau mean rho (ACT), beta mean KL (PonderNet)
            self.aux_loss = (self.cfg.tau if act else self.cfg.beta) * self.reg.mean()
            self.stats["ponder" if act else "kl"] = float(self.reg.detach().mean())


class RunningAttention(nn.Module):
    def forward(self, q, k, v, rows, T, mix, window):
        # the spine's `mix` for the running queries only; halted positions stay keys and values (their last pass)
        band = torch.ones(T, T, dtype=torch.bool, device=k.device).tril().triu(1 - window) if window else None
        q = torch.zeros_like(k).index_copy(0, rows, q)  # [BT, C]
        return mix(*(t.view(-1, T, t.size(1)) for t in (q, k, v)), band).flatten(0, 1)[rows]  # [R, C]

    def count_macs(self, inputs, output) -> int:
        # 2 C MACs per key a running query sees: t + 1 keys at position t, or `window`
        return int(2 * inputs[0].size(1) * (inputs[3] % inputs[4] + 1).clamp(max=inputs[6] or inputs[4]).sum())


class RecurrentDepth(Transformer):
    """The spine's Transformer with one block (n_layer = 1) applied up to `max_steps` times, a learned
    step embedding e_n telling it which pass it runs. `ffn_factory` is the spine's: the shared block's
    feed-forward can be Part 4's mixture of experts."""

    def __init__(self, config: ModelConfig, act, ffn_factory=FeedForward):
        assert config.n_layer == 1 and not config.packed, "recurrent depth shares one block on one-item rows"
        super().__init__(config, ffn_factory)
        self.act, self.wse = act, nn.Embedding(act.max_steps, config.n_embd)  # step embedding e_n
        nn.init.normal_(self.wse.weight, 0.0, 0.02)
        self.attend, self.halting = RunningAttention(), HaltingUnit(config.n_embd, act)

    def finish(self, logits, targets):
        # PonderNet trains on the expected loss over the halting pass, sum_n p_n L(y_n), every pass read out
        # by the LM head; the NLL of the p-weighted state is then only reported (its logits detached)
        if self.act.halting == "ponder" and self.training and targets is not None:
            flat = targets.reshape(-1)  # [BT]
            nll = (F.cross_entropy(self.lm_head(self.ln_f(s)), flat[rows], ignore_index=-1, reduction="none")
                   for rows, _, s in self.halting.passes)  # [R] per pass
            expected = sum((p * loss).sum() for (_, p, _), loss in zip(self.halting.passes, nll))
            self.halting.aux_loss = self.halting.aux_loss + expected / (flat >= 0).sum()
            logits = logits.detach()
        return super().finish(logits, targets)

    def step(self, state, n, rows, kv, T):
        blk = self.blocks[0]
        x = state[rows] + self.wse.weight[n]  # [R, C]
        q, k, v = blk.attn.project(blk.ln1(x))  # [R, C] each
        kv = (kv[0].index_copy(0, rows, k), kv[1].index_copy(0, rows, v))  # halted rows keep their k, v
        x = x + blk.drop(blk.attn.proj(self.attend(q, *kv, rows, T, blk.attn.mix, self.act.window)))
        return x + blk.ffn(blk.ln2(x)), kv

    def run_blocks(self, x, mask=None, rule=None):
        state, T = x.flatten(0, 1), x.size(1)  # [BT, C] from [B, T, C]
        kv, out = (torch.zeros_like(state),) * 2, torch.zeros_like(state)  # [BT, C]: keys, values; y = sum_n p_n s_n
        rows = torch.arange(len(state), device=x.device)  # [R] positions still running
        steps = torch.zeros_like(rows)  # [BT] passes run
        for n in range(self.act.max_steps):
            s, kv = self.step(state, n, rows, kv, T)  # [R, C] s_n
            state = state.index_copy(0, rows, s)  # a halted row is frozen: never computed again
            steps = steps.index_add(0, rows, torch.ones_like(rows))
            p, halt = (rule or self.halting)(s, n, rows)  # [R] p_n, [R] whether n = N
            out = out.index_add(0, rows, p.unsqueeze(-1) * s)
            rows = rows[~halt]
            if rows.numel() == 0:
                break
        (rule or self.halting).report(steps.view(x.shape[:2]))
        return out.view_as(x)

