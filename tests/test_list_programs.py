"""The pack's list-program suite: deterministic bytes, reference programs reproduce every example
(checked here with the lab's own interpreter, independently of the pack's evaluator), disjoint splits."""

from __future__ import annotations

import hashlib
import json

from nnlabs.labs.dreamcoder.dsl import arrow, evaluate, parse, parse_type_name, to_value, typeof, unify
from nnlabs.pack import list_programs


def test_deterministic_bytes():
    a, b = list_programs.build(0), list_programs.build(0)
    assert a == b
    assert list_programs.build(1) != a
    assert sorted(a) == ["list_programs/test.json", "list_programs/train.json"]
    assert list_programs.NAME == "list_programs" and list_programs.VERSION == 3


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


def test_fold_warmups_join_training_only_and_leave_the_rest_as_in_version_1():
    """Version 2 adds three training tasks that share sum's fold, version 3 a held-out transfer group; the
    rest of the held-out set is version 1's to the byte (its digest pinned here), so results on it stay
    comparable across versions."""
    files = list_programs.build(0)
    train = {t["name"]: t for t in json.loads(files["list_programs/train.json"])}
    test = json.loads(files["list_programs/test.json"])
    warmups = [name for name, *_ in list_programs.FOLD_WARMUPS]
    assert warmups == ["sum from 1", "sum from 2", "alternating sum"]
    assert all(train[n]["level"] == 1 and train[n]["type"]["output"] == "int" for n in warmups)
    assert not set(warmups) & {t["name"] for t in test}
    assert train["alternating sum"]["program"] == "(lam (fold $0 0 (lam (lam (- $1 $0)))))"
    assert evaluate(parse(train["alternating sum"]["program"]), (5, 3, 1)) == 5 - (3 - (1 - 0))
    version_1 = list_programs.dumps([t for t in test if not list_programs.map_then_sum(t)])  # at seed 0
    digest = hashlib.sha256(version_1.encode()).hexdigest()
    assert digest == "af3959a9ef8fcf4d1ca5ca7bdf706bbda9abf3350913021acee478be1b82d071"
    assert len(train) == 106 + 3 and len(test) == 57 + 8


def test_transfer_tasks_compose_a_trained_map_with_sum_and_are_held_out_only():
    """Version 3: every `map | sum` pipeline the level-2 cap left out joins the held-out set (8 at seed 0),
    each a composition of a stage that training tasks teach with the fold the warm-ups teach."""
    files = list_programs.build(0)
    train = json.loads(files["list_programs/train.json"])
    test = json.loads(files["list_programs/test.json"])
    transfer = sorted(t["name"] for t in test if list_programs.map_then_sum(t))
    assert transfer == ["add1 | sum", "add2 | sum", "double | sum", "mod2 | sum", "mod3 | sum", "sub1 | sum",
                        "sub2 | sum", "triple | sum"]
    taught = {stage for t in train for stage in t["name"].split(" | ")}
    assert all(set(name.split(" | ")) <= taught for name in transfer)
    double_sum = next(t for t in test if t["name"] == "double | sum")
    assert all(e["o"] == 2 * sum(e["i"]) for e in double_sum["examples"])
