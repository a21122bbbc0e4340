"""The MoE lab's explorable (moe.html): two runs side by side at one evaluation step, each with its load per
expert and MaxVio, its domain/character × expert heatmap, and the probe lines and samples coloured by
expert, hover (or keyboard focus) on a character showing its top-k experts and router probabilities.
Every number the page shows is computed here, from the run directories; the page only draws it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from nnlabs.labs.moe.metrics import CLASSES, DOMAINS, max_violation
from nnlabs.report.explorable import write_html
from nnlabs.report.runs import Run
from nnlabs.spine.train import TrainConfig


def balancing(moe: dict) -> str:
    """How a run keeps its router balanced, in words, from its MoE config (a run directory's, or a RunSpec's as a
    dict): e.g. `Switch loss + router z-loss`, `loss-free bias (sign, u = 0.001)`, `no balancing`."""
    cures = [word for key, word in (("balance_alpha", "Switch loss"), ("z_alpha", "router z-loss"),
                                    ("noise_std", "noisy top-k"), ("bias_rate", "loss-free bias"))
             if moe.get(key)]
    if moe.get("bias_rate"):
        cures[-1] += f" ({'sign' if moe.get('bias_sign') else 'proportional'}, u = {moe['bias_rate']:g}"
        cures[-1] += ", not at the line start)" if moe.get("bias_skips_start") else ")"
    return " + ".join(cures) or "no balancing"


def describe(config: dict) -> str:
    """A run's routing in words, from its config, e.g. `top-1 of 8, no balancing, router init std 3, learned
    router bias, lr 0.02`."""
    moe = config["moe"]
    words = [f"top-{moe['top_k']} of {moe['n_experts']}", balancing(moe)]
    if moe.get("capacity_factor"):
        words.append(f"capacity factor {moe['capacity_factor']:g}")
    if config.get("router_std") is not None:
        words.append(f"router init std {config['router_std']:g}")
    if moe.get("router_bias"):
        words.append("learned router bias")
    # the collapse setting's learning rate is part of the setting: named where it is not the trainer's default
    lr = config.get("train", {}).get("learning_rate")
    if lr is not None and lr != TrainConfig.learning_rate:
        words.append(f"lr {lr:g}")
    return ", ".join(words)


def explorable_data(runs: dict[str, Run], moe_runs: list[str]) -> dict:
    """What moe.html shows, per run and evaluation (index e) and layer (index l)."""
    # the page's JSON has sorted keys: `order` keeps the lab's order of runs
    data = {"domains": DOMAINS, "classes": CLASSES, "order": list(moe_runs), "runs": {}}
    for name in moe_runs:
        run, evals = runs[name], runs[name].analysis["evals"]
        layers = [e["layers"] for e in evals]
        data["runs"][name] = {
            "label": describe(run.config), "experts": run.config["moe"]["n_experts"],
            "top_k": run.config["moe"]["top_k"], "steps": [e["step"] for e in evals],
            "domain_expert": [[m["domain_expert"] for m in ls] for ls in layers],
            "class_expert": [[m["class_expert"] for m in ls] for ls in layers],
            # the load bars: each expert's share of the probe set's assignments, and their MaxVio
            "load": [[m["utilisation"] for m in ls] for ls in layers],
            "maxvio": [[round(max_violation(m["utilisation"]), 3) for m in ls] for ls in layers],
            # MaxVio over the validation set: the number report.md quotes
            "maxvio_val": [[round(m["maxvio_global"], 3) if "maxvio_global" in m else None for m in ls]
                           for ls in layers],
            "strings": [e["strings"] for e in evals]}
    return data


def write_explorable(runs: dict[str, Run], out: Path, moe_runs: list[str]) -> Path:
    page = files(__package__)
    return write_html(out / "moe.html", "Part 4 — where does each token go? A routing explorer",
                      explorable_data(runs, moe_runs), (page / "explorable.html").read_text(encoding="utf-8"),
                      (page / "explorable.js").read_text(encoding="utf-8"),
                      (page / "explorable.css").read_text(encoding="utf-8"))
