"""dreamcoder.html: a cycle scrubber over the graph of the learned library, with the solved-% and
description-length curves in step with it.

Each abstraction is a node at the wake–sleep cycle whose sleep invented it (x = cycle), the base DSL's
primitives it is built from in the first column, an edge to everything its body calls. Hover or focus a node
for its definition, how many training solutions use it at the chosen cycle, and one task it shortened
(the task's program before that sleep and after it). Everything comes from the `full` run's analysis.json
and metrics.jsonl; the page (explorable.{html,js,css}, charts from report/plot.{js,css}) computes nothing
that the tests cannot check against this module.

Part 7.5 (explorable_neural.{html,js,css}): a held-out task and an input band chosen, the task's examples,
the program the last wake found, and every fresh query of that band with the neural answer, the program's,
and the side each router took; accuracy by band and the exchange rate, all from the lowest seed's `neural`
run's analysis.json (head_to_head.py).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from nnlabs.labs.dreamcoder import routing
from nnlabs.labs.dreamcoder.dsl import PRIMITIVES, library_calls, symbols
from nnlabs.labs.dreamcoder.head_to_head import programs_tried
from nnlabs.labs.dreamcoder.neural import BANDS, show
from nnlabs.labs.dreamcoder.report_head_to_head import POLICIES
from nnlabs.report.explorable import write_html
from nnlabs.report.runs import Run, group_by_name, load_runs


def description_lengths(cycles: list[dict], compressor: str) -> list[dict]:
    """Per cycle, the training corpus's description length in Stitch's cost units (primitive or variable
    100, application or lambda 1), the library's bodies counted: before the sleep (the programs as the wake
    left them + the library so far) and after (rewritten + the grown library). None where the cycle had
    no sleep, or the run predates these records."""
    out, library = [], 0
    for c in cycles:
        comp = c.get("compression", {})
        chosen = comp.get(compressor, {})
        if "cost" not in chosen:
            out.append({"before": None, "after": None})
            continue
        before = comp["corpus_cost"] + library
        library += chosen["library_cost"]
        out.append({"before": before, "after": chosen["cost"] + library})
    return out


def shortened(cycles: list[dict], k: int, helps: list[str]) -> dict | None:
    """Of the training tasks an abstraction of cycle k's sleep rewrote, the one it shortened most: its
    program before that sleep (the previous corpus, or as cycle k's wake found it) and after."""
    from nnlabs.labs.dreamcoder.report import leaves

    before = dict(cycles[k - 2]["solutions"]) if k > 1 else {}
    before |= {r["name"]: r["program"] for r in cycles[k - 1]["wake"] if r["split"] == "train" and r["solved"]}
    after = cycles[k - 1]["solutions"]
    options = [{"task": t, "before": before[t], "after": after[t], "before_len": leaves(before[t]),
                "after_len": leaves(after[t])} for t in helps if t in before and t in after]
    return max(options, key=lambda o: (o["before_len"] - o["after_len"], o["task"]), default=None)


def explorable_data(full: Run) -> dict:
    from nnlabs.labs.dreamcoder.report import held_out_uses

    an = full.analysis
    cycles = an["cycles"]
    train = {m["step"]: m for m in full.metrics if m["split"] == "train"}
    test = {m["step"]: m for m in full.metrics if m["split"] == "test"}
    types = {a["name"]: a["type"] for a in an["library"]}
    names = {a["name"] for c in cycles for a in c.get("new_abstractions", [])}
    nodes = []
    for c in cycles:
        for a in c.get("new_abstractions", []):
            body = set(symbols(a["body"]))
            nodes.append({"name": a["name"], "cycle": c["cycle"], "suggested": a["suggested"], "body": a["body"],
                          "type": types.get(a["name"], ""),
                          "calls": sorted(t for t in body if t in names or t in PRIMITIVES),
                          # training solutions whose program (in that cycle's library) uses it, per cycle
                          "usage": [sum(a["name"] in symbols(p) for p in d["solutions"].values()) for d in cycles],
                          "example": shortened(cycles, c["cycle"], a["helps"])})
    used = sorted({t for n in nodes for t in n["calls"] if t in PRIMITIVES})
    dls = description_lengths(cycles, an["config"].get("compressor", "ours"))
    return {"cycles": [{"cycle": c["cycle"], "train_solved": train[c["cycle"]]["solved"],
                        "test_solved": test[c["cycle"]]["solved"], "library_size": train[c["cycle"]]["library_size"],
                        "dl_before": dl["before"], "dl_after": dl["after"],
                        "solutions": sorted(c["solutions"].items()),
                        "test_programs": sorted((r["name"], r["program"]) for r in c["wake"]
                                                if r["split"] == "test" and r["solved"])}
                       for c, dl in zip(cycles, dls)],
            "n_train": train[1]["n_tasks"], "n_test": test[1]["n_tasks"], "nodes": nodes, "primitives": used,
            "held_out_uses": held_out_uses(an)}


def head_to_head_data(neural: Run | None, full: Run, seeds: int) -> dict | None:
    """Part 7.5 for the page, from one seed's `neural` run and the `full` run it read: per held-out task,
    the examples as the model read them (its prompt's context), the program the last wake found (and the
    library functions it calls), the programs its search tried, and every fresh query with both answers
    and the side each router took (routing.side). Accuracies and compute are analysis.json's own."""
    if neural is None or not neural.analysis.get("queries"):
        return None
    an, library = neural.analysis, {e["name"]: e["body"] for e in full.analysis.get("library", [])}
    last = full.analysis["cycles"][-1]["wake"]
    found = {r["name"]: r["program"] for r in last if r["split"] == "test" and r["solved"]}
    tasks: dict[str, dict] = {}
    for q in an["queries"]:
        name = q["task"]
        if name not in tasks:
            program = found.get(name) if q["has_program"] else None
            calls = library_calls(program or "", library)
            # the prompt is "in>out;in>out|query>": its context is the examples the model read
            context, tried = q["prompt"].split("|")[0], programs_tried(full.analysis, name)
            tasks[name] = {"name": name, "program": program, "calls": [[fn, library[fn]] for fn in calls],
                           "examples": [e.split(">") for e in context.split(";")] if context else [],
                           "tried": tried, "search_macs": an["macs_per_program"] * tried, "queries": []}
        tasks[name]["queries"].append({
            "band": q["band"], "input": show(q["input"]), "expected": show(q["expected"]),
            "neural": q["neural"], "neural_ok": q["neural_ok"], "symbolic": q["symbolic"],
            "symbolic_ok": q["symbolic_ok"], "has_program": q["has_program"],
            "picks": {p: routing.side(q, p) for p in ("rule", "learned", "oracle")}})
    return {"seed": an["seed"], "seeds": seeds, "budget": an["budget"], "bands": list(BANDS),
            "labels": list(POLICIES.items()), "by_band": an["by_band"], "policies": an["policies"],
            "macs_per_program": an["macs_per_program"], "seconds_per_mac": an["seconds_per_mac"],
            "seconds_per_program": an["macs_per_program"] * an["seconds_per_mac"],
            "tasks": [tasks[t] for t in sorted(tasks)]}


def write_explorable(out: Path, runs: dict[str, Run]) -> Path:
    """`runs` holds the lowest seed's run of each condition; Part 7.5 shows the `neural` run of the same seed
    (its own run directory under `out`, one per seed)."""
    def read(package: str, name: str) -> str:
        return (files(package) / name).read_text(encoding="utf-8")

    full = runs["full"]
    neural = [r for r in group_by_name(load_runs(out)).get("neural", []) if r.complete]
    data = explorable_data(full) | {"head_to_head": head_to_head_data(
        next((r for r in neural if r.seed == full.seed), None), full, len(neural))}
    return write_html(out / "dreamcoder.html", "DreamCoder lab: the library as it grows", data,
                      read(__package__, "explorable.html") + read(__package__, "explorable_neural.html"),
                      read("nnlabs.report", "plot.js") + "\n" + read(__package__, "explorable_neural.js")
                      + "\n" + read(__package__, "explorable.js"),
                      read("nnlabs.report", "plot.css") + read(__package__, "explorable.css")
                      + read(__package__, "explorable_neural.css"))
