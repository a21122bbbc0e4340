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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from nnlabs.labs import run_config
from nnlabs.labs.dreamcoder.compress import compress, cost, stitch_compress
from nnlabs.labs.dreamcoder.dsl import base_grammar, library_calls, parse, show, size, symbols, to_json
from nnlabs.labs.dreamcoder.recognition import (
    MAX_EXAMPLES,
    MAX_LEN,
    RecognitionModel,
    make_dreams,
    predict,
    train_recognition,
)
from nnlabs.labs.dreamcoder.search import Grammar, SearchBudget, Task, fit_unigram, solve_tasks, summary


@dataclass
class LoopConfig:
    name: str = "full"
    cycles: int = 3
    # per task per wake: programs tried
    programs: int = 2000
    # per task per wake: wall-clock cap
    seconds: float = 2.0
    # abstraction sleep on/off
    learn: bool = True
    # dream sleep on/off
    recognition: bool = True
    # or "stitch"
    compressor: str = "ours"
    # abstractions proposed per sleep (at most)
    iterations: int = 4
    max_arity: int = 3
    dreams: int = 100
    recognition_steps: int = 150
    seed: int = 0
    # 0 = nnlabs.labs.worker_processes()
    processes: int = 0
    # the base primitives (dsl.BASES): "lab" (with filter) or "dreamcoder" (DreamCoder's list DSL, no filter)
    base: str = "lab"


def suggest_name(body: str, bodies: dict | None = None) -> str:
    """A readable guess at what an abstraction is, from the primitives its body uses (looking through
    earlier abstractions it calls: `bodies` maps their names to their bodies)."""
    bodies = bodies or {}
    has = set(symbols(body)).union(*(symbols(bodies[name]) for name in library_calls(body, bodies)))
    if "filter" in has and "length" in has:
        return "count-where"
    if "filter" in has:
        return "filter-by-" + ("threshold" if "gt?" in has else "divisibility" if "mod" in has else
                               "equality" if "eq?" in has else "predicate")
    if "fold" in has and "cons" in has:
        return "filter from fold" if "if" in has else "map-like fold"
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


@dataclass
class Learner:
    """What wake–sleep carries from one cycle to the next."""

    grammar: Grammar
    library: list = field(default_factory=list)
    # train task name -> its program, in the current library
    solutions: dict = field(default_factory=dict)
    model: RecognitionModel | None = None
    recognition_loss: float | None = None


def run_loop(train: list[Task], test: list[Task], cfg: LoopConfig, run_dir: Path, progress=None,
             budget_name: str = "custom", searching=None) -> dict:
    """Each cycle: wake, abstraction sleep, dream sleep, then one metrics line per split. `progress(name,
    cycle, cycles, record)` hears of each cycle; `searching(name, cycle)`, if given, returns the wake's
    `on_done` for `solve_tasks`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, cfg, budget_name)
    learner = Learner(Grammar(base_grammar(cfg.base)))
    rng = random.Random(cfg.seed)
    by_name = {t.name: t for t in train}
    cycles, t_start = [], time.perf_counter()
    with open(run_dir / "metrics.jsonl", "w", encoding="utf-8") as metrics:
        for cycle in range(1, cfg.cycles + 1):
            record = {"cycle": cycle, "library": [show(inv.body) for inv in learner.library]}
            record |= wake(learner, train, test, cfg, searching(cfg.name, cycle) if searching else None)
            if cfg.learn and learner.solutions:
                record |= abstraction_sleep(learner, by_name, cfg)
            record["solutions"] = {n: show(p) for n, p in sorted(learner.solutions.items())}
            dreamt = cfg.recognition and bool(learner.solutions)
            if dreamt:
                record |= dream_sleep(learner, train, by_name, cfg, rng, cycle)
                torch.save(learner.model.state_dict(), run_dir / "checkpoint.pt")
            for line in cycle_metrics(cycle, record["wake"], learner, len(train), len(test), dreamt,
                                      time.perf_counter() - t_start):
                metrics.write(json.dumps(line, sort_keys=True) + "\n")
            metrics.flush()
            cycles.append(record)
            if progress:
                progress(cfg.name, cycle, cfg.cycles, record)
    bodies = {inv.name: show(inv.body) for inv in learner.library}
    analysis = {"config": asdict(cfg), "cycles": cycles,
                "library": [{"name": inv.name, "body": show(inv.body), "type": str(inv.tp),
                             "suggested": suggest_name(show(inv.body), bodies)} for inv in learner.library]}
    (run_dir / "analysis.json").write_text(json.dumps(analysis, indent=1, sort_keys=True) + "\n")
    with open(run_dir / "samples.txt", "w", encoding="utf-8") as f:
        for n, p in sorted(learner.solutions.items()):
            f.write(f"{n}\t{show(p)}\n")
    return analysis


def write_config(run_dir: Path, cfg: LoopConfig, budget_name: str) -> None:
    # no spine model: the recognition model's shape is fixed in recognition.py
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("name", "seed")}
    config = run_config(lab="dreamcoder", run=cfg.name, budget=budget_name, seed=cfg.seed, model=None, **settings)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def wake(learner: Learner, train: list[Task], test: list[Task], cfg: LoopConfig, on_done=None) -> dict:
    """Search every unsolved training task and every held-out task; solved training tasks join the
    corpus. Returns the cycle record's `wake` (one result per task searched, train first) and `wake_s`."""
    todo = [t for t in train if t.name not in learner.solutions] + test
    g = learner.grammar
    weights = predict(learner.model, g, todo) if learner.model is not None else [g.log_weights] * len(todo)
    t0 = time.perf_counter()
    results = solve_tasks(todo, g, weights, SearchBudget(programs=cfg.programs, seconds=cfg.seconds), cfg.processes,
                          on_done)
    wake_s = time.perf_counter() - t0
    lib = library_of(learner.library)
    n_train = len(todo) - len(test)
    for i, (task, r) in enumerate(zip(todo, results)):
        r["split"] = "train" if i < n_train else "test"
        if r["solved"] and r["split"] == "train":
            learner.solutions[task.name] = parse(r["program"], lib)
    return {"wake": results, "wake_s": round(wake_s, 3)}


def abstraction_sleep(learner: Learner, by_name: dict[str, Task], cfg: LoopConfig) -> dict:
    """Compress the corpus with both compressors (Stitch as the yardstick, and ours without DreamCoder's
    nontriviality rule: Stitch's objective, to compare the two searches), keep the chosen one's abstractions, rewrite
    the corpus in them and refit the unigram weights on the rewritten corpus."""
    names = sorted(learner.solutions)
    corpus = [learner.solutions[n] for n in names]
    start, lib = len(learner.library), library_of(learner.library)
    ours = compress(corpus, cfg.iterations, cfg.max_arity, start=start)
    theirs = stitch_compress(corpus, cfg.iterations, cfg.max_arity, start=start, library=lib)
    chosen = theirs if cfg.compressor == "stitch" else ours
    free = compress(corpus, cfg.iterations, cfg.max_arity, start=start, only_nontrivial=False)
    compression = {"corpus_size": len(corpus), "corpus_cost": sum(cost(p) for p in corpus),
                   "ours": compression_stats(ours, corpus), "stitch": compression_stats(theirs, corpus),
                   "ours_stitch_objective": compression_stats(free, corpus)}
    learner.library += chosen.abstractions
    bodies = {inv.name: show(inv.body) for inv in learner.library}
    new = [{"name": step["name"], "body": step["body"], "suggested": suggest_name(step["body"], bodies),
            "helps": [names[i] for i in step["uses"]]} for step in chosen.steps]
    learner.solutions = dict(zip(names, chosen.rewritten))
    g = learner.grammar = Grammar(base_grammar(cfg.base) + tuple(learner.library))
    summaries = [summary(g, learner.solutions[n], by_name[n].request) for n in names]
    g.log_weights = fit_unigram(g, [s for s in summaries if s])
    return {"compression": compression, "new_abstractions": new}


def compression_stats(result, corpus) -> dict:
    # cost / library_cost: the rewritten corpus and this sleep's new bodies in Stitch's units, exact (the
    # explorable's description-length curve sums them; the ratios are rounded)
    return {"ratio": round(result.ratio(corpus), 4), "mdl_ratio": round(result.mdl_ratio(corpus), 4),
            "seconds": round(result.seconds, 4), "n": len(result.abstractions),
            "cost": sum(cost(p) for p in result.rewritten),
            "library_cost": sum(cost(a.body) for a in result.abstractions)}


def dream_sleep(learner: Learner, train: list[Task], by_name: dict[str, Task], cfg: LoopConfig,
                rng: random.Random, cycle: int) -> dict:
    """Train the recognition model on replays (the solved training tasks, with their programs) and
    dreams (programs sampled from the library, run on real inputs). Returns the record's `dreams`."""
    g = learner.grammar
    replays = [(by_name[n], summary(g, p, by_name[n].request)) for n, p in sorted(learner.solutions.items())]
    replays = [(t, s) for t, s in replays if s]
    dreams = make_dreams(g, train, cfg.dreams, rng)
    learner.model, learner.recognition_loss = train_recognition(g, replays, dreams, cfg.recognition_steps,
                                                                cfg.seed + cycle)
    return {"dreams": [show_task(t) for t, _ in dreams[:5]]}


def cycle_metrics(cycle: int, results: list[dict], learner: Learner, n_train: int, n_test: int, dreamt: bool,
                  wall_s: float) -> list[dict]:
    """One metrics line per split: tasks solved (training: the corpus so far; held-out: this wake),
    search spent, library size, and the recognition model's loss and cost when it was trained."""
    lines = []
    for split in ("train", "test"):
        rs = [r for r in results if r["split"] == split]
        n_tasks = n_train if split == "train" else n_test
        solved_now = [r for r in rs if r["solved"]]
        solved_total = len(learner.solutions) if split == "train" else len(solved_now)
        tried = sum(r["tried"] for r in rs)
        search_s = sum(r["seconds"] for r in rs)
        lines.append({
            "step": cycle, "split": split, "loss": learner.recognition_loss,
            "tokens": 2 * MAX_EXAMPLES * MAX_LEN if dreamt else 0,
            "macs": learner.model.macs_per_task() if dreamt else 0,
            "wall_s": round(wall_s, 3),
            "solved": solved_total, "n_tasks": n_tasks, "solved_frac": round(solved_total / max(1, n_tasks), 4),
            "searched": len(rs), "solved_this_wake": len(solved_now),
            "programs_tried": tried, "tried_per_task": round(tried / max(1, len(rs)), 1),
            "tried_per_solved": round(tried / len(solved_now), 1) if solved_now else None,
            "search_s": round(search_s, 3),
            "search_s_per_solved": round(search_s / len(solved_now), 4) if solved_now else None,
            "programs_per_s": round(tried / max(1e-9, search_s), 1),
            "library_size": len(learner.library),
            "search_errors": sum(r.get("ended") == "error" for r in rs),
            "avg_solution_size": round(sum(size(p) for p in learner.solutions.values())
                                       / max(1, len(learner.solutions)), 3),
        })
    return lines


def show_task(t: Task) -> dict:
    return {"name": t.name, "examples": [{"i": to_json(x), "o": to_json(y)} for x, y in t.examples[:3]]}
