"""Part 5 — adaptive computation: one shared transformer block applied pass after pass, with a halting
unit that decides, per position, how many passes that position gets (Graves 2016, "Adaptive Computation
Time"; Banino et al. 2021, "PonderNet"). Can a model learn to spend more passes only where they help,
and does the compute it saves show up in the MACs actually run?

`halting` is the patch on the spine (`nnlabs diff act`): `RecurrentDepth.run_blocks` replaces the
spine's loop over distinct blocks with a loop over passes of one block on the positions still running,
and `step` is the spine's Block.forward on those rows. `metrics` measures accuracy, passes and MACs per
example; `experiment` runs fixed depth, ACT, PonderNet and the confidence early exit
(`nnlabs lab act --budget {tiny,quick,full}`); `report` writes figures, report.md and act.html.
Every metric is defined in docs/act.md.
"""

from nnlabs.labs import Patch
from nnlabs.labs.act.experiment import main
from nnlabs.labs.act.report import report

H = "nnlabs.labs.act.halting"
PATCHES = [
    Patch(lab=f"{H}:RecurrentDepth.step", spine="nnlabs.spine.models:Block.forward",
          why="s <- Block(s + e_n) on the running rows only; `state` and the key/value cache are [BT, C]"),
    Patch(lab=f"{H}:RecurrentDepth.run_blocks", spine="nnlabs.spine.models:Transformer.run_blocks",
          why="passes of one block instead of a stack; a halting rule weighs each pass and stops positions"),
    Patch(lab=f"{H}:HaltingUnit", why="h_n = sigmoid(w . s_n + b) per running position, made by a rule into p_n"),
    Patch(lab=f"{H}:RunningAttention", why="attention for the running queries; halted positions stay keys"),
    Patch(lab=f"{H}:RecurrentDepth.__init__", why="the wiring: the spine's Transformer with one block, a step "
          "embedding and the halting unit"),
]

__all__ = ["PATCHES", "main", "report"]
