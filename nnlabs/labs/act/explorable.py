"""The ACT lab's explorable (act.html): a τ slider moving a point along the swept accuracy-vs-compute curve,
one example's halting step by step (the cumulative halting probability of every position after each pass),
and every model's accuracy and compute by difficulty. Every number the page shows is computed here, from
the run directories; the page only draws it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from nnlabs.labs.act.metrics import by_bucket, summarize
from nnlabs.pack import algorithmic
from nnlabs.report.explorable import write_html


def point_label(a: dict) -> str:
    """How the chart names a run: its depth, τ, PonderNet prior, router price or exit threshold."""
    if a["kind"] == "fixed":
        return f"{a['max_steps']} pass{'es' * (a['max_steps'] > 1)}"
    if a["kind"] == "act":
        return f"τ = {a['tau']:g}"
    if a["kind"] == "ponder":
        return f"PonderNet λp = {a['config']['act']['prior']:g}" if a.get("config") else a["model"]
    if a["kind"] == "router":
        return f"depth router τ = {a['tau']:g}"
    return f"exit at confidence {a['exit_threshold']:g}"


def curve_points(rs: list[dict]) -> list[dict]:
    """Accuracy and compute of every dense run (Part 5.5's MoE runs have their own section of the report),
    on both splits; the ACT ones in increasing τ: the slider's stops."""
    points = []
    for a in rs:
        if a.get("experts"):
            continue
        points.append({"model": a["model"], "kind": a["kind"], "label": point_label(a), "tau": a["tau"],
                       **{split: {"acc": s["acc"], "passes": s["steps_position"], "macs": s["macs_per_example"]}
                          for split, s in a["splits"].items()}})
    return sorted(points, key=lambda p: (p["kind"] != "act", p["tau"] or 0))


def trace_view(a: dict) -> dict:
    """One ACT run's recorded examples (halting_trace), with the characters each position reads."""
    return {"model": a["model"], "tau": a["tau"], "max_steps": a["max_steps"],
            "examples": [{**t, "chars": "." + t["input"] + "=" + t["answer"][:-1],
                          "answer_from": len(t["input"]) + 1} for t in a["trace"]]}


def explorable_data(runs: dict[str, list[dict]]) -> dict:
    """{task: what act.html shows}, from each model's run at its lowest seed (report.one_seed)."""
    # report.py imports this module to call write_explorable; its helpers are read at call time
    from nnlabs.labs.act.report import best_adaptive, example_picture

    tasks = {}
    for task, rs in runs.items():
        field = algorithmic.FIELDS[task][0]
        models = []
        for a in rs:
            ex = a["splits"]["test"]["examples"] + a["splits"]["lengthgen"]["examples"]
            buckets = {"all": summarize(ex), **{str(k): v for k, v in by_bucket(ex, field).items()}}
            models.append({"name": a["model"], "max_steps": a["max_steps"],
                           "buckets": {k: {"acc": v["acc"], "macs": v["macs_per_example"],
                                           "steps": v["steps_answer"], "n": v["n"]} for k, v in buckets.items()},
                           "examples": example_picture(a, per_bucket=3, limit=60)})
        best = best_adaptive(rs)
        values = {r[field] for s in rs[0]["splits"].values() for r in s["examples"]}
        tasks[task] = {"field": field, "buckets": sorted(values), "models": models,
                       "best": best["model"] if best else None, "points": curve_points(rs),
                       "traces": [trace_view(a) for a in rs if a.get("trace")]}
    return {"tasks": tasks}


def write_explorable(runs: dict[str, list[dict]], out: Path) -> Path:
    def read(package: str, name: str) -> str:
        return (files(package) / name).read_text(encoding="utf-8")

    # the chart's axes come from the shared plot.js (SVG built with the DOM)
    return write_html(out / "act.html", "Adaptive computation: accuracy vs compute, halting pass by pass",
                      explorable_data(runs), read(__package__, "explorable.html"),
                      read("nnlabs.report", "plot.js") + "\n" + read(__package__, "explorable.js"),
                      read("nnlabs.report", "plot.css") + read(__package__, "explorable.css"))
