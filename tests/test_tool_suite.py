"""The pack's tool suite: the calculator parses (never evals) and refuses what is outside its grammar; every
stored tool answer is recomputed independently; determinism; kinds mean what they say; size."""

from __future__ import annotations

import inspect
import re
import time

import pytest

from nnlabs.pack import tool_suite as ts


@pytest.fixture(scope="module")
def built():
    return ts.build(0)


# ----------------------------------------------------------------------------- the calculator


@pytest.mark.parametrize("expr, value", [
    ("1+2*3", "7"), ("(1+2)*3", "9"), ("2^3^2", "512"), ("-3*-3", "9"), ("10-4-3", "3"),
    ("2^64", "18446744073709551616"), (" 12 * ( 34 + 5 ) ", "468"), ("0^0", "1"), ("--5", "5"),
])
def test_calc_follows_its_grammar(expr, value):
    assert ts.calc(expr) == value


@pytest.mark.parametrize("attack, message", [
    ("__import__('os').system('ls')", "character '_' at position 0 is outside the grammar"),
    ("(1).real", r"character '\.' at position 3"),
    ("().__class__", r"character '\.' at position 2"),
    ("2**8", "unexpected '\\*'"),
    ("2^99999", "exponent 99999 is outside 0..64"),
    ("9^9^9", "exponent 387420489 is outside"),
    ("99999999999^9", "exceeds 30 digits"),
    ("1" * 13, "13 digits"),
    ("(" * 20 + "1" + ")" * 20, "nesting deeper than 16"),
    ("1+" * 40 + "1", "limit 64"),
    ("1+", "ends too early"),
    ("(1+2", "ends too early"),
    ("1 2", "unexpected '2' after a complete expression"),
    ("", "empty expression"),
    ("1/0", "character '/'"),
])
def test_calc_rejects_injection_and_huge_inputs_with_a_clear_error(attack, message):
    with pytest.raises(ts.ToolError, match=message):
        ts.calc(attack)


def test_tools_never_eval():
    src = inspect.getsource(ts)
    assert not re.search(r"(?<![.\w])(eval|exec|compile|__import__)\(", src)


def test_run_call_dispatches_and_refuses_malformed_calls():
    table = {"velmor": "123"}
    assert ts.run_call("calc(6*7)", table) == "42"
    assert ts.run_call("lookup(velmor)", table) == "123"
    for bad, msg in [("lookup(nobody)", "no entity named"), ("lookup(Velmor)", "lowercase"),
                     ("open(x)", "malformed call"), ("calc(1)" + "x" * 80, "limit 80"), ("calc(1", "malformed")]:
        with pytest.raises(ts.ToolError, match=msg):
            ts.run_call(bad, table)


# ----------------------------------------------------------------------------- the data set


def test_deterministic_bytes_and_seed_matters(built):
    assert ts.build(0) == built
    assert ts.build(1)["tool_suite/train.tsv"] != built["tool_suite/train.tsv"]


def test_size_and_speed(built):
    t0 = time.perf_counter()
    ts.build(3)
    assert time.perf_counter() - t0 < 2.0
    assert sum(len(t.encode()) for t in built.values()) <= 5 * 1024 * 1024
    assert set(built) == {f"tool_suite/{n}" for n in ("train.tsv", "val.tsv", "test.tsv", "table.tsv")}


def test_every_tool_answer_recomputed_independently(built):
    table = dict(line.split("\t") for line in built["tool_suite/table.tsv"].splitlines()[1:])
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    n = 0
    for split in ("train", "val", "test"):
        for row in ts.parse_rows(built[f"tool_suite/{split}.tsv"]):
            if row["tool"] == "calc":
                a, op, b = re.fullmatch(r"(\d+)([-+*])(\d+)=", row["query"]).groups()
                gold = str(ops[op](int(a), int(b)))
                assert row["call"] == f"calc({a}{op}{b})"
            else:
                key = re.fullmatch(r"([a-z]+)\?", row["query"]).group(1)
                gold = table[key]
                assert row["call"] == f"lookup({key})"
            assert row["answer"] == row["output"] == gold, row
            n += 1
    assert n > 4000


def test_kinds_mean_what_they_say(built):
    train = ts.parse_rows(built["tool_suite/train.tsv"])
    test = ts.parse_rows(built["tool_suite/test.tsv"])
    seen: dict[str, int] = {}
    for r in train:
        seen[r["query"]] = seen.get(r["query"], 0) + 1
    for r in test:
        if r["kind"] == "memorizable":
            assert seen.get(r["query"], 0) >= 8, r  # seen many times
        elif r["family"] == "rare_key":
            assert seen.get(r["query"]) == 1, r
        else:
            assert r["kind"] == "needs_tool" and r["query"] not in seen, r  # never seen in training
    fams = {r["family"] for r in test}
    assert fams == {"small_arith", "famous_key", "large_arith", "mid_arith", "rare_key", "unseen_key", "near_miss_key"}
    val_q = {r["query"] for r in ts.parse_rows(built["tool_suite/val.tsv"]) if r["family"] in ("unseen_key",
                                                                                                "near_miss_key")}
    assert not val_q & {r["query"] for r in test}
