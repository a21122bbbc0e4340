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
    idle = sum((m.moe.n_experts - m.moe.top_k) * sum(p.numel() for p in m.experts[0].parameters())
               for m in moe_layers(model))
    return total, total - idle


def routing_metrics(chosen, probs, kept, domain, cls, char, n_experts: int, prev_top1=None) -> dict:
    """Metrics of one layer's routing of the probe tokens. chosen, kept [N, k] and probs [N, E] tensors;
    domain, cls, char [N] int arrays; prev_top1 = the top-1 experts at the previous evaluation."""
    chosen, probs, kept = chosen.cpu(), probs.cpu().double(), kept.cpu()
    top1 = chosen[:, 0].numpy()  # [N]
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
        # max_i u_i / mean_i u_i
        "load_balance_ratio": float(load.max() * n_experts),
        # mean_x H(p(x))
        "routing_entropy": float((-(probs * probs.clamp_min(1e-12).log2()).sum(-1)).mean()),
        # H(u): log2(E) when perfectly balanced
        "utilisation_entropy": entropy_bits(load),
        "dropped_frac": float(1 - kept.double().mean()),
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
