"""`nnlabs sweep <lab> [<lab> ...] --seeds N`: every run of a lab once per seed, each seed in its own run directory.

    nnlabs sweep act --seeds 3 [--budget full] [--jobs 2] [--executor local|ray] [--address HOST:PORT]
    nnlabs sweep tour moe act tools dreamcoder --seeds 1 --runs runs     # what `make labs` runs

Several labs share one pool of jobs: on 2 cores two labs train side by side (each lab trains with one
thread), the costliest first (`LabInfo.cpu_minutes`), so `make labs` takes about half the sum of the labs' times.

A seed is one `nnlabs lab <lab> --seed s --out <out>/seed-<s> --budget B` in its own process, so a crash
or a kill ends that seed only; its output goes to `<out>/seed-<s>/log.txt`. A seed that finished is
marked by `<out>/seed-<s>/sweep.json` (written last, with where and how it ran); running the sweep
again runs only the seeds without one, passing `--resume` to those that had started.

Two executors run the same function, `run_seed`, on the same plain `Seed` records:
- local (default): a thread pool of `--jobs` workers, each waiting on its subprocess;
- ray (`--executor ray`, or RAY_ADDRESS set): one Ray task per seed on an existing cluster
  (`--address`/RAY_ADDRESS; without either, a local Ray instance). Every node must see `--out` at the
  same path (shared storage) and have nnlabs installed — see the README.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nnlabs.labs import LABS, lab_module, lab_parser
from nnlabs.spine.errors import UserError
from nnlabs.spine.rundir import runs_inside

# Measured on the 2-core reference machine (docs/design.md, "Seeds and sweeps"): two seeds at once with
# one thread each finish sooner than one seed at a time with two threads.
DEFAULT_JOBS = 2
MARKER = "sweep.json"
# passed through to every seed's process, wherever it runs (a Ray worker does not inherit our environment),
# and recorded in its sweep.json: the data folder, CI, and the kernel pins that make x86 machines with
# different vector units compute the same bits (docs/design.md, "The same numbers on any machine")
FORWARD_ENV = ("NNLABS_DATA_DIR", "CI", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")


@dataclass(frozen=True)
class Seed:
    """One seed of a sweep: everything a worker needs, as plain data (Ray ships it to another machine)."""

    lab: str
    seed: int
    budget: str
    out: str  # absolute path of this seed's directory
    threads: int
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""  # the folder the sweep started in (relative paths in the lab resolve against it)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def lab_resumes() -> bool:
    """Whether every lab takes --resume (the shared lab parser's flags)."""
    return any("--resume" in a.option_strings for a in lab_parser("x", "", ("quick",), 0)._actions)


def command(seed: Seed, resume: bool) -> list[str]:
    return [sys.executable, "-m", "nnlabs", "lab", seed.lab, "--seed", str(seed.seed), "--out", seed.out,
            "--budget", seed.budget] + (["--resume"] if resume else [])


def machine() -> dict:
    """Where a seed ran: what decides its last digits besides the seed (docs/design.md, "Same numbers")."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {"host": platform.node(), "cpu": cpu, "arch": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def failure(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def run_seed(seed: Seed) -> dict:
    """Run one seed of a lab in a subprocess with `seed.threads` CPU threads; mark it finished on success.
    The same function is the local executor's work item and the Ray task."""
    out = Path(seed.out)
    out.mkdir(parents=True, exist_ok=True)
    # decided here, not by the caller: a Ray task retried after a lost node finds the first attempt's runs.
    # The lab's own rule (spine.rundir) says what counts as a run to continue.
    resume = lab_resumes() and bool(runs_inside(out))
    cmd = command(seed, resume)
    env = {**os.environ, **dict(seed.env), "OMP_NUM_THREADS": str(seed.threads), "MKL_NUM_THREADS": str(seed.threads)}
    log = out / "log.txt"
    t0 = time.perf_counter()
    # appended: a retried seed keeps the failed attempt's output above the new one
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ OMP_NUM_THREADS={seed.threads} {shlex.join(cmd)}\n")
        f.flush()
        cwd = seed.cwd if seed.cwd and Path(seed.cwd).is_dir() else None
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        # reaped here, not by proc.wait(): wait4 also gives the seed's own CPU time (children it waited for
        # included), which says how long it takes on an idle core when seeds share a busy machine
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = returncode = os.waitstatus_to_exitcode(status)
    wall = round(time.perf_counter() - t0, 1)
    cpu = round(usage.ru_utime + usage.ru_stime, 1)
    result = {"lab": seed.lab, "seed": seed.seed, "ok": returncode == 0, "wall_s": wall, "cpu_s": cpu, "log": str(log),
              "error": None if returncode == 0 else f"{failure(returncode)}: {last_line(log)}"}
    if returncode == 0:
        marker = {**asdict(seed), "env": dict(seed.env), "resumed": resume, "wall_s": wall, "cpu_s": cpu,
                  "command": cmd, "machine": machine()}
        tmp = out / (MARKER + ".tmp")
        tmp.write_text(json.dumps(marker, indent=2) + "\n")
        tmp.replace(out / MARKER)
    return result


def seed_state(out: Path, budget: str) -> str:
    """'done' (marked finished), 'partial' (started, not finished) or 'missing'. A seed directory from
    another budget is an error: its runs would mix with this sweep's."""
    marker = out / MARKER
    budgets = {json.loads(marker.read_text())["budget"]} if marker.exists() else set()
    budgets |= {json.loads(p.read_text()).get("budget") for p in out.glob("*/config.json")} - {None}
    if budgets - {budget}:
        raise UserError(f"{out} holds runs at budget {', '.join(sorted(budgets - {budget}))}, not {budget}; "
                        "sweep into another --out, or delete that folder")
    if marker.exists():
        return "done"
    return "partial" if out.exists() and any(out.iterdir()) else "missing"


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


class Progress:
    """One status line for the whole sweep: done / running / failed, elapsed and an estimate of the rest
    (from the mean time of a finished seed). Shown on a terminal, quiet under CI=true."""

    def __init__(self, total: int, slots: int, show: bool):
        self.total, self.slots, self.show = total, slots, show
        self.t0 = time.perf_counter()
        self.walls: list[float] = []
        self.failed = 0

    def line(self, pending: int) -> str:
        elapsed = time.perf_counter() - self.t0
        done = len(self.walls) + self.failed
        running = min(pending, self.slots)
        text = f"sweep: {done - self.failed}/{self.total} done, {running} running, {self.failed} failed, " \
               f"{fmt_s(elapsed)} elapsed"
        if self.walls and pending:
            # the seeds of a lab take about equally long (across labs this is a rough guess) and run `slots`
            # at a time: ceil(total / slots) waves in all
            waves = -(-self.total // self.slots)
            text += f", ~{fmt_s(max(0.0, sum(self.walls) / len(self.walls) * waves - elapsed))} left"
        return text

    def update(self, pending: int) -> None:
        if self.show:
            print("\r" + self.line(pending).ljust(78), end="", file=sys.stderr, flush=True)

    def finished(self, result: dict, pending: int) -> None:
        if result["ok"]:
            self.walls.append(result["wall_s"])
        else:
            self.failed += 1
        if self.show:
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr)
        name = f"{result['lab']} seed {result['seed']}"
        if result["ok"]:
            print(f"{name}: done in {fmt_s(result['wall_s'])} ({fmt_s(result['cpu_s'])} CPU)  ({result['log']})")
        else:
            print(f"{name}: FAILED, {result['error']}  (log: {result['log']})")
        self.update(pending)


def submit_local(seeds: list[Seed], jobs: int):
    pool = cf.ThreadPoolExecutor(max_workers=jobs)
    # on Ctrl-C the running seeds stop with it (same process group); the queued ones must not start
    return [pool.submit(run_seed, s) for s in seeds], jobs, lambda: pool.shutdown(wait=True, cancel_futures=True)


def submit_ray(seeds: list[Seed], address: str | None):
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'nnlabs[ray]' (or pip install ray)") from None
    # an instance the caller started (tests: ray.init(num_cpus=2)) is used as it is and left running
    ours = not ray.is_initialized()
    if ours:  # address None: RAY_ADDRESS if set, else a new local instance
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    threads = seeds[0].threads if seeds else 1
    # max_retries: a lost node reruns its seed, which then resumes from the runs it wrote to shared storage
    task = ray.remote(num_cpus=threads, max_retries=2)(run_seed)
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    return [task.remote(s).future() for s in seeds], slots, ray.shutdown if ours else (lambda: None)


def plan(lab: str, seeds: list[int], budget: str, out: Path, threads: int) -> list[Seed]:
    """The seeds of one lab still to run under `out`/seed-<s> (a finished one is skipped, and said so)."""
    out = out.resolve()
    env = tuple((k, os.environ[k]) for k in FORWARD_ENV if k in os.environ)
    states = {s: seed_state(out / f"seed-{s}", budget) for s in seeds}
    skipped = [s for s in seeds if states[s] == "done"]
    if skipped:
        print(f"{lab}: already finished, skipped: seed {', '.join(map(str, skipped))}")
    return [Seed(lab, s, budget, str(out / f"seed-{s}"), threads, env, os.getcwd())
            for s in seeds if states[s] != "done"]


def sweep(lab: str, seeds: list[int], budget: str, out: str | Path, jobs: int = DEFAULT_JOBS,
          threads: int | None = None, executor: str = "local", address: str | None = None,
          progress: bool | None = None) -> list[dict]:
    """Run every seed of `seeds` that is not finished under `out`/seed-<s>; return one result per seed
    run ({"lab", "seed", "ok", "wall_s", "log", "error"}), failures included, in the order they finished."""
    return sweep_labs({lab: Path(out)}, seeds, budget, jobs, threads, executor, address, progress)


def sweep_labs(outs: dict[str, Path], seeds: list[int], budget: str, jobs: int = DEFAULT_JOBS,
               threads: int | None = None, executor: str = "local", address: str | None = None,
               progress: bool | None = None, on_lab_done=None) -> list[dict]:
    """`sweep` over several labs ({lab: its folder}) in one pool of jobs. `on_lab_done(lab)`, if given, is
    called as soon as every seed of a lab that this sweep ran has finished without failing."""
    if jobs < 1 or (threads is not None and threads < 1):
        raise UserError("--jobs and --threads must be at least 1")
    for lab in outs:
        if lab not in LABS:
            raise UserError(f"unknown lab {lab!r}; choose one of: {', '.join(LABS)}")
    threads = threads or max(1, cores() // jobs)
    # the costliest labs first (longest-processing-time order), so the short ones fill the last gap
    cost = {lab: LABS[lab].cpu_minutes[budget == "full"] for lab in outs}
    todo = [seed for lab in sorted(outs, key=lambda lab: -cost[lab])
            for seed in plan(lab, seeds, budget, outs[lab], threads)]
    if not todo:
        return []
    where = f"{next(iter(outs.values())).resolve()}/seed-<s>" if len(outs) == 1 else "<lab folder>/seed-<s>"
    print(f"{', '.join(outs)}: {len(todo)} seed(s) at budget {budget} on {executor}, {threads} thread(s) each "
          + (f"{jobs} at a time, " if executor == "local" else "") + f"into {where}")
    # a line redrawn every second: for a terminal, not for a log file (a seed's done line is printed anyway)
    show = progress if progress is not None else (sys.stderr.isatty()
                                                   and os.environ.get("CI", "").lower() not in ("1", "true"))
    futures, slots, close = submit_local(todo, jobs) if executor == "local" else submit_ray(todo, address)
    bar = Progress(len(todo), slots, show)
    results, pending = [], set(futures)
    left = {lab: sum(seed.lab == lab for seed in todo) for lab in outs}  # seeds not finished yet, per lab
    try:
        bar.update(len(pending))
        while pending:
            done, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            for f in done:
                seed = todo[futures.index(f)]
                try:
                    result = f.result()
                except Exception as e:  # the worker itself died (a lost Ray node after its retries)
                    result = {"lab": seed.lab, "seed": seed.seed, "ok": False, "wall_s": 0.0,
                              "log": str(Path(seed.out) / "log.txt"), "error": f"{type(e).__name__}: {e}"}
                results.append(result)
                bar.finished(result, len(pending))
                left[seed.lab] -= 1
                if on_lab_done and not left[seed.lab] and all(r["ok"] for r in results if r["lab"] == seed.lab):
                    on_lab_done(seed.lab)
            bar.update(len(pending))
    finally:
        if show:
            print(file=sys.stderr)
        close()
    failed = [r for r in results if not r["ok"]]
    print(f"{', '.join(outs)}: {len(results) - len(failed)} of {len(results)} run(s) finished in "
          f"{fmt_s(time.perf_counter() - bar.t0)}" + (f"; {len(failed)} failed — run the same command again to "
                                                       "retry just those" if failed else ""))
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnlabs sweep", description="Run labs once per seed, in parallel processes "
                                "on this machine or as Ray tasks on a cluster; rerun to finish what is missing.")
    p.add_argument("labs", nargs="+", choices=LABS, metavar="lab", help=f"one or more of: {', '.join(LABS)}")
    p.add_argument("--seeds", type=int, default=3, help="run seeds 0 .. N-1 (default 3)")
    p.add_argument("--budget", choices=("tiny", "quick", "full"), default="quick",
                   help="tiny = seconds (tests); quick = minutes; full = the post's figures (default quick)")
    p.add_argument("--runs", default="runs", help="the folder of lab folders: seed s of a lab goes to "
                   "<runs>/<lab>/seed-<s> (default runs)")
    p.add_argument("--out", default=None, help="with one lab: its folder instead of <runs>/<lab>")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"local seeds at once (default {DEFAULT_JOBS})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per seed (default: cores / jobs)")
    p.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="local processes (default) or Ray tasks (the default when RAY_ADDRESS is set)")
    p.add_argument("--address", default=None, help="Ray cluster address HOST:PORT (default: RAY_ADDRESS, "
                   "else a local Ray instance)")
    return p


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    if a.seeds < 1:
        raise UserError("--seeds must be at least 1")
    labs = list(dict.fromkeys(a.labs))
    if a.out and len(labs) > 1:
        raise UserError("--out names one lab's folder; with several labs give --runs (each lab in <runs>/<lab>)")
    executor = a.executor or ("ray" if a.address or os.environ.get("RAY_ADDRESS") else "local")
    outs = {lab: Path(a.out) if a.out else Path(a.runs) / lab for lab in labs}
    # imported now, not after the seeds: an edit to a lab's code while a long sweep runs must not break
    # the last step with a half-old, half-new import
    reports = {lab: lab_module(lab).report for lab in labs}
    reported, errors = set(), []

    def report(lab: str) -> None:
        try:
            reports[lab](outs[lab])
        except Exception as e:  # noqa: BLE001 - raised once the sweep is over, not into the other labs' seeds
            errors.append(e)
        else:
            print(f"{lab}: report over every seed in {outs[lab] / 'report.md'}")
        reported.add(lab)

    # each lab's report over every seed (each seed folder also holds its own one-seed report), written while
    # the other labs still train; not over a lab with a failed seed: it would quietly average fewer seeds
    results = sweep_labs(outs, list(range(a.seeds)), a.budget, a.jobs, a.threads, executor, a.address,
                         on_lab_done=report)
    failed = {r["lab"] for r in results if not r["ok"]}
    for lab in labs:
        if lab not in failed and lab not in reported:
            report(lab)
    if errors:
        raise errors[0]
    return 1 if failed else 0
