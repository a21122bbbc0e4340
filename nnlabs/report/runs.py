"""Reading run directories: the one way every report gets at what a run wrote.

A run directory holds `config.json` (written first), `metrics.jsonl` (appended during training) and
`analysis.json` (written last, so its presence marks a finished run). A sweep writes one folder per
seed, `runs/<lab>/seed-<s>/<run>/`; a single `nnlabs lab` writes `runs/<lab>/<run>/`. `load_runs`
finds both, so a report reads one seed or many the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnlabs.spine.rundir import finished, read_json, read_jsonl  # the one reader of run files, shared with --resume


@dataclass(frozen=True)
class Run:
    """What one run directory holds. `analysis` is empty until the run has finished."""

    path: Path
    config: dict
    metrics: list[dict] = field(default_factory=list)
    analysis: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.get("run") or self.path.name

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def complete(self) -> bool:
        return finished(self.path)

    @classmethod
    def read(cls, path: str | Path) -> Run:
        path = Path(path)
        metrics = path / "metrics.jsonl"
        analysis = path / "analysis.json"
        return cls(path=path, config=read_json(path / "config.json"),
                   metrics=read_jsonl(metrics) if metrics.exists() else [],
                   analysis=read_json(analysis) if analysis.exists() else {})


def seed_number(seed_dir: Path) -> int:
    """The s of a sweep's `seed-<s>/` folder: seeds sort by number (a path sort puts seed-10 before seed-2)."""
    return int(seed_dir.name.removeprefix("seed-"))


def run_dirs(lab_dir: str | Path) -> list[Path]:
    """Every run directory under a lab's folder: `<run>/` and, from sweeps, `seed-<s>/<run>/`, lowest seed first."""
    lab_dir = Path(lab_dir)
    found = sorted(p.parent for p in lab_dir.glob("*/config.json"))
    found += sorted((p.parent for p in lab_dir.glob("seed-*/*/config.json")),
                    key=lambda run: (seed_number(run.parent), run.name))
    return found


def lab_files(lab_dir: str | Path, name: str) -> list[dict]:
    """A lab-level JSON file written beside the runs (e.g. lab.json: budget, wall time) — in `lab_dir` for
    one `nnlabs lab`, in each `seed-<s>/` for a sweep — read from every place it is, lowest seed first."""
    lab_dir = Path(lab_dir)
    found = [lab_dir / name] if (lab_dir / name).exists() else []
    found += sorted(lab_dir.glob(f"seed-*/{name}"), key=lambda p: seed_number(p.parent))
    return [read_json(p) for p in found]


def load_runs(lab_dir: str | Path) -> list[Run]:
    return [Run.read(p) for p in run_dirs(lab_dir)]


def group_by_name(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs of the same name (one per seed), in the order names first appear, seeds sorted."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    return {name: sorted(rs, key=lambda r: (r.seed is None, r.seed or 0)) for name, rs in groups.items()}
