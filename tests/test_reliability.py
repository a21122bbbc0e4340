"""Issue 12: run directories that never lose work, checkpoints that never run code, one clear error for every
bad input. Each test failed on the code before the fix: a real second process for the lock, a real malicious
pickle, a real SIGINT."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nnlabs.cli import main as cli
from nnlabs.labs import LABS
from nnlabs.spine import rundir
from nnlabs.spine.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "data" / "calc_vectors.json"
# the smallest transformer run that still checkpoints: seconds on a loaded 2-core machine
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "-b", "8", "--eval-interval", "10", "--threads", "1"]


def train_args(corpus: Path, out: Path, *extra: str, steps: int = 20) -> list[str]:
    return ["train", "-i", str(corpus), "-o", str(out), *TINY, "--max-steps", str(steps), *extra]


def nnlabs_process(args: list[str]) -> subprocess.Popen:
    """`nnlabs ARGS` as its own process: the installed console script beside this interpreter."""
    script = Path(sys.executable).parent / "nnlabs"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nnlabs"]
    # a shell without job control starts background jobs with SIGINT ignored, and a Python started that way
    # keeps ignoring it: give the child the default disposition, as a terminal's Ctrl-C would find it
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "true"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(predicate, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the child process"
        time.sleep(0.1)


def one_error(capsys) -> str:
    """The command's stderr, checked to be one 'error:' sentence (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------- 1. one owner per run directory


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(
        tmp_path, tiny_corpus, capsys):
    out = tmp_path / "run"
    holder = nnlabs_process(train_args(tiny_corpus, out, steps=1_000_000))
    try:
        wait_for(lambda: (out / "checkpoint.pt").exists())  # the holder is past its start, writing the run
        assert cli(train_args(tiny_corpus, out, "--resume")) == 2
        err = one_error(capsys)
        assert f"in use by process {holder.pid} (" in err and "nnlabs train" in err
        assert (out / ".lock").read_text().split("\n")[0] == str(holder.pid)
        assert rundir.in_use(out).startswith(f"process {holder.pid} (")  # what nnlabs report says meanwhile
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the .lock file stays behind naming a dead process
        holder.communicate()
    assert (out / ".lock").exists() and rundir.in_use(out) is None
    assert cli(train_args(tiny_corpus, out, "--force", steps=2)) == 0  # the stale lock is taken over
    assert "took over" in capsys.readouterr().err
    assert not (out / ".lock").exists()  # and released on exit
    assert [r["step"] for r in rundir.read_jsonl(out / "metrics.jsonl")] == [0, 0, 1, 1]


def test_the_lock_is_reentrant_within_one_process_and_refuses_files_and_unwritable_places(tmp_path):
    with rundir.locked(tmp_path / "a") as a, rundir.locked(tmp_path / "a"):
        assert (a / ".lock").read_text().startswith(f"{os.getpid()}\n")
    assert not (tmp_path / "a" / ".lock").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        rundir.writable_dir(tmp_path / "file")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UserError, match="cannot"):
            rundir.writable_dir(tmp_path / "ro" / "run")


# ----------------------------------------------------------------------------- 2. never overwrite unasked


def test_a_run_is_never_overwritten_without_resume_or_force(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "run"
    assert cli(train_args(tiny_corpus, out)) == 0
    capsys.readouterr()  # the first run's progress bar (shown when CI is not set)
    before = (out / "metrics.jsonl").read_text()
    assert cli(train_args(tiny_corpus, out)) == 2  # the up-arrow mistake
    assert one_error(capsys) == (f"error: {out} holds a run at step 19: pass --resume to continue or --force "
                                 "to start over")
    assert (out / "metrics.jsonl").read_text() == before
    assert cli(train_args(tiny_corpus, tmp_path / "empty", "--resume")) == 2  # nothing to resume
    assert "--resume" in one_error(capsys) and not (tmp_path / "empty" / "metrics.jsonl").exists()
    (out / "analysis.json").write_text("{}")  # --force deletes the old run's files, so nothing stale survives
    assert cli(train_args(tiny_corpus, out, "--force", steps=5)) == 0
    assert not (out / "analysis.json").exists() and rundir.last_step(out) == 4


# ----------------------------------------------------------------------------- 3. loading never executes code


class Payload:
    """A real malicious pickle: unpickling it runs a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_a_malicious_checkpoint_is_refused_and_never_runs(tmp_path, tiny_corpus, capsys):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    assert cli(train_args(tiny_corpus, out, steps=2)) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # what nnlabs writes loads as weights only
    torch.save({**state, "model": Payload(marker)}, out / "checkpoint.pt")
    capsys.readouterr()
    for command in (train_args(tiny_corpus, out, "--resume", steps=2), ["sample", "-o", str(out)]):
        assert cli(command) == 2
        assert "was not loaded" in one_error(capsys)
    assert not marker.exists()


def test_every_torch_load_in_the_project_is_weights_only():
    for path in (ROOT / "nnlabs").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{n}"


# ----------------------------------------------------------------------------- 4. resume rebuilds what was trained


def test_resume_takes_the_model_from_config_and_refuses_a_differing_flag_unless_forced(tmp_path, tiny_corpus,
                                                                                       capsys):
    out = tmp_path / "run"
    small = ["train", "-i", str(tiny_corpus), "-o", str(out), "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
             "-b", "8", "--max-steps", "12", "--eval-interval", "10", "--threads", "1"]
    assert cli(small) == 0
    assert cli(["train", "-i", str(tiny_corpus), "-o", str(out), "--resume"]) == 0  # no shape flags: from config
    assert rundir.last_step(out) == 11  # (the recorded --max-steps, not the default 3500)
    capsys.readouterr()
    assert cli(["train", "-o", str(out), "--resume", "-l", "0.01"]) == 2
    assert "--learning-rate 0.01 (the run has 0.003)" in one_error(capsys)
    assert cli(["train", "-o", str(out), "--resume", "--max-steps", "14", "--force"]) == 0
    assert rundir.last_step(out) == 13


@pytest.mark.parametrize("damage", ["truncated checkpoint", "garbage checkpoint", "config", "another model"])
def test_a_damaged_checkpoint_or_config_is_one_sentence(tmp_path, tiny_corpus, capsys, damage):
    out = tmp_path / "run"
    assert cli(train_args(tiny_corpus, out, steps=2)) == 0
    ckpt = out / "checkpoint.pt"
    if damage == "truncated checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif damage == "garbage checkpoint":
        ckpt.write_bytes(b"not a checkpoint")
    elif damage == "config":
        (out / "config.json").write_text('{"train": {"max_st')
    else:
        config = json.loads((out / "config.json").read_text())
        config["model"]["n_embd"] = 32
        (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert cli(["train", "-o", str(out), "--resume"]) == 2
    one_error(capsys)
    assert cli(["sample", "-o", str(out)]) == 2
    one_error(capsys)


# ----------------------------------------------------------------------------- 5. interrupted files, Ctrl-C


def test_a_truncated_last_metrics_line_is_skipped_with_a_warning_on_resume(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "run"
    assert cli(train_args(tiny_corpus, out, steps=12)) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 20, "split": "tr')  # what a power cut mid-write leaves
    with pytest.warns(UserWarning, match="truncated last line"):
        assert cli(train_args(tiny_corpus, out, "--resume", steps=12)) == 0
    assert rundir.read_jsonl(out / "metrics.jsonl")[-1]["step"] == 11


def test_ctrl_c_names_a_command_that_exists_and_it_continues_the_run(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    args = train_args(tiny_corpus, out, steps=1000)
    proc = nnlabs_process(args)
    wait_for(lambda: (out / "checkpoint.pt").exists())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    command = err.strip().splitlines()[-1].split("continue with: ", 1)[1]
    assert shlex.split(command) == ["nnlabs", *args, "--resume"]
    assert cli(shlex.split(command)[1:]) == 0 and rundir.last_step(out) == 999


# ----------------------------------------------------------------------------- 6. bad flags and inputs


@pytest.mark.parametrize("flags", [
    "--n-embd 30 --n-head 4", "--n-head 0", "--device foo", "--dropout 2", "--threads -1", "-l nan",
    "--temperature 0", "--init foo", "--top-k 0", "--eval-train-items 0", "-b 10000000", "--block-size 100000",
    "-i {tmp}", "-o {corpus}", "-o {corpus}/run",
])
def test_every_bad_train_flag_is_one_sentence_and_exit_2(tmp_path, tiny_corpus, capsys, flags):
    args = ["train", "-i", str(tiny_corpus), "-o", str(tmp_path / "run"), "--max-steps", "1"]
    args += shlex.split(flags.format(tmp=tmp_path, corpus=tiny_corpus))
    assert cli(args) == 2
    err = one_error(capsys)
    if flags.startswith(("-b", "--block")):
        assert "GB of memory" in err and ("--batch-size" in err if flags.startswith("-b") else "--block-size" in err)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_sample_with_a_negative_count_is_one_sentence(tmp_path, capsys):
    assert cli(["sample", "-o", str(tmp_path), "-n", "-1"]) == 2
    assert "--num-samples" in one_error(capsys)


def test_an_input_past_5_mb_warns_and_encodes_fast_and_exactly(tmp_path, names_path, capsys):
    from nnlabs.spine.data import Vocab, encode_chars, encode_words

    big = tmp_path / "big.txt"
    names = names_path.read_text()
    big.write_text(names * (6_000_000 // len(names) + 1))
    t0 = time.perf_counter()
    assert cli(["train", "-i", str(big), "-o", str(tmp_path / "run"), "--type", "bigram", "--max-steps", "1",
                "--eval-train-items", "10"]) == 0
    assert "past the CPU contract's 5 MB" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 120  # 6 MB took 37 s to encode alone item by item, on an idle machine
    words = ["a", "ébc", "zz😀z", "", "q" * 9]
    vocab = Vocab("".join(words))
    fast, slow = encode_chars(words, vocab, 10), encode_words(words, vocab, 10)
    assert torch.equal(fast.x, slow.x) and torch.equal(fast.y, slow.y)


DEEP: list = []
_inner = DEEP
for _ in range(900):
    _inner.append([])
    _inner = _inner[0]
TASK = {"name": "double", "type": {"input": "list-of-int", "output": "list-of-int"},
        "examples": [{"i": [1, 2], "o": [2, 4]}], "level": 1}


@pytest.mark.parametrize("bad, message", [
    ({"examples": []}, "has no examples"),
    ({"level": "2"}, "has level '2'"),
    ({"level": 1.5}, "has level 1.5"),
    ({"examples": [{"i": {"a": 1}, "o": [2]}]}, "example 1's input is not a value of type list-of-int"),
    ({"examples": [{"i": DEEP, "o": [2]}]}, "example 1's input is not a value of type list-of-int"),
    ({"examples": [{"i": [1], "o": [True]}]}, "example 1's output is not"),
    ({"type": {"input": "list-of-int"}}, "needs type"),
])
def test_dreamcoder_task_files_are_checked_field_by_field(tmp_path, capsys, bad, message):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{**TASK, **bad}]))
    assert cli(["lab", "dreamcoder", "--budget", "tiny", "--out", str(tmp_path / "out"), "--train", str(path),
                "--test", str(path)]) == 2
    err = one_error(capsys)
    assert f"{path}: task 1" in err and message in err


def test_pack_verify_reports_a_bad_manifest_and_an_extra_file(tmp_path, capsys):
    out = tmp_path / "pack"
    assert cli(["pack", "build", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli(["pack", "verify", "--out", str(out)]) == 1
    assert "notes.txt: on disk but not in the pack" in capsys.readouterr().out
    for manifest in ("[]", '"pack"', '{"seed": "0", "files": {}}', '{"seed": 0, "files": []}'):
        (out / "MANIFEST.json").write_text(manifest)
        assert cli(["pack", "verify", "--out", str(out)]) == 2
        assert "is not a pack manifest" in one_error(capsys)


# ----------------------------------------------------------------------------- the calculator: one grammar


def test_the_python_calculator_follows_the_shared_vectors():
    from nnlabs.pack.tool_suite import ToolError, calc

    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    for v in vectors["values"]:
        assert calc(v["expr"]) == v["value"], v
    for v in vectors["errors"]:
        with pytest.raises(ToolError) as e:  # the tool's own error, never a raw ValueError ('2²')
            calc(v["expr"])
        assert v["error"] in str(e.value), v


def test_the_js_calculator_follows_the_same_vectors():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = (ROOT / "nnlabs" / "labs" / "tools" / "explorable.js").read_text(encoding="utf-8")
    start = js.index("function calc(text) {")
    source = js[start:js.index("\n}\n", start) + 2]
    script = ("const calc = new Function(process.argv[1] + '; return calc;')();"
              "const v = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));"
              "console.log(JSON.stringify([...v.values, ...v.errors].map(t => { try { return {value: calc(t.expr)}; }"
              " catch (e) { return {error: e.message}; } })));")
    results = json.loads(subprocess.run([node, "-e", script, source, str(VECTORS)], capture_output=True, text=True,
                                        check=True).stdout)
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    for v, got in zip(vectors["values"] + vectors["errors"], results, strict=True):
        if "value" in v:
            assert got == {"value": v["value"]}, v
        else:
            assert v["error"] in got.get("error", "<no error>"), (v, got)


# ----------------------------------------------------------------------------- 7. the DSL budget on big inputs


def test_list_operations_are_charged_by_the_elements_they_touch():
    from nnlabs.labs.dreamcoder.dsl import INT, EvalError, arrow, evaluate, parse, tlist
    from nnlabs.labs.dreamcoder.search import Grammar, SearchBudget, Task, solve_task

    xs = tuple(range(3000))
    assert len(evaluate(parse("(lam (map (lam (+ $0 1)) $0))"), xs)) == 3000  # linear work fits the budget
    t0 = time.perf_counter()
    with pytest.raises(EvalError, match="step budget"):  # n² element work is stopped by steps, not the clock
        evaluate(parse("(lam (map (lam (length (map (lam $0) $1))) $0))"), xs)
    assert time.perf_counter() - t0 < 0.25  # the per-example budget is 50 ms; it took 0.83 s
    task = Task("reverse", arrow(tlist(INT), tlist(INT)), [(xs, xs[::-1])] * 3)
    g = Grammar()
    result = solve_task((task, g, g.log_weights, SearchBudget(programs=1500, seconds=5.0)))
    # the per-task safety net holds up to the search's own check interval (5 s ran 8.3 s before, ~5.3 s now)
    assert result["seconds"] < 6.5


# ----------------------------------------------------------------------------- every lab: --resume, --force, Ctrl-C


@pytest.mark.parametrize("lab", list(LABS))
def test_every_lab_takes_resume_and_force_and_never_overwrites_unasked(lab, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli(["lab", lab, "--help"])
    usage = capsys.readouterr().out
    assert "--resume" in usage and "--force" in usage
    out = tmp_path / lab
    assert cli(["lab", lab, "--budget", "tiny", "--out", str(out), "--resume"]) == 2
    assert "holds no run to continue" in one_error(capsys)
    (out / "old").mkdir(parents=True)
    (out / "old" / "metrics.jsonl").write_text('{"step": 7}\n')
    assert cli(["lab", lab, "--budget", "tiny", "--out", str(out)]) == 2  # refused before any work
    assert one_error(capsys) == (f"error: {out} holds 1 run(s) (0 finished: old): pass --resume to continue or "
                                 "--force to start over")


def test_a_ctrl_c_lab_run_is_marked_incomplete_reports_go_on_and_the_named_command_continues(tmp_path, capsys):
    runs = tmp_path / "runs"
    out = runs / "dreamcoder"
    args = ["lab", "dreamcoder", "--budget", "tiny", "--out", str(out), "--processes", "1"]
    proc = nnlabs_process(args)
    wait_for(lambda: rundir.finished(out / "full"))  # the first of its three runs is done
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err
    command = shlex.split(err.strip().splitlines()[-1].split("continue with: ", 1)[1])
    assert command == ["nnlabs", *args, "--resume"]
    assert (out / rundir.RUNNING).exists() and not rundir.finished(out / "no_learning")
    # the finished run's time is on disk, and the resumed lab adds to it (it was the resume's alone)
    first = json.loads((out / "timing.json").read_text())["wall_s"]
    assert first > 0
    # the interrupted lab beside a finished one: the report still writes the other lab and the index, and
    # says which lab was interrupted and how to continue it
    assert cli(["lab", "act", "--budget", "tiny", "--out", str(runs / "act")]) == 0
    (runs / "act" / "report.md").unlink()
    capsys.readouterr()
    cli(["report", "--runs", str(runs)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "dreamcoder" in err and "interrupted" in err
    assert shlex.join(command) in err
    assert (runs / "act" / "report.md").exists() and (runs / "site" / "index.html").exists()
    assert cli(command[1:]) == 0  # the command the message named continues the lab to the end
    assert all(rundir.finished(out / name) for name in ("full", "no_recognition", "no_learning"))
    assert (out / "report.md").exists()
    assert json.loads((out / "timing.json").read_text())["wall_s"] > first
