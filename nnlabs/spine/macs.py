"""The series' compute unit: forward multiply-accumulates (MACs), counted from the shapes actually used.

Every nn.Linear counts rows_it_saw x in_features x out_features, so a layer that runs on fewer rows
(an MoE expert on its own tokens, an ACT step on the positions still running) counts less — nothing
is assumed from the configuration. A module doing other matmuls (attention's QK^T and AV) declares
them with a `count_macs(inputs, output) -> int` method. Lookups (embeddings, a bigram table) are free.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.nn as nn


class MacCounter:
    def __init__(self):
        self.macs = 0

    def per_token(self, tokens: int) -> float:
        return self.macs / max(tokens, 1)


@contextmanager
def count_macs(model: nn.Module):
    """with count_macs(model) as c: model(x) -> c.macs is the forward MACs of everything run inside."""
    counter = MacCounter()

    def linear_hook(module, inputs, output):
        counter.macs += (inputs[0].numel() // module.in_features) * module.in_features * module.out_features

    def custom_hook(module, inputs, output):
        counter.macs += int(module.count_macs(inputs, output))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif hasattr(m, "count_macs"):
            handles.append(m.register_forward_hook(custom_hook))
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()
