"""The pack's domain mixture: deterministic bytes, correct arithmetic, parseable code, held-out sets
disjoint from train, the proportion knob, the size limit."""

from __future__ import annotations

import ast
import operator
import re

import pytest

from nnlabs.pack import mixture
from nnlabs.spine.data import makemore_split, read_words

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@pytest.fixture(scope="module")
def built():
    try:
        read_words("names.txt")
    except Exception:
        pytest.skip("names.txt not available (set NNLABS_DATA_DIR)")
    return mixture.build(0)


def lines(files, name):
    return files[f"mixture/{name}.txt"].splitlines()


def by_domain(files):
    out = {d: [] for d in mixture.DOMAINS}
    for line, d in zip(lines(files, "train"), lines(files, "train.domains"), strict=True):
        out[d].append(line)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(built):
    assert mixture.build(0) == built
    other = mixture.build(1)
    assert other["mixture/train.txt"] != built["mixture/train.txt"]
    assert set(other) == set(built)


def test_files_sizes_and_the_domain_side_file(built):
    assert sum(len(t.encode()) for t in built.values()) <= 5 * 1024 * 1024
    assert all(t.endswith("\n") for t in built.values())
    train = by_domain(built)
    assert {d: len(v) for d, v in train.items()} == {"names": 8000, "arith": 8000, "code": 8000}
    for d in mixture.DOMAINS:
        assert len(lines(built, f"val_{d}")) == 500 and len(lines(built, f"probe_{d}")) == 64


def test_every_arithmetic_line_is_correct(built):
    train = by_domain(built)
    for line in train["arith"] + lines(built, "val_arith") + lines(built, "probe_arith"):
        a, op, b, result = re.fullmatch(r"(\d+)([+*-])(\d+)=(-?\d+)", line).groups()
        assert OPS[op](int(a), int(b)) == int(result), line
        assert int(result) >= 0
    ops = {line[re.search(r"[+*-]", line).start()] for line in train["arith"]}
    assert ops == {"+", "-", "*"}


def test_every_code_line_parses_and_identifiers_vary(built):
    code = by_domain(built)["code"] + lines(built, "val_code") + lines(built, "probe_code")
    for line in code:
        ast.parse(line)
    names = {n.id for line in code for n in ast.walk(ast.parse(line)) if isinstance(n, ast.Name)}
    assert len(names) >= 30
    kinds = {type(ast.parse(line).body[0]).__name__ for line in code}
    assert {"Assign", "Expr", "FunctionDef", "For", "AugAssign"} <= kinds


def test_held_out_sets_are_disjoint_from_train_and_names_keep_makemores_split(built):
    train = by_domain(built)
    for d in mixture.DOMAINS:
        val, probe = set(lines(built, f"val_{d}")), set(lines(built, f"probe_{d}"))
        assert not val & set(train[d]) and not probe & set(train[d]) and not val & probe, d
    train_names, test_names = makemore_split(read_words("names.txt"))
    assert set(train["names"]) <= set(train_names)
    assert set(lines(built, "val_names")) | set(lines(built, "probe_names")) <= set(test_names)


def test_proportions_are_a_knob():
    files = mixture.build(0, n_train=3000, weights=(2.0, 1.0, 0.0), n_val=50, n_probe=8)
    counts = {d: len(v) for d, v in by_domain(files).items()}
    assert counts == {"names": 2000, "arith": 1000, "code": 0}
