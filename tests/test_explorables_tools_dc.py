"""The tools and DreamCoder explorables in a real browser (Playwright + the system Chromium, as in
test_site.py): they load without a console error, every control changes what is shown, the URL hash
round-trips, the numbers shown equal the Python analysis, model output renders as text, and a phone
screen holds them."""

from __future__ import annotations

import re

import numpy as np
import pytest
import test_site
from test_site import HOSTILE, as_shown

from nnlabs.report.runs import Run

# test_site's headless Chromium and its page opener (console errors collected), as fixtures here too
browser, open_page = test_site.browser, test_site.open_page

# -----------------------------------------------------------------------------
# tools: three prices, from "call everything" to "call nothing", and the dream state at the middle one


def tool_record(i: int, needs_tool: bool, p_call: float) -> dict:
    """One test query's record as metrics.evaluate_queries writes it: memory is right on memorizable
    queries, the tool on needs-tool ones; the first query's text, call and answers are hostile."""
    query = HOSTILE if i == 0 else f"{i}+{i}="
    return {"query": query, "kind": "needs_tool" if needs_tool else "memorizable",
            "family": "large_arith" if needs_tool else "small_arith", "gold": str(2 * i), "p_call": p_call,
            "call": f"calc({query})", "output": HOSTILE if i == 0 else str(2 * i),
            "tool_answer": HOSTILE if i == 0 else str(2 * i), "tool_ok": needs_tool or i % 3 == 0,
            "direct_answer": HOSTILE if i == 0 else "7", "direct_ok": not needs_tool,
            "direct_macs": 100_000, "tool_macs": 300_000, "call_cost": 2_000_000}


def price_run(cost: float, p_needs: float, p_memo: float) -> dict:
    from nnlabs.labs.tools.metrics import analysis

    recs = [tool_record(i, i % 2 == 0, p_needs if i % 2 == 0 else p_memo) for i in range(12)]
    return {"call_cost": cost, "budget": "tiny", **analysis(recs), "queries": recs}


@pytest.fixture(scope="module")
def tools_page(tmp_path_factory):
    from nnlabs.labs.tools.explorable import write_explorable
    from nnlabs.labs.tools.report import moderate_run, price_sweep

    runs = [price_run(0.01, 0.9, 0.8), price_run(0.5, 0.9, 0.2), price_run(2.0, 0.3, 0.1)]
    dream = price_run(0.5, 0.95, 0.05)
    mod = moderate_run(runs, dream)
    sweep = price_sweep(runs, mod)
    path = write_explorable(tmp_path_factory.mktemp("tools"), runs, dream, mod, sweep)
    return path, runs, dream, sweep


def test_tools_slider_moves_the_point_and_the_numbers_equal_the_analysis(tools_page, open_page):
    path, runs, dream, sweep = tools_page
    page, errors = open_page(path)
    assert page.locator("#apgr").inner_text() == f"{sweep['area_fraction']:.2f}"
    assert page.locator("#stop").inner_text() == f"c ≈ {sweep['calls_stop']:.2g}"
    ox, oy = zip(*sweep["oracle"])
    for k, run in enumerate(runs):
        page.locator("#price").fill(str(k))
        learned = run["modes"]["learned"]["all"]
        assert page.locator("#price-label").inner_text() == f"c = {run['call_cost']:g}"
        assert page.locator("#acc").inner_text() == f"{100 * learned['accuracy']:.1f}%"
        assert page.locator("#calls").inner_text() == f"{100 * learned['call_rate']:.1f}%"
        assert page.locator("#oracle-acc").inner_text() == f"{100 * np.interp(learned['call_rate'], ox, oy):.1f}%"
        # every query redrawn with this price's decision
        assert page.locator("#grid .q.call").count() == sum(r["p_call"] > 0.5 for r in run["queries"])
        assert f"{run['call_cost']:g}" in page.locator("#chosen + text").text_content()
    assert errors == []


def test_tools_controls_change_the_view_and_the_hash_round_trips(tools_page, open_page):
    path, runs, dream, _ = tools_page
    page, errors = open_page(path)
    assert page.locator("#policy").is_disabled()  # the dream state continues the middle price only
    page.locator("#price").fill("1")
    before = page.locator("#summary").inner_text()
    page.locator("#policy").select_option("dream")
    assert page.locator("#summary").inner_text() != before
    assert page.locator("#acc").inner_text() == f"{100 * dream['modes']['learned']['all']['accuracy']:.1f}%"
    trace = page.locator("#trace").inner_text()
    page.locator("#query").select_option("3")
    assert page.locator("#trace").inner_text() != trace and "3+3=" in page.locator("#trace").inner_text()
    page.locator("#grid .q", has_text="5+5=").click()  # a query in the grid traces it too
    assert "5+5=" in page.locator("#trace").inner_text() and page.locator("#query").input_value() == "5"
    state = page.evaluate("location.hash")
    assert state == "#price=1&policy=dream&query=5"
    again, again_errors = open_page(path)
    again.goto(path.resolve().as_uri() + state)
    again.reload()
    assert again.locator("#summary").inner_text() == page.locator("#summary").inner_text()
    assert again.locator("#trace").inner_text() == page.locator("#trace").inner_text()
    assert errors == [] and again_errors == []


def test_tools_model_output_renders_as_text_and_fits_a_phone(tools_page, open_page):
    path, *_ = tools_page
    page, errors = open_page(path, width=375, height=812)
    page.locator("#query").select_option("0")
    trace = page.locator("#trace").inner_text()
    assert trace.count("</script><img") >= 2  # the query and the answer, as text
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert errors == []


# -----------------------------------------------------------------------------
# DreamCoder: three cycles; fn_1 (cycle 2) calls fn_0 (cycle 1); cycle 3 adds nothing

DC_BODIES = {"fn_0": "(lam (lam (map (lam (+ $2 $0)) $0)))",
             "fn_1": "(lam (lam (filter (lam (gt? $0 $2)) (fn_0 1 $0))))"}
BEFORE_T3 = "(lam (filter (lam (gt? $0 4)) (fn_0 1 $0)))"


def dc_cycle(k: int, train: list, test: list, new: list, solutions: dict, compression: dict | None) -> dict:
    wake = ([{"name": n, "program": p, "solved": p is not None, "split": "train", "tried": 10} for n, p in train]
            + [{"name": n, "program": p, "solved": p is not None, "split": "test", "tried": 10} for n, p in test])
    c = {"cycle": k, "wake": wake, "solutions": solutions,
         "new_abstractions": [{"name": n, "body": DC_BODIES[n], "suggested": "map-add" if n == "fn_0" else HOSTILE,
                               "helps": helps} for n, helps in new]}
    return c | ({"compression": compression} if compression else {})


@pytest.fixture(scope="module")
def dc_run(tmp_path_factory) -> tuple:
    from nnlabs.labs.dreamcoder.explorable import write_explorable

    after1 = {"t1": "(fn_0 1)", "t2": "(fn_0 2)"}
    after2 = after1 | {"t3": "(fn_1 4)"}
    cycles = [
        dc_cycle(1, [("t1", "(lam (map (lam (+ 1 $0)) $0))"), ("t2", "(lam (map (lam (+ 2 $0)) $0))"), ("t3", None)],
                 [("h1", "(lam (fn_x $0))")], [("fn_0", ["t1", "t2"])], after1,
                 {"corpus_cost": 2000, "ours": {"cost": 600, "library_cost": 900}}),
        dc_cycle(2, [("t3", BEFORE_T3)], [("h1", "(lam (fn_0 1 $0))"), ("h2", HOSTILE)], [("fn_1", ["t3"])],
                 after2, {"corpus_cost": 1700, "ours": {"cost": 500, "library_cost": 800}}),
        dc_cycle(3, [], [("h1", "(lam (fn_0 1 $0))"), ("h2", None)], [], after2,
                 {"corpus_cost": 500, "ours": {"cost": 500, "library_cost": 0}}),
    ]
    library = [{"name": n, "body": b, "type": "int -> list(int) -> list(int)", "suggested": "x"}
               for n, b in DC_BODIES.items()]
    metrics = [{"step": k, "split": s, "solved": solved, "n_tasks": n, "library_size": lib}
               for k, (tr, te, lib) in enumerate([(2, 0, 1), (3, 2, 2), (3, 1, 2)], start=1)
               for s, solved, n in (("train", tr, 3), ("test", te, 2))]
    out = tmp_path_factory.mktemp("dc")
    run = Run(path=out / "full", config={"run": "full"}, metrics=metrics,
              analysis={"config": {"compressor": "ours"}, "cycles": cycles, "library": library})
    return write_explorable(out, {"full": run}), run


def test_dreamcoder_scrubber_moves_graph_curves_and_tables(dc_run, open_page):
    path, _ = dc_run
    page, errors = open_page(path)
    assert page.locator("#prev").is_disabled()
    assert page.locator("#graph .node.new").all_text_contents() == ["fn_0"]  # cycle 1's sleep invented fn_0
    assert page.locator('#graph .node[aria-label^="fn_1"]').get_attribute("tabindex") == "-1"  # not yet
    x1 = page.locator("#solved .cursor").get_attribute("x1")
    page.locator("#next").click()
    assert page.evaluate("location.hash") == "#cycle=2&node="
    assert page.locator("#summary").inner_text().startswith("cycle 2 of 3: train solved 3/3, held-out solved 2/2")
    assert page.locator("#graph .node.new").all_text_contents() == ["fn_1"]
    assert page.locator("#solved .cursor").get_attribute("x1") != x1
    assert page.locator("#dl .cursor").count() == 1
    assert "t3" in page.locator("#sols").inner_text()
    page.locator("#cycle").fill("3")
    assert page.locator("#next").is_disabled() and page.locator("#graph .node.new").count() == 0
    assert errors == []


def test_dreamcoder_node_focus_shows_definition_usage_and_a_task_it_shortened(dc_run, open_page):
    from nnlabs.labs.dreamcoder.report import leaves

    path, _ = dc_run
    page, errors = open_page(path)
    page.goto(path.resolve().as_uri() + "#cycle=2")
    page.reload()
    page.locator('#graph .node[aria-label^="fn_1"]').focus()  # keyboard focus, not only hover
    info = page.locator("#info").inner_text()
    assert DC_BODIES["fn_1"] in info and "invented by cycle 2's sleep" in info and as_shown(HOSTILE) in as_shown(info)
    # t1, t2 and t3 are the corpus after cycle 2; only t3 calls fn_1 (fn_1's body calls fn_0, t3 doesn't)
    assert page.locator("#usage").inner_text() == "1 of 3 training solutions after cycle 2"
    assert page.locator("#before-len").inner_text() == f"({leaves(BEFORE_T3)} tokens)"
    assert page.locator("#after-len").inner_text() == f"({leaves('(fn_1 4)')} tokens)"
    assert page.locator("#graph .edge.on").count() == 4  # fn_1 -> filter, gt?, fn_0 and the constant 1
    assert page.evaluate("location.hash") == "#cycle=2&node=fn_1"
    page.locator('#graph .node[aria-label^="fn_0"]').hover()
    assert page.locator("#usage").inner_text() == "2 of 3 training solutions after cycle 2"
    assert "h1" in page.locator("#info").inner_text()  # a held-out task solved with fn_0
    # the description length: the corpus + the library so far, before and after each sleep
    titles = page.locator("#dl title").all_text_contents()
    assert "cycle 2 before its sleep: 2600" in titles and "cycle 2 after its sleep: 2200" in titles
    assert page.locator("#dl-saved").inner_text() == f"cycle 2's sleep: 2600 → 2200 ({100 * (2200 - 2600) / 2600:.1f}%)"
    assert errors == []


def test_dreamcoder_hash_round_trips_and_programs_render_as_text(dc_run, open_page):
    path, _ = dc_run
    page, errors = open_page(path, width=375, height=812)
    page.goto(path.resolve().as_uri() + "#cycle=2&node=fn_0")
    page.reload()
    assert page.locator("#cycle").input_value() == "2"
    assert "fn_0" in page.locator("#info").inner_text() and page.locator("#graph .node.on").count() == 1
    assert as_shown(HOSTILE) in as_shown(page.locator("#tests").inner_text())
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert re.search(r"held-out solved 2/2", page.locator("#summary").inner_text())
    assert errors == []
