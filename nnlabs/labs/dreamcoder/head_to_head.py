"""Part 7.5's experiment: the same fresh queries answered by the neural model, by the wake's programs,
and by routers between them. Reads the `full` wake-sleep run; writes `<out>/neural/` (a spine run
directory: config, metrics, checkpoint, samples) and its `analysis.json` with every query."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from nnlabs.labs import run_config
from nnlabs.labs.dreamcoder import neural, routing
from nnlabs.labs.dreamcoder.dsl import compile_program
from nnlabs.pack import list_programs
from nnlabs.spine.train import TrainConfig, train


@dataclass(frozen=True, kw_only=True)
class NeuralBudget:
    n_layer: int
    n_embd: int
    steps: int
    batch_size: int
    train_items: int
    queries_per_band: int  # fresh inputs per task and band
    max_context_chars: int = 160  # the task's examples that fit in this many characters are the context


NEURAL_BUDGETS = {
    "tiny": NeuralBudget(n_layer=1, n_embd=16, steps=20, batch_size=8, train_items=200, queries_per_band=2),
    "quick": NeuralBudget(n_layer=3, n_embd=64, steps=1000, batch_size=16, train_items=12_000, queries_per_band=8),
    "full": NeuralBudget(n_layer=4, n_embd=64, steps=3000, batch_size=24, train_items=30_000, queries_per_band=20),
}


def task_dicts(pack_seed: int) -> dict[str, dict]:
    """The pack's list tasks by name, with the reference program each fresh query is answered by."""
    train, test = list_programs.build_tasks(pack_seed)
    return {t["name"]: t for t in train + test}


def searched_names(analysis: dict, split: str) -> list[str]:
    return sorted({r["name"] for c in analysis["cycles"] for r in c["wake"] if r["split"] == split})


def programs_tried(analysis: dict, name: str) -> int:
    """A held-out task's whole search: the programs tried for it in every wake."""
    return sum(r["tried"] for c in analysis["cycles"] for r in c["wake"] if r["name"] == name)


def queries(tasks: list[dict], programs: dict, n: int, rng: random.Random, max_chars: int) -> list[dict]:
    """Every task × band × fresh input, with its prompt and the program found for the task (if any)."""
    out = []
    for task in tasks:
        context = neural.context_examples(task, rng, max_chars)
        for band in neural.BANDS:
            for x, y in neural.fresh_queries(task, band, n, rng):
                out.append({"task": task["name"], "band": band, "input": x, "expected": y,
                            "prompt": neural.prompt(context, x), "program": programs.get(task["name"])})
    return out


def answer_both(model, items: list[dict], task_by_name: dict) -> None:
    """Fill in each query's neural and symbolic answers and whether each is right."""
    answers, macs = neural.answer(model, [q["prompt"] for q in items], max_answer=64)
    compiled = {q["task"]: compile_program(q["program"]) for q in items if q["program"] is not None}
    for q, a, m in zip(items, answers, macs):
        program = q.pop("program")
        q["neural"], q["neural_macs"], q["neural_ok"] = a, m, a == neural.show(q["expected"])
        got = routing.run_program(compiled[q["task"]], q["input"]) if program is not None else None
        q["symbolic"] = neural.show(got) if got is not None else None
        q["symbolic_ok"] = got is not None and got == q["expected"]
        q["has_program"] = program is not None
        q["features"] = routing.features(task_by_name[q["task"]], program, q["input"])


def run_head_to_head(out: Path, budget_name: str, seed: int, pack_seed: int, threads: int = 1) -> dict | None:
    """Train the neural model (one thread: the same numbers on any core count), answer every fresh query
    both ways, fit the learned router and write `<out>/neural/analysis.json`. An unfinished `neural` run
    starts over (the lab's --out is already claimed, and its --resume keeps only finished runs)."""
    analysis_path = out / "full" / "analysis.json"
    full = json.loads(analysis_path.read_text(encoding="utf-8"))
    tasks = task_dicts(pack_seed)
    b = NEURAL_BUDGETS[budget_name]
    rng = random.Random(seed)
    train_tasks = [tasks[n] for n in searched_names(full, "train") if n in tasks]
    test_tasks = [tasks[n] for n in searched_names(full, "test") if n in tasks]
    if not train_tasks or not test_tasks:
        return None  # task files without reference programs: no generator to draw fresh inputs from

    # ---- the neural model: trained across the training tasks, in context
    items = neural.training_items(train_tasks, b.train_items, rng, b.max_context_chars)
    val = neural.training_items(test_tasks, 500, random.Random(seed + 1), b.max_context_chars)
    block = 2 + max(len(p) + len(a) for p, a in items + val) + 64  # room for longer and larger answers
    torch.manual_seed(seed)
    model = neural.build_model(block, b.n_layer, b.n_embd)
    # the train loss of the curves on 200 items, not the spine's 1,000: at quick those evaluations had cost a
    # tenth of the training
    cfg = TrainConfig(max_steps=b.steps, batch_size=b.batch_size, eval_interval=max(b.steps // 5, 1),
                      warmup_steps=min(100, b.steps // 10), eval_train_items=200, seed=seed, threads=threads)
    run_dir = out / "neural"
    train(model, neural.encode(items, block), neural.encode(val, block), cfg, run_dir, force=True,
          run_config=run_config(lab="dreamcoder", run="neural", budget=budget_name, seed=seed,
                                model=vars(model.config), budget_fields=vars(b)))

    # ---- both sides on the same fresh queries
    held_out_programs, train_programs = routing.found_programs(full)
    test_q = queries(test_tasks, held_out_programs, b.queries_per_band, rng, b.max_context_chars)
    train_q = queries(train_tasks, train_programs, max(1, b.queries_per_band // 2), rng,
                      b.max_context_chars)
    answer_both(model, test_q + train_q, tasks)

    # ---- compute in one unit
    per_mac = routing.seconds_per_mac(model)
    rate = routing.exchange_rate([r for c in full["cycles"] for r in c["wake"]], per_mac)
    n_per_task = {t["name"]: sum(q["task"] == t["name"] for q in test_q) for t in test_tasks}
    for q in test_q:
        # the task's search is paid once and shared by its queries; running the program costs one evaluation
        q["search_macs"] = rate * programs_tried(full, q["task"]) / max(n_per_task[q["task"]], 1)
        q["program_macs"] = rate if q["has_program"] else 0.0

    # ---- the learned router: trained where the two sides disagree on the training tasks' queries
    disagree = [q for q in train_q if q["neural_ok"] != q["symbolic_ok"]]
    clf = routing.fit_router([q["features"] for q in disagree], [int(q["symbolic_ok"]) for q in disagree])
    with torch.no_grad():
        says = clf(torch.tensor([q["features"] for q in test_q])).squeeze(1) > 0 if test_q else []
    for q, s in zip(test_q, says):
        q["router_says_program"] = bool(s) and q["has_program"]

    policies = ("neural", "symbolic", "rule", "learned", "oracle")
    n_train = max(len(train_q), 1)
    result = {
        "budget": budget_name, "seed": seed, "seconds_per_mac": per_mac, "macs_per_program": rate,
        "policies": {p: routing.summarise_policy(test_q, p) for p in policies},
        "by_band": {band: {p: routing.summarise_policy([q for q in test_q if q["band"] == band], p)
                           for p in policies} for band in neural.BANDS},
        "found": {band: routing.summarise_policy([q for q in test_q if q["band"] == band and q["has_program"]],
                                                 "symbolic") for band in neural.BANDS},
        "router": {"features": list(routing.FEATURES), "weights": clf.weight.detach().view(-1).tolist(),
                   "bias": float(clf.bias.detach()), "trained_on": len(disagree)},
        "train_queries": {"n": len(train_q), "neural_accuracy": sum(q["neural_ok"] for q in train_q) / n_train,
                          "symbolic_accuracy": sum(q["symbolic_ok"] for q in train_q) / n_train},
        "queries": test_q,
    }
    (run_dir / "analysis.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return result
