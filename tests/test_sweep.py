"""The sweep runner (local and Ray executors, resume, failures) and the statistics across seeds."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from nnlabs import sweep
from nnlabs.cli import main as cli
from nnlabs.report.runs import load_runs
from nnlabs.report.stats import (
    ONE_SEED,
    across_seeds,
    mean_ci,
    no_verdict,
    paired,
    seed_values,
    t_cdf,
    t_quantile,
    verdict,
)
from nnlabs.spine.errors import UserError

# -----------------------------------------------------------------------------
# statistics, against published tables and hand-checked values

# t_{0.975, df}: the two-sided 95 % critical values of Student's t (any statistics table)
T975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184, 9: 2.26215716,
        10: 2.22813885, 29: 2.04522964, 30: 2.04227246, 100: 1.98397152, math.inf: 1.95996398}


@pytest.mark.parametrize("df", list(T975))
def test_t_quantile_matches_the_table(df):
    assert t_quantile(0.975, df) == pytest.approx(T975[df], abs=1e-7)
    assert t_quantile(0.025, df) == pytest.approx(-T975[df], abs=1e-7)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.99, 0.999])
def test_t_quantile_closed_forms(p):
    # df = 1 is the Cauchy distribution: tan(pi (p - 1/2)); df = 2: (2p - 1) / sqrt(2 p (1 - p))
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_cdf(t_quantile(p, 7), 7) == pytest.approx(p, abs=1e-12)


def test_mean_ci_hand_checked():
    # mean 2, s = 1, half-width = 4.30265 / sqrt(3) = 2.48414
    ci = mean_ci([1.0, 2.0, 3.0])
    assert (ci.mean, ci.n) == (2.0, 3)
    assert (ci.low, ci.high) == (pytest.approx(2 - 2.484138), pytest.approx(2 + 2.484138))
    assert ci.format() == "2.000 ± 2.484"
    one = mean_ci([0.5])
    assert one.n == 1 and math.isnan(one.low) and one.format(".2f") == "0.50 (1 seed)"
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_hand_checked():
    # differences 0.5, 1, 1.5: mean 1, s 0.5, t = 1 / (0.5/sqrt 3) = 3.4641; with df 2 the t CDF is
    # 1/2 + t / (2 sqrt(2 + t^2)), so p = 2 (1/2 - 3.4641 / (2 sqrt 14)) = 0.074180
    a = {0: 1.0, 1: 2.0, 2: 4.0, 7: 9.0}  # seed 7 has no partner: left out
    b = {0: 0.5, 1: 1.0, 2: 2.5}
    r = paired(a, b)
    assert r.seeds == (0, 1, 2)
    assert r.t == pytest.approx(3.4641016)
    assert r.p == pytest.approx(0.0741799, abs=1e-6)
    assert (r.diff.low, r.diff.high) == (pytest.approx(1 - 1.2420689), pytest.approx(1 + 1.2420689))
    assert verdict(r.diff) == "within noise"
    same_shift = paired({0: 2.0, 1: 3.0, 2: 5.0}, {0: 1.0, 1: 2.0, 2: 4.0})
    assert same_shift.p == 0.0 and verdict(same_shift.diff) == "helped"
    assert math.isnan(paired({0: 1.0}, {0: 0.0}).p)


def test_verdict_words():
    helped, hurt, noise = mean_ci([0.2, 0.3, 0.25]), mean_ci([-0.2, -0.3, -0.25]), mean_ci([-0.1, 0.3, 0.1])
    assert [verdict(d) for d in (helped, hurt, noise)] == ["helped", "hurt", "within noise"]
    # a loss: lower is better, so a negative difference helped
    assert verdict(hurt, higher_is_better=False) == "helped"
    assert verdict(helped, words=("collapsed", "balanced", "unclear")) == "collapsed"
    assert verdict(mean_ci([0.9])) == ONE_SEED
    # two seeds whose interval excludes 0 still give no verdict: a sentence needs three
    assert mean_ci([0.2, 0.21]).low > 0 and verdict(mean_ci([0.2, 0.21])) == no_verdict(2) == (
        "2 seeds: no verdict, it takes 3")
    # against a target instead of 0: MaxVio 0.07 ± 0.01 is under 0.1, 0.10 ± 0.03 straddles it, 0.2 ± 0.01 is above
    words = ("under", "above", "straddles")
    under, straddles, above = mean_ci([0.06, 0.07, 0.08]), mean_ci([0.08, 0.1, 0.12]), mean_ci([0.19, 0.2, 0.21])
    assert [verdict(v, higher_is_better=False, words=words, than=0.1) for v in (under, straddles, above)] == [
        "under", "straddles", "above"]


def test_across_seeds_from_run_directories(tmp_path):
    for seed, loss in enumerate([2.0, 2.2, 2.1]):
        for name, shift in (("dense", 0.0), ("moe", -0.1)):
            d = tmp_path / f"seed-{seed}" / name
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({"run": name, "seed": seed}))
            (d / "analysis.json").write_text(json.dumps({"test_loss": loss + shift}))
    runs = load_runs(tmp_path)
    ci = across_seeds(runs, lambda r: r.analysis["test_loss"])
    assert ci["dense"].mean == pytest.approx(2.1) and ci["dense"].n == 3
    vals = seed_values(runs, lambda r: r.analysis["test_loss"])
    assert verdict(paired(vals["moe"], vals["dense"]).diff, higher_is_better=False) == "helped"


# -----------------------------------------------------------------------------
# the sweep's machinery, with stand-in commands (fractions of a second each)


def fake_lab(behaviour: dict[int, str]):
    """A stand-in for `nnlabs lab`: per seed 'ok', 'crash' (exit 1), 'kill' (SIGKILL itself) or 'partial'
    (starts a run — config and a metrics line — then crashes); every seed first records --resume and threads."""

    def command(seed, resume):
        script = f"""
import json, os, signal, sys
from pathlib import Path
out = Path({seed.out!r})
with open(out / "calls.txt", "a") as f:
    f.write(json.dumps({{"resume": {resume!r}, "threads": os.environ["OMP_NUM_THREADS"]}}) + "\\n")
kind = {behaviour.get(seed.seed, "ok")!r}
if kind == "partial":
    (out / "run-a").mkdir(exist_ok=True)
    (out / "run-a" / "config.json").write_text(json.dumps({{"budget": {seed.budget!r}, "seed": {seed.seed}}}))
    (out / "run-a" / "metrics.jsonl").write_text('{{"step": 0}}\\n')
if kind in ("crash", "partial"):
    sys.exit("error: something broke")
if kind == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
print("finished seed", {seed.seed})
"""
        return [sys.executable, "-c", script]

    return command


def calls(out: Path, seed: int) -> list[dict]:
    path = out / f"seed-{seed}" / "calls.txt"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_failures_are_reported_and_do_not_stop_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "command", fake_lab({1: "crash", 2: "kill", 3: "partial"}))
    results = {r["seed"]: r for r in sweep.sweep("act", [0, 1, 2, 3], "tiny", tmp_path, jobs=2, progress=False)}
    assert [results[s]["ok"] for s in range(4)] == [True, False, False, False]
    assert results[1]["error"] == "exit status 1: error: something broke"
    assert results[2]["error"].startswith("killed by SIGKILL")
    for s in range(4):
        log = Path(results[s]["log"])
        assert log == tmp_path / f"seed-{s}" / "log.txt" and log.read_text().startswith("$ OMP_NUM_THREADS=")
        assert (tmp_path / f"seed-{s}" / sweep.MARKER).exists() == (s == 0)
    assert "finished seed 0" in Path(results[0]["log"]).read_text()
    marker = json.loads((tmp_path / "seed-0" / sweep.MARKER).read_text())
    assert (marker["lab"], marker["seed"], marker["budget"], marker["threads"]) == ("act", 0, "tiny", 1)
    assert {"torch", "cpu", "cpu_capability"} <= set(marker["machine"])


def test_rerun_runs_only_what_is_unfinished(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "command", fake_lab({1: "crash", 2: "partial"}))
    sweep.sweep("act", [0, 1, 2], "tiny", tmp_path, jobs=2, progress=False)
    monkeypatch.setattr(sweep, "command", fake_lab({}))
    monkeypatch.setattr(sweep, "lab_resumes", lambda: True)  # the labs' shared parser takes --resume
    again = sweep.sweep("act", [0, 1, 2], "tiny", tmp_path, jobs=2, progress=False)
    assert sorted(r["seed"] for r in again) == [1, 2] and all(r["ok"] for r in again)
    assert len(calls(tmp_path, 0)) == 1
    # seed 1 never started a run: it starts afresh; seed 2 had: it resumes
    assert [c["resume"] for c in calls(tmp_path, 1)] == [False, False]
    assert [c["resume"] for c in calls(tmp_path, 2)] == [False, True]
    # the failed attempt's output stays in the log, above the retry's
    log = (tmp_path / "seed-1" / "log.txt").read_text()
    assert log.index("something broke") < log.index("finished seed 1")
    assert sweep.sweep("act", [0, 1, 2], "tiny", tmp_path, progress=False) == []


def test_threads_per_seed_and_budget_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "command", fake_lab({}))
    sweep.sweep("act", [0], "tiny", tmp_path, jobs=1, threads=3, progress=False)
    assert calls(tmp_path, 0)[0]["threads"] == "3"
    monkeypatch.setattr(sweep, "cores", lambda: 8)
    sweep.sweep("act", [1], "tiny", tmp_path, jobs=4, progress=False)
    assert calls(tmp_path, 1)[0]["threads"] == "2"  # cores / jobs
    with pytest.raises(UserError, match="budget tiny, not quick"):
        sweep.sweep("act", [0], "quick", tmp_path, progress=False)
    with pytest.raises(UserError, match="unknown lab"):
        sweep.sweep("nope", [0], "tiny", tmp_path, progress=False)


def test_progress_line():
    bar = sweep.Progress(total=3, slots=2, show=False)
    assert bar.line(pending=3).startswith("sweep: 0/3 done, 2 running, 0 failed, 0m00s elapsed")
    bar.walls.append(60.0)
    bar.failed = 1
    # 3 seeds 2 at a time = 2 waves of ~60 s, minus what has elapsed
    assert bar.line(pending=1).endswith(", ~2m00s left") or bar.line(pending=1).endswith(", ~1m59s left")
    assert "1/3 done, 1 running, 1 failed" in bar.line(pending=1)


# -----------------------------------------------------------------------------
# a real lab end to end: local processes, then the same seed as a Ray task

LAB = "moe"  # the quickest lab at the tiny budget


def comparable(seed_dir: Path) -> dict:
    """Every number a seed's runs wrote, minus wall-clock times."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not (k == "wall_s" or k.endswith("_s"))}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return {r.name: strip({"metrics": r.metrics, "analysis": r.analysis}) for r in load_runs(seed_dir)}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / LAB
    assert cli(["lab", LAB, "--seeds", "1", "--budget", "tiny", "--threads", "1", "--executor", "local",
                "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_lab_seeds_runs_a_sweep(local_sweep):
    seed_dir = local_sweep / "seed-0"
    runs = load_runs(seed_dir)
    assert runs and all(r.complete and r.seed == 0 for r in runs)
    assert json.loads((seed_dir / sweep.MARKER).read_text())["budget"] == "tiny"
    assert (seed_dir / "log.txt").exists()


@pytest.mark.slow
def test_ray_executor_gives_the_same_numbers(local_sweep, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / LAB
        results = sweep.sweep(LAB, [0], "tiny", out, executor="ray", threads=1, progress=False)
    finally:
        ray.shutdown()
    assert [r["ok"] for r in results] == [True], results
    marker = json.loads((out / "seed-0" / sweep.MARKER).read_text())
    assert marker["threads"] == 1
    assert comparable(out / "seed-0") == comparable(local_sweep / "seed-0")


def test_seed_figures_draw_every_seed_and_the_mean():
    from nnlabs.report.figures import new_figure, plt
    from nnlabs.report.stats import plot_seed_curves, plot_seeds

    fig, axes = new_figure(2)
    ci = plot_seeds(axes[0][0], 1.0, [2.0, 2.2, 2.1], color="C0", label="moe")
    assert ci.n == 3 and len(axes[0][0].collections[0].get_offsets()) == 3  # the three faint seeds
    plot_seed_curves(axes[0][1], [([0, 10, 20], [3.0, 2.5, 2.0]), ([0, 10, 20], [3.2, 2.7, 2.2])], color="C1",
                     label="dense")
    lines = axes[0][1].get_lines()
    assert len(lines) == 3 and list(lines[-1].get_ydata()) == pytest.approx([3.1, 2.6, 2.1])
    plt.close(fig)


# what each lab's report says about three seeds: a seed sentence, intervals in its tables, a paired verdict
ACROSS_SEEDS = {
    "tour": ["Transformer − MLP final test NLL, paired by seed"],
    "act": ["### parity: every seed", "**Adaptive depth, over 3 seeds:**"],
    "tools": ["## Across seeds", "- Learned − always call: accuracy"],
    "dreamcoder": ["## Across seeds", "pooled over seeds", "held-out tasks of 3 seed(s)"],
}


@pytest.mark.slow
@pytest.mark.parametrize("lab", list(ACROSS_SEEDS))
def test_reports_read_every_seed_of_a_sweep(tmp_path, lab):
    import shutil

    from nnlabs.labs import lab_module

    # one real tiny run as seed 0, its copies as seeds 1 and 2: the report's across-seed paths (verdicts take
    # three seeds) without more runs
    out = tmp_path / lab
    assert cli(["lab", lab, "--budget", "tiny", "--seed", "0", "--out", str(out / "seed-0")]) == 0
    for seed in (1, 2):
        shutil.copytree(out / "seed-0", out / f"seed-{seed}")
        for config in (out / f"seed-{seed}").glob("*/config.json"):
            config.write_text(json.dumps({**json.loads(config.read_text()), "seed": seed}))
    lab_module(lab).report(out)
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "3 seeds (0, 1, 2): numbers are means ± the half-width" in text
    assert " ± " in text.split("3 seeds (0, 1, 2)")[1]  # a table cell with its interval
    for phrase in ACROSS_SEEDS[lab]:
        assert phrase in text, phrase
    payoff = json.loads((out / "payoff.json").read_text())
    assert {p["seed"] for p in payoff["points"]} == {0, 1, 2}  # every seed reaches the closing figure


def test_sweep_command_ends_with_the_report_over_every_seed(tmp_path, monkeypatch):
    """`nnlabs sweep` writes the lab's report over all its seeds once every seed has finished."""
    ok = [{"lab": "act", "seed": 0, "ok": True}, {"lab": "act", "seed": 1, "ok": True}]
    monkeypatch.setattr(sweep, "sweep_labs", lambda *a, **k: ok)
    reported = []
    monkeypatch.setattr("nnlabs.labs.act.report", lambda out: reported.append(out))
    assert sweep.main(["act", "--seeds", "2", "--budget", "tiny", "--out", str(tmp_path / "act")]) == 0
    assert reported == [tmp_path / "act"]
    monkeypatch.setattr(sweep, "sweep_labs", lambda *a, **k: [{"lab": "act", "seed": 0, "ok": False}])
    assert sweep.main(["act", "--seeds", "1", "--budget", "tiny", "--out", str(tmp_path / "act")]) == 1
    assert reported == [tmp_path / "act"]  # a failed seed: no report over a partial sweep


def test_several_labs_share_one_pool_longest_first(tmp_path, monkeypatch):
    """`make labs`: every lab in <runs>/<lab>/seed-<s>, the costlier labs queued first; a lab's
    report is written when its seeds finished, while the others train, and not when another lab's failed."""
    monkeypatch.setattr(sweep, "command", fake_lab({1: "crash"}))
    reported = []
    for lab in ("tour", "act"):
        monkeypatch.setattr(f"nnlabs.labs.{lab}.report", lambda out: reported.append(out.name))
    started = []
    run_seed = sweep.run_seed
    monkeypatch.setattr(sweep, "run_seed", lambda s: started.append((s.lab, s.seed)) or run_seed(s))
    assert sweep.main(["tour", "act", "--seeds", "1", "--budget", "tiny", "--runs", str(tmp_path), "--jobs", "1"]) == 0
    # each lab's report as soon as its seeds are done (act's while tour trains), not all at the end in CLI order
    assert started == [("act", 0), ("tour", 0)] and reported == ["act", "tour"]
    assert all((tmp_path / lab / "seed-0" / sweep.MARKER).exists() for lab in ("act", "tour"))
    # seed 1 of both crashes: no report for either; tour's and act's finished seed 0 are skipped
    reported.clear()
    assert sweep.main(["tour", "act", "--seeds", "2", "--budget", "tiny", "--runs", str(tmp_path)]) == 1
    assert reported == [] and sorted(started[2:]) == [("act", 1), ("tour", 1)]
    with pytest.raises(UserError, match="--out names one lab"):
        sweep.main(["tour", "act", "--seeds", "1", "--out", str(tmp_path)])
