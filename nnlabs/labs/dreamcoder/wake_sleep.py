"""The wake–sleep loop (DreamCoder, Ellis et al. 2021), one cycle at a time:

  wake              search every unsolved training task and every held-out task with the current
                    library L; the grammar weights are the recognition model's w(task) (or the
                    unigram weights when there is no model). Solved training tasks join the corpus.
  abstraction sleep compress the corpus: L <- L + new abstractions, programs rewritten in them,
                    unigram weights refit on the rewritten corpus (search.fit_unigram).
  dream sleep       train the recognition model on replays (solved tasks) and dreams (programs
                    sampled from L, run on real inputs).

Held-out tasks are searched every cycle but never join the corpus: they measure whether the library
makes new tasks cheaper. Everything a report needs is written per cycle to `metrics.jsonl` and
`analysis.json` in the run directory.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nnlabs.labs.dreamcoder.compress import compress, cost, stitch_compress
from nnlabs.labs.dreamcoder.dsl import BASE_GRAMMAR, parse, show, size, to_json
from nnlabs.labs.dreamcoder.recognition import (
    MAX_EXAMPLES,
    MAX_LEN,
    make_dreams,
    predict,
    train_recognition,
)
from nnlabs.labs.dreamcoder.search import Budget, Grammar, Task, fit_unigram, solve_tasks, summary


@dataclass
class LoopConfig:
    name: str = "full"
    cycles: int = 3
    programs: int = 2000          # per task per wake: programs tried
    seconds: float = 2.0          # per task per wake: wall-clock cap
    learn: bool = True            # abstraction sleep on/off
    recognition: bool = True      # dream sleep on/off
    compressor: str = "ours"      # or "stitch"
    iterations: int = 4           # abstractions proposed per sleep (at most)
    max_arity: int = 3
    dreams: int = 100
    recognition_steps: int = 150
    seed: int = 0
    processes: int = 0            # 0 = all cores


def suggest_name(body: str, bodies: dict | None = None) -> str:
    """A readable guess at what an abstraction is, from the primitives its body uses (looking through
    earlier abstractions it calls: `bodies` maps their names to their bodies)."""
    has, todo = set(), [body]
    while todo:
        for tok in todo.pop().replace("(", " ").replace(")", " ").split():
            if tok not in has and bodies and tok in bodies:
                todo.append(bodies[tok])
            has.add(tok)
    if "filter" in has and "length" in has:
        return "count-where"
    if "filter" in has:
        return "filter-by-" + ("threshold" if "gt?" in has else "divisibility" if "mod" in has else
                               "equality" if "eq?" in has else "predicate")
    if "fold" in has and "if" in has:
        return "max-like fold"
    if "fold" in has and "+" in has:
        return "sum-like fold"
    if "fold" in has:
        return "fold-derived"
    if "map" in has:
        ops = [name for op, name in (("+", "add"), ("-", "sub"), ("*", "mul"), ("mod", "mod")) if op in has]
        return "map-" + ("-".join(ops) if ops else "derived")
    return "helper"


def library_of(library) -> dict:
    return {inv.name: inv for inv in library}


def run_loop(train: list[Task], test: list[Task], cfg: LoopConfig, run_dir: Path, progress=None) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2, sort_keys=True) + "\n")
    metrics = open(run_dir / "metrics.jsonl", "w", encoding="utf-8")
    rng = random.Random(cfg.seed)
    library: list = []
    g = Grammar(BASE_GRAMMAR)
    solutions: dict[str, object] = {}       # train task name -> program in the current library
    model, rec_loss = None, None
    budget = Budget(cfg.programs, cfg.seconds)
    cycles, t_start = [], time.perf_counter()
    by_name = {t.name: t for t in train}
    for cycle in range(1, cfg.cycles + 1):
        # ---- wake
        todo = [t for t in train if t.name not in solutions] + test
        weights = predict(model, g, todo) if model is not None else [g.log_weights] * len(todo)
        t0 = time.perf_counter()
        results = solve_tasks(todo, g, weights, budget, cfg.processes)
        wake_s = time.perf_counter() - t0
        lib = library_of(library)
        n_train = len(todo) - len(test)
        for i, (task, r) in enumerate(zip(todo, results)):
            r["split"] = "train" if i < n_train else "test"
            if r["solved"] and r["split"] == "train":
                solutions[task.name] = parse(r["program"], lib)
        record = {"cycle": cycle, "library": [show(inv.body) for inv in library],
                  "wake": results, "wake_s": round(wake_s, 3)}
        # ---- abstraction sleep
        if cfg.learn and solutions:
            names = sorted(solutions)
            corpus = [solutions[n] for n in names]
            ours = compress(corpus, cfg.iterations, cfg.max_arity, start=len(library))
            theirs = stitch_compress(corpus, cfg.iterations, cfg.max_arity, start=len(library), library=lib)
            chosen = theirs if cfg.compressor == "stitch" else ours
            record["compression"] = {
                "corpus_size": len(corpus), "corpus_cost": sum(cost(p) for p in corpus),
                "ours": {"ratio": round(ours.ratio(corpus), 4), "mdl_ratio": round(ours.mdl_ratio(corpus), 4),
                         "seconds": round(ours.seconds, 4), "n": len(ours.abstractions)},
                "stitch": {"ratio": round(theirs.ratio(corpus), 4), "mdl_ratio": round(theirs.mdl_ratio(corpus), 4),
                           "seconds": round(theirs.seconds, 4), "n": len(theirs.abstractions)},
            }
            library += chosen.abstractions
            bodies = {inv.name: show(inv.body) for inv in library}
            record["new_abstractions"] = [
                {"name": s["name"], "body": s["body"], "suggested": suggest_name(s["body"], bodies),
                 "helps": [names[i] for i in s["uses"]]} for s in chosen.steps]
            solutions = dict(zip(names, chosen.rewritten))
            g = Grammar(BASE_GRAMMAR + tuple(library))
            summaries = [summary(g, solutions[n], by_name[n].request) for n in names]
            g.log_weights = fit_unigram(g, [s for s in summaries if s])
        record["solutions"] = {n: show(p) for n, p in sorted(solutions.items())}
        # ---- dream sleep
        rec_tokens = rec_macs = 0
        if cfg.recognition and solutions:
            replays = [(by_name[n], summary(g, p, by_name[n].request)) for n, p in sorted(solutions.items())]
            replays = [(t, s) for t, s in replays if s]
            dreams = make_dreams(g, train, cfg.dreams, rng)
            model, rec_loss = train_recognition(g, replays, dreams, cfg.recognition_steps, cfg.seed + cycle)
            rec_tokens = 2 * MAX_EXAMPLES * MAX_LEN
            rec_macs = model.macs_per_task()
            torch.save(model.state_dict(), run_dir / "checkpoint.pt")
            record["dreams"] = [show_task(t) for t, _ in dreams[:5]]
        # ---- metrics: one line per split per cycle
        for split in ("train", "test"):
            rs = [r for r in results if r["split"] == split]
            n_tasks = len(train) if split == "train" else len(test)
            solved_now = [r for r in rs if r["solved"]]
            solved_total = len(solutions) if split == "train" else len(solved_now)
            tried = sum(r["tried"] for r in rs)
            line = {
                "step": cycle, "split": split, "loss": rec_loss, "tokens": rec_tokens, "macs": rec_macs,
                "wall_s": round(time.perf_counter() - t_start, 3),
                "solved": solved_total, "n_tasks": n_tasks, "solved_frac": round(solved_total / max(1, n_tasks), 4),
                "searched": len(rs), "solved_this_wake": len(solved_now),
                "programs_tried": tried, "tried_per_task": round(tried / max(1, len(rs)), 1),
                "tried_per_solved": round(tried / len(solved_now), 1) if solved_now else None,
                "search_s": round(sum(r["seconds"] for r in rs), 3),
                "search_s_per_solved": (round(sum(r["seconds"] for r in rs) / len(solved_now), 4)
                                        if solved_now else None),
                "programs_per_s": round(tried / max(1e-9, sum(r["seconds"] for r in rs)), 1),
                "library_size": len(library),
                "avg_solution_size": round(sum(size(p) for p in solutions.values()) / max(1, len(solutions)), 3),
            }
            metrics.write(json.dumps(line, sort_keys=True) + "\n")
        metrics.flush()
        cycles.append(record)
        if progress:
            progress(cfg.name, cycle, cfg.cycles, record)
    metrics.close()
    bodies = {inv.name: show(inv.body) for inv in library}
    analysis = {"config": asdict(cfg), "cycles": cycles,
                "library": [{"name": inv.name, "body": show(inv.body), "type": str(inv.tp),
                             "suggested": suggest_name(show(inv.body), bodies)} for inv in library]}
    (run_dir / "analysis.json").write_text(json.dumps(analysis, indent=1, sort_keys=True) + "\n")
    with open(run_dir / "samples.txt", "w", encoding="utf-8") as f:
        for n, p in sorted(solutions.items()):
            f.write(f"{n}\t{show(p)}\n")
    return analysis


def show_task(t: Task) -> dict:
    return {"name": t.name, "examples": [{"i": to_json(x), "o": to_json(y)} for x, y in t.examples[:3]]}
