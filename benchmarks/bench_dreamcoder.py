"""DreamCoder lab benchmarks, printed side by side:

  1. compression: our compressor vs Stitch (stitch_core) on the same corpora — compression ratio
     (Stitch's definition: corpus cost before / after, library not counted; Stitch's cost model) and
     wall time, with the ratios ours/Stitch;
  2. enumeration: programs enumerated per second (in DL order, with pruning) and programs tried per
     second when solving tasks (each run on the task's examples).

Usage: .venv/bin/python benchmarks/bench_dreamcoder.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from nnlabs.labs.dreamcoder.compress import compress, stitch_compress
from nnlabs.labs.dreamcoder.dsl import parse
from nnlabs.labs.dreamcoder.experiment import tasks_from_json
from nnlabs.labs.dreamcoder.search import Grammar, OutOfBudget, SearchBudget, enumerate_programs, solve_task
from nnlabs.pack import list_programs


def corpora(seed: int = 0) -> dict:
    files = list_programs.build(seed)
    train = [parse(t["program"]) for t in json.loads(files["list_programs/train.json"])]
    test = [parse(t["program"]) for t in json.loads(files["list_programs/test.json"])]
    rng = random.Random(seed)
    return {"train refs": train, "train+test refs": train + test,
            "random 30 of train": rng.sample(train, 30), "random 15 of test": rng.sample(test, 15)}


def bench_compression(iterations: int, arity: int) -> None:
    print(f"\n== compression: {iterations} iterations, max arity {arity} ==")
    print(f"{'corpus':22s} {'n':>4s} {'ours':>7s} {'stitch':>7s} {'ours/st':>8s} {'ours s':>8s} {'stitch s':>9s} "
          f"{'time x':>7s}")
    for name, progs in corpora().items():
        ours = compress(progs, iterations, arity)
        theirs = stitch_compress(progs, iterations, arity)
        r_o, r_s = ours.ratio(progs), theirs.ratio(progs)
        print(f"{name:22s} {len(progs):4d} {r_o:7.3f} {r_s:7.3f} {100 * r_o / r_s:7.1f}% {ours.seconds:8.3f} "
              f"{theirs.seconds:9.4f} {ours.seconds / max(1e-6, theirs.seconds):6.0f}x")


def bench_enumeration(seconds: float) -> None:
    print(f"\n== enumeration: {seconds:.0f} s per request ==")
    files = list_programs.build(0)
    tasks = tasks_from_json(files["list_programs/train.json"], "pack")
    g = Grammar()
    for task in (tasks[0], next(t for t in tasks if str(t.request).endswith("int") and t.level == 1)):
        t0, n, reached = time.perf_counter(), 0, 0.0
        deadline = t0 + seconds
        try:
            for dl, _ in enumerate_programs(g, g.log_weights, task.request, [x for x, _ in task.examples],
                                            deadline=deadline):
                n, reached = n + 1, dl
                if time.perf_counter() > deadline:
                    break
        except OutOfBudget:  # the deadline struck inside a band
            pass
        el = time.perf_counter() - t0
        print(f"  {str(task.request):28s} {n:7d} programs in {el:5.1f}s = {n / el:8.0f} programs/s "
              f"(reached DL {reached:.1f} nats)")
    tried = secs = solved = 0
    for task in tasks[:12]:
        r = solve_task((task, g, g.log_weights, SearchBudget(programs=5000, seconds=seconds / 4)))
        tried, secs, solved = tried + r["tried"], secs + r["seconds"], solved + r["solved"]
    print(f"  solving 12 level-1 tasks: {tried} programs tried in {secs:.1f}s = {tried / secs:.0f} programs/s, "
          f"{solved}/12 solved")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    bench_compression(5 if a.quick else 10, 3)
    bench_enumeration(4.0 if a.quick else 10.0)


if __name__ == "__main__":
    main()
