"""One module per post. Each is a small patch on the spine (see `nnlabs diff <lab>`), its experiment,
its metrics, and a `report(out)` that rebuilds figures, report.md and the explorable from run files."""

from __future__ import annotations

import argparse


def lab_parser(name: str, description: str, budgets, seed: int) -> argparse.ArgumentParser:
    """The flags every lab shares: where to write, how much compute to spend, which seed."""
    p = argparse.ArgumentParser(prog=f"nnlabs lab {name}", description=description)
    p.add_argument("--out", default=f"runs/{name}", help=f"output folder (default runs/{name})")
    p.add_argument("--budget", choices=tuple(budgets), default="quick",
                   help="tiny = seconds (tests); quick = minutes (make labs); full = the post's figures")
    p.add_argument("--seed", type=int, default=seed)
    return p
