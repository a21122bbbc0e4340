"""Part 6, the tool-use lab: a learned CALL/NO_TOOL decision with a price on calls, real tools inside
sampling, and the dream state.

One module per idea, in the order the post reads them:
  policy.py      the patch: both branches of every query side by side, the priced decision (CallPolicy)
  sampling.py    tools inside generation: the splice hook that runs the pack's tool on the model's call
  metrics.py     per-query records (π, answers with and without the tool, compute) and their summaries
  experiment.py  `nnlabs lab tools`: the base run, one run per call price, the dream state
  report.py      figures, report.md and payoff.json
  explorable.py  tools.html: a price slider along the swept frontier, the oracle beside it (explorable.*)
"""

from nnlabs.labs import Patch
from nnlabs.labs.tools.experiment import main
from nnlabs.labs.tools.report import report

PATCHES = [
    Patch(lab="nnlabs.labs.tools.policy:ToolTokens", why="four new tokens: the decision and the tool's brackets"),
    Patch(lab="nnlabs.labs.tools.policy:branch_texts", why="every query written both ways"),
    Patch(lab="nnlabs.labs.tools.policy:encode_pairs",
          why="both branches side by side; imitation only on what the model writes"),
    Patch(lab="nnlabs.labs.tools.policy:CallPolicy", why="the decision, trained by its advantage minus a price"),
    Patch(lab="nnlabs.labs.tools.policy:ToolUser",
          why="the wiring: the spine's Transformer + the policy, whose aux_loss the spine adds to the loss"),
    Patch(lab="nnlabs.labs.tools.sampling:tool_splice",
          why="the engine: on <CALL_TOOL>, copy the query into the call, run the real tool, splice its output"),
]

__all__ = ["PATCHES", "main", "report"]
