"""Part 4's patch on the spine: every block's feed-forward becomes a mixture of experts.

A linear router scores E experts (each the spine's FeedForward) for every token; the token runs through
its top-k experts only, weighted by its gate, so compute grows with k, not with E. Keeping the router
healthy is switchable: the Switch load-balancing loss, the router z-loss, noisy top-k and the loss-free
balancing bias. Shapes: N tokens (batch and time flattened), C width, E experts, k experts per token,
A kept assignments. The experts run as one grouped matmul (`torch._grouped_mm`: torch >= 2.9 on CPU, with
rows of a multiple of 16 bytes, i.e. widths divisible by 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.spine.models import ModelConfig, Transformer


@dataclass
class MoEConfig:
    n_experts: int = 8
    top_k: int = 1  # 1 = Switch; k > 1 renormalises the k gates to sum to 1
    capacity_factor: float = 0.0  # 0 = unlimited; else at most ceil(cf * k * N / E) tokens per expert
    balance_alpha: float = 0.01  # Switch load-balancing loss weight (0 = off)
    z_alpha: float = 1e-3  # router z-loss weight (0 = off)
    noise_std: float = 0.0  # noisy top-k: std of the noise on the router logits while training (0 = off)
    bias_rate: float = 0.0  # loss-free balancing: the bias's update speed u (0 = off)
    bias_sign: bool = False  # loss-free update: u * sign(e_i) instead of u * e_i
    bias_skips_start: bool = False  # loss-free: the line start picks its experts by probability alone (docs)
    router_bias: bool = False  # a learned logit offset per expert, shared by every token: a fast path to collapse


def switch_balance_loss(probs: torch.Tensor, share: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # Switch: L_bal = E * sum_i f_i * P_i, f_i = share [E] of the assignments that chose expert i (no gradient),
    # P_i = mean_x p_i(x) (weight [N]: 1/n, 0 at padding); = E * sum_i P_i^2 >= 1 when f = P, 1 when even
    return len(share) * (share @ (weight @ probs))


@torch.no_grad()
def update_balance_bias(bias: torch.Tensor, load: torch.Tensor, rate: float, sign: bool) -> None:  # load [E], any scale
    # loss-free balancing: e_i = (mean load - load_i) / mean load; b_i += u * e_i, or b_i += u * sign(e_i)
    error = (load.mean() - load) / load.mean()  # [E]
    bias += rate * (error.sign() if sign else error)
    bias -= bias.mean()  # a shift of every b_i selects the same experts: mean(b) = 0 stops drift


def capacity_mask(chosen: torch.Tensor, n_experts: int, capacity_factor: float) -> torch.Tensor:
    if not capacity_factor:
        return torch.ones_like(chosen, dtype=torch.bool)
    capacity = math.ceil(capacity_factor * chosen.numel() / n_experts)  # C_e = ceil(cf * k * N / E)
    onehot = F.one_hot(chosen.t().reshape(-1), n_experts)  # [k*N, E] first choices queue first, then by token
    place = (onehot.cumsum(0) * onehot).sum(-1) - 1  # [k*N] this assignment's place in its expert's queue
    return (place < capacity).view(chosen.shape[::-1]).t()  # [N, k] kept


class GroupedLinear(nn.Module):
    """E linear maps in one tensor, as the grouped matmul reads them: weight [E, in, out], bias [E, out] (docs)."""

    def __init__(self, n: int, fan_in: int, fan_out: int):
        super().__init__()
        # each slice starts as the spine initialises an nn.Linear: N(0, 0.02) weights, zero bias
        self.weight = nn.Parameter(torch.randn(n, fan_in, fan_out) * 0.02)  # [E, in, out]
        self.bias = nn.Parameter(torch.zeros(n, fan_out))  # [E, out]

    def forward(self, x: torch.Tensor, group: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """x [A, in], rows grouped by map (group [A]: each row's map, ends [E]: where each group ends)."""
        # the bias added in place: the grouped matmul's backward reads its inputs, not its output
        return torch._grouped_mm(x, self.weight, offs=ends).add_(self.bias.index_select(0, group))  # [A, out]


class MoE(nn.Module):
    """The block's feed-forward as a mixture: a router picks the top-k of E FeedForwards for each token."""

    def __init__(self, config: ModelConfig, layer: int = 0, moe: MoEConfig | None = None):
        super().__init__()
        self.moe = moe = moe or MoEConfig()
        self.router = nn.Linear(config.n_embd, moe.n_experts, bias=moe.router_bias)
        # E copies of the spine's FeedForward (C -> 4C -> GELU -> C), each projection's weights in one tensor
        self.up = GroupedLinear(moe.n_experts, config.n_embd, 4 * config.n_embd)
        self.down = GroupedLinear(moe.n_experts, 4 * config.n_embd, config.n_embd)  # the spine scales *down.weight
        self.drop = nn.Dropout(config.dropout)
        self.register_buffer("balance_bias", torch.zeros(moe.n_experts))  # [E] loss-free balancing's b
        self.aux_loss, self.stats = None, {}  # the spine adds aux_loss to the loss, stats to diagnostics
        self.target_mask = None  # [B, T], False at padding: set by the spine's forward

    def route(self, x: torch.Tensor):
        """x [B, T, C] (lines, position 0 starting each) or [N, C] -> probs [N, E]; chosen, gates, kept: each [N, k]."""
        h, row_len = x.reshape(-1, x.size(-1)), x.size(1) if x.dim() == 3 else 0  # [N, C]; 0: rows are not lines
        m, mask = self.moe, self.target_mask  # [B, T] False at padding: routed, but in no balancing statistic
        real = mask.reshape(-1).to(h.dtype) if mask is not None and mask.numel() == len(h) else h.new_ones(len(h))
        weight = real / real.sum()  # [N] a position's share in a mean over tokens: 1/n, 0 at padding
        # the logits as [E, N]: on CPU this matmul and the softmax over E run 2-5x faster than in [N, E]'s layout
        logits = self.router.weight @ h.t() if self.router.bias is None else torch.addmm(  # [E, N] h(x) = x W_g (+b)
            self.router.bias[:, None], self.router.weight, h.t())
        if m.noise_std and self.training:  # noisy top-k: h(x) = x W_g + eps, eps ~ N(0, sigma^2)
            logits = logits + m.noise_std * torch.randn_like(logits)
        log_p = logits.log_softmax(0)  # [E, N] log p_i(x) = h_i - log Z, Z = sum_j exp h_j
        probs = log_p.exp().t()  # [N, E]
        b = self.balance_bias  # [E]
        scores = probs + b  # [N, E] b steers selection only
        if m.bias_skips_start and row_len:  # position 0: one hidden state in every line, a block b cannot split
            scores[::row_len] = probs[::row_len] + b.where(b.isinf(), 0)  # all of b but a removed expert's -inf
        chosen = scores.topk(m.top_k, dim=-1).indices  # [N, k]
        gates = probs.gather(-1, chosen)  # [N, k]
        gates = gates / gates.sum(-1, keepdim=True) if m.top_k > 1 else gates  # g_i = p_i / sum_{j in top-k} p_j
        # ST-MoE's z-loss L_z = mean_x (log Z(x))^2 keeps logits small; log Z = h_0 - log p_0, read off the log-softmax
        aux = [m.z_alpha * (weight @ (logits[0] - log_p[0]).square())] if m.z_alpha else []
        # [E] the share of the real positions' N*k assignments each expert got: both balancers read it
        share = torch.bincount(chosen.reshape(-1), weight.repeat_interleave(m.top_k), m.n_experts) / m.top_k
        if m.balance_alpha:
            aux.append(m.balance_alpha * switch_balance_loss(probs, share, weight))
        if m.bias_rate and self.training:
            update_balance_bias(self.balance_bias, share, m.bias_rate, m.bias_sign)
        kept = capacity_mask(chosen, m.n_experts, m.capacity_factor)  # [N, k]
        self.aux_loss, self.stats = sum(aux) if aux else None, {"probs": probs.detach(), "chosen": chosen, "kept": kept}
        return probs, chosen, gates, kept

    def forward(self, x):
        h = x.reshape(-1, x.size(-1))  # [N, C] from [B, T, C] in a block, [rows, C] in ACT's loop
        _, chosen, gates, kept = self.route(x)
        chosen = chosen.where(kept, self.moe.n_experts) if self.moe.capacity_factor else chosen  # dropped: E, cut below
        expert, order = chosen.reshape(-1).sort(stable=True)  # [N*k] assignments by expert (stable)
        n_kept = int(kept.sum()) if self.moe.capacity_factor else len(order)  # no host sync without a limit
        expert, order = expert[:n_kept], order[:n_kept]  # [A]
        token, gate = order // chosen.size(1), gates.reshape(-1).index_select(0, order)  # [A], [A]
        # each expert on its own rows, one grouped matmul per projection: y(x) = sum_{i in top-k(x)} g_i(x) FFN_i(x)
        ends = torch.bincount(expert, minlength=self.moe.n_experts).cumsum(0).int()  # [E] where each group ends
        out = self.drop(self.down(F.gelu(self.up(h.index_select(0, token), expert, ends)), expert, ends))  # [A, C]
        return torch.zeros_like(h).index_add_(0, token, gate[:, None] * out).view_as(x)

    def count_macs(self, inputs, output) -> int:  # the router's N x E x C, then each row an expert ran: C -> 4C -> C
        probs, kept = self.stats["probs"], self.stats["kept"]
        return probs.numel() * self.router.in_features + int(kept.sum()) * 2 * self.up.weight[0].numel()


def moe_transformer(config: ModelConfig, moe: MoEConfig) -> Transformer:
    return Transformer(config, ffn_factory=lambda c, layer: MoE(c, layer, moe))


def dense_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The oracle sparse dispatch must equal: every expert on every token, then masked by the routing.
    Also the naive 'run every expert' implementation the benchmark times (compute grows with E)."""
    h = x.reshape(-1, x.size(-1))  # [N, C]
    _, chosen, gates, kept = moe.route(x)
    weight = torch.zeros(h.size(0), moe.moe.n_experts, dtype=h.dtype, device=h.device)  # [N, E]
    weight = weight.scatter_add(1, chosen, gates * kept)  # zero for unchosen and dropped assignments
    hidden = F.gelu(h @ moe.up.weight + moe.up.bias[:, None])  # [E, N, 4C]
    every = moe.drop(hidden @ moe.down.weight + moe.down.bias[:, None]).transpose(0, 1)  # [N, E, C]
    return (weight[..., None] * every).sum(1).view_as(x)
