"""Routing metrics of the MoE lab, on a fixed probe set (docs/moe.md defines each).

Entropies and mutual information come from `nnlabs.report.info`, shared by every lab.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from nnlabs.labs.moe.layer import MoE
from nnlabs.report.info import cond_entropy, entropy_bits
from nnlabs.spine.data import Vocab, encode_words

DOMAINS = ("names", "arith", "code")
CLASSES = ("start", "letter", "digit", "operator", "punct")


def char_class(ch: str) -> str:
    if ch == "":
        return "start"
    if ch.isalpha():
        return "letter"
    if ch.isdigit():
        return "digit"
    return "operator" if ch in "+-*=%<>" else "punct"


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, active per token): active leaves out the E - k experts a token does not visit."""
    total = sum(p.numel() for p in model.parameters())
    idle = sum((m.moe.n_experts - m.moe.top_k) * sum(p[0].numel() for p in (*m.up.parameters(), *m.down.parameters()))
               for m in moe_layers(model))
    return total, total - idle


def max_violation(load) -> float:
    """Wang et al. 2024: MaxVio = (max_i load_i - mean_i load_i) / mean_i load_i; 0 = even, E/k - 1 = all
    tokens on k experts."""
    load = np.asarray(load, dtype=np.float64)
    return float(load.max() / max(load.mean(), 1e-12) - 1)


def expert_load(chosen: torch.Tensor, n_experts: int) -> np.ndarray:
    """[E] how many of the assignments in `chosen` (any shape) went to each expert."""
    return np.bincount(chosen.reshape(-1).cpu().numpy(), minlength=n_experts)


def real_load(layer: MoE) -> np.ndarray:
    """[E] the layer's load in its last forward, over the real (non-padding) tokens only."""
    return expert_load(layer.stats["chosen"][layer.target_mask.reshape(-1)], layer.moe.n_experts)


def router_choices(probs: torch.Tensor, layer: MoE) -> list[list[list]]:
    """Per position: its top-k experts and the runner-up, ranked as the router selects them (p_i(x) + b_i,
    the loss-free bias), each with its router probability p_i(x) rounded to 3 decimals. probs [N, E]."""
    shown = min(layer.moe.n_experts, layer.moe.top_k + 1)
    rank = (probs + layer.balance_bias).topk(shown, dim=-1).indices  # [N, k + 1]
    p = probs.gather(-1, rank).double().round(decimals=3)  # [N, k + 1]
    return [[[e, q] for e, q in zip(es, qs)] for es, qs in zip(rank.tolist(), p.tolist())]


def routing_metrics(chosen, probs, kept, domain, cls, char, n_experts: int, prev_top1=None) -> dict:
    """Metrics of one layer's routing of the probe tokens. chosen, kept [N, k] and probs [N, E] tensors;
    domain, cls, char [N] int arrays; prev_top1 = the top-1 experts at the previous evaluation."""
    chosen, probs, kept = chosen.cpu(), probs.cpu().double(), kept.cpu()
    top1 = chosen[:, 0].numpy()  # [N]
    top_prob = probs.max(-1).values  # [N]
    # u_i: the share of the N*k assignments that chose expert i
    load = np.bincount(chosen.reshape(-1).numpy(), minlength=n_experts) / chosen.numel()  # [E]
    domain_expert = np.zeros((len(DOMAINS), n_experts), dtype=np.int64)
    class_expert = np.zeros((len(CLASSES), n_experts), dtype=np.int64)
    np.add.at(domain_expert, (domain, top1), 1)
    np.add.at(class_expert, (cls, top1), 1)
    h_expert = cond_entropy(top1)
    return {
        "domain_expert": domain_expert.tolist(), "class_expert": class_expert.tolist(),
        "utilisation": load.round(5).tolist(),
        # max_i u_i / mean_i u_i = MaxVio + 1
        "load_balance_ratio": float(load.max() * n_experts),
        # mean_x H(p(x))
        "routing_entropy": float((-(probs * probs.clamp_min(1e-12).log2()).sum(-1)).mean()),
        # H(u): log2(E) when perfectly balanced
        "utilisation_entropy": entropy_bits(load),
        "dropped_frac": float(1 - kept.double().mean()),
        # router saturation: mean_x max_i p_i(x), and the share of tokens whose top probability exceeds 0.9
        "top_prob": float(top_prob.mean()), "saturated_frac": float((top_prob > 0.9).double().mean()),
        "instability": None if prev_top1 is None else float((top1 != prev_top1).mean()),
        # how much each label tells about the top-1 expert, in bits (mutual information)
        "mi_domain": h_expert - cond_entropy(top1, domain), "mi_char": h_expert - cond_entropy(top1, char),
        "mi_domain_given_char": cond_entropy(top1, char) - cond_entropy(top1, char, domain),
        "mi_char_given_domain": cond_entropy(top1, domain) - cond_entropy(top1, char, domain),
        "top1": top1.tolist(),
    }


@torch.no_grad()
def route_texts(model, vocab: Vocab, texts: list[str], block_size: int) -> list[dict]:
    """Run texts through the model; per layer, the routing of every real position (start token + chars)."""
    data = encode_words(texts, vocab, block_size)
    was_training = model.training
    model.eval()
    model(data.x)
    model.train(was_training)
    real = (data.y >= 0).reshape(-1)  # [B*T]
    return [{k: v[real] for k, v in m.stats.items()} for m in moe_layers(model)]


def same_expert_rate(top1: np.ndarray, pairs: np.ndarray, load: np.ndarray) -> dict:
    """How often consecutive tokens of a line share their top-1 expert (Mixtral's measure), beside two
    chance rates: 1/E, and sum_i u_i^2 (two independent tokens drawn from the actual utilisation u)."""
    u = load / max(load.sum(), 1)
    return {"rate": float((top1[pairs] == top1[pairs + 1]).mean()), "uniform": 1 / len(load),
            "utilisation": float((u ** 2).sum())}


def shared_chars(texts_by_domain: dict[str, list[str]]) -> set[str]:
    """The characters at least two domains use: letters (names and code), digits, operators and space
    (arithmetic and code). No character is used by all three: names and arithmetic share none."""
    used = [set("".join(texts)) for texts in texts_by_domain.values()]
    return {ch for ch in set.union(*used) if sum(ch in u for u in used) >= 2}
