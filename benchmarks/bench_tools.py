"""Generation with tools, batched against one row at a time, measured side by side (Part 6, issue 15).

The tools evaluation decodes every test query twice (forced <NO_TOOL>, forced <CALL_TOOL>) with the tool in
the loop (and reads π once, one batched forward: not timed here). Two ways to decode, on the same model and queries:
  row at a time  `generate_with_tools(..., rows_per_batch=1)`: every row alone — what the lab's loop came to
                 before, since the spine's `generate` runs rows one at a time once spliced tool outputs
                 make them differ in length
  batched        `generate_with_tools`: rows sorted by length, 128 at a time, right-padded, output spliced
                 per row
Target (issue 15): batched ≥ 5x faster than the row-at-a-time loop, same outputs (tests/test_tools.py).

    .venv/bin/python benchmarks/bench_tools.py [--run runs/tools/cost_0.5] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nnlabs.labs.tools.experiment import BUDGETS, block_size_for, load_suite, per_family
from nnlabs.labs.tools.policy import ToolTokens, ToolUser, encode_pairs, make_vocab
from nnlabs.labs.tools.sampling import generate_with_tools, tool_splice
from nnlabs.spine.models import ModelConfig
from nnlabs.spine.train import TrainConfig, load_checkpoint, train


def load_or_train(run: Path, vocab, train_rows, block_size: int, steps: int) -> ToolUser:
    """The lab's model from a run directory; without one, the quick budget's model trained for `steps`."""
    if (run / "checkpoint.pt").exists():
        cfg = ModelConfig(**json.loads((run / "config.json").read_text())["model"])
        model = ToolUser(cfg, vocab, 0.5)
        model.load_state_dict(load_checkpoint(run / "checkpoint.pt")["model"])
        print(f"model: {run}")
        return model
    quick = BUDGETS["quick"]
    cfg = ModelConfig(vocab_size=len(vocab), block_size=block_size, n_layer=quick.n_layer, n_head=quick.n_head,
                      n_embd=quick.n_embd)
    torch.manual_seed(0)
    model = ToolUser(cfg, vocab, 0.5)
    data = encode_pairs(train_rows, vocab, block_size)
    tc = TrainConfig(max_steps=steps, batch_size=quick.batch_size, learning_rate=quick.learning_rate,
                     warmup_steps=steps // 10, eval_interval=10 ** 9, eval_train_items=100, device="cpu", threads=1)
    # a fresh folder each time: a run directory left by an earlier benchmark would be resumed, not retrained
    with tempfile.TemporaryDirectory() as tmp:
        train(model, data, data, tc, Path(tmp), progress=False)
    print(f"model: no {run}/checkpoint.pt, so the quick model trained for {steps} steps")
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/tools/cost_0.5", help="a tools run directory with checkpoint.pt")
    p.add_argument("--steps", type=int, default=300, help="training steps when there is no checkpoint")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the lab runs on 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    train_rows, val_rows, test_rows, table = load_suite(0)
    val_rows, test_rows = (per_family(rows, BUDGETS["quick"].eval_per_family) for rows in (val_rows, test_rows))
    vocab = make_vocab()
    block_size = block_size_for(train_rows + val_rows + test_rows, vocab)
    model = load_or_train(Path(a.run), vocab, train_rows, block_size, a.steps).eval()
    splice = tool_splice(vocab, table)
    queries = [r["query"] for r in test_rows]
    prompts = [[0] + vocab.encode(q) + [vocab.stoi[d]] for d in (ToolTokens.NO, ToolTokens.CALL) for q in queries]
    ways = {"row at a time": lambda: generate_with_tools(model, prompts, splice, rows_per_batch=1),
            "batched": lambda: generate_with_tools(model, prompts, splice)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    outputs = {}
    for _ in range(a.repeats):
        # alternate the ways, so a slow moment of a shared machine hits them alike
        for name, way in ways.items():
            t0 = time.perf_counter()
            outputs[name] = way()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["row at a time"])
    print(f"{len(prompts)} rows ({len(queries)} test queries x 2 forced decisions), greedy, tools in the loop; "
          f"median of {a.repeats}, {a.threads} thread(s)")
    for name, ts in times.items():
        same = sum(o == r for o, r in zip(outputs[name], outputs["row at a time"])) / len(prompts)
        print(f"  {name:20s} {statistics.median(ts):7.2f} s   {base / statistics.median(ts):5.1f}x faster than "
              f"row at a time   same outputs: {same:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
