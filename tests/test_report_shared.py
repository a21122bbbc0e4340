"""The report helpers every lab shares: run-directory reading, tables, information measures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnlabs.labs import run_config
from nnlabs.report.info import cond_entropy, conditional_mutual_information, entropy_bits, mutual_information
from nnlabs.report.runs import Run, group_by_name, lab_files, load_runs, read_jsonl
from nnlabs.report.tables import markdown_table
from nnlabs.spine.errors import UserError


def write_run(path, run, seed, finished=True, metrics_text=None):
    path.mkdir(parents=True)
    config = run_config(lab="moe", run=run, budget="tiny", seed=seed, model={"n_embd": 8}, balance="switch")
    (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.jsonl").write_text(metrics_text or '{"step": 0, "loss": 2.0}\n{"step": 10, "loss": 1.5}\n')
    if finished:
        (path / "analysis.json").write_text('{"val_loss": 1.5}')


def test_run_config_schema():
    c = run_config(lab="act", run="fixed8", budget="quick", seed=0, model=None, task="parity")
    assert list(c)[:5] == ["lab", "run", "budget", "seed", "model"] and c["task"] == "parity"
    with pytest.raises(ValueError):
        run_config(lab="nope", run="x", budget="quick", seed=0, model=None)


def test_load_runs_finds_single_and_seeded_runs(tmp_path):
    write_run(tmp_path / "dense", "dense", 0)
    write_run(tmp_path / "seed-1" / "dense", "dense", 1)
    write_run(tmp_path / "seed-2" / "dense", "dense", 2, finished=False)
    runs = load_runs(tmp_path)
    groups = group_by_name(runs)
    assert list(groups) == ["dense"] and [r.seed for r in groups["dense"]] == [0, 1, 2]
    assert [r.complete for r in groups["dense"]] == [True, True, False]
    assert groups["dense"][0].analysis == {"val_loss": 1.5} and groups["dense"][2].analysis == {}
    assert groups["dense"][1].metrics[-1] == {"step": 10, "loss": 1.5}


def test_seeds_come_in_numeric_order(tmp_path):
    """Seed 10 after seed 2, for every reader that takes runs in order (e.g. Part 7.5's 'lowest seed')."""
    for s in (10, 2, 1):
        write_run(tmp_path / f"seed-{s}" / "neural", "neural", s)
        (tmp_path / f"seed-{s}" / "lab.json").write_text(json.dumps({"seed": s}))
    assert [r.seed for r in load_runs(tmp_path)] == [1, 2, 10]
    assert [f["seed"] for f in lab_files(tmp_path, "lab.json")] == [1, 2, 10]


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    write_run(tmp_path / "r", "r", 0, metrics_text='{"step": 0, "loss": 2.0}\n{"step": 10, "lo')
    with pytest.warns(UserWarning, match="truncated"):
        run = Run.read(tmp_path / "r")
    assert run.metrics == [{"step": 0, "loss": 2.0}]


def test_damaged_middle_line_is_a_clear_error(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 0}\n{bad\n{"step": 2}\n')
    with pytest.raises(UserError, match="line 2"):
        read_jsonl(p)


def test_markdown_table():
    assert markdown_table(["run", "n", "loss"], [["a|b", 12345, 1.23456]]) == (
        "| run | n | loss |\n|---|---|---|\n| a\\|b | 12,345 | 1.235 |\n")


def test_information_measures_on_hand_checked_cases():
    assert entropy_bits([1, 1]) == pytest.approx(1.0)
    assert entropy_bits([4, 0]) == 0.0
    a = np.array([0, 0, 1, 1])
    assert mutual_information(a, a) == pytest.approx(1.0)
    assert mutual_information(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    # b is a copy of a within each value of z, so knowing z leaves one bit that b explains
    z = np.array([0, 1, 0, 1])
    assert conditional_mutual_information(a, a, z) == pytest.approx(1.0)
    # a fully determined by z: nothing left for b to explain
    assert conditional_mutual_information(a, np.array([1, 0, 0, 1]), a) == pytest.approx(0.0)
    assert cond_entropy(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert math.isfinite(entropy_bits([]))
