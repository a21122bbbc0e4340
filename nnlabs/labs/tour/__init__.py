"""Part 3, "A tour": three deltas on makemore's names, each one model change and the evidence for it.

  1. counting -> learned: the bigram count table and a bigram trained by gradient descent reach the
     same NLL; the learned loss curve converges onto the count model's line.
  2. MLP -> stable deep training: a 5-tanh-layer MLP with a naive init (N(0,1) weights), a scaled init
     (gain / sqrt(fan_in)) and BatchNorm (on the naive init), watched by `diagnostics.DeepMLPRecorder`
     (activation and gradient histograms, saturated and dead units, update-to-data ratios) through
     hooks. Nothing in the spine is modified.
  3. local -> attention: the transformer against the MLP on names, same recipe, same data.

`diagnostics.py` is the instrument, `experiment.py` the runs (`nnlabs lab tour --budget
{tiny,quick,full}`), `report.py` turns the run directories into figures, report.md, tour.html and
payoff.json. `nnlabs diff tour` prints delta 1 as code and the recorder that delta 2 reads.
"""

from __future__ import annotations

from nnlabs.labs import Patch
from nnlabs.labs.tour.diagnostics import DeepMLPRecorder, histogram, preact_grad_stats, saturation
from nnlabs.labs.tour.experiment import BUDGETS, DEEP_MODEL, DEEP_RUNS, TourBudget, main
from nnlabs.labs.tour.report import report

PATCHES = [
    Patch(lab="nnlabs.spine.models:Bigram", spine="nnlabs.spine.models:CountBigram",
          why="delta 1: the table stops being counted and starts being learned"),
    Patch(lab="nnlabs.labs.tour.diagnostics:DeepMLPRecorder",
          why="delta 2's instrument: hooks on each hidden tanh and on the optimizer step, the spine untouched"),
    Patch(lab="nnlabs.labs.tour.diagnostics:saturation", why="saturated, dead and mostly-dead units of a batch"),
    Patch(lab="nnlabs.labs.tour.diagnostics:preact_grad_stats", why="the gradient a saturated tanh lets through"),
    Patch(lab="nnlabs.labs.tour.diagnostics:histogram", why="the histograms the recorder keeps"),
]

__all__ = ["BUDGETS", "DEEP_MODEL", "DEEP_RUNS", "PATCHES", "DeepMLPRecorder", "TourBudget", "histogram", "main",
           "preact_grad_stats", "report", "saturation"]
