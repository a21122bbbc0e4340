"""`nnlabs lab dreamcoder`: the experiment, its baselines, and the report built from the run files.

Three runs on the pack's list suite (train tasks for learning, held-out tasks for testing):
  full            wake–sleep with abstraction sleep and the recognition model
  no_recognition  wake–sleep with abstraction sleep only (unigram weights refit each cycle; not at full)
  no_learning     the base DSL, uniform weights, each held-out task searched once with the total
                  budget the learners spend on it over all cycles (cycles x per-wake budget)
Then `report(out)` reads the run directories only: figures, report.md, dreamcoder.html.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nnlabs.labs import lab_parser, worker_processes
from nnlabs.labs.dreamcoder.dsl import (
    BASES,
    MAX_INT,
    MAX_LIST,
    arrow,
    base_grammar,
    parse,
    parse_type_name,
    size,
    to_value,
)
from nnlabs.labs.dreamcoder.head_to_head import run_head_to_head
from nnlabs.labs.dreamcoder.search import Grammar, SearchBudget, Task, solve_tasks
from nnlabs.labs.dreamcoder.wake_sleep import LoopConfig, run_loop, write_config
from nnlabs.spine.errors import UserError
from nnlabs.spine.rundir import claim, finished
from nnlabs.spine.train import write_json


@dataclass(frozen=True, kw_only=True)
class DreamCoderBudget:
    """Tasks (train, held-out: 0 = all; the highest curriculum level), wake–sleep cycles, per task per
    wake the programs tried and seconds, for dream sleep the dreams and recognition training steps, and
    the base primitives (dsl.BASES) unless --base says otherwise.
    The programs cap is the budget; the seconds cap is only a safety net set well above it, so results
    don't depend on the machine's speed."""

    name: str
    n_train: int
    n_test: int
    max_level: int
    cycles: int
    programs: int
    seconds: float
    dreams: int
    recognition_steps: int
    base: str = "lab"
    ablation: bool = True  # also run no_recognition (the library without the recognition model)


BUDGETS = {budget.name: budget for budget in (
    DreamCoderBudget(name="tiny", n_train=6, n_test=3, max_level=1, cycles=1, programs=400, seconds=5.0, dreams=10,
                     recognition_steps=10),
    DreamCoderBudget(name="quick", n_train=40, n_test=20, max_level=3, cycles=3, programs=1500, seconds=10.0,
                     dreams=100, recognition_steps=150),
    # full compares the learner with no learning (issue 17's verdict) and leaves the recognition ablation,
    # about a third of its search, to quick: within 60 minutes per seed
    DreamCoderBudget(name="full", n_train=0, n_test=0, max_level=3, cycles=3, programs=3000, seconds=20.0,
                     dreams=300, recognition_steps=400, base="dreamcoder", ablation=False),
)}


# -----------------------------------------------------------------------------
# tasks: from the pack, or from any file in DreamCoder's list-task JSON layout


class Unsupported(Exception):
    """A well-formed task this lab cannot run (a type its DSL lacks, values beyond its interpreter's
    bounds): skipped and counted, not an error."""


def tasks_from_json(text: str, source: str, skipped: dict[str, list[str]] | None = None) -> list[Task]:
    """Tasks from DreamCoder's list-task layout, each field checked: one sentence naming the task and the
    problem (a file from anywhere must not crash, hang or recurse the search). A task the lab cannot run
    is left out and its name added to `skipped[reason]`."""
    try:
        items = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{source} is not valid JSON ({str(e)[:60]}); pass a DreamCoder list-task JSON file "
                        "or omit the flag to use the pack") from None
    if not isinstance(items, list) or not items:
        raise UserError(f"{source} must hold a non-empty JSON list of tasks ([{{name, type: {{input, output}}, "
                        "examples: [{i, o}]}]); fix the file or omit the flag to use the pack")
    tasks = []
    for k, t in enumerate(items, start=1):
        try:
            tasks.append(task_from_json(t, f"{source}: task {k}"))
        except Unsupported as why:
            (skipped if skipped is not None else {}).setdefault(str(why), []).append(t["name"])
    if not tasks:
        raise UserError(f"{source}: none of its {len(items)} tasks can run here ({'; '.join(skipped or {})})")
    return tasks


TASK_VALUES = {"int": int, "bool": bool, "list-of-int": int, "list-of-bool": bool}


def task_from_json(t, where: str) -> Task:
    def bad(problem: str):
        return UserError(f"{where} {problem}; fix the file or omit the flag to use the pack")

    if not isinstance(t, dict):
        raise bad("is not an object {name, type: {input, output}, examples: [{i, o}]}")
    name, types, examples, level = t.get("name"), t.get("type"), t.get("examples"), t.get("level", 0)
    if not isinstance(name, str) or not name:
        raise bad("has no name (a non-empty string)")
    where = f"{where} ({name[:40]})"
    if not (isinstance(types, dict) and all(isinstance(types.get(k), str) for k in ("input", "output"))):
        raise bad("needs type: {input, output}, each a type name such as list-of-int")
    if not all(types[k] in TASK_VALUES for k in ("input", "output")):
        raise Unsupported(f"a type the DSL cannot express (it has {', '.join(TASK_VALUES)})")
    if not isinstance(level, int) or isinstance(level, bool) or level < 0:
        raise bad(f"has level {level!r}; a level is an integer >= 0")
    if not isinstance(t.get("program", ""), str | None):
        raise bad("has a program that is not a string")
    if not isinstance(examples, list) or not examples:
        raise bad("has no examples; give at least one {i, o} pair")
    for n, e in enumerate(examples, start=1):
        if not (isinstance(e, dict) and "i" in e and "o" in e):
            raise bad(f"example {n} is not an object {{i, o}}")
        for key, side in (("i", "input"), ("o", "output")):
            if not matches(e[key], types[side]):
                raise bad(f"example {n}'s {side} is not a value of type {types[side]}")
            if not within_bounds(e[key]):
                raise Unsupported(f"values beyond the interpreter's bounds (|int| <= {MAX_INT:,}, lists of at "
                                  f"most {MAX_LIST})")
    request = arrow(parse_type_name(types["input"]), parse_type_name(types["output"]))
    return Task(name, request, [(to_value(e["i"]), to_value(e["o"])) for e in examples], t.get("program"), level)


def matches(v, type_name: str) -> bool:
    """Is v a JSON value of the task type (an int, a bool, or a flat list of them)? bool is not an int here."""
    kind = TASK_VALUES[type_name]
    if type_name.startswith("list-of-"):
        return isinstance(v, list) and all(type(x) is kind for x in v)
    return type(v) is kind


def within_bounds(v) -> bool:
    """Can the interpreter hold this value? (Its ints and lists are bounded, dsl.MAX_INT / MAX_LIST.)"""
    if isinstance(v, list):
        return len(v) <= MAX_LIST and all(within_bounds(x) for x in v)
    return isinstance(v, bool) or -MAX_INT <= v <= MAX_INT


def load_tasks(args) -> tuple[list[Task], list[Task], dict]:
    """Training and held-out tasks, and where they came from: {"source", "skipped": {split: {reason: names}}}."""
    if args.train or args.test:
        if not (args.train and args.test):
            raise UserError("give both --train FILE and --test FILE (or neither, to use the pack)")
        out, skipped = [], {}
        for split, path in (("train", args.train), ("test", args.test)):
            if not Path(path).exists():
                raise UserError(f"task file {path} does not exist; pass a DreamCoder list-task JSON file")
            out.append(tasks_from_json(Path(path).read_text(encoding="utf-8"), path, skipped.setdefault(split, {})))
        return out[0], out[1], {"source": f"--train {args.train} --test {args.test}", "skipped": skipped}
    from nnlabs.pack import list_programs

    files = list_programs.build(args.pack_seed)
    return (tasks_from_json(files["list_programs/train.json"], "pack list_programs/train.json"),
            tasks_from_json(files["list_programs/test.json"], "pack list_programs/test.json"),
            {"source": f"the pack's list suite (seed {args.pack_seed})", "skipped": {}})


def subsample(tasks: list[Task], n: int, rng: random.Random, curriculum: bool = False) -> list[Task]:
    """n tasks spread over the curriculum levels (all of them if n == 0), in a stable order. With
    `curriculum`, every level-1 task is kept first: the one-primitive tasks seed the library."""
    if n == 0 or n >= len(tasks):
        return tasks
    picked = [t for t in tasks if t.level == 1][:n] if curriculum else []
    rest = [t for t in tasks if t not in picked]
    by_level: dict[int, list[Task]] = {}
    for t in rest:
        by_level.setdefault(t.level, []).append(t)
    quota = n - len(picked)
    for level in sorted(by_level):
        share = round(quota * len(by_level[level]) / len(rest))
        picked += rng.sample(by_level[level], min(share, len(by_level[level])))
    return sorted(picked[:n], key=lambda t: (t.level, t.name))


def draw(train: list[Task], test: list[Task], n_train: int, n_test: int, seed: int) -> tuple[list, list]:
    """The training and held-out tasks a run uses (`subsample` of each). A random stream per split: the
    held-out tasks a seed draws never depend on the training file (the pack's list suite v2 added
    training tasks; with one stream for both, quick's held-out draw moved with them)."""
    return (subsample(train, n_train, random.Random(f"{seed}-train"), curriculum=True),
            subsample(test, n_test, random.Random(f"{seed}-test")))


# -----------------------------------------------------------------------------
# main


def parse_args(argv):
    p = lab_parser("dreamcoder", "DreamCoder-style library learning on the list-program suite.", BUDGETS, seed=0)
    p.add_argument("--pack-seed", type=int, default=0, help="seed of the pack's list suite")
    p.add_argument("--compressor", choices=("ours", "stitch"), default="ours")
    p.add_argument("--train", help="training tasks (DreamCoder list-task JSON); default: the pack")
    p.add_argument("--test", help="held-out tasks (DreamCoder list-task JSON); default: the pack")
    p.add_argument("--cycles", type=int, help="override the budget's number of wake-sleep cycles")
    p.add_argument("--base", choices=tuple(BASES), help="base primitives: lab (with filter; tiny and quick) or "
                   "dreamcoder (DreamCoder's list DSL without filter: filter, sum, max ... must be discovered "
                   "from fold; full). Default: the budget's")
    p.add_argument("--subsample", metavar="TRAIN,TEST", help="use this many training and held-out tasks of "
                   "--train/--test, spread over their levels (default: the whole files; the pack is subsampled "
                   "by the budget)")
    p.add_argument("--processes", type=int, default=0, help="search worker processes (default: OMP_NUM_THREADS "
                   "if set, as under nnlabs sweep, else all cores)")
    return p.parse_args(argv)


def subsample_counts(flag: str | None) -> tuple[int, int]:
    """--subsample TRAIN,TEST as two counts; (0, 0) = the whole files."""
    if flag is None:
        return 0, 0
    try:
        n_train, n_test = (int(n) for n in flag.split(","))
    except ValueError:
        raise UserError(f"--subsample takes two counts, TRAIN,TEST (e.g. 40,20), not {flag!r}") from None
    if n_train < 1 or n_test < 1:
        raise UserError("--subsample counts must be at least 1")
    return n_train, n_test


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the search workers)."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    budget = BUDGETS[args.budget]
    if args.cycles:
        if args.cycles < 1:
            raise UserError("--cycles must be at least 1")
        budget = replace(budget, cycles=args.cycles)
    with claim(args.out, resume=args.resume, force=args.force) as out:
        return run_lab(args, budget, out)


def run_lab(args, budget: DreamCoderBudget, out: Path) -> int:
    """The three runs, timing.json and the report, in --out (claimed by `main`). Under --resume a finished
    run is kept and an unfinished one starts over (a wake-sleep cycle is not checkpointed)."""
    if args.subsample and args.train is None:
        raise UserError("--subsample cuts --train/--test files; the pack is subsampled by --budget")
    train, test, origin = load_tasks(args)
    # the pack: the budget's levels and task counts; a user's files: whole, unless --subsample says otherwise
    n_train, n_test = (budget.n_train, budget.n_test) if args.train is None else subsample_counts(args.subsample)
    if args.train is None:
        train, test = ([t for t in tasks if t.level <= budget.max_level] for tasks in (train, test))
    given = {"train": len(train), "test": len(test)}
    train, test = draw(train, test, n_train, n_test, args.seed)
    (out / "tasks.json").write_text(json.dumps({**origin, "available": given, "used": {"train": len(train),
                                                "test": len(test)}}, indent=1, sort_keys=True) + "\n")
    quiet = os.environ.get("CI") == "true"

    def progress(name, cycle, cycles, record):
        if quiet:
            return
        solved = {s: sum(r["solved"] for r in record["wake"] if r["split"] == s) for s in ("train", "test")}
        print(f"  [{name}] cycle {cycle}/{cycles} ({time.perf_counter() - t0:.0f}s): wake solved "
              f"{solved['train']} train, {solved['test']} held-out", flush=True)
        for a in record.get("new_abstractions", []):
            print(f"      new {a['name']} ({a['suggested']}): {a['body']}  — used by {len(a['helps'])} task(s)")

    def searching(name, cycle):
        """A wake's `on_done`: a line at most once a minute while it searches (a full-budget wake runs for
        half an hour; the cycle's own line follows when it ends)."""
        last, solved = time.perf_counter(), 0

        def on_done(result, done, total):
            nonlocal last, solved
            solved += result["solved"]
            if not quiet and done < total and time.perf_counter() - last >= 60:
                last = time.perf_counter()
                where = f"cycle {cycle} wake" if cycle else "search"
                print(f"  [{name}] {where}: {done}/{total} tasks searched, {solved} solved ({last - t0:.0f}s)",
                      flush=True)
        return on_done

    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    timing = out / "timing.json"
    # the runs an earlier invocation finished are kept under --resume: their time is part of the lab's
    before = json.loads(timing.read_text()) if args.resume and timing.exists() else {"wall_s": 0.0, "cores_used": 0}

    def record_time() -> float:
        """timing.json after each finished run (an interrupted lab keeps what its finished runs took); the
        lab's wall seconds so far."""
        wall = before["wall_s"] + time.perf_counter() - t0
        # what the run used, not what the machine has: CPU seconds (ours and the search workers') per second
        cpu = before["wall_s"] * before["cores_used"] + cpu_seconds() - cpu0
        write_json(timing, {"budget": args.budget, "wall_s": round(wall, 2), "processes": args.processes or
                            worker_processes(), "cores_used": round(cpu / max(wall, 1e-9), 2)})
        return wall

    common = dict(cycles=budget.cycles, programs=budget.programs, seconds=budget.seconds, dreams=budget.dreams,
                  recognition_steps=budget.recognition_steps, seed=args.seed, processes=args.processes,
                  compressor=args.compressor, base=args.base or budget.base)
    if not quiet:
        print(f"dreamcoder: {len(train)} train / {len(test)} held-out tasks, budget {args.budget}")
    try:
        if not (args.resume and finished(out / "full")):
            run_loop(train, test, LoopConfig(name="full", **common), out / "full", progress, args.budget, searching)
            record_time()
        if budget.ablation and not (args.resume and finished(out / "no_recognition")):
            run_loop(train, test, LoopConfig(name="no_recognition", recognition=False, **common),
                     out / "no_recognition", progress, args.budget, searching)
            record_time()
        if not (args.resume and finished(out / "no_learning")):
            run_no_learning(test, LoopConfig(name="no_learning", learn=False, recognition=False, **common),
                            out / "no_learning", args.budget, searching("no_learning", None))
            record_time()
        # Part 7.5: the same held-out tasks answered by a neural model, by these programs, and by routers;
        # it needs each task's generator (the pack's reference programs) to draw fresh inputs
        if args.train is None and not (args.resume and finished(out / "neural")):
            run_head_to_head(out, args.budget, args.seed, args.pack_seed)
    except KeyboardInterrupt:
        # a Ctrl-C between a run's finish and its record_time() would lose that run's time: keep the lab's
        # time so far (the run cut short included: it was spent) before the interrupt goes on
        record_time()
        raise
    total = record_time()
    from nnlabs.labs.dreamcoder.report import report

    report(out)
    if not quiet:
        print(f"dreamcoder: done in {total:.0f}s; see {out / 'report.md'} and {out / 'dreamcoder.html'}")
    return 0


def run_no_learning(test: list[Task], cfg: LoopConfig, run_dir: Path, budget_name: str = "custom",
                    on_done=None) -> None:
    """The base grammar with the learners' total per-task budget, in one search per held-out task."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, cfg, budget_name)
    g = Grammar(base_grammar(cfg.base))
    budget = SearchBudget(programs=cfg.programs * cfg.cycles, seconds=cfg.seconds * cfg.cycles)
    t0 = time.perf_counter()
    results = solve_tasks(test, g, [g.log_weights] * len(test), budget, cfg.processes, on_done)
    solved = [r for r in results if r["solved"]]
    tried = sum(r["tried"] for r in results)
    line = {"step": cfg.cycles, "split": "test", "loss": None, "tokens": 0, "macs": 0,
            "wall_s": round(time.perf_counter() - t0, 3), "solved": len(solved), "n_tasks": len(test),
            "solved_frac": round(len(solved) / max(1, len(test)), 4), "searched": len(test),
            "programs_tried": tried, "tried_per_solved": round(tried / len(solved), 1) if solved else None,
            "search_s": round(sum(r["seconds"] for r in results), 3),
            "programs_per_s": round(tried / max(1e-9, sum(r["seconds"] for r in results)), 1),
            "library_size": 0, "search_errors": sum(r.get("ended") == "error" for r in results),
            "avg_solution_size": round(sum(size_of(r) for r in solved) / max(1, len(solved)), 3)}
    (run_dir / "metrics.jsonl").write_text(json.dumps(line, sort_keys=True) + "\n")
    (run_dir / "analysis.json").write_text(json.dumps({"config": asdict(cfg), "wake": results}, indent=1,
                                                      sort_keys=True) + "\n")
    with open(run_dir / "samples.txt", "w", encoding="utf-8") as f:
        for r in results:
            f.write(f"{r['name']}\t{r['program'] or '-'}\n")


def size_of(result: dict) -> int:
    return size(parse(result["program"]))
