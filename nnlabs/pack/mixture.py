"""The domain mixture (Part 4, MoE): one character-level stream mixing three mini-corpora.

  names   makemore's names.txt — train lines only from makemore's train split, val/probe from its test
          split (minus the few test names that names.txt also lists in train)
  arith   `23+45=68`, `7*8=56`, `120-45=75`: one to three digit operands, always correct, never negative
  code    tiny Python one-liners (assignments, comprehensions, calls, slicing, lambdas, one-line defs),
          every line checked with ast.parse; lowercase identifiers, so letters are shared with names

Each line of train.txt has its domain in the same line of train.domains.txt (the model never sees it).
Per-domain validation sets and small fixed probe sets (routing analysis) are disjoint from train and
from each other. Deterministic: only random.Random(seed), lists (never set order), integer arithmetic.
"""

from __future__ import annotations

import ast
import random

from nnlabs.spine.data import makemore_split, read_words

NAME = "mixture"
VERSION = 1
DOMAINS = ("names", "arith", "code")

IDENTS = ("x", "y", "z", "n", "i", "j", "k", "a", "b", "xs", "ys", "acc", "buf", "cur", "out", "res", "row",
          "col", "key", "val", "vals", "word", "size", "step", "idx", "tmp", "nums", "seen", "best", "total",
          "count", "items", "data", "prev", "head", "tail", "left", "right", "lo", "hi", "mid", "s", "t")
FUNCS = ("len", "sum", "max", "min", "sorted", "abs", "list", "str", "int", "print")
KEYS = ("a", "b", "id", "x", "key", "name", "n")


def arithmetic(rng: random.Random) -> str:
    """One correct equation. `+`/`-`: 1-3 digit operands (a >= b for `-`); `*`: 1-2 by 1-2 digits."""
    op = rng.choice("+-*")
    digits = (1, 2) if op == "*" else (1, 2, 3)
    a, b = (rng.randrange(10 ** (d - 1) if d > 1 else 0, 10 ** d)
            for d in (rng.choice(digits), rng.choice(digits)))
    if op == "-" and a < b:
        a, b = b, a
    result = a + b if op == "+" else a - b if op == "-" else a * b
    return f"{a}{op}{b}={result}"


def python_line(rng: random.Random) -> str:
    """One Python one-liner from a template, with identifiers and constants drawn at random."""
    v, w, u = rng.sample(IDENTS, 3)
    f, key = rng.choice(FUNCS), rng.choice(KEYS)
    n, m = rng.randrange(0, 20), rng.randrange(1, 10)
    templates = (
        f"{v} = {n}",
        f"{v} = {u} + {n}",
        f"{v} = {u} * {m} - {w}",
        f"{v} = [{w} * {m} for {w} in {u}]",
        f"{v} = [{w} for {w} in {u} if {w} > {n}]",
        f"{v} = {{{w}: {n} for {w} in {u}}}",
        f"{v} = {u}[{m}:{n + m}]",
        f"{v} = {u}[::-1]",
        f"{v} = {u}[-{m}]",
        f"{v} = {f}({u})",
        f"print({f}({u}))",
        f"{v}, {w} = {w}, {v}",
        f"{v} = {{'{key}': {n}}}",
        f"{u}.append({v})",
        f"{v} = {u}.get('{key}', {n})",
        f"{v} = {w} if {u} else {n}",
        f"def {v}({w}): return {w} * {m}",
        f"for {w} in range({m}): {u}.append({w})",
        f"{v} = lambda {w}: {w} + {n}",
        f"{v} += {u}[{w}]",
        f"{v} = ({u}, {w}, {n})",
        f"{v} = {u} % {m} == {n % m}",
    )
    return rng.choice(templates)


def unique(gen, rng: random.Random, count: int, max_len: int) -> list[str]:
    """`count` distinct lines from gen(rng), in first-drawn order (a dict keeps insertion order)."""
    seen: dict[str, None] = {}
    for _ in range(200 * count):
        line = gen(rng)
        if len(line) <= max_len:
            seen.setdefault(line, None)
            if len(seen) == count:
                return list(seen)
    raise ValueError(f"could not draw {count} distinct lines of at most {max_len} characters")


def build(seed: int, n_train: int = 24000, weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
          n_val: int = 500, n_probe: int = 64, max_len: int = 32) -> dict[str, str]:
    """The mixture's files. `weights` = relative share of (names, arith, code) lines in train.txt."""
    rng = random.Random(seed)
    total_w = sum(weights)
    counts = [int(n_train * w / total_w + 0.5) for w in weights]  # round half up, no float formatting
    train_names, test_names = makemore_split(read_words("names.txt"))
    # names.txt repeats some names across makemore's split: hold out only test names never seen in train
    in_train = dict.fromkeys(train_names)
    test_names = [w for w in dict.fromkeys(test_names) if w not in in_train]
    if counts[0] > len(train_names) or n_val + n_probe > len(test_names):
        raise ValueError(f"names.txt's split has {len(train_names)} train / {len(test_names)} test names; "
                         f"asked for {counts[0]} / {n_val + n_probe}")
    held = n_val + n_probe
    arith = unique(arithmetic, rng, counts[1] + held, max_len)  # distinct lines, then split: the
    code = unique(python_line, rng, counts[2] + held, max_len)  # held-out lines never occur in train
    pools = {"names": (rng.sample(train_names, counts[0]), rng.sample(test_names, held)),
             "arith": (arith[held:], arith[:held]), "code": (code[held:], code[:held])}
    for line in pools["code"][0] + pools["code"][1]:
        ast.parse(line)  # a template that produced invalid Python is a bug: fail the build loudly
    stream = [(d, line) for d in DOMAINS for line in pools[d][0]]
    rng.shuffle(stream)
    files = {"mixture/train.txt": "".join(line + "\n" for _, line in stream),
             "mixture/train.domains.txt": "".join(d + "\n" for d, _ in stream)}
    for d in DOMAINS:
        held_lines = pools[d][1]
        files[f"mixture/val_{d}.txt"] = "".join(line + "\n" for line in held_lines[:n_val])
        files[f"mixture/probe_{d}.txt"] = "".join(line + "\n" for line in held_lines[n_val:])
    return files
