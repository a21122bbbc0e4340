"""DreamCoder lab benchmarks, printed side by side:

  1. compression: our compressor vs Stitch (stitch_core) on the same corpora — compression ratio
     (Stitch's definition: corpus cost before / after, library not counted; Stitch's cost model) and
     wall time, with the ratios ours/Stitch, ours with and without DreamCoder's nontriviality rule;
  2. search: programs tried per second per worker (one process) when solving the pack's list tasks,
     today's enumerator against the one before the rewrite (search.py and its interpreter dsl.py at
     BEFORE, loaded from git into modules of their own), the two run task by task in turn so machine
     load touches both alike; with uniform weights and with recognition-like (random, one
     near-certain) weights, at the quick budget's programs cap per wake and at no_learning's
     full-budget cap. About 5–10 minutes on an idle 2-core machine, by the day (most of it the enumerator before,
     under recognition-like weights); --quick ~2–4.

Usage: .venv/bin/python benchmarks/bench_dreamcoder.py [--quick] [--only search|compression]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from nnlabs.labs.dreamcoder import dsl, search
from nnlabs.labs.dreamcoder.compress import compress, stitch_compress
from nnlabs.labs.dreamcoder.dsl import parse
from nnlabs.labs.dreamcoder.experiment import BUDGETS, tasks_from_json
from nnlabs.pack import list_programs

# the last revision of search.py before the enumerator was rewritten (issue 17)
BEFORE = "a4d0b92"


def corpora(seed: int = 0) -> dict:
    files = list_programs.build(seed)
    train = [parse(t["program"]) for t in json.loads(files["list_programs/train.json"])]
    test = [parse(t["program"]) for t in json.loads(files["list_programs/test.json"])]
    rng = random.Random(seed)
    return {"train refs": train, "train+test refs": train + test,
            "random 30 of train": rng.sample(train, 30), "random 15 of test": rng.sample(test, 15)}


def bench_compression(iterations: int, arity: int) -> None:
    print(f"\n== compression: {iterations} iterations, max arity {arity} ==")
    print("ours = the lab's compressor (DreamCoder's nontriviality rule); "
          "free = the same without it (Stitch's objective)")
    print(f"{'corpus':22s} {'n':>4s} {'ours':>7s} {'free':>7s} {'stitch':>7s} {'ours/st':>8s} {'free/st':>8s} "
          f"{'ours s':>8s} {'stitch s':>9s} {'time x':>7s}")
    for name, progs in corpora().items():
        ours = compress(progs, iterations, arity)
        free = compress(progs, iterations, arity, only_nontrivial=False)
        theirs = stitch_compress(progs, iterations, arity)
        r_o, r_f, r_s = ours.ratio(progs), free.ratio(progs), theirs.ratio(progs)
        print(f"{name:22s} {len(progs):4d} {r_o:7.3f} {r_f:7.3f} {r_s:7.3f} {100 * r_o / r_s:7.1f}% "
              f"{100 * r_f / r_s:7.1f}% {ours.seconds:8.3f} {theirs.seconds:9.4f} "
              f"{ours.seconds / max(1e-6, theirs.seconds):6.0f}x")


def search_before():
    """search.py and the interpreter it ran on (dsl.py) as they were at BEFORE, as modules of their own
    (`search_before` importing `dsl_before`), or None where git or the revision is not at hand."""
    root = Path(__file__).resolve().parents[1]
    folder = Path(tempfile.mkdtemp())
    for name in ("dsl", "search"):
        try:
            text = subprocess.run(["git", "show", f"{BEFORE}:nnlabs/labs/dreamcoder/{name}.py"], cwd=root,
                                  capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None
        (folder / f"{name}_before.py").write_text(text.replace("nnlabs.labs.dreamcoder.dsl", "dsl_before"),
                                                  encoding="utf-8")
    for name in ("dsl_before", "search_before"):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # dataclasses look their module up in sys.modules
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def task_before(task: search.Task, before):
    """The task for the enumerator before: its type rebuilt from that revision's type classes."""
    def convert(t):
        if t.__class__ is dsl.TVar:
            return before.TVar(t.id)
        return before.TCon(t.name, tuple(convert(a) for a in t.args))

    return before.Task(task.name, convert(task.request), task.examples)


def recognition_like(g, seed: int) -> list:
    """Random log-weights with one near-certain production, as a recognition model predicts them."""
    rng = random.Random(seed)
    w = [rng.gauss(0.0, 1.5) for _ in range(g.size)]
    w[rng.randrange(len(g.productions))] = 4.0
    return w


def bench_search(n_tasks: int) -> None:
    before = search_before()
    if before is None:
        print(f"\n== search: skipped (needs git and revision {BEFORE} to load the enumerator before the rewrite) ==")
        return
    files = list_programs.build(0)
    tasks = tasks_from_json(files["list_programs/train.json"], "pack")
    tasks = random.Random(0).sample(tasks, n_tasks)
    full = BUDGETS["full"].programs * BUDGETS["full"].cycles
    # (weights, cap, tasks): fewer tasks where the enumerator before takes minutes per task
    rows = [("uniform", f"quick ({BUDGETS['quick'].programs})", BUDGETS["quick"].programs, tasks),
            ("recognition", f"quick ({BUDGETS['quick'].programs})", BUDGETS["quick"].programs,
             tasks[:max(1, n_tasks // 4)]),
            ("uniform", f"no_learning ({full})", full, tasks[:max(1, n_tasks // 6)])]
    print(f"\n== search: programs tried per second per worker on pack list tasks, before ({BEFORE}) vs now ==")
    print(f"{'weights':12s} {'programs cap':>19s} {'tasks':>5s} {'before':>8s} {'now':>8s} {'now/before':>11s}  "
          f"solved before/now")
    for weights, cap_name, cap, some in rows:
        rate = {"before": [0, 0.0], "now": [0, 0.0]}
        solved = {"before": 0, "now": 0}
        for i, task in enumerate(some):
            for name, module in (("before", before), ("now", search)):
                # in turn, task by task, so a change in machine load touches both alike
                g = module.Grammar()
                w = g.log_weights if weights == "uniform" else recognition_like(g, i)
                job = task if module is search else task_before(task, before)
                # the programs cap is the budget; the clock only a safety net
                r = module.solve_task((job, g, w, module.SearchBudget(programs=cap, seconds=900.0)))
                rate[name][0] += r["tried"]
                rate[name][1] += r["seconds"]
                solved[name] += r["solved"]
        b, n = (rate[k][0] / rate[k][1] for k in ("before", "now"))
        print(f"{weights:12s} {cap_name:>19s} {len(some):5d} {b:8.0f} {n:8.0f} {n / b:10.1f}x  "
              f"{solved['before']:6d}/{solved['now']}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=("search", "compression"))
    a = p.parse_args()
    if a.only != "search":
        bench_compression(5 if a.quick else 10, 3)
    if a.only != "compression":
        bench_search(4 if a.quick else 12)


if __name__ == "__main__":
    main()
