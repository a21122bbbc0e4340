"""Part 4 — Mixture of experts: sparse top-k expert FFNs on the domain mixture.

`layer` is the patch on the spine (`nnlabs diff moe`): every block's FeedForward becomes an `MoE`, a
linear router and E expert FFNs; `metrics` measures the routing; `experiment` trains dense and MoE
transformers on the pack's domain mixture (`nnlabs lab moe --budget quick`); `report` turns the run
directories into figures, report.md and the routing explorable. Every metric is defined in docs/moe.md.
"""

from nnlabs.labs import Patch
from nnlabs.labs.moe.experiment import main
from nnlabs.labs.moe.report import report

PATCHES = [
    Patch(lab="nnlabs.labs.moe.layer:MoE", spine="nnlabs.spine.models:FeedForward",
          why="the feed-forward becomes a router and E FeedForwards; each token runs through its top-k"),
    Patch(lab="nnlabs.labs.moe.layer:GroupedLinear"),
    Patch(lab="nnlabs.labs.moe.layer:MoEConfig"),
    Patch(lab="nnlabs.labs.moe.layer:switch_balance_loss"),
    Patch(lab="nnlabs.labs.moe.layer:update_balance_bias"),
    Patch(lab="nnlabs.labs.moe.layer:capacity_mask"),
    Patch(lab="nnlabs.labs.moe.layer:moe_transformer", why="the wiring: the spine's ffn_factory builds MoEs"),
]

__all__ = ["PATCHES", "main", "report"]
