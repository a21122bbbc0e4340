"""The MoE and ACT explorables in a real browser (Playwright + the system Chromium, as in test_site.py),
built from tiny-budget runs of each lab: they load without a console error, every control changes what is
shown, the URL hash round-trips, the numbers shown equal the run's analysis.json, model output renders as
text, the hover detail is reachable from the keyboard, and a phone screen holds them."""

from __future__ import annotations

import json
import types

import pytest
import test_site
from test_site import HOSTILE, as_shown

from nnlabs.labs.moe.metrics import max_violation

# the browser fixtures of test_site.py
browser, open_page = test_site.browser, test_site.open_page

MOE_RUNS = ("top1_e8_nobal", "top2_e4")  # no balancing (top-1 of 8) beside the Switch loss (top-2 of 4)
ACT_TAUS = ("act_tau0.01", "act_tau0.1")


@pytest.fixture(scope="module")
def moe_runs(tmp_path_factory):
    """Two tiny MoE runs (as `nnlabs lab moe --budget tiny --runs ...` trains them, without the figures)."""
    import torch

    from nnlabs.labs.moe.experiment import BUDGETS, load_mixture, run_one
    from nnlabs.labs.moe.report import lab_runs

    out, threads = tmp_path_factory.mktemp("moe"), torch.get_num_threads()
    torch.set_num_threads(1)
    b = BUDGETS["tiny"]
    data = load_mixture(b.n_train, b.n_val)
    for name in MOE_RUNS:
        run_one(name, out, "tiny", 3407, data, resume=False, threads=1)
    torch.set_num_threads(threads)
    return out, {name: rs[0] for name, rs in lab_runs(out).items()}


@pytest.fixture(scope="module")
def moe_page(moe_runs):
    from nnlabs.labs.moe.explorable import write_explorable

    out, runs = moe_runs
    return write_explorable(runs, out, list(MOE_RUNS)), runs


@pytest.fixture(scope="module")
def act_runs(tmp_path_factory):
    """The tiny ACT curriculum on parity with two τ: fixed1 → fixed2 (+ its confidence exit) → ACT."""
    from nnlabs.labs.act.experiment import BUDGETS, load_task, run_one
    from nnlabs.labs.act.report import analyses, one_seed

    out, b = tmp_path_factory.mktemp("act"), BUDGETS["tiny"]
    args = types.SimpleNamespace(seed=0, resume=False, force=False, budget="tiny")
    splits = load_task("parity", 0, b.sizes)
    run_one(out, "parity", "fixed1", splits, b, args)
    run_one(out, "parity", "fixed2", splits, b, args, b.exit, "parity-fixed1")
    for name in ACT_TAUS:
        run_one(out, "parity", name, splits, b, args, (), "parity-fixed2")
    return out, one_seed(analyses(out))


@pytest.fixture(scope="module")
def act_page(act_runs):
    from nnlabs.labs.act.explorable import write_explorable

    out, runs = act_runs
    return write_explorable(runs, out), runs


def view(page, selector: str) -> str:
    return page.locator(selector).inner_html()


def other(page, select: str) -> str:
    """An option of `select` other than the one shown."""
    current = page.locator(select).input_value()
    return next(v for v in page.locator(f"{select} option").evaluate_all("os => os.map(o => o.value)")
                if v != current)


# -----------------------------------------------------------------------------
# MoE


def test_moe_numbers_shown_equal_the_analysis(moe_page, open_page):
    path, runs = moe_page
    page, errors = open_page(path)
    # the default pair: no balancing beside the balanced run, at the last evaluation, layer 0
    assert page.locator("#sideA h2").inner_text() == "top1_e8_nobal"
    last = runs["top1_e8_nobal"].analysis["evals"][-1]
    assert page.locator("#steplabel").inner_text() == str(last["step"])
    layer = last["layers"][0]
    assert page.locator("#sideA .mv").inner_text() == f"{max_violation(layer['utilisation']):.3f}"
    assert f"{layer['maxvio_global']:.3f} on the validation set" in page.locator("#sideA .maxvio").inner_text()
    # hover: the router's choices at one character of the first probe line, top-2 run on side B
    for side, name in (("#sideA", "top1_e8_nobal"), ("#sideB", "top2_e4")):
        item = runs[name].analysis["evals"][-1]["strings"][0]
        page.locator(f"{side} .line >> nth=0").locator(".ch >> nth=2").hover()
        info = page.locator(f"{side} .info")
        choices = item["choices"][0][2]
        assert info.locator(".p").all_inner_texts() == [f"{p:.3f}" for _, p in choices]
        shown = info.locator(".choice").all_inner_texts()
        assert len(shown) == len(choices) and all(t.startswith(f"expert {e} ") for (e, _), t in zip(choices, shown))
        top_k = runs[name].config["moe"]["top_k"]
        assert info.inner_text().count("(chosen)") == top_k and len(choices) == top_k + 1
        assert choices[0][0] == item["experts"][0][2]  # the first choice is the expert the colour shows
    assert errors == []


def test_moe_every_control_changes_the_view_and_the_hash_round_trips(moe_page, open_page):
    path, runs = moe_page
    page, errors = open_page(path)
    for control, value in (("a", "top2_e4"), ("b", "top1_e8_nobal"), ("layer", "1"), ("group", "class"),
                           ("norm", "col")):
        before = view(page, ".pair")
        page.select_option(f"#{control}", value)
        assert view(page, ".pair") != before, control
    before = view(page, ".pair")
    page.locator("#step").fill("0")
    assert view(page, ".pair") != before and page.locator("#steplabel").inner_text() == "0"
    state = page.evaluate("location.hash")
    assert state == "#a=top2_e4&b=top1_e8_nobal&layer=1&step=0&group=class&norm=col"
    again, again_errors = open_page(path)
    again.goto(path.resolve().as_uri() + state)
    again.reload()
    assert [again.locator(f"#{c}").input_value() for c in ("a", "b", "layer", "step", "group", "norm")] == \
           ["top2_e4", "top1_e8_nobal", "1", "0", "class", "col"]
    assert view(again, ".pair") == view(page, ".pair")
    assert errors == [] and again_errors == []


def test_moe_hover_detail_is_reachable_from_the_keyboard(moe_page, open_page):
    path, runs = moe_page
    page, errors = open_page(path)
    strings = runs["top1_e8_nobal"].analysis["evals"][-1]["strings"]
    # the strings are one Tab stop; the arrow keys walk the characters and the lines
    assert page.locator("#sideA .ch[tabindex='0']").count() == 1
    page.locator("#sideA .ch >> nth=0").focus()
    page.keyboard.press("ArrowRight")
    info = page.locator("#sideA .info")
    assert f"{json.dumps(strings[0]['text'][1])}, character 2" in info.inner_text()
    page.keyboard.press("ArrowDown")
    assert f"{json.dumps(strings[1]['text'][1])}, character 2" in info.inner_text()
    assert page.evaluate("document.activeElement.dataset.j") == "1"
    assert errors == []


def test_moe_model_output_renders_as_text_and_fits_a_phone(moe_runs, tmp_path, open_page):
    from nnlabs.labs.moe.explorable import write_explorable

    _, runs = moe_runs
    run = runs["top1_e8_nobal"]
    sample = run.analysis["evals"][-1]["strings"][-1]
    # a sample the model might write, with its routing stretched to its length
    n = len(HOSTILE)
    hostile = {**sample, "text": HOSTILE, "experts": [(e * n)[:n] for e in sample["experts"]],
               "choices": [(c * n)[:n] for c in sample["choices"]]}
    run.analysis["evals"][-1]["strings"].append(hostile)
    try:
        path = write_explorable(runs, tmp_path, list(MOE_RUNS))
    finally:
        run.analysis["evals"][-1]["strings"].pop()
    page, errors = open_page(path, width=375, height=812)
    line = page.locator("#sideA .line").last
    assert "".join(line.locator(".ch").all_text_contents()) == HOSTILE
    line.locator(".ch >> nth=0").hover()
    assert page.locator("#sideA .info").inner_text().startswith('"<", character 1 of this sample line')
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert errors == []


# -----------------------------------------------------------------------------
# ACT


def test_act_tau_slider_moves_the_point_and_the_numbers_equal_the_analysis(act_page, open_page):
    path, runs = act_page
    page, errors = open_page(path)
    act = sorted((a for a in runs["parity"] if a["kind"] == "act"), key=lambda a: a["tau"])
    assert [a["model"] for a in act] == list(ACT_TAUS)
    points = []
    for k, a in enumerate(act):
        page.locator("#tau").fill(str(k))
        s = a["splits"]["test"]
        assert page.locator("#taulabel").inner_text() == f"τ = {a['tau']:g}"
        assert page.locator("#readout .acc").inner_text() == f"{100 * s['acc']:.1f}%"
        assert page.locator("#readout .passes").inner_text() == f"{s['steps_position']:.2f}"
        assert page.locator("#readout .macs").inner_text() == f"{round(s['macs_per_example']):,}"
        points.append(page.locator("circle.chosen").get_attribute("cx"))
    page.select_option("#split", "lengthgen")
    assert page.locator("#readout .acc").inner_text() == f"{100 * act[-1]['splits']['lengthgen']['acc']:.1f}%"
    before = view(page, "#chart")
    page.select_option("#x", "macs")
    assert view(page, "#chart") != before and "MACs per example" in page.locator("#chart").inner_text()
    assert len(points) == 2 and errors == []


def test_act_step_through_shows_the_cumulative_halting_probability(act_page, open_page):
    path, runs = act_page
    page, errors = open_page(path)
    page.select_option("#tmodel", "act_tau0.1")
    trace = next(a for a in runs["parity"] if a["model"] == "act_tau0.1")["trace"]
    k = max(range(len(trace)), key=lambda i: len(trace[i]["mass"]))  # an example that ran every pass
    page.select_option("#example", str(k))
    ex = trace[k]
    assert page.locator("#pass").get_attribute("max") == str(len(ex["mass"]))
    for n in range(1, len(ex["mass"]) + 1):
        assert page.locator("#trace .col .num").all_inner_texts() == [f"{m:.2f}" for m in ex["mass"][n - 1]]
        assert page.locator("#trace table.passes tr").count() == n + 1  # a row per pass so far
        if n < len(ex["mass"]):
            page.click("#next")
    assert page.locator("#next").is_disabled()
    page.click("#prev")
    assert page.locator("#pass").input_value() == str(len(ex["mass"]) - 1)
    # a position's exact value on hover or focus
    page.locator("#trace .col >> nth=1").focus()
    assert page.locator("#trace .mass").inner_text() == f"{ex['mass'][len(ex['mass']) - 2][1]:.3f}"
    assert errors == []


def test_act_every_control_changes_the_view_and_the_hash_round_trips(act_page, open_page):
    path, runs = act_page
    page, errors = open_page(path)
    chosen = {"tmodel": other(page, "#tmodel")}
    trace = next(a for a in runs["parity"] if a["model"] == chosen["tmodel"])["trace"]
    # an example that ran both passes (tiny's cap), so the pass slider has somewhere to go
    chosen["example"] = str(next(k for k in range(len(trace) - 1, -1, -1) if len(trace[k]["mass"]) == 2))
    traces = {a["model"]: a.get("trace") for a in runs["parity"]}
    for control in ("split", "x", "tmodel", "example", "bucket", "model"):
        before, chosen[control] = view(page, "body"), chosen.get(control) or other(page, f"#{control}")
        was = page.locator("#tmodel").input_value()
        page.select_option(f"#{control}", chosen[control])
        # two tiny ACT runs warm-started alike can halt identically (to the page's 3 decimals): then the same view
        same = control == "tmodel" and traces[was] == traces[chosen[control]]
        assert same or view(page, "body") != before, control
    # tau has stops 0 and 1, pass 1 and 2: move each to the other
    for control, flip in (("tau", 1), ("pass", 3)):
        before = view(page, "body")
        chosen[control] = str(flip - int(page.locator(f"#{control}").input_value()))
        page.locator(f"#{control}").fill(chosen[control])
        assert view(page, "body") != before, control
    ids = ("task", "tau", "x", "split", "tmodel", "example", "pass", "bucket", "model")
    state = page.evaluate("location.hash")
    assert state == "#" + "&".join(f"{i}={chosen.get(i, 'parity')}" for i in ids)
    again, again_errors = open_page(path)
    again.goto(path.resolve().as_uri() + state)
    again.reload()
    assert "#" + "&".join(f"{i}={again.locator('#' + i).input_value()}" for i in ids) == state
    for part in ("#readout", "#trace", "#table", "#examples"):
        assert view(again, part) == view(page, part), part
    assert errors == [] and again_errors == []


def test_act_model_output_renders_as_text_and_fits_a_phone(act_runs, tmp_path, open_page):
    from nnlabs.labs.act.explorable import write_explorable

    _, runs = act_runs
    a = next(a for a in runs["parity"] if a["model"] == "act_tau0.01")
    kept = a["trace"][0]
    n = len("." + HOSTILE + "=")
    a["trace"][0] = {**kept, "input": HOSTILE, "output": HOSTILE, "answer": "0", "steps": [1] * n,
                     "mass": [[1.0] * n]}
    try:
        path = write_explorable(runs, tmp_path)
    finally:
        a["trace"][0] = kept
    page, errors = open_page(path, width=375, height=812)
    page.select_option("#tmodel", "act_tau0.01")
    page.select_option("#example", "0")
    assert "".join(page.locator("#trace .col .chr").all_text_contents()) == "." + HOSTILE + "="
    assert as_shown(HOSTILE) in as_shown(page.locator("#trace p").first.inner_text())
    assert HOSTILE in page.locator("#example option >> nth=0").text_content()
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert errors == []


def test_moe_run_label_names_the_whole_collapse_setting():
    # the collapse runs differ from the default runs by router init, router bias and learning rate: all named
    from nnlabs.labs.moe.explorable import describe

    collapse = {"moe": {"n_experts": 8, "top_k": 1, "bias_rate": 1e-3, "router_bias": True},
                "router_std": 3.0, "train": {"learning_rate": 0.02}}
    assert describe(collapse) == ("top-1 of 8, loss-free bias (proportional, u = 0.001), router init std 3, "
                                  "learned router bias, lr 0.02")
    default = {"moe": {"n_experts": 8, "top_k": 1, "balance_alpha": 0.01}, "train": {"learning_rate": 3e-3}}
    assert describe(default) == "top-1 of 8, Switch loss"
    # the two top-2 loss-free runs differ only by the line start: the label must tell them apart
    nostart = {"moe": {"n_experts": 8, "top_k": 2, "bias_rate": 1e-3, "bias_skips_start": True}}
    assert describe(nostart) == "top-2 of 8, loss-free bias (proportional, u = 0.001, not at the line start)"
