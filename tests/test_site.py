"""The report site (runs/site/): pages from what the labs wrote, the payoff figure from payoff.json,
and a real browser (Playwright driving the system Chromium) reading the pages as a reader would."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from nnlabs.labs import LABS, run_config
from nnlabs.report.explorable import write_html
from nnlabs.report.figures import new_figure, save
from nnlabs.report.payoff import RunPoint, pareto_front, read_payoff, run_points
from nnlabs.report.site import build_site, render_report
from nnlabs.spine.errors import UserError

HOSTILE = '</script><img src=x onerror="window.pwned=1"><b>bold</b> & \u2028'

# what a lab's report(out) writes: two seeds of a baseline and of a routed run, one routed run off the front
TOUR_PAYOFF = {
    "lab": "tour", "quality": "test NLL, nats/token", "compute": "forward MACs per token",
    "points": [
        {"run": "mlp", "label": "MLP", "kind": "baseline", "quality": 2.1444, "compute": 67264.0, "seed": 1},
        {"run": "mlp", "label": "MLP", "kind": "baseline", "quality": 2.1502, "compute": 67264.0, "seed": 2},
        {"run": "transformer", "label": "transformer", "kind": "routed", "quality": 2.0399, "compute": 202688.0,
         "seed": 1},
        {"run": "transformer", "label": "transformer", "kind": "routed", "quality": 2.0457, "compute": 202688.0,
         "seed": 2},
        {"run": "odd", "label": HOSTILE, "kind": "routed", "quality": 2.3, "compute": 300000.0, "seed": 1},
        # a label is text on the figure too, never mathtext (this one would not parse)
        {"run": "odder", "label": "$\\frac{$ $5$", "kind": "routed", "quality": 2.2, "compute": 310000.0, "seed": 1},
    ],
}
MOE_PAYOFF = {
    "lab": "moe", "quality": "held-out accuracy, %", "compute": "forward MACs per token", "better": "higher",
    "points": [
        {"run": "dense", "label": "dense", "kind": "baseline", "quality": 61.25, "compute": 1234567.0, "seed": 0},
        {"run": "top1_e8", "label": "top-1 of 8", "kind": "routed", "quality": 63.5, "compute": 1100000.0,
         "seed": 0},
    ],
}


def write_lab(runs: Path, lab: str, payoff: dict | None, report: str, seeds=(1, 2)) -> Path:
    """A lab folder as `nnlabs lab` leaves it: run directories, report.md, a figure, the explorable."""
    out = runs / lab
    for seed in seeds:
        for run in ("baseline", "routed"):
            d = out / f"seed-{seed}" / run
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps(run_config(lab=lab, run=run, budget="tiny", seed=seed,
                                                                 model={"n_embd": 8}, note=HOSTILE)))
            (d / "analysis.json").write_text("{}")
    for name in ("curve", "extra"):  # report.md shows the first, not the second
        fig, ax = new_figure()
        ax[0][0].plot([0, 1], [1, 0])
        save(fig, out / "figures" / name)
    (out / "report.md").write_text(report, encoding="utf-8")
    write_html(out / f"{lab}.html", f"{lab} explorable", {"sample": HOSTILE}, body='<div id="out"></div>',
               script="document.getElementById('out').append(el('p', {id: 'shown'}, DATA.sample));")
    if payoff is not None:
        (out / "payoff.json").write_text(json.dumps(payoff))
    return out


REPORT = f"""# Part 3: a tour

![curve](figures/curve.png)

## Samples

| prompt | sample |
|---|---|
| `a` | {HOSTILE} |
| `b` | `{HOSTILE}` |

A model wrote: {HOSTILE}

[the samples](baseline/samples.txt) · [a link](javascript:alert(1)) · [explorable](tour.html)

## Second

## Third
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    write_lab(runs, "tour", TOUR_PAYOFF, REPORT)
    write_lab(runs, "moe", MOE_PAYOFF, "# MoE\n\nNo figures here.\n", seeds=(0,))
    # act ran but wrote no payoff.json yet; tools and dreamcoder never ran
    write_lab(runs, "act", None, "# ACT\n", seeds=(5,))
    return build_site(runs).parent


# -----------------------------------------------------------------------------
# without a browser


def test_pareto_front_keeps_points_nothing_beats():
    pts = [RunPoint(run=n, label=n, kind="routed", quality=q, compute=c, seeds=[])
           for n, q, c in (("a", 3.0, 1), ("b", 2.0, 2), ("c", 2.5, 3), ("d", 1.0, 4), ("e", 2.0, 2.5))]
    assert [p.run for p in pareto_front(pts, lower_is_better=True)] == ["a", "b", "d"]
    assert [p.run for p in pareto_front(pts, lower_is_better=False)] == ["a"]


def test_payoff_points_average_seeds_per_run(tmp_path):
    path = tmp_path / "payoff.json"
    path.write_text(json.dumps(TOUR_PAYOFF))
    payoff = read_payoff(path)
    assert payoff.lower_is_better  # "NLL" in the quality's name
    mlp = run_points(payoff)[0]
    assert mlp.run == "mlp" and len(mlp.seeds) == 2 and math.isclose(mlp.quality, (2.1444 + 2.1502) / 2)
    path.write_text(json.dumps(MOE_PAYOFF))
    assert not read_payoff(path).lower_is_better
    # one run's weights, three points (the tools lab: learned policy, never call, always call)
    three = [{"run": "cost_0.5", "label": label, "kind": kind, "quality": q, "compute": 1.0, "seed": 0}
             for label, kind, q in (("learned", "routed", 0.8), ("never", "baseline", 0.2),
                                    ("always", "baseline", 0.9))]
    path.write_text(json.dumps({**MOE_PAYOFF, "points": three}))
    assert [(p.label, p.quality) for p in run_points(read_payoff(path))] == [("learned", 0.8), ("never", 0.2),
                                                                             ("always", 0.9)]


def test_payoff_tags_stay_inside_their_panels_and_off_each_other():
    """A crowded panel (the act lab's: many runs near 100 %, a long shared tag at the top edge): every tag is
    placed inside its panel and covers no other tag (before, tags at the top were clipped and tags in a
    cluster overprinted each other)."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    from nnlabs.report.payoff import Payoff, draw_payoff

    points = [{"run": f"r{i}", "label": f"parity variant {i} with a long name", "kind": "routed",
               "quality": 100.0 - (i % 3), "compute": 1e6 * (1 + 0.08 * i), "seed": 0} for i in range(12)]
    points += [{"run": f"s{i}", "label": f"shared {i}", "kind": "baseline", "quality": 100.0, "compute": 2e6,
                "seed": 0} for i in range(4)]  # drawn on one spot: one tag for the four
    payoff = Payoff(lab="act", quality="accuracy, %", compute="MACs", lower_is_better=False, points=points)
    fig = draw_payoff({"act": payoff})
    renderer = fig.canvas.get_renderer()
    ax = next(a for a in fig.axes if a.get_title().startswith("Part 5"))
    frame = ax.get_window_extent(renderer)
    for tag in ax.texts:
        tag.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the tags, without their leader lines
    assert len(boxes) == 13
    assert any("+" in t.get_text() for t in ax.texts)  # the four on one spot share a tag
    for b in boxes:
        assert frame.x0 - 1 <= b.x0 and b.x1 <= frame.x1 + 1 and frame.y0 - 1 <= b.y0 and b.y1 <= frame.y1 + 1
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            shared = Bbox.intersection(a, b)
            assert shared is None or shared.width < 1 or shared.height < 1, (a, b)


@pytest.mark.parametrize("broken", ["{", '{"lab": "moe"}', json.dumps({**MOE_PAYOFF, "points": [{"run": "x"}]}),
                                    json.dumps({**MOE_PAYOFF, "points": [{**MOE_PAYOFF["points"][0], "kind": "x"}]})])
def test_malformed_payoff_is_one_sentence_naming_the_file(tmp_path, broken):
    (tmp_path / "payoff.json").write_text(broken)
    with pytest.raises(UserError, match="payoff.json"):
        read_payoff(tmp_path / "payoff.json")


def test_report_markdown_is_rendered_with_raw_html_as_text(tmp_path):
    fig, ax = new_figure()
    png, _ = save(fig, tmp_path / "curve")
    rendered, toc = render_report(REPORT, "tour", {"figures/curve.png": png, "tour.html": tmp_path / "tour.html"})
    assert "<img src=x" not in rendered and "<b>bold</b>" not in rendered and "&lt;b&gt;bold&lt;/b&gt;" in rendered
    assert '<h2 id="part-3-a-tour">' in rendered and [t[1] for t in toc] == ["Part 3: a tour", "Samples", "Second",
                                                                             "Third"]
    # a file not copied beside the page is linked where it lies, in runs/<lab>/; a javascript: link is no link
    assert 'href="../../tour/baseline/samples.txt"' in rendered and 'href="tour.html"' in rendered
    assert "javascript:" not in rendered.replace("[a link](javascript:alert(1))", "")
    assert '<a class="fig" href="figures/curve.png"><img src="figures/curve.png" alt="curve"' in rendered
    assert 'style="--w:' in rendered  # its natural width, for the phone layout


def test_site_has_a_page_per_part_and_copies_what_they_show(site):
    assert (site / "index.html").exists() and (site / "site.css").exists()
    for lab in LABS:
        assert (site / lab / "index.html").exists()
    assert (site / "tour" / "figures" / "curve.png").exists() and (site / "tour" / "tour.html").exists()
    assert all((site / "figures" / f"payoff{v}.{ext}").stat().st_size > 1000
               for v in ("", "_narrow") for ext in ("png", "svg"))
    assert "has not been run yet" in (site / "tools" / "index.html").read_text()
    # a figure report.md does not show is on the page all the same, after the report
    tour = (site / "tour" / "index.html").read_text()
    where = [tour.index(s) for s in ('src="figures/curve.png"', 'id="more-figures"', 'src="figures/extra.png"')]
    assert where == sorted(where)


def test_report_command_builds_the_site(tmp_path, capsys):
    from nnlabs.cli import main

    write_lab(tmp_path, "moe", MOE_PAYOFF, "# MoE\n", seeds=(0,))
    assert main(["report", "--runs", str(tmp_path), "--site-only"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'site' / 'index.html'}"


# -----------------------------------------------------------------------------
# in a real browser


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    with sync_api.sync_playwright() as p:
        # Playwright cannot download its own browser here: it drives the system's Chromium
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Open a site page; returns (page, errors) where errors collects console errors and uncaught exceptions."""
    contexts = []

    def open_(path: Path, width: int = 1200, height: int = 900):
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        return page, errors

    yield open_
    for ctx in contexts:
        ctx.close()


def all_pages(site: Path) -> list[Path]:
    return [site / "index.html"] + [site / lab / "index.html" for lab in LABS]


def test_every_page_loads_without_console_errors(site, open_page):
    for path in all_pages(site):
        page, errors = open_page(path)
        # a lazily loaded explorable loads once scrolled to
        frame = page.locator("iframe")
        if frame.count():
            frame.scroll_into_view_if_needed()
            assert as_shown(page.frame_locator("iframe").locator("#shown").inner_text()) == as_shown(HOSTILE)
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.src)")
        assert errors == [] and broken == [], path


def test_navigation_between_parts(site, open_page):
    page, errors = open_page(site / "index.html")
    page.click("nav.bar >> text=4 · Mixture of experts")
    assert page.url.endswith("/moe/index.html") and page.locator("h1").inner_text() == LABS["moe"].title
    assert page.locator('nav.bar a[aria-current="page"]').inner_text() == "4 · Mixture of experts"
    page.click("a[rel=next]")
    assert page.url.endswith("/act/index.html")
    page.click("a[rel=prev]")
    page.click("a[rel=prev]")
    assert page.url.endswith("/tour/index.html")
    page.click('text=Second')  # the table of contents
    assert page.url.endswith("#second")
    page.click("nav.bar a.home")
    assert page.url.endswith("/site/index.html") and errors == []


def as_shown(text: str) -> str:
    """Text as a page shows it: innerText keeps no line separator (U+2028) and no edge spaces."""
    return text.replace("\u2028", "").strip()


def test_hostile_model_output_renders_as_text(site, open_page):
    page, errors = open_page(site / "tour" / "index.html")
    # in a report's table cell and paragraph ...
    assert as_shown(HOSTILE) in [as_shown(t) for t in page.locator("article table td").all_inner_texts()]
    assert f"A model wrote: {as_shown(HOSTILE)}" in as_shown(page.locator("article").inner_text())
    # ... in a run's config ...
    page.click("footer.runs details summary >> nth=0")
    assert "</script><img src=x" in page.locator("footer.runs pre").first.inner_text()
    # ... and in a payoff label on the overview: text every time, never an element
    overview, overview_errors = open_page(site / "index.html")
    overview.click('details[data-lab="tour"] summary')
    labels = overview.locator('details[data-lab="tour"] tbody td:first-child').all_inner_texts()
    assert as_shown(HOSTILE) in [as_shown(t) for t in labels]
    for p in (page, overview):
        assert p.evaluate("window.pwned") is None and p.locator("img[src=x], main b").count() == 0
    assert errors == [] and overview_errors == []


def test_overview_numbers_equal_payoff_json(site, open_page):
    page, errors = open_page(site / "index.html")
    for lab, payoff in (("tour", TOUR_PAYOFF), ("moe", MOE_PAYOFF)):
        page.click(f'details[data-lab="{lab}"] summary')
        rows = page.locator(f'details[data-lab="{lab}"] tbody tr')
        assert rows.count() == len(payoff["points"])
        for i, point in enumerate(payoff["points"]):
            cells = rows.nth(i).locator("td.num")
            assert cells.nth(0).inner_text() == str(point["seed"])
            for cell, key in ((cells.nth(1), "quality"), (cells.nth(2), "compute")):
                # the exact value rides along; the shown one is it rounded (4 significant digits)
                assert float(cell.get_attribute("data-value")) == point[key]
                assert math.isclose(float(cell.inner_text().replace(",", "")), point[key], rel_tol=5e-4)
    units = page.locator("#payoff ul li").all_inner_texts()
    assert "no data yet" in units[2] and "compute = forward MACs per token" in units[0]


def test_pages_fit_a_phone_screen(site, open_page):
    for path in all_pages(site):
        page, errors = open_page(path, width=390, height=844)
        # nothing wider than the screen: wide tables and figures scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert errors == []
