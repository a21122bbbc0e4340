"""The algorithmic suite (Part 5, adaptive computation): four tasks from ACT's evaluations, each example
carrying the difficulty fields that "compute vs difficulty" plots are bucketed by.

Every example is a character-level question and a short answer; a lab reads it as the sequence
`question=answer`, so the answer position is the one right after '='.

  parity      bits          -> 1 if the number of ones is odd          difficulty: length, ones
  addition    a+b (n digits) -> a+b as n+1 digits, zero-padded,        difficulty: digits, carries
                                least-significant digit first (v2)
  parens      '(' / ')'     -> 1 if balanced (no prefix dips below 0)  difficulty: length, max_depth,
                                                                         first_violation
  sortedness  digits        -> 1 if non-decreasing                      difficulty: length, first_violation

Files: `algorithmic/<task>/{train,val,test,lengthgen}.tsv`, tab-separated with a header line
(`input answer <difficulty fields...>`). `test` is drawn from the training distribution; `lengthgen` is
strictly longer than anything in train/val/test. Binary answers are exactly balanced per split and per
length; addition is balanced on its leading digit (overflow or not).

Deterministic: one `random.Random` per (task, split) seeded from a string of the seed, ints only.
"""

from __future__ import annotations

import random

NAME = "algorithmic"
# v2: the addition answer is written least-significant digit first (the digit a model can compute first
# comes first, as a carry travels); every random draw is v1's, so every other file is unchanged
# v3: parity's lengthgen runs to twice the longest training length (7-12 bits, was 7-9), the extrapolation
# range of PonderNet's parity test; only parity/lengthgen.tsv changes
VERSION = 3
DRAWS = 1

SPLITS = ("train", "val", "test", "lengthgen")
# input lengths (digits per operand for addition): in-distribution range, then the longer range
# Short on purpose: the Part 5 lab's block attends to a window of 2 positions, so information crosses one
# position per pass, and these lengths are what 8 passes can span (see docs/datasheets/algorithmic.md).
# Parity's lengthgen reaches twice the training length (L + 1 .. 2L): a model extrapolates by thinking longer.
LENGTHS = {
    "parity": ((2, 6), (7, 12)),
    "addition": ((1, 3), (4, 5)),
    "parens": ((2, 6), (8, 10)),  # even lengths only
    "sortedness": ((2, 6), (7, 9)),
}
SIZES = {"train": 6000, "val": 500, "test": 1000, "lengthgen": 1000}
FIELDS = {
    "parity": ("length", "ones"),
    "addition": ("digits", "carries"),
    "parens": ("length", "max_depth", "first_violation"),
    "sortedness": ("length", "first_violation"),
}


# -----------------------------------------------------------------------------
# the four tasks: one example of a given length and answer class


def parity_example(rng: random.Random, n: int, label: int) -> tuple[str, str, tuple[int, ...]]:
    bits = [rng.randrange(2) for _ in range(n)]
    if sum(bits) % 2 != label:
        bits[rng.randrange(n)] ^= 1  # one flip: uniform over the strings of this parity
    return "".join(map(str, bits)), str(label), (n, sum(bits))


def count_carries(a: str, b: str) -> int:
    carry, carries = 0, 0
    for da, db in zip(reversed(a), reversed(b)):
        carry = (int(da) + int(db) + carry) // 10
        carries += carry
    return carries


def addition_example(rng: random.Random, n: int, label: int) -> tuple[str, str, tuple[int, ...]]:
    """label 1: the sum overflows into an (n+1)-th digit (the answer's last character); a, b uniform among
    pairs of that class."""
    while True:
        a, b = rng.randrange(10 ** n), rng.randrange(10 ** n)
        if (a + b >= 10 ** n) == bool(label):
            break
    sa, sb = f"{a:0{n}d}", f"{b:0{n}d}"
    # the sum, n + 1 digits, zero-padded, written least-significant digit first: 539+512 -> 1501 (1051)
    return f"{sa}+{sb}", f"{a + b:0{n + 1}d}"[::-1], (n, count_carries(sa, sb))


def paren_depths(s: str) -> list[int]:
    depth, out = 0, []
    for ch in s:
        depth += 1 if ch == "(" else -1
        out.append(depth)
    return out


def parens_example(rng: random.Random, n: int, label: int) -> tuple[str, str, tuple[int, ...]]:
    """Equal numbers of '(' and ')' in both classes, so counting alone never answers: an invalid string
    is one whose depth dips below zero. Valid strings are uniform Dyck words (rejection sampling)."""
    chars = ["("] * (n // 2) + [")"] * (n // 2)
    while True:
        rng.shuffle(chars)
        depths = paren_depths(chars)
        if (min(depths) >= 0) == bool(label):
            break
    first = next((i for i, d in enumerate(depths) if d < 0), -1)
    return "".join(chars), str(label), (n, max(0, max(depths)), first)


def sortedness_example(rng: random.Random, n: int, label: int) -> tuple[str, str, tuple[int, ...]]:
    """Negatives are hard: a sorted sequence with one adjacent pair of unequal digits swapped, so only
    one comparison in the whole sequence fails."""
    while True:
        digits = sorted(rng.randrange(10) for _ in range(n))
        if label:
            break
        unequal = [i for i in range(n - 1) if digits[i] != digits[i + 1]]
        if unequal:
            i = unequal[rng.randrange(len(unequal))]
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            break
    first = next((i + 1 for i in range(n - 1) if digits[i] > digits[i + 1]), -1)
    return "".join(map(str, digits)), str(label), (n, first)


TASKS = {"parity": parity_example, "addition": addition_example, "parens": parens_example,
         "sortedness": sortedness_example}


# -----------------------------------------------------------------------------
# splits and files


def lengths_for(task: str, split: str) -> list[int]:
    lo, hi = LENGTHS[task][1 if split == "lengthgen" else 0]
    return [n for n in range(lo, hi + 1) if task != "parens" or n % 2 == 0]


def make_split(task: str, split: str, seed: int, size: int) -> list[tuple[str, str, tuple[int, ...]]]:
    """`size` examples, lengths cycling evenly through the split's range, answers alternating 0/1 within
    each length (so classes are balanced per length, not just overall), then shuffled."""
    rng = random.Random(f"{NAME}-v{DRAWS}-{seed}-{task}-{split}")
    lengths = lengths_for(task, split)
    rows = [TASKS[task](rng, lengths[i % len(lengths)], (i // len(lengths)) % 2) for i in range(size)]
    rng.shuffle(rows)
    return rows


def to_tsv(task: str, rows) -> str:
    header = "\t".join(("input", "answer") + FIELDS[task])
    lines = ["\t".join([q, a] + [str(v) for v in fields]) + "\n" for q, a, fields in rows]
    return header + "\n" + "".join(lines)


def build(seed: int, sizes: dict[str, int] | None = None) -> dict[str, str]:
    sizes = {**SIZES, **(sizes or {})}
    return {f"{NAME}/{task}/{split}.tsv": to_tsv(task, make_split(task, split, seed, sizes[split]))
            for task in TASKS for split in SPLITS}


def parse_tsv(text: str) -> list[dict]:
    """The rows of one built file as dicts (difficulty fields as ints) — what a lab reads."""
    lines = text.splitlines()
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        values = line.split("\t")
        rows.append({k: (v if k in ("input", "answer") else int(v)) for k, v in zip(header, values)})
    return rows
