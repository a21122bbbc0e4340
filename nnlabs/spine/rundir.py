"""Run directories: owned by one process at a time, never overwritten unasked, read safely after a crash.

A run directory holds config.json (written first), metrics.jsonl and samples.txt (appended at each
evaluation), checkpoint.pt (replaced atomically) and, for a lab's finished run, analysis.json. A lab's
--out folder holds one such directory per run. Three rules keep them safe:

  * one owner: `locked(dir)` holds an exclusive lock on dir/.lock (which names the owner's pid and
    command) for as long as a run writes there; a second process refuses with one sentence naming the
    owner. The kernel drops the lock when its process dies, so a lock left by a killed run is taken over.
  * no silent overwrite: `refuse_overwrite` stops a new run in a directory that holds one unless the user
    said --resume (continue it) or --force (start over, `start_over` deletes the run's files).
  * safe reading: `read_jsonl` skips the truncated last line that a power cut leaves, with a warning.

File-only and torch-free, so the report side (`nnlabs.report.runs`) reads runs through it too.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnlabs.spine.errors import UserError

LOCK = ".lock"
RUNNING = ".running"  # in a lab's --out folder until the lab ends; left behind, it marks an interrupted lab
# every file a run writes; --force deletes exactly these (never anything else in the folder)
RUN_FILES = ("config.json", "metrics.jsonl", "samples.txt", "checkpoint.pt", "checkpoint.pt.tmp", "analysis.json")

# directories this process holds: resolved path -> (lock file descriptor, nesting depth)
_held: dict[Path, list[int]] = {}


# -----------------------------------------------------------------------------
# reading what an interrupted run left


def read_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per line. A truncated last line (what a power cut or a kill mid-write leaves) is
    skipped with a warning; a malformed line before the last is an error naming the file and line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                warnings.warn(f"{path}: skipped a truncated last line ({number})", stacklevel=2)
                continue
            raise UserError(f"{path} line {number} is not valid JSON; the file is damaged — "
                            "delete the run directory and run it again") from None
    return records


def read_json(path: str | Path) -> dict:
    """A JSON file a run wrote, or one sentence if an interrupted write or a hand edit damaged it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is damaged (not valid JSON; an interrupted write?): delete the run directory, "
                        "or pass --force to start it over") from None


def last_step(path: str | Path) -> int | None:
    """The step of the last metrics line of a run directory (None: no metrics yet)."""
    metrics = Path(path) / "metrics.jsonl"
    if not metrics.is_file():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a truncated line is reported by whoever reads the run for real
        steps = [r["step"] for r in read_jsonl(metrics) if isinstance(r, dict) and "step" in r]
    return steps[-1] if steps else None


# -----------------------------------------------------------------------------
# what a directory holds, and the overwrite rule


def holds_run(path: str | Path) -> bool:
    path = Path(path)
    metrics = path / "metrics.jsonl"
    return ((path / "checkpoint.pt").exists() or (path / "analysis.json").exists()
            or (metrics.is_file() and metrics.stat().st_size > 0))


def runs_inside(path: str | Path) -> list[Path]:
    """The run directories directly inside a lab's --out folder."""
    path = Path(path)
    return sorted(p for p in path.iterdir() if p.is_dir() and holds_run(p)) if path.is_dir() else []


def describe(path: str | Path) -> str | None:
    """'a run at step N' for a run directory, 'N runs (k finished)' for a lab's folder, None if empty."""
    path = Path(path)
    if holds_run(path):
        step = last_step(path)
        return f"a run at step {step}" if step is not None else "a run"
    inside = runs_inside(path)
    if not inside:
        return None
    finished = sum((p / "analysis.json").exists() for p in inside)
    return f"{len(inside)} run(s) ({finished} finished: {', '.join(p.name for p in inside)})"


def refuse_overwrite(path: str | Path, *, resume: bool, force: bool) -> None:
    """A new run never replaces one that is there unless asked: --resume continues it, --force starts over.
    --resume where nothing was run refuses too, instead of silently starting afresh."""
    held = describe(path)
    if held and not (resume or force):
        raise UserError(f"{path} holds {held}: pass --resume to continue or --force to start over")
    # (a lab interrupted before its first run left only its marker: continuing it is starting it)
    if resume and not force and held is None and not (Path(path) / RUNNING).exists():
        raise UserError(f"--resume: {path} holds no run to continue (no checkpoint or metrics); "
                        "drop --resume to start a new run there")


def start_over(path: str | Path) -> None:
    """--force: delete the run files of `path` and of the runs inside it (only those files, nothing else)."""
    path = Path(path)
    for folder in [path, *runs_inside(path)]:
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)


# -----------------------------------------------------------------------------
# one owner per directory


def writable_dir(path: str | Path) -> Path:
    """Create `path` if needed; one sentence if it is a file or cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder; pass a folder for the run to write into")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder {path} ({e.strerror}); pass a folder you can write to") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to the run folder {path} (permission denied); pass a folder you can write to")
    return path


def _owner(lock: Path) -> str:
    try:
        pid, _, command = lock.read_text(encoding="utf-8").partition("\n")
    except OSError:
        pid, command = "", ""
    return f"process {pid} ({command.strip()})" if pid.strip() else "another process"


@contextmanager
def claim(path: str | Path, *, resume: bool, force: bool) -> Iterator[Path]:
    """What a lab's main does before any run: own its --out folder for the whole lab (`locked`), refuse to
    overwrite the runs already there unless --resume or --force (`refuse_overwrite`), and with --force alone
    delete their files so nothing stale survives (`start_over`)."""
    with locked(path) as path:
        refuse_overwrite(path, resume=resume, force=force)
        if force and not resume:
            start_over(path)
        script = Path(sys.argv[0]).name in ("nnlabs", "__main__.py")  # run as a command, not from Python
        (path / RUNNING).write_text(resume_command(sys.argv[1:]) + "\n" if script else "")
        yield path
        # reached only when the lab's body returned: a Ctrl-C or a crash leaves the marker in place
        (path / RUNNING).unlink()


def resume_command(argv: list[str]) -> str:
    """The command that continues the run a command line started: the same flags, --resume, no --force."""
    again = [a for a in argv if a != "--force"]
    return shlex.join(["nnlabs", *again, *([] if "--resume" in again else ["--resume"])])


def unfinished(out: str | Path) -> list[str]:
    """The runs in a lab's --out folder that stopped early: no analysis.json, and if the trainer ran them,
    metrics short of the recorded max_steps (a trainer-only run that reached its last step is finished)."""
    names = []
    for run in runs_inside(out):
        if finished(run):
            continue
        config = read_json(run / "config.json") if (run / "config.json").exists() else {}
        steps = config.get("train", {}).get("max_steps") if isinstance(config, dict) else None
        if steps is None or last_step(run) != steps - 1:
            names.append(run.name)
    return names


def interrupted(lab_dir: str | Path) -> dict[Path, str]:
    """The lab --out folders under lab_dir (itself, and a sweep's seed-* folders) whose lab was interrupted,
    with the command that continues each ('' when it was not started from the command line)."""
    lab_dir = Path(lab_dir)
    return {d: (d / RUNNING).read_text(encoding="utf-8").strip() for d in [lab_dir, *sorted(lab_dir.glob("seed-*"))]
            if (d / RUNNING).exists()}


def finished(path: str | Path) -> bool:
    """A lab run that wrote analysis.json (written last) is finished: --resume keeps it as it is."""
    return (Path(path) / "analysis.json").exists()


def in_use(path: str | Path) -> str | None:
    """Who holds `path` now ('process N (command)'), or None when no live process does."""
    lock = Path(path) / LOCK
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _owner(lock)
    finally:
        os.close(fd)


@contextmanager
def locked(path: str | Path) -> Iterator[Path]:
    """Hold `path` for this process while the block runs (re-entrant: a lab and its trainer may both ask).
    A second process refuses with one sentence naming the owner; the lock goes when this process exits,
    however it exits, because the kernel releases a dead process's locks (a stale .lock is taken over)."""
    path = writable_dir(path)
    key = path.resolve()
    if key in _held:
        _held[key][1] += 1
        try:
            yield path
        finally:
            _held[key][1] -= 1
        return
    lock = path / LOCK
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{path} is in use by {_owner(lock)}; wait for it to finish or stop it, "
                            "or pass another folder") from None
        # the previous owner deletes .lock on release: if it did so between our open and our flock, we
        # hold a lock on a deleted file, so open the new one and try again
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _owner(lock)
    if stale != "another process" and not stale.startswith(f"process {os.getpid()} "):
        print(f"note: took over {lock} from {stale}, which is no longer running", file=sys.stderr)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n{command}\n".encode())
    _held[key] = [fd, 0]
    try:
        yield path
    finally:
        del _held[key]
        lock.unlink(missing_ok=True)
        os.close(fd)
