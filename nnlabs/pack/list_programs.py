"""The list-program suite (Part 7, neuro-symbolic): list tasks given by input/output examples.

Each task is a pipeline of one to three stages over a list of small ints, drawn from three families:
  map     (map (lam (+ $0 2)) xs), (map (lam (* $0 $0)) xs), (map (lam (mod $0 3)) xs), ...
  filter  (filter (lam (gt? $0 1)) xs), (filter (lam (eq? (mod $0 2) 0)) xs), ...
  reduce  length, sum (a fold), max (a fold), head (car), empty?   — only as the last stage
Level = number of stages: a graded curriculum from one-primitive programs to compositions of three.
Beside them, training only, a few fold warm-ups (`FOLD_WARMUPS`: sum from 1, sum from 2, the alternating
sum): cheap tasks that share sum's fold, so a library learner sees that fold more than once (version 2).
Beside the random held-out split, held-out only, a transfer group (version 3): every `map | sum` pipeline
that the level-2 cap left out of both files — a map stage the training set teaches composed with the
fold that the warm-ups teach, so a learner that abstracted sum from fold can reuse it on tasks it never saw.

Layout: DreamCoder's list-task JSON, `[{"name", "type": {"input", "output"}, "examples": [{"i", "o"}]}]`,
plus two extra keys per task: "program" (the hidden reference program, an s-expression in the Part 7
DSL: de Bruijn variables `$i`, `lam`) and "level". Files: `list_programs/train.json` and
`list_programs/test.json` (held out: disjoint programs and disjoint behaviours).

Outputs are checked at build time: each stage has a direct Python meaning (`STAGES`), and a tiny
independent s-expression evaluator (`run_sexpr`, one Python function per DSL primitive) must reproduce
every example from the reference program. The tests cross-check once more with the lab's interpreter.
The pack never imports the lab (arrows point labs -> pack).

Deterministic: one `random.Random(seed)`, ints only, JSON written with sorted keys and fixed separators.
"""

from __future__ import annotations

import json
import random

NAME = "list_programs"
VERSION = 3

N_EXAMPLES = (6, 10)          # examples per task, inclusive range
LIST_LEN = (0, 7)             # input list lengths
VALUES = (0, 9)               # input ints
TEST_FRACTION = 0.35          # of the distinct tasks at each level

# -----------------------------------------------------------------------------
# stages: (name, s-expression template with XS for the input, Python meaning, output kind)

MAPS = [
    (f"add{k}", f"(map (lam (+ $0 {k})) XS)", lambda xs, k=k: [x + k for x in xs]) for k in (1, 2, 3)
] + [
    (f"sub{k}", f"(map (lam (- $0 {k})) XS)", lambda xs, k=k: [x - k for x in xs]) for k in (1, 2)
] + [
    ("double", "(map (lam (* $0 2)) XS)", lambda xs: [x * 2 for x in xs]),
    ("triple", "(map (lam (* $0 3)) XS)", lambda xs: [x * 3 for x in xs]),
    ("square", "(map (lam (* $0 $0)) XS)", lambda xs: [x * x for x in xs]),
    ("mod2", "(map (lam (mod $0 2)) XS)", lambda xs: [x % 2 for x in xs]),
    ("mod3", "(map (lam (mod $0 3)) XS)", lambda xs: [x % 3 for x in xs]),
]
FILTERS = [
    (f"gt{k}", f"(filter (lam (gt? $0 {k})) XS)", lambda xs, k=k: [x for x in xs if x > k]) for k in (1, 2, 3)
] + [
    (f"lt{k}", f"(filter (lam (gt? {k} $0)) XS)", lambda xs, k=k: [x for x in xs if x < k]) for k in (2, 3)
] + [
    ("even", "(filter (lam (eq? (mod $0 2) 0)) XS)", lambda xs: [x for x in xs if x % 2 == 0]),
    ("odd", "(filter (lam (eq? (mod $0 2) 1)) XS)", lambda xs: [x for x in xs if x % 2 == 1]),
    ("div3", "(filter (lam (eq? (mod $0 3) 0)) XS)", lambda xs: [x for x in xs if x % 3 == 0]),
    ("is1", "(filter (lam (eq? $0 1)) XS)", lambda xs: [x for x in xs if x == 1]),
]
REDUCERS = [
    ("length", "(length XS)", len, "int"),
    ("sum", "(fold XS 0 (lam (lam (+ $1 $0))))", sum, "int"),
    ("max", "(fold XS 0 (lam (lam (if (gt? $1 $0) $1 $0))))", lambda xs: max([0, *xs]), "int"),
    ("head", "(car XS)", lambda xs: xs[0] if xs else None, "int"),
    ("empty?", "(empty? XS)", lambda xs: len(xs) == 0, "bool"),
]


def _alternating_sum(xs):
    acc = 0
    for x in reversed(xs):  # x1 - (x2 - (... - (xn - 0))): fold's right fold with -
        acc = x - acc
    return acc


# Training-only tasks that share sum's fold, each as cheap to find as sum itself (about 16 nats under
# DreamCoder's base, found within a few hundred programs): with sum alone in the training set, one
# use of the fold never compresses, so a learner never abstracts it (docs/dreamcoder.md, issue 17).
# Added in version 2, drawn from their own random stream: every other task is as in version 1.
FOLD_WARMUPS = [
    ("sum from 1", "(fold XS 1 (lam (lam (+ $1 $0))))", lambda xs: 1 + sum(xs), "int"),
    ("sum from 2", "(fold XS 2 (lam (lam (+ $1 $0))))", lambda xs: 2 + sum(xs), "int"),
    ("alternating sum", "(fold XS 0 (lam (lam (- $1 $0))))", _alternating_sum, "int"),
]


def map_then_sum(task: dict) -> bool:
    """One map stage, then sum: the pipelines of the held-out transfer group (version 3)."""
    first, *rest = task["name"].split(" | ")
    return rest == ["sum"] and first in {name for name, *_ in MAPS}


def pipelines():
    """Every pipeline of 1-3 stages: up to two list->list stages, then an optional reducer."""
    lists = [(s,) for s in MAPS + FILTERS]
    lists += [(a, b) for a in MAPS + FILTERS for b in MAPS + FILTERS if a[0] != b[0]]
    out = list(lists)
    out += [(r,) for r in REDUCERS if r[0] != "empty?"]
    out += [p + (r,) for p in lists for r in REDUCERS]
    return [p for p in out if len(p) <= 3]


def program_of(stages) -> str:
    body = "$0"
    for s in stages:
        body = s[1].replace("XS", body)
    return f"(lam {body})"


def meaning_of(stages, xs):
    for s in stages:
        xs = s[2](xs)
        if xs is None:
            return None
    return xs


# -----------------------------------------------------------------------------
# an independent evaluator of the reference s-expressions (one Python function per primitive)

SEM = {
    "map": lambda f: lambda xs: [f(x) for x in xs],
    "filter": lambda f: lambda xs: [x for x in xs if f(x)],
    "fold": lambda xs: lambda z: lambda f: _foldr(xs, z, f),
    "length": len,
    "car": lambda xs: xs[0],
    "empty?": lambda xs: len(xs) == 0,
    "if": lambda c: lambda a: lambda b: a if c else b,
    "+": lambda a: lambda b: a + b,
    "-": lambda a: lambda b: a - b,
    "*": lambda a: lambda b: a * b,
    "mod": lambda a: lambda b: a % b,
    "gt?": lambda a: lambda b: a > b,
    "eq?": lambda a: lambda b: a == b,
}


def _foldr(xs, z, f):
    for x in reversed(xs):
        z = f(x)(z)
    return z


def _parse(tokens, pos=0):
    tok = tokens[pos]
    if tok != "(":
        return tok, pos + 1
    items, pos = [], pos + 1
    while tokens[pos] != ")":
        item, pos = _parse(tokens, pos)
        items.append(item)
    return items, pos + 1


def run_sexpr(text: str, x):
    tree, _ = _parse(text.replace("(", " ( ").replace(")", " ) ").split())

    def ev(t, env):
        if isinstance(t, str):
            if t.startswith("$"):
                return env[int(t[1:])]
            return int(t) if t.isdigit() else SEM[t]
        if t[0] == "lam":
            return lambda v: ev(t[1], [v, *env])
        f = ev(t[0], env)
        for a in t[1:]:
            f = f(ev(a, env))
        return f

    return ev(tree, [])(x)


# -----------------------------------------------------------------------------
# building the suite


def examples_for(rng: random.Random, stages) -> list[dict] | None:
    """Draw inputs until there are enough defined examples; None if the task is degenerate."""
    n = rng.randint(*N_EXAMPLES)
    needs_nonempty = stages[-1][0] == "head"
    examples = []
    for _ in range(n * 20):
        length = rng.randint(max(LIST_LEN[0], 1 if needs_nonempty else 0), LIST_LEN[1])
        xs = [rng.randint(*VALUES) for _ in range(length)]
        y = meaning_of(stages, xs)
        if y is None:
            continue
        examples.append({"i": xs, "o": y})
        if len(examples) == n:
            break
    outputs = [json.dumps(e["o"]) for e in examples]
    if len(examples) < n or len(set(outputs)) < 2:
        return None  # a constant task teaches nothing
    return examples


def make_task(rng: random.Random, stages) -> dict | None:
    """A task in the suite's layout with its examples, checked against the reference program; None if
    its examples are degenerate."""
    examples = examples_for(rng, stages)
    if examples is None:
        return None
    out_kind = stages[-1][3] if len(stages[-1]) == 4 else "list"
    task = {
        "name": " | ".join(s[0] for s in stages),
        "type": {"input": "list-of-int", "output": "list-of-int" if out_kind == "list" else out_kind},
        "examples": examples,
        "program": program_of(stages),
        "level": len(stages),
    }
    for e in examples:  # the build-time check: the reference program reproduces every example
        if run_sexpr(task["program"], e["i"]) != e["o"]:
            raise AssertionError(f"reference program of {task['name']} disagrees on {e['i']}")
    return task


def build_tasks(seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    by_level: dict[int, list[dict]] = {1: [], 2: [], 3: []}
    seen_behaviour = set()
    probe = [[rng.randint(*VALUES) for _ in range(rng.randint(1, LIST_LEN[1]))] for _ in range(12)]
    for stages in pipelines():
        # tasks with the same behaviour on a fixed probe set count once (e.g. add1 then sub1 = identity)
        behaviour = json.dumps([meaning_of(stages, xs) for xs in probe])
        if behaviour in seen_behaviour:
            continue
        seen_behaviour.add(behaviour)
        task = make_task(rng, stages)
        if task is None:
            continue
        by_level[len(stages)].append(task)
    train, test = [], []
    per_level = {1: 10**6, 2: 90, 3: 50}  # keep the file small: a sample of the long tail
    for level in (1, 2, 3):
        tasks = by_level[level]
        rng.shuffle(tasks)
        tasks, left_out = tasks[: per_level[level]], tasks[per_level[level]:]
        n_test = round(len(tasks) * TEST_FRACTION)
        test += tasks[:n_test]
        train += tasks[n_test:]
        # version 3's transfer group: taken from the tasks the cap left out, so no other task moves
        test += [t for t in left_out if map_then_sum(t)]
    warmup_rng = random.Random(f"{NAME}-fold-warmups-{seed}")
    train += [make_task(warmup_rng, (stage,)) for stage in FOLD_WARMUPS]
    key = lambda t: (t["level"], t["name"])  # noqa: E731
    return sorted(train, key=key), sorted(test, key=key)


def dumps(tasks) -> str:
    """One task per line: a valid JSON list that still diffs and greps line by line."""
    lines = [json.dumps(t, sort_keys=True, separators=(",", ":")) for t in tasks]
    return "[\n" + ",\n".join(lines) + "\n]\n"


def build(seed: int = 0) -> dict[str, str]:
    train, test = build_tasks(seed)
    return {f"{NAME}/train.json": dumps(train), f"{NAME}/test.json": dumps(test)}
