"""One package per post. Each is a small patch on the spine (see `nnlabs diff <lab>`), its experiment,
its metrics, and a `report(out)` that rebuilds figures, report.md and the explorable from run files.

This module is the registry the CLI, the Makefile's lab list and the site's titles are derived from,
and it holds what every lab shares: the `Patch` entries `nnlabs diff` prints, the flags every lab takes,
the one schema of a run's config.json, and how many worker processes a lab may start.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class LabInfo:
    name: str
    part: int
    title: str
    routing: str  # the routing decision the post is about
    # CPU-minutes of one seed at the quick and full budgets, as last measured (README): only the order in
    # which a sweep starts the labs, costliest first, so the short ones fill the last gap on the cores
    cpu_minutes: tuple[float, float]


LABS: dict[str, LabInfo] = {lab.name: lab for lab in (
    LabInfo("tour", 3, "A tour: counts, MLPs, attention", "how computation flows", (3.7, 10.4)),
    LabInfo("moe", 4, "Mixture of experts: routing to sub-networks", "to internal sub-networks", (8.5, 43.2)),
    LabInfo("act", 5, "Adaptive computation: routing through more steps", "through more computation", (13.3, 44.2)),
    LabInfo("tools", 6, "Tool use: routing to external systems", "to external systems", (7.0, 35.0)),
    LabInfo("dreamcoder", 7, "DreamCoder: routing between neural and symbolic", "between neural and symbolic",
            (8.2, 62.3)),
)}


def lab_module(name: str):
    """The lab's package (its `main`, `report` and `PATCHES`), imported on first use."""
    from nnlabs.spine.errors import UserError

    if name not in LABS:
        raise UserError(f"unknown lab {name!r}; choose one of: {', '.join(LABS)}")
    return importlib.import_module(f"nnlabs.labs.{name}")


@dataclass(frozen=True)
class Patch:
    """One piece of a lab's patch, as `nnlabs diff` prints it.

    `lab` and `spine` are "module:qualname" references. With `spine` set, the lab piece replaces that
    spine piece and is printed as a unified diff against it; without, the lab piece is new and is
    printed whole. `why` is the one line the diff prints above it.
    """

    lab: str
    spine: str | None = None
    why: str = ""


def lab_parser(name: str, description: str, budgets, seed: int) -> argparse.ArgumentParser:
    """The flags every lab shares: where to write, how much compute to spend, which seed, and whether to
    continue (--resume) or replace (--force) the runs already there."""
    p = argparse.ArgumentParser(prog=f"nnlabs lab {name}", description=description)
    p.add_argument("--out", default=f"runs/{name}", help=f"output folder (default runs/{name})")
    p.add_argument("--budget", choices=tuple(budgets), default="quick",
                   help="tiny = seconds (tests); quick = minutes (make labs); full = the post's figures")
    p.add_argument("--seed", type=int, default=seed)
    # the run-directory rule (nnlabs.spine.rundir.claim): never overwrite runs unasked
    p.add_argument("--resume", action="store_true", help="continue an interrupted lab in --out: finished runs are "
                   "kept, unfinished ones continue from their checkpoints (or restart where they cannot)")
    p.add_argument("--force", action="store_true", help="start over: delete the runs already in --out")
    return p


def run_config(*, lab: str, run: str, budget: str, seed: int, model: dict | None, **lab_config) -> dict:
    """The one schema of a run's config.json: which lab and run, at which budget and seed, the model's
    config (None for runs without a neural model) and the lab's own settings under their own names."""
    if lab not in LABS:
        raise ValueError(f"unknown lab {lab!r}")
    return {"lab": lab, "run": run, "budget": budget, "seed": seed, "model": model, **lab_config}


def worker_processes() -> int:
    """The CPU threads this process was given (OMP_NUM_THREADS, which the sweep sets per run), else every
    core: a lab sharing the machine under a sweep works with its share, not the whole machine."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else mp.cpu_count()
