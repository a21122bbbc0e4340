"""The DreamCoder lab: types, the budgeted interpreter, enumeration, compression, and the lab end to end."""

from __future__ import annotations

import itertools
import json
import math
import random
import time

import pytest

from nnlabs.labs.dreamcoder.compress import compress, cost, nontrivial, stitch_compress
from nnlabs.labs.dreamcoder.dsl import (
    BOOL,
    INT,
    EvalError,
    Lam,
    ParseError,
    TypeMismatch,
    apply_all,
    arrow,
    evaluate,
    is_arrow,
    library_calls,
    parse,
    resolve,
    show,
    tlist,
    typeof,
)
from nnlabs.labs.dreamcoder.report import mcnemar, paired_verdict
from nnlabs.labs.dreamcoder.search import (
    Enumerator,
    Grammar,
    SearchBudget,
    Task,
    argument_order,
    candidates,
    enumerate_programs,
    solve_task,
    solve_tasks,
    summary,
    unorder,
)


def test_parse_print_round_trip():
    text = "(lam (fold $0 0 (lam (lam (+ $1 $0)))))"
    assert show(parse(text)) == text
    for bad in ["(lam (map $0", "(frobnicate 1)", "())", "(lam)"]:
        with pytest.raises(ParseError):
            parse(bad)


def test_type_inference():
    assert str(typeof(parse("(lam (map (lam (+ $0 1)) $0))"))) == "list(int) -> list(int)"
    # polymorphic: apply any function to every element
    assert str(typeof(parse("(lam (lam (map $1 $0)))"))) == "(t0 -> t1) -> list(t0) -> list(t1)"
    assert str(typeof(parse("(lam (car $0))"))) == "list(t0) -> t0"
    for ill_typed in ["(lam (+ $0 empty))", "(lam (map $0 1))", "(if 1 2 3)"]:
        with pytest.raises(TypeMismatch):
            typeof(parse(ill_typed))


def test_interpreter_semantics_and_budget():
    assert evaluate(parse("(lam (fold $0 0 (lam (lam (+ $1 $0)))))"), (1, 2, 3)) == 6
    assert evaluate(parse("(lam (filter (lam (gt? $0 2)) $0))"), (1, 5, 3, 0)) == (5, 3)
    assert evaluate(parse("(lam (if (empty? $0) 0 (car $0)))"), ()) == 0  # `if` is lazy
    with pytest.raises(EvalError):
        evaluate(parse("(lam (car $0))"), ())
    loop = parse("(lam (fix (lam (lam ($1 $0))) $0))")  # f x = f x: never returns
    t0 = time.perf_counter()
    with pytest.raises(EvalError):
        evaluate(loop, 3)
    assert time.perf_counter() - t0 < 1.0
    explode = parse("(lam (fold $0 empty (lam (lam (cons $1 (cons $1 $0))))))")  # doubles: too long
    with pytest.raises(EvalError):
        evaluate(explode, tuple(range(40)))


def test_dreamcoder_base_has_no_filter_and_builds_it_from_fold():
    """`--base dreamcoder`: DreamCoder's list primitives; filter is a fold away; unfold, is-prime, is-square
    behave as in DreamCoder; the lab's base is unchanged."""
    from nnlabs.labs.dreamcoder.dsl import BASES, base_grammar

    names = [p.name for p in base_grammar("dreamcoder")]
    assert "filter" not in names and {"fold", "unfold", "is-prime", "is-square"} <= set(names) and len(names) == 22
    assert [p.name for p in base_grammar()] == list(BASES["lab"]) and "filter" in BASES["lab"]
    filter_from_fold = parse("(lam (fold $0 empty (lam (lam (if (gt? $1 2) (cons $1 $0) $0)))))")
    assert str(typeof(filter_from_fold)) == "list(int) -> list(int)"
    assert evaluate(filter_from_fold, (1, 3, 5, 2)) == (3, 5)
    from nnlabs.labs.dreamcoder.wake_sleep import suggest_name

    assert suggest_name("(lam (lam (fold $0 empty (lam (lam (if ($3 $1) (cons $1 $0) $0))))))") == "filter from fold"
    assert suggest_name("(lam (fold $0 0 (lam (lam (+ $1 $0)))))") == "sum-like fold"
    # unfold x stop f next: the countdown from x, as DreamCoder's
    countdown = parse("(lam (unfold $0 (lam (eq? $0 0)) (lam $0) (lam (- $0 1))))")
    assert evaluate(countdown, 4) == (4, 3, 2, 1)
    with pytest.raises(EvalError, match="list too long"):  # a stop that never comes: the list bound ends it
        evaluate(parse("(lam (unfold $0 (lam (gt? 0 1)) (lam $0) (lam (+ $0 1))))"), 0)
    # a seed that comes round again loops forever: it fails at the repeat, after 2 of its 64 elements
    cycle = parse("(lam (unfold $0 (lam (gt? 0 1)) (lam $0) (lam (- 1 $0))))")
    with pytest.raises(EvalError, match="loops forever"):
        evaluate(cycle, 0)
    assert evaluate(parse("(lam (unfold $0 (lam (eq? $0 1)) (lam $0) (lam (- 1 $0))))"), 0) == (0,)
    primes = parse("(lam (map (lam (is-prime $0)) $0))")
    assert evaluate(primes, (0, 1, 2, 3, 4, 9, 11, -7)) == (False, False, True, True, False, False, True, False)
    squares = parse("(lam (map (lam (is-square $0)) $0))")
    assert evaluate(squares, (0, 1, 2, 4, 15, 16, -4)) == (True, True, False, True, False, True, False)


def test_enumeration_order_and_finds_a_small_program():
    g = Grammar()
    request = arrow(tlist(INT), INT)
    dls = [dl for dl, _ in enumerate_programs(g, g.log_weights, request, [(1, 2), (3,)], max_dl=9)]
    assert len(dls) > 10 and all(a <= b + 1e-9 for a, b in zip(dls, dls[1:]))
    task = Task("length", request, [((1, 2, 3), 3), ((), 0), ((5,), 1), ((4, 4), 2)])
    r = solve_task((task, g, g.log_weights, SearchBudget(programs=500, seconds=10)))
    assert r["solved"] and r["program"] == "(lam (length $0))"
    # the description length is the likelihood summary's -log P
    s = summary(g, parse(r["program"]), request)
    assert s is not None and len(s) == 2


@pytest.mark.parametrize("processes", [1, 2])
def test_solve_tasks_reports_each_search_as_it_ends(processes):
    # a full-budget wake searches for half an hour: the lab prints from these calls while it runs
    g, request = Grammar(), arrow(tlist(INT), INT)
    tasks = [Task("length", request, [((1, 2, 3), 3), ((), 0)]), Task("head", request, [((4, 1), 4), ((7,), 7)]),
             Task("sum", request, [((1, 2), 3), ((5,), 5)])]
    heard = []
    results = solve_tasks(tasks, g, [g.log_weights] * 3, SearchBudget(programs=300, seconds=10), processes,
                          lambda r, done, total: heard.append((r["name"], done, total)))
    assert heard == [("length", 1, 3), ("head", 2, 3), ("sum", 3, 3)]
    assert [r["name"] for r in results] == ["length", "head", "sum"]


def naive_programs(g, w, req, env, sub, n, budget):
    """Every program of type req cheaper than budget by plain top-down recursion: no memo, no pruning."""
    req = resolve(req, sub)
    if is_arrow(req):
        a, b = req.args
        for cost, body, s, m in naive_programs(g, w, b, (a, *env), sub, n, budget):
            yield cost, Lam(body), s, m
        return
    for c in candidates(g, w, req, env, sub, n):
        if c.cost >= budget:
            break
        order = argument_order(c.arg_types)
        types = [c.arg_types[i] for i in order]
        for cost, args, s, m in naive_arguments(g, w, types, env, c.sub, c.next_id, budget - c.cost):
            yield c.cost + cost, apply_all(c.head, unorder(args, order)), s, m


def naive_arguments(g, w, types, env, sub, n, budget):
    if not types:
        yield 0.0, [], sub, n
        return
    for c1, p1, s1, n1 in naive_programs(g, w, types[0], env, sub, n, budget):
        for c2, rest, s2, n2 in naive_arguments(g, w, types[1:], env, s1, n1, budget - c1):
            yield c1 + c2, [p1, *rest], s2, n2


@pytest.mark.parametrize("request_type", [arrow(tlist(INT), INT), arrow(tlist(INT), tlist(INT)),
                                          arrow(tlist(INT), BOOL)], ids=str)
def test_memoised_enumerator_matches_the_naive_one(request_type):
    """Every program below a small description length, each once, with the same DL: the memo (holes
    replayed up to renaming of type variables) neither loses nor invents a program."""
    g, budget = Grammar(), 8.5
    naive = sorted((show(p), round(c, 9)) for c, p, _, _ in naive_programs(g, g.log_weights, request_type, (), {}, 0,
                                                                            budget))
    memo = Enumerator(g, g.log_weights, prune_equivalent=False)
    fast = sorted((show(p), round(c, 9)) for c, p, _, _ in memo.programs(request_type, (), {}, 0, budget))
    assert len(naive) > 15 and fast == naive


def behaviour(p, inputs) -> tuple:
    out = []
    for x in inputs:
        try:
            out.append(evaluate(p, x))
        except EvalError:
            out.append("error")
    return tuple(out)


def recognition_like_weights(g, seed=1) -> list:
    """Non-uniform log-weights, as a recognition model predicts them (one near-certain production)."""
    rng = random.Random(seed)
    w = [rng.gauss(0.0, 1.5) for _ in range(g.size)]
    w[[p.name for p in g.productions].index("cdr")] = 4.0
    return w


@pytest.mark.parametrize("weights", ["uniform", "recognition-like"])
@pytest.mark.parametrize("request_type", [arrow(tlist(INT), INT), arrow(tlist(INT), tlist(INT)),
                                          arrow(tlist(INT), BOOL)], ids=str)
def test_pruned_enumerator_yields_every_behaviour_once_at_its_least_description_length(request_type, weights):
    """The search as solve_task runs it (observational-equivalence pruning on) against the naive
    enumerator: below 10 nats, every behaviour on the task's inputs that some program has, exactly
    once, at the least description length of any program with it, in non-decreasing description
    length; and every program it yields is one the naive enumerator builds, with the same DL."""
    g, budget, inputs = Grammar(), 10.0, [(1, 2), (3,), (), (2, 0, 1)]
    w = g.log_weights if weights == "uniform" else recognition_like_weights(g)
    naive, least = {}, {}
    for c, p, _, _ in naive_programs(g, w, request_type, (), {}, 0, budget):
        naive[show(p)] = round(c, 9)
        b = behaviour(p, inputs)
        least[b] = min(least.get(b, math.inf), round(c, 9))
    fast = list(enumerate_programs(g, w, request_type, inputs, max_dl=budget))
    assert all(a <= b + 1e-9 for (a, _), (b, _) in zip(fast, fast[1:]))
    assert all(naive.get(show(p)) == round(dl, 9) for dl, p in fast)
    found = {behaviour(p, inputs): round(dl, 9) for dl, p in fast}
    assert len(found) == len(fast) and found == least and len(least) > 10


def test_a_search_values_the_step_in_progress_one_program_at_a_time():
    """The search yields its body hole's programs in the order a step built in full keeps them, and
    one that stops mid-step has valued no program beyond the last it yielded."""
    g, inputs, n = Grammar(), [(1, 2), (3,), (), (2, 0, 1)], 300
    lazy = Enumerator(g, g.log_weights, inputs)
    streamed = [(dl, show(e.program)) for dl, _, e in itertools.islice(lazy.stream(arrow(tlist(INT), INT)), n)]
    started, _ = lazy.hole(INT, (tlist(INT),))
    eager = Enumerator(g, g.log_weights, inputs)
    full, _ = eager.hole(INT, (tlist(INT),))
    eager.extend(full, started.covers)
    assert streamed == [(e.cost, show(e.program)) for e in full.entries[:n]]
    assert len(started.entries) == n < len(full.entries) and started.pending


def test_a_search_that_fails_says_so(monkeypatch):
    # any exception inside the enumerator ends the search as `error`, with its message, never as "unsolved"
    from nnlabs.labs.dreamcoder import search

    def broken(self, h, lo, hi):
        raise KeyError("a bug in the enumerator")

    monkeypatch.setattr(search.Enumerator, "fill", broken)
    task = Task("length", arrow(tlist(INT), INT), [((1, 2, 3), 3), ((), 0)])
    g = Grammar()
    r = solve_task((task, g, g.log_weights, SearchBudget(programs=100, seconds=10)))
    assert r["ended"] == "error" and "KeyError" in r["error"] and not r["solved"] and r["tried"] == 0


def test_a_near_certain_choice_does_not_end_the_search():
    # Recognition weights can make one production nearly certain: here cdr at a list hole costs the
    # 0.25-nat floor. Memoised budgets rounded to a 0.5-nat grid sent the search back into the same hole
    # at the same budget until Python's stack ran out, after 0 programs.
    g = Grammar()
    w = list(g.log_weights)
    w[[p.name for p in g.productions].index("cdr")] = 4.0
    task = Task("drop first", arrow(tlist(INT), tlist(INT)), [((1, 2, 3), (2, 3)), ((4, 5), (5,)), ((7,), ())])
    r = solve_task((task, g, w, SearchBudget(programs=2000, seconds=30)))
    assert r["ended"] == "solved" and r["program"] == "(lam (cdr $0))"
    request = arrow(tlist(INT), tlist(INT))
    naive = sorted((show(p), round(c, 9)) for c, p, _, _ in naive_programs(g, w, request, (), {}, 0, 6.0))
    fast = sorted((show(p), round(c, 9)) for c, p, _, _ in Enumerator(g, w, prune_equivalent=False).programs(
        request, (), {}, 0, 6.0))
    assert len(naive) > 10 and fast == naive


def test_compression_refuses_what_dreamcoder_calls_trivial():
    # before any rule this corpus gave `(lam (car $0))`: car in a wrapper
    corpus = [parse(t) for t in ["(lam (car $0))", "(lam (car $0))", "(lam (+ (car $0) 1))", "(lam (car (cdr $0)))",
                                 "(lam (car (cdr (cdr $0))))"]]
    assert compress(corpus, iterations=4, max_arity=3).abstractions == []
    # the rule is what refuses it: Stitch's objective alone keeps it and compresses further
    free = compress(corpus, iterations=4, max_arity=3, only_nontrivial=False)
    assert [show(inv.body) for inv in free.abstractions] == ["(lam (car $0))"]
    assert free.ratio(corpus) > 1.0


def fixed_constants_corpus(adds):
    filters = (("3", "$0"), ("1", "$0"), ("2", "$0"), ("0", "$0"), ("3", "(cdr $0)"))
    return [parse(f"(lam (map (lam (+ $0 {k})) (filter (lam (gt? $0 {t})) {xs})))")
            for k, (t, xs) in zip(adds, filters)]


@pytest.mark.parametrize("adds, kept", [
    ("33310", ["(lam (lam (fn_0 3 $1 $0)))"]),  # three uses of "add 3" pay for the fixed constant's body
    ("3210", []),  # no constant repeats: fixing one cannot pay
])
def test_a_fixed_constant_is_kept_only_when_it_pays_for_its_body(adds, kept):
    corpus = fixed_constants_corpus(adds)
    result = compress(corpus, iterations=4, max_arity=3)
    bodies = [show(inv.body) for inv in result.abstractions]
    assert bodies[0] == "(lam (lam (lam (map (lam (+ $0 $3)) (filter (lam (gt? $0 $2)) $0)))))"
    assert bodies[1:] == kept
    # utility is MDL: corpus + library shrink by exactly the utilities, each positive
    utilities = [step["utility"] for step in result.steps]
    assert min(utilities) > 0
    library = sum(cost(inv.body) for inv in result.abstractions)
    assert sum(cost(p) for p in corpus) - sum(cost(p) for p in result.rewritten) - library == sum(utilities)


@pytest.mark.parametrize("body, kept", [
    ("(lam (car $0))", False),  # one primitive: car in a wrapper
    ("(lam (lam (map (lam ($2 $0)) $0)))", False),  # map in a wrapper, its function eta-expanded
    ("(lam (lam ($1 ($1 $0))))", False),  # no primitive at all
    ("(lam (* $0 $0))", True),  # one primitive, a variable used twice: square
    ("(lam (lam (map (lam ($2 $0 $0)) $0)))", True),  # f x x: a new way to use f
    ("(lam (lam (fold $0 0 (lam (lam (+ $1 $0))))))", True),  # a fixed function makes the fold a sum
    ("(lam (+ $0 1))", True),  # a constant fixed: two primitives, kept if it pays for its body
])
def test_nontrivial_is_dreamcoders_rule(body, kept):
    assert nontrivial(parse(body)) is kept


def test_the_before_after_figure_defines_every_abstraction_it_shows():
    # session 16's seed 0: add2 became (lam (fn_11 $0)), which means nothing without fn_3 and fn_0
    bodies = {"fn_0": "(+ 1)", "fn_1": "(lam (lam (fold $1 $0 (lam (lam (+ $0 $1))))))", "fn_3": "(+ (fn_0 1))",
              "fn_11": "(map (lam (fn_3 $0)))"}
    assert library_calls("(lam (fn_11 $0))", bodies) == ["fn_11", "fn_3", "fn_0"]
    assert library_calls("(lam (fn_1 (fn_11 $0) (fn_0 0)))", bodies) == ["fn_1", "fn_11", "fn_3", "fn_0"]


def test_compression_finds_the_shared_abstraction():
    corpus_text = ["(lam (map (lam (+ $0 1)) $0))", "(lam (map (lam (+ $0 2)) $0))",
                   "(lam (map (lam (+ $0 3)) $0))", "(lam (car (map (lam (+ $0 2)) $0)))"]
    corpus = [parse(t) for t in corpus_text]
    result = compress(corpus, iterations=3, max_arity=2)
    assert result.abstractions, "no abstraction found"
    body = show(result.abstractions[0].body)
    assert "map" in body and "+" in body
    assert sum(cost(p) for p in result.rewritten) < sum(cost(p) for p in corpus)
    assert sum(result.abstractions[0].name in show(p) for p in result.rewritten) >= 3
    for before, after in zip(corpus, result.rewritten):
        for x in [(), (1, 2, 3), (7,)]:
            try:
                want = evaluate(before, x)
            except EvalError:
                continue
            assert evaluate(after, x) == want
    theirs = stitch_compress(corpus, iterations=3, max_arity=2)
    assert result.ratio(corpus) >= 0.9 * theirs.ratio(corpus)


def test_lab_end_to_end_tiny(tmp_path, render_html):
    from nnlabs.labs.dreamcoder import PATCHES, main, report

    assert PATCHES == []
    out = tmp_path / "dc"
    assert main(["--budget", "tiny", "--out", str(out), "--processes", "2"]) == 0
    for run in ("full", "no_recognition", "no_learning"):
        for f in ("config.json", "metrics.jsonl", "analysis.json", "samples.txt"):
            assert (out / run / f).exists(), f"{run}/{f}"
    lines = [json.loads(line) for line in (out / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "split", "loss", "tokens", "macs", "wall_s", "solved_frac", "programs_tried"} <= set(lines[0])
    assert any(m["solved"] > 0 for m in lines), "tiny budget should solve some one-primitive tasks"
    assert all(m["search_errors"] == 0 for m in lines), "a search ended on an error (e.g. RecursionError)"
    for fig in ("dreamcoder_library", "dreamcoder_solved", "dreamcoder_before_after"):
        assert (out / "figures" / f"{fig}.png").exists()
    assert "Solved fraction per cycle" in (out / "report.md").read_text()
    assert "by any wake (equal total programs)" in (out / "report.md").read_text()
    dom, _ = render_html(out / "dreamcoder.html")
    assert "Library" in dom and "cycle 1" in dom
    payoff = json.loads((out / "payoff.json").read_text())
    assert {p["run"] for p in payoff["points"]} == {"full", "no_recognition", "no_learning"}
    # a second wake that solved no held-out task: the report says so instead of crashing on None < float
    metrics = out / "full" / "metrics.jsonl"
    second = [{**m, "step": 2} | ({"solved": 0, "solved_frac": 0.0, "solved_this_wake": 0, "tried_per_solved": None}
                                  if m["split"] == "test" else {}) for m in lines]
    metrics.write_text("".join(json.dumps(m) + "\n" for m in lines + second))
    report(out)
    assert "cannot be compared: the wake of cycle 2 solved no held-out task" in (out / "report.md").read_text()


def test_bad_task_file_is_a_user_error(tmp_path):
    from nnlabs.labs.dreamcoder import main
    from nnlabs.spine.errors import UserError

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError):
        main(["--budget", "tiny", "--out", str(tmp_path / "o"), "--train", str(bad), "--test", str(bad)])


def test_paired_verdicts_use_an_exact_mcnemar_test():
    assert mcnemar(set("abcdef"), set()) == (6, 0, pytest.approx(2 / 64))  # 6 discordant, all one way
    assert mcnemar({"a", "b"}, {"c"}) == (2, 1, 1.0)  # 2 vs 1: 2 * (1 + 3) / 8, capped at 1
    assert mcnemar({"a"}, {"a"})[2] == 1.0  # no discordant task: no evidence either way
    assert paired_verdict(set("abcdef"), set(), "it helped", "it hurt").startswith("it helped")
    # 15 vs 1 discordant: p = 2 * 17 / 2**16, shown as a number, not rounded to 0.00
    assert "p = 0.0005," in paired_verdict(set("abcdefghijklmno"), {"z"}, "it helped", "it hurt")
    assert "within noise" in paired_verdict({"a", "b"}, {"c"}, "it helped", "it hurt")


def test_held_out_solved_by_the_last_wake_or_by_any_wake():
    # every wake searches every held-out task again: over all wakes the learner spent on each task the total
    # budget no_learning spends at once, so "any wake" is the equal-programs comparison
    from types import SimpleNamespace

    from nnlabs.labs.dreamcoder.report import held_out_solved

    def wake(**solved):
        return [{"name": n, "split": "test", "solved": ok} for n, ok in solved.items()] + [
            {"name": "t", "split": "train", "solved": True}]

    learner = SimpleNamespace(analysis={"cycles": [{"wake": wake(a=True, b=False, c=False)},
                                                   {"wake": wake(a=False, b=True, c=False)}]})
    assert held_out_solved(learner) == {"b"}
    assert held_out_solved(learner, any_wake=True) == {"a", "b"}
    no_learning = SimpleNamespace(analysis={"wake": [{"name": "c", "solved": True}, {"name": "a", "solved": False}]})
    assert held_out_solved(no_learning) == held_out_solved(no_learning, any_wake=True) == {"c"}


def test_task_files_are_used_whole_and_skips_are_counted(tmp_path):
    """A DreamCoder-format file runs whole; a task the lab cannot run is skipped with its reason, not an
    error; --subsample is the only way to cut a file, and the report header says what was used."""
    from argparse import Namespace

    from nnlabs.labs.dreamcoder.experiment import load_tasks, subsample_counts
    from nnlabs.labs.dreamcoder.report import tasks_sentence
    from nnlabs.spine.errors import UserError

    def task(name, i, o, types=("list-of-int", "int")):
        return {"name": name, "type": {"input": types[0], "output": types[1]}, "examples": [{"i": i, "o": o}]}

    good = [task(f"len{n}", [1] * n, n) for n in range(1, 5)]
    odd = [task("nested", [[1]], 1, ("list-of-list-of-int", "int")), task("huge", [10 ** 7], 1),
           task("long", list(range(100)), 100)]
    (tmp_path / "train.json").write_text(json.dumps(good + odd))
    (tmp_path / "test.json").write_text(json.dumps(good[:2]))
    train, test, origin = load_tasks(Namespace(train=str(tmp_path / "train.json"), test=str(tmp_path / "test.json")))
    assert [t.name for t in train] == ["len1", "len2", "len3", "len4"] and len(test) == 2
    reasons = origin["skipped"]["train"]
    assert sorted(n for names in reasons.values() for n in names) == ["huge", "long", "nested"]
    assert any("cannot express" in r for r in reasons) and any("bounds" in r for r in reasons)
    text = tasks_sentence({**origin, "available": {"train": 4, "test": 2}, "used": {"train": 4, "test": 2}})
    assert text.startswith("Tasks: all 4 training and all 2 held-out tasks from --train")
    assert "Skipped: 1 train task(s) with a type the DSL cannot express" in text
    assert "(subsampled" in tasks_sentence({**origin, "available": {"train": 4, "test": 2},
                                            "used": {"train": 3, "test": 2}})
    assert subsample_counts(None) == (0, 0) and subsample_counts("40,20") == (40, 20)
    with pytest.raises(UserError, match="TRAIN,TEST"):
        subsample_counts("40")
    from nnlabs.labs.dreamcoder import main

    with pytest.raises(UserError, match="the pack is subsampled by --budget"):  # not silently ignored
        main(["--budget", "tiny", "--out", str(tmp_path / "o"), "--subsample", "4,2"])
    # a malformed task is still an error, naming the task
    (tmp_path / "bad.json").write_text(json.dumps([{"name": "x", "type": {"input": "list-of-int"}, "examples": []}]))
    with pytest.raises(UserError, match="task 1 \\(x\\)"):
        load_tasks(Namespace(train=str(tmp_path / "bad.json"), test=str(tmp_path / "test.json")))


def test_the_held_out_draw_does_not_depend_on_the_training_tasks():
    """Quick subsamples both splits; adding training tasks (the pack's v2 fold warm-ups) must leave the
    held-out tasks a seed draws as they were, and a seed still decides them."""
    from nnlabs.labs.dreamcoder.experiment import draw, tasks_from_json
    from nnlabs.pack import list_programs

    files = list_programs.build(0)
    train, test = (tasks_from_json(files[f"list_programs/{s}.json"], "pack") for s in ("train", "test"))
    fewer = [t for t in train if t.name not in {w[0] for w in list_programs.FOLD_WARMUPS}]
    assert len(fewer) < len(train)
    names = [[t.name for t in draw(tr, test, 40, 20, seed)[1]] for tr in (train, fewer) for seed in (0, 1)]
    assert names[0] == names[2] and names[1] == names[3] and names[0] != names[1] and len(names[0]) == 20


def test_the_search_benchmark_loads_and_runs_the_enumerator_before():
    """benchmarks/bench_dreamcoder.py compares today's search with the one before the rewrite, loaded from
    git with its own interpreter; a rename in today's code once broke that load unnoticed."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dreamcoder.py"
    spec = importlib.util.spec_from_file_location("bench_dreamcoder", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    before = bench.search_before()
    if before is None:
        pytest.skip(f"git history with revision {bench.BEFORE} is not at hand")
    task = Task("add1", arrow(tlist(INT), tlist(INT)), [((1, 2), (2, 3)), ((5,), (6,)), ((), ())])
    g = before.Grammar()
    result = before.solve_task((bench.task_before(task, before), g, g.log_weights,
                                before.SearchBudget(programs=2_000, seconds=30.0)))
    assert result["solved"] and result["tried"] > 0
