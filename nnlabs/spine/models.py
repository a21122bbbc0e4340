"""The spine's models. Every one is a LanguageModel: forward(idx, targets=None) -> (logits, loss), and
after each forward `model.diagnostics` holds named extras (the pure NLL, auxiliary losses, per-module
stats), so the trainer never asks which model it has.

Extension points the labs patch (see `nnlabs diff <lab>`):
  * Transformer(config, ffn_factory=...) — the feed-forward module of every block comes from a factory
    (the MoE lab swaps in a mixture of experts).
  * Transformer.run_blocks(x) — the loop over blocks is one method a lab can override (the ACT lab
    repeats a block with a halting unit).
  * any submodule may set `self.aux_loss` (a scalar tensor, added to the loss) and `self.stats` (a dict,
    reported in diagnostics) during forward — e.g. a load-balancing loss, a ponder cost. A submodule
    called several times in one forward (a block shared across passes) reports on every call: its
    losses add up, and `module.per_call` lists (aux_loss, stats) of each call of the last forward.
  * CausalSelfAttention.project(x) -> q, k, v and .mix(q, k, v, mask) — the pieces of attention a lab
    can call on rows of its own choosing (the ACT lab runs them on the positions still pondering).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.spine.errors import UserError


@dataclass
class ModelConfig:
    vocab_size: int = 27
    block_size: int = 16
    n_layer: int = 4  # transformer blocks
    n_head: int = 4
    n_embd: int = 64
    n_embd2: int = 64  # MLP hidden width
    mlp_layers: int = 1  # hidden tanh layers of the MLP (makemore: 1)
    batchnorm: bool = False  # MLP: BatchNorm before each tanh
    init: str = "scaled"  # MLP init: 'naive' (N(0,1) weights) | 'scaled' (tanh gain / sqrt(fan_in)) | 'torch'
    dropout: float = 0.0
    packed: bool = False  # transformer: train on packed rows, several items per row, token 0 starting each


class LanguageModel(nn.Module):
    """Shared tail of every model: NLL over non-ignored targets + auxiliary losses + diagnostics."""

    def __init__(self):
        super().__init__()
        self.diagnostics: dict = {}
        self._reporters: list[tuple[str, nn.Module]] | None = None
        self.register_forward_pre_hook(start_reports)

    def reporters(self) -> list[tuple[str, nn.Module]]:
        if self._reporters is None:  # found once: the modules that report aux losses or stats
            self._reporters = [(n, m) for n, m in self.named_modules()
                               if m is not self and (hasattr(m, "aux_loss") or hasattr(m, "stats"))]
            for _, m in self._reporters:
                m.per_call = []
                m.register_forward_hook(record_call)
        return self._reporters

    def finish(self, logits: torch.Tensor, targets: torch.Tensor | None):
        self.diagnostics = {name: m.stats for name, m in self.reporters() if getattr(m, "stats", None)}
        if targets is None:
            return logits, None
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        loss = nll
        aux = [a for a in (summed_aux(m) for _, m in self._reporters) if a is not None]
        if aux:
            aux_total = torch.stack(aux).sum()
            loss = nll + aux_total
            self.diagnostics["aux_loss"] = aux_total.detach()
        self.diagnostics["nll"] = nll.detach()
        return logits, loss


def start_reports(model: LanguageModel, args) -> None:
    """Before each forward: no losses reported yet, and a fresh record of each reporter's calls."""
    for _, m in model.reporters():
        m.per_call = []
        if hasattr(m, "aux_loss"):
            m.aux_loss = None


def record_call(module: nn.Module, args, output) -> None:
    module.per_call.append((getattr(module, "aux_loss", None), getattr(module, "stats", None)))


def summed_aux(module: nn.Module) -> torch.Tensor | None:
    """The module's loss in this forward: the sum over the calls that set one (a block shared across
    passes reports on each, as each layer of a deep stack would), or the one it set outside a call."""
    losses = [a for a, _ in module.per_call if a is not None]
    if len(losses) > 1:
        return torch.stack(losses).sum()
    return losses[0] if losses else getattr(module, "aux_loss", None)


# -----------------------------------------------------------------------------
# Bigram: a table of next-character logits, by counting or by gradient descent


class Bigram(LanguageModel):
    """Learned bigram: logits[next] = W[current]. The same table the counts give, found by descent."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.logits_table = nn.Parameter(torch.zeros(config.vocab_size, config.vocab_size))

    def forward(self, idx, targets=None):
        return self.finish(self.logits_table[idx], targets)


class CountBigram(LanguageModel):
    """Counting bigram: P(next | current) = (N[current, next] + alpha) / sum_next (N[current, :] + alpha).
    No gradients: `fit` counts the training pairs once."""

    def __init__(self, config: ModelConfig, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha
        self.register_buffer("counts", torch.zeros(config.vocab_size, config.vocab_size))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> CountBigram:
        keep = y >= 0
        pairs = x[keep] * self.counts.size(0) + y[keep]
        self.counts.zero_()
        self.counts.view(-1).index_add_(0, pairs, torch.ones_like(pairs, dtype=self.counts.dtype))
        return self

    def forward(self, idx, targets=None):
        smoothed = self.counts + self.alpha
        log_probs = (smoothed / smoothed.sum(1, keepdim=True)).log()
        return self.finish(log_probs[idx], targets)


# -----------------------------------------------------------------------------
# MLP (Bengio et al. 2003): embed the previous block_size characters, concatenate, tanh layers


class MLP(LanguageModel):
    """Each position sees the previous `block_size` tokens (padded with a blank token). Hidden layers
    are Linear -> [BatchNorm] -> Tanh, kept in `self.hidden` so diagnostics can hook each Tanh."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.block_size = config.block_size
        self.blank = config.vocab_size  # an extra embedding row for "before the start"
        self.wte = nn.Embedding(config.vocab_size + 1, config.n_embd)
        layers, fan_in = [], config.block_size * config.n_embd
        for _ in range(config.mlp_layers):
            linear = nn.Linear(fan_in, config.n_embd2, bias=not config.batchnorm)  # BN has its own shift
            layers.append(nn.Sequential(linear, *( [nn.BatchNorm1d(config.n_embd2)] if config.batchnorm else []),
                                        nn.Tanh()))
            fan_in = config.n_embd2
        self.hidden = nn.ModuleList(layers)
        self.lm_head = nn.Linear(fan_in, config.vocab_size)
        self._init(config.init)

    @torch.no_grad()
    def _init(self, scheme: str):
        if scheme == "torch":
            return
        for block in self.hidden:
            w = block[0].weight
            w.normal_(0.0, 1.0)  # 'naive': unit-variance weights -> pre-activations of std ~sqrt(fan_in)
            if scheme == "scaled":
                w.mul_((5 / 3) / math.sqrt(w.size(1)))  # Kaiming for tanh: gain 5/3, std = gain / sqrt(fan_in)
        self.lm_head.weight.mul_(0.1)  # start near uniform predictions instead of confidently wrong ones

    def context(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, block_size) token ids: for each position the window ending at it."""
        B, T = idx.shape
        padded = torch.cat([torch.full((B, self.block_size - 1), self.blank, dtype=idx.dtype, device=idx.device),
                            idx], dim=1)
        return padded.unfold(1, self.block_size, 1)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.wte(self.context(idx)).view(B * T, -1)  # BatchNorm1d wants (N, C)
        for block in self.hidden:
            x = block(x)
        return self.finish(self.lm_head(x).view(B, T, -1), targets)


# -----------------------------------------------------------------------------
# Transformer (GPT, pre-LayerNorm): attention mixes positions, the feed-forward works per position


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, mask=None):
        q, k, v = self.project(x)
        return self.proj(self.mix(q, k, v, mask))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[..., C] -> queries, keys, values, [..., C] each."""
        return self.qkv(x).chunk(3, dim=-1)

    def mix(self, q, k, v, mask=None) -> torch.Tensor:
        """[B, T, C] queries, keys, values -> [B, T, C], each head's softmax(q k^T / sqrt(d)) v, before the
        output projection. Over the causal prefix, fused (no T x T mask tensor in Python), or where `mask`
        allows (packed rows: the causal prefix inside one item, from item_layout)."""
        B, T, C = q.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, C)

    def count_macs(self, inputs, output) -> int:
        # position t attends to t+1 positions: QK^T and AV each cost (t+1)*C MACs; summed over t.
        x = inputs[0]
        B, T, C = x.shape
        return B * T * (T + 1) * C


class FeedForward(nn.Module):
    """The per-position MLP of a block: C -> 4C -> GELU -> C."""

    def __init__(self, config: ModelConfig, layer: int = 0):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.drop(self.down(F.gelu(self.up(x))))  # exact GELU: ~4x faster than the tanh form on CPU


class Block(nn.Module):
    def __init__(self, config: ModelConfig, ffn: nn.Module):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.ffn = ffn
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x, mask=None):
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.ffn(self.ln2(x))


class Transformer(LanguageModel):
    def __init__(self, config: ModelConfig, ffn_factory=FeedForward):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        # extension point 1: ffn_factory(config, layer) builds each block's feed-forward module
        self.blocks = nn.ModuleList([Block(config, ffn_factory(config, i)) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def run_blocks(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Extension point 2: how the residual stream flows through the blocks."""
        for block in self.blocks:
            x = block(x, mask)
        return x

    def embed(self, idx: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Token + position embeddings: the residual stream before the first block."""
        if positions is None:
            positions = torch.arange(idx.size(1), device=idx.device)
        return self.wte(idx) + self.wpe(positions)

    def forward(self, idx, targets=None):
        # extension point 3: a submodule with a `target_mask` gets [B, T], False where there is no target
        # (padding), e.g. to leave padding out of a balancing loss
        for m in self.modules():
            if hasattr(m, "target_mask"):
                m.target_mask = None if targets is None else targets >= 0
        positions, mask = item_layout(idx) if self.config.packed else (None, None)
        x = self.run_blocks(self.drop(self.embed(idx, positions)), mask)
        return self.finish(self.lm_head(self.ln_f(x)), targets)


def item_layout(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For packed rows, where token 0 starts each item: every token's position inside its item (B, T), and
    the attention mask (B, 1, T, T) that keeps attention causal and inside one item. A row holding one
    item gets the usual positions and causal mask, so packing changes no item's computation (tested)."""
    t = torch.arange(idx.size(1), device=idx.device)
    start = torch.where(idx == 0, t, 0).cummax(dim=1).values  # where the item containing t began
    item = (idx == 0).cumsum(dim=1)
    allowed = (item[:, :, None] == item[:, None, :]) & (t[:, None] >= t[None, :])
    # additive (0 / -inf) rather than boolean: ~25 % faster attention on CPU at these sizes (measured)
    return t - start, torch.zeros(allowed.shape, device=idx.device).masked_fill(~allowed, float("-inf"))[:, None]


MODELS = {"bigram": Bigram, "mlp": MLP, "transformer": Transformer}
PACKABLE = ("transformer",)  # the models that keep items apart inside a packed row (item_layout)


def build_model(kind: str, config: ModelConfig) -> LanguageModel:
    if config.packed and kind not in PACKABLE:
        raise UserError(f"--packed needs item boundaries inside a row; the {kind} model does not keep them "
                        "(its context would cross from one item into the next): use it with --type transformer")
    return MODELS[kind](config)
