"""Part 7.5: the neural model's format and decoding, programs on fresh inputs, and the routing policies."""

from __future__ import annotations

import random

import pytest
import torch

from nnlabs.labs.dreamcoder import neural, routing
from nnlabs.labs.dreamcoder.dsl import compile_program, parse


def test_values_and_prompts_read_as_the_model_sees_them():
    assert neural.show([1, -2, 30]) == "[1,-2,30]" and neural.show(True) == "T" and neural.show(7) == "7"
    assert neural.prompt([([1, 2], [2, 3]), ([], [])], [5]) == "[1,2]>[2,3];[]>[]|[5]>"


def test_loss_is_taken_on_the_answer_and_its_end_only():
    data = neural.encode([("[1]>[2]|[3]>", "[4]")], block_size=20)
    ids = neural.VOCAB.encode("[1]>[2]|[3]>[4]")
    assert data.x[0, 1:1 + len(ids)].tolist() == ids
    targets = data.y[0]
    answer_start = len("[1]>[2]|[3]>")
    assert (targets[:answer_start] == -1).all()
    assert targets[answer_start:len(ids)].tolist() == neural.VOCAB.encode("[4]")
    assert targets[len(ids)] == 0 and (targets[len(ids) + 1:] == -1).all()


def test_fresh_queries_follow_the_band_and_the_reference_program():
    task = {"name": "add1", "program": "(lam (map (lam (+ $0 1)) $0))", "examples": []}
    rng = random.Random(0)
    for band, spec in neural.BANDS.items():
        for x, y in neural.fresh_queries(task, band, 20, rng):
            assert spec["length"][0] <= len(x) <= spec["length"][1]
            assert all(spec["values"][0] <= v <= spec["values"][1] for v in x)
            assert y == [v + 1 for v in x]
    head = {"name": "head", "program": "(lam (car $0))", "examples": []}
    assert all(x for x, _ in neural.fresh_queries(head, "like examples", 30, rng))  # undefined inputs redrawn


def test_greedy_answers_are_deterministic_and_counted():
    torch.manual_seed(0)
    model = neural.build_model(block_size=40, n_layer=1, n_embd=16)
    prompts = ["[1]>[2]|[3]>", "[1]>[2]|[4]>", "[]>[]|[]>"]
    a1, m1 = neural.answer(model, prompts, max_answer=5)
    a2, m2 = neural.answer(model, prompts, max_answer=5)
    assert a1 == a2 and m1 == m2 and all(m > 0 for m in m1)
    assert m1[0] == m1[1] if len(a1[0]) == len(a1[1]) else True  # same length, same MACs


def test_programs_answer_fresh_inputs_and_fail_cleanly():
    double = compile_program(parse("(lam (map (lam (* $0 2)) $0))"))
    assert routing.run_program(double, [1, 2, 30]) == [2, 4, 60]
    assert routing.run_program(compile_program(parse("(lam (car $0))")), []) is None


def test_routing_policies_on_a_hand_checked_case():
    # query 1: only the program is right; query 2: only the model; query 3: no program, model wrong
    records = [
        dict(neural_ok=False, neural_macs=10, symbolic_ok=True, has_program=True, router_says_program=True,
             search_macs=100, program_macs=1),
        dict(neural_ok=True, neural_macs=10, symbolic_ok=False, has_program=True, router_says_program=False,
             search_macs=100, program_macs=1),
        dict(neural_ok=False, neural_macs=10, symbolic_ok=False, has_program=False, router_says_program=False,
             search_macs=50, program_macs=0),
    ]
    s = {p: routing.summarise_policy(records, p) for p in ("neural", "symbolic", "rule", "learned", "oracle")}
    assert s["neural"]["accuracy"] == pytest.approx(1 / 3) and s["neural"]["macs_per_query"] == 10
    assert s["symbolic"]["accuracy"] == pytest.approx(1 / 3)
    assert s["symbolic"]["macs_per_query"] == pytest.approx((101 + 101 + 50) / 3)
    assert s["rule"]["accuracy"] == pytest.approx(1 / 3)  # the program wherever one exists
    assert s["learned"]["accuracy"] == pytest.approx(2 / 3)  # the router picked the right side twice
    assert s["learned"]["macs_per_query"] == pytest.approx((101 + 110 + 60) / 3)
    assert s["oracle"]["accuracy"] == pytest.approx(2 / 3)
    assert s["oracle"]["macs_per_query"] == pytest.approx((101 + 10 + 10) / 3)


def test_router_learns_a_separable_rule():
    xs = [[1.0, 0.3, r, 1.0] for r in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)]
    clf = routing.fit_router(xs, [0, 0, 1, 1, 1, 1])  # the program is right on long queries
    with torch.no_grad():
        says = (clf(torch.tensor(xs)).squeeze(1) > 0).tolist()
    assert says == [False, False, True, True, True, True]
