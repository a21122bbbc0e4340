"""Part 7, the DreamCoder lab: a typed list DSL, guided enumeration, and wake–sleep library learning.

One module per idea, in the order the post reads them:
  dsl.py          types, programs (de Bruijn), s-expressions, the budgeted interpreter
  search.py       the unigram grammar, enumeration by description length, parallel task solving
  recognition.py  the recognition model: task examples -> grammar weights
  compress.py     abstraction sleep: our compressor and the Stitch backend
  wake_sleep.py   the loop: wake, abstraction sleep, dream sleep, the metrics of a cycle
  experiment.py   `nnlabs lab dreamcoder`: the budgets, runs and baselines
  report.py       figures, report.md, payoff.json
  explorable.py   dreamcoder.html: a cycle scrubber over the library graph, curves in step (explorable.*);
                  Part 7.5's neural-or-program view of one task and input band (explorable_neural.*)

Independent of the transformer spine (PyTorch only for the recognition model), so no patches.
"""

from nnlabs.labs import Patch
from nnlabs.labs.dreamcoder.experiment import main
from nnlabs.labs.dreamcoder.report import report

PATCHES: list[Patch] = []

__all__ = ["main", "report", "PATCHES"]
