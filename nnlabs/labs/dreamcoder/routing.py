"""Part 7.5, the routing decision: a neural answer or a program's, per query.

For every held-out task and fresh input (neural.BANDS) there are two answers: the neural model's
(neural.py) and that of the program the final wake found for the task, if it found one. Four ways to
choose between them:

  neural only      always the model's answer
  symbolic only    the program's answer; no program, no answer
  router (rule)    the program where one fits every example, else the model
  router (learned) a logistic classifier on what is known before answering — is there a program, how
                   long is it, how far the query lies from the examples (length, size of numbers) —
                   trained on the training tasks' queries to predict which side will be right
  oracle           whichever side is right, the cheaper when both are

Compute in one unit, forward MACs: the model's are counted; a program's search and evaluation are
converted at the exchange rate measured on this machine (seconds per program tried ÷ seconds per MAC).
"""

from __future__ import annotations

import time

import torch

from nnlabs.labs.dreamcoder.dsl import EvalError, invent, parse, run, size, to_json, to_value
from nnlabs.spine.macs import count_macs

FEATURES = ("has program", "program size", "query length / longest example", "query max / largest example")


def library_from(analysis: dict) -> dict:
    """The run's final library as {name: Invented}, each body parsed against the ones before it."""
    library: dict = {}
    for entry in analysis.get("library", []):
        library[entry["name"]] = invent(entry["name"], parse(entry["body"], library))
    return library


def found_programs(analysis: dict) -> tuple[dict, dict]:
    """(held-out task -> program from the last wake, training task -> its solution), as Programs."""
    library = library_from(analysis)
    last = analysis["cycles"][-1]
    held_out = {r["name"]: parse(r["program"], library) for r in last["wake"]
                if r["split"] == "test" and r["solved"]}
    train = {name: parse(text, library) for name, text in last.get("solutions", {}).items()}
    return held_out, train


def run_program(compiled, x):
    """A compiled program's answer on x, or None where it fails (out of steps, ints or list range)."""
    try:
        return to_json(run(compiled, to_value(x)))
    except EvalError:
        return None


def largest(values) -> int:
    flat = [v for x in values for v in (x if isinstance(x, list) else [x]) if not isinstance(v, bool)]
    return max([1, *flat])


def features(task: dict, program, x: list[int]) -> list[float]:
    """What the learned router sees: the program (if any) and how far the query lies from the examples."""
    inputs = [e["i"] for e in task["examples"]]
    longest = max([1, *(len(i) for i in inputs)])
    return [float(program is not None), float(size(program)) / 10 if program is not None else 0.0,
            len(x) / longest, largest([x]) / largest(inputs)]


def fit_router(xs: list[list[float]], use_program: list[int], steps: int = 500) -> torch.nn.Linear:
    """Logistic regression P(the program is right where the two disagree | features), full-batch Adam."""
    torch.manual_seed(0)
    clf = torch.nn.Linear(len(FEATURES), 1)
    if not xs:
        return clf
    x, y = torch.tensor(xs), torch.tensor(use_program, dtype=torch.float32)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(clf(x).squeeze(1), y)
        loss.backward()
        opt.step()
    return clf


def exchange_rate(wake: list[dict], seconds_per_mac: float) -> float:
    """MAC-equivalents of one program tried in search: (seconds per program) / (seconds per MAC)."""
    tried = sum(r["tried"] for r in wake)
    seconds = sum(r["seconds"] for r in wake)
    return (seconds / max(tried, 1)) / seconds_per_mac


def seconds_per_mac(model, prompt_len: int = 160, batch: int = 64, repeats: int = 5) -> float:
    """Time the model's forward pass on this machine and divide by the MACs it counts."""
    idx = torch.zeros(batch, prompt_len, dtype=torch.long)
    with torch.no_grad(), count_macs(model) as counter:
        model(idx)
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(repeats):
            model(idx)
        return (time.perf_counter() - start) / repeats / max(counter.macs, 1)


def side(r: dict, policy: str) -> str:
    """Whose answer a policy takes for one query: "program" or "neural"."""
    if policy == "neural":
        return "neural"
    if policy == "symbolic":
        return "program"
    if policy in ("rule", "learned"):
        return "program" if (r["has_program"] if policy == "rule" else r["router_says_program"]) else "neural"
    # oracle: the cheaper side among those that are right; the model when neither is
    cheaper = r["search_macs"] + r["program_macs"] < r["neural_macs"]
    return "program" if r["symbolic_ok"] and (cheaper or not r["neural_ok"]) else "neural"


def choose(records: list[dict], policy: str) -> list[tuple[bool, float]]:
    """(correct, MACs) per query under a routing policy. The program's side pays the task's search; so
    does the model's under a router, which searched before choosing (the oracle knows without searching)."""
    out = []
    for r in records:
        if side(r, policy) == "program":
            out.append((r["symbolic_ok"], r["search_macs"] + r["program_macs"]))
        else:
            paid = r["search_macs"] if policy in ("rule", "learned") else 0
            out.append((r["neural_ok"], paid + r["neural_macs"]))
    return out


def summarise_policy(records: list[dict], policy: str) -> dict:
    picked = choose(records, policy)
    n = max(len(picked), 1)
    return {"accuracy": sum(ok for ok, _ in picked) / n, "macs_per_query": sum(m for _, m in picked) / n,
            "n": len(picked)}
