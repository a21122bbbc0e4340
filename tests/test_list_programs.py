"""The pack's list-program suite: deterministic bytes, reference programs reproduce every example
(checked here with the lab's own interpreter, independently of the pack's evaluator), disjoint splits."""

from __future__ import annotations

import json

from nnlabs.labs.dreamcoder.dsl import arrow, evaluate, parse, parse_type_name, to_value, typeof, unify
from nnlabs.pack import list_programs


def test_deterministic_bytes():
    a, b = list_programs.build(0), list_programs.build(0)
    assert a == b
    assert list_programs.build(1) != a
    assert sorted(a) == ["list_programs/test.json", "list_programs/train.json"]
    assert list_programs.NAME == "list_programs" and list_programs.VERSION == 1


def test_layout_size_and_disjoint_splits():
    files = list_programs.build(0)
    assert sum(len(t.encode()) for t in files.values()) <= 5 * 1024 * 1024
    train = json.loads(files["list_programs/train.json"])
    test = json.loads(files["list_programs/test.json"])
    assert len(train) >= 50 and len(test) >= 20
    for t in train + test:
        assert set(t) >= {"name", "type", "examples", "program"}
        assert set(t["type"]) == {"input", "output"}
        assert 5 <= len(t["examples"]) <= 15
        assert all(set(e) == {"i", "o"} for e in t["examples"])
    assert not {t["name"] for t in train} & {t["name"] for t in test}
    assert not {t["program"] for t in train} & {t["program"] for t in test}
    behaviour = lambda t: json.dumps(t["examples"])  # noqa: E731
    assert not {behaviour(t) for t in train} & {behaviour(t) for t in test}
    assert {t["level"] for t in train} == {1, 2, 3}


def test_reference_programs_reproduce_examples_with_the_lab_interpreter():
    files = list_programs.build(0)
    for path in ("list_programs/train.json", "list_programs/test.json"):
        for t in json.loads(files[path]):
            p = parse(t["program"])
            request = arrow(parse_type_name(t["type"]["input"]), parse_type_name(t["type"]["output"]))
            assert unify(typeof(p), request, {}) is not None, t["name"]
            for e in t["examples"]:
                assert evaluate(p, to_value(e["i"])) == to_value(e["o"]), (t["name"], e)
