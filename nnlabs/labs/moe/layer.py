"""Part 4's patch on the spine: every block's feed-forward becomes a mixture of experts.

A linear router scores E experts (each the spine's FeedForward) for every token; the token runs through
its top-k experts only, weighted by its gate, so compute grows with k, not with E. Keeping the router
healthy is switchable: the Switch load-balancing loss, the router z-loss, noisy top-k and the loss-free
balancing bias. Shapes: N tokens (batch and time flattened), C width, E experts, k experts per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.spine.models import FeedForward, ModelConfig, Transformer


@dataclass
class MoEConfig:
    n_experts: int = 8
    top_k: int = 1  # 1 = Switch; k > 1 renormalises the k gates to sum to 1
    capacity_factor: float = 0.0  # 0 = unlimited; else at most ceil(cf * k * N / E) tokens per expert
    balance_alpha: float = 0.01  # Switch load-balancing loss weight (0 = off)
    z_alpha: float = 1e-3  # router z-loss weight (0 = off)
    noise_std: float = 0.0  # noisy top-k: std of the noise on the router logits while training (0 = off)
    bias_rate: float = 0.0  # loss-free balancing: the bias's update speed gamma (0 = off)


def switch_balance_loss(probs: torch.Tensor, chosen: torch.Tensor, n_experts: int) -> torch.Tensor:
    # f_i = share of the N*k assignments that chose expert i (a count: no gradient)
    f = torch.bincount(chosen.reshape(-1), minlength=n_experts).to(probs.dtype) / chosen.numel()  # [E]
    # L_bal = E * sum_i f_i * P_i, P_i = mean_x p_i(x); = E * sum_i P_i^2 >= 1 when f = P, 1 when even
    return n_experts * (f * probs.mean(0)).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    # L_z = mean_x (log sum_i exp h_i(x))^2: small logits, so the softmax does not saturate
    return logits.logsumexp(-1).square().mean()


@torch.no_grad()
def update_balance_bias(bias: torch.Tensor, chosen: torch.Tensor, rate: float) -> None:
    load = torch.bincount(chosen.reshape(-1), minlength=bias.numel()).to(bias.dtype)  # [E]
    # b_i <- b_i + gamma * sign(mean load - load_i)
    bias += rate * torch.sign(load.mean() - load)


def capacity_mask(chosen: torch.Tensor, n_experts: int, capacity_factor: float) -> torch.Tensor:
    """[N, k] bool: which assignments fit; first choices queue before second ones, then token order."""
    N, k = chosen.shape
    if not capacity_factor:
        return torch.ones_like(chosen, dtype=torch.bool)
    capacity = math.ceil(capacity_factor * k * N / n_experts)  # C_e = ceil(cf * k * N / E)
    onehot = F.one_hot(chosen.t().reshape(-1), n_experts)  # [k*N, E], rank-major: first choices first
    place = (onehot.cumsum(0) * onehot).sum(-1) - 1  # [k*N] this assignment's place in its expert's queue
    return (place < capacity).view(k, N).t()


class MoE(nn.Module):
    """The block's feed-forward as a mixture: a router picks the top-k of E FeedForwards for each token."""

    def __init__(self, config: ModelConfig, layer: int = 0, moe: MoEConfig | None = None):
        super().__init__()
        self.moe = moe = moe or MoEConfig()
        self.router = nn.Linear(config.n_embd, moe.n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(config, layer) for _ in range(moe.n_experts))
        self.register_buffer("balance_bias", torch.zeros(moe.n_experts))  # [E] loss-free balancing's b
        self.aux_loss, self.stats = None, {}  # the spine adds aux_loss to the loss, stats to diagnostics

    def route(self, h: torch.Tensor):
        """h [N, C] -> probs [N, E]; chosen experts, gates, kept under capacity: each [N, k]."""
        m = self.moe
        logits = self.router(h)  # [N, E]
        aux = m.z_alpha * router_z_loss(logits) if m.z_alpha else None
        if m.noise_std and self.training:  # noisy top-k: h(x) = x W_g + eps, eps ~ N(0, sigma^2)
            logits = logits + m.noise_std * torch.randn_like(logits)
        probs = logits.softmax(-1)  # [N, E] p_i(x) = exp(h_i) / sum_j exp(h_j)
        # top-k of p + b: the bias steers which experts are selected, never the gate values
        chosen = (probs + self.balance_bias).topk(m.top_k, dim=-1).indices  # [N, k]
        gates = probs.gather(-1, chosen)  # [N, k]
        if m.top_k > 1:
            gates = gates / gates.sum(-1, keepdim=True)  # g_i = p_i / sum_{j in top-k} p_j
        if m.balance_alpha:
            balance = m.balance_alpha * switch_balance_loss(probs, chosen, m.n_experts)
            aux = balance if aux is None else aux + balance
        if m.bias_rate and self.training:
            update_balance_bias(self.balance_bias, chosen, m.bias_rate)
        kept = capacity_mask(chosen, m.n_experts, m.capacity_factor)  # [N, k]
        self.aux_loss, self.stats = aux, {"probs": probs.detach(), "chosen": chosen, "kept": kept}
        return probs, chosen, gates, kept

    def forward(self, x):
        h = x.reshape(-1, x.size(-1))  # [N, C] from [B, T, C] in a block, [rows, C] in ACT's loop
        _, chosen, gates, kept = self.route(h)
        # sparse dispatch, each expert on its own tokens only: y(x) = sum_{i in top-k(x)} g_i(x) FFN_i(x)
        token = torch.arange(h.size(0), device=h.device)[:, None].expand_as(chosen)  # [N, k]
        token, expert, gate = token[kept], chosen[kept], gates[kept]  # [A] each: the kept assignments
        order = expert.argsort(stable=True)  # [A]
        sizes = torch.bincount(expert, minlength=len(self.experts)).tolist()  # E group sizes
        y = torch.zeros_like(h)  # [N, C]
        for ffn, rows, g in zip(self.experts, token[order].split(sizes), gate[order].split(sizes)):
            y.index_add_(0, rows, g[:, None] * ffn(h[rows]))  # an expert with no tokens adds nothing
        return y.view_as(x)


def moe_transformer(config: ModelConfig, moe: MoEConfig) -> Transformer:
    return Transformer(config, ffn_factory=lambda c, layer: MoE(c, layer, moe))


def dense_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The oracle sparse dispatch must equal: every expert on every token, then masked by the routing.
    Also the naive 'run every expert' implementation the benchmark times (compute grows with E)."""
    h = x.reshape(-1, x.size(-1))  # [N, C]
    _, chosen, gates, kept = moe.route(h)
    weight = torch.zeros(h.size(0), len(moe.experts), dtype=h.dtype, device=h.device)  # [N, E]
    weight = weight.scatter_add(1, chosen, gates * kept)  # zero for unchosen and dropped assignments
    every = torch.stack([ffn(h) for ffn in moe.experts], dim=1)  # [N, E, C]
    return (weight[..., None] * every).sum(1).view_as(x)
