"""The algorithmic suite: deterministic bytes, labels and difficulty fields recomputed independently,
a length-generalisation split longer than training, balanced classes, the size limit."""

from __future__ import annotations

import pytest

from nnlabs.pack import algorithmic as A


@pytest.fixture(scope="module")
def built():
    return A.build(0)


def rows(built, task, split):
    return A.parse_tsv(built[f"algorithmic/{task}/{split}.tsv"])


def test_same_seed_same_bytes_other_seed_other_bytes(built):
    assert A.build(0) == built
    other = A.build(1)
    assert sorted(other) == sorted(built) and all(other[p] != built[p] for p in built)
    assert len(built) == len(A.TASKS) * len(A.SPLITS)


def test_size_limit_and_split_sizes(built):
    assert sum(len(t.encode()) for t in built.values()) <= 5 * 1024 * 1024
    for task in A.TASKS:
        for split, n in A.SIZES.items():
            assert len(rows(built, task, split)) == n


def digit_sum(n: int) -> int:
    return sum(map(int, str(n)))


def test_every_label_and_difficulty_recomputed_independently(built):
    for split in A.SPLITS:
        for r in rows(built, "parity", split):
            assert r["answer"] == str(r["input"].count("1") % 2)
            assert (r["length"], r["ones"]) == (len(r["input"]), r["input"].count("1"))
        for r in rows(built, "addition", split):
            a, b = r["input"].split("+")
            assert len(a) == len(b) == r["digits"]
            # the sum, least-significant digit first (pack v2)
            assert int(r["answer"][::-1]) == int(a) + int(b) and len(r["answer"]) == r["digits"] + 1
            # every carry turns a 10 in one column into a 1 in the next: digit sums drop by 9 per carry
            assert r["carries"] == (digit_sum(int(a)) + digit_sum(int(b)) - digit_sum(int(a) + int(b))) // 9
        for r in rows(built, "parens", split):
            stack, ok, first = [], True, -1
            for i, ch in enumerate(r["input"]):
                if ch == "(":
                    stack.append(i)
                elif stack:
                    stack.pop()
                elif ok:
                    ok, first = False, i
            assert r["answer"] == str(int(ok and not stack)) and r["first_violation"] == first
            depths = [r["input"][:i + 1].count("(") - r["input"][:i + 1].count(")") for i in range(len(r["input"]))]
            assert r["max_depth"] == max(0, max(depths)) and r["length"] == len(r["input"])
        for r in rows(built, "sortedness", split):
            s = r["input"]
            assert r["answer"] == str(int(list(s) == sorted(s))) and r["length"] == len(s)
            assert r["first_violation"] == next((i for i in range(1, len(s)) if s[i] < s[i - 1]), -1)


def test_lengthgen_is_longer_than_anything_in_training(built):
    size = {"addition": lambda r: r["digits"]}
    for task in A.TASKS:
        n = size.get(task, lambda r: len(r["input"]))
        seen = max(n(r) for split in ("train", "val", "test") for r in rows(built, task, split))
        assert min(n(r) for r in rows(built, task, "lengthgen")) > seen


def test_classes_are_balanced_per_split(built):
    for task in A.TASKS:
        for split in A.SPLITS:
            rs = rows(built, task, split)
            label = (lambda r: r["answer"][-1]) if task == "addition" else (lambda r: r["answer"])  # overflow digit
            ones = sum(label(r) == "1" for r in rs)
            assert abs(2 * ones - len(rs)) <= 2 * len(A.lengths_for(task, split)), (task, split)
            assert {label(r) for r in rs} == {"0", "1"}
