"""The report site: `runs/site/`, an overview page with the series payoff figure and one page per part.

It reads only what the labs wrote into `runs/<lab>/` — report.md, figures/, `<lab>.html` (the
explorable), payoff.json and the run directories — and copies figures and explorables beside the pages,
so the folder opens from disk, offline, and can be moved as a whole. report.md is rendered by
markdown-it-py with raw HTML off: anything a model wrote into a report (a sample, a program) is text.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt

from nnlabs.labs import LABS
from nnlabs.report.payoff import Payoff, payoff_figure, read_payoff
from nnlabs.report.runs import group_by_name, load_runs, read_json

# raw HTML off: a `<script>` in a report (say, in a model's sample) is shown, never run
MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
# a URL with a scheme, an absolute path or an in-page anchor is left as the report wrote it
NOT_RELATIVE = re.compile(r"^([a-z][a-z0-9+.-]*:|/|#)", re.IGNORECASE)


def short_title(lab: str) -> str:
    return LABS[lab].title.split(":")[0]


def slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w]+", "-", text.lower()).strip("-") or "section"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def png_size(path: Path) -> tuple[int, int] | None:
    """A PNG's width and height in pixels, read from its IHDR chunk (bytes 16-24)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def render_figure(renderer, tokens, idx, options, env) -> str:
    """A report's image as a link to itself (a tap opens it whole); on a phone, a wide figure keeps a
    legible size and scrolls sideways inside its own box (site.css, `.fig`)."""
    tok = tokens[idx]
    tok.attrSet("alt", "".join(c.content for c in tok.children or []))
    img = renderer.renderToken(tokens, idx, options, env)
    return f'<a class="fig" href="{html.escape(tok.attrGet("src"))}">{img}</a>'


MD.add_render_rule("image", render_figure)


def render_report(text: str, lab: str, copied: dict[str, Path]) -> tuple[str, list[tuple[int, str, str]]]:
    """report.md as HTML for the page at site/<lab>/index.html, and its table of contents.

    Headings move down one level (the page's h1 is the part's title); each gets an id. Relative links and
    images to files copied beside the page (`copied`: URL -> file) stay; others point back into runs/<lab>/."""
    tokens = MD.parse(text)
    toc, taken = [], set()
    for i, tok in enumerate(tokens):
        if tok.type in ("heading_open", "heading_close"):
            tok.tag = f"h{min(int(tok.tag[1]) + 1, 6)}"
        if tok.type == "heading_open":
            label = "".join(c.content for c in tokens[i + 1].children or [])
            anchor = slug(label, taken)
            tok.attrSet("id", anchor)
            toc.append((int(tok.tag[1]), label, anchor))
        for child in tok.children or []:
            attr = {"image": "src", "link_open": "href"}.get(child.type)
            url = child.attrGet(attr) if attr else None
            target = url.split("#")[0].split("?")[0] if url else None
            if url and not NOT_RELATIVE.match(url) and target not in copied:
                child.attrSet(attr, f"../../{lab}/{url}")
            elif child.type == "image" and target in copied and target.endswith(".png"):
                size = png_size(copied[target])
                if size:
                    # the natural size lets the layout reserve the space, and the phone layout scale from it
                    child.attrSet("width", str(size[0]))
                    child.attrSet("height", str(size[1]))
                    child.attrSet("style", f"--w:{size[0]}")
    return MD.renderer.render(tokens, MD.options, {}), toc


def images_in(text: str) -> set[str]:
    """The image URLs a Markdown text shows."""
    return {child.attrGet("src") for tok in MD.parse(text) for child in tok.children or [] if child.type == "image"}


def page(title: str, body: str, current: str | None) -> str:
    """One page: the navigation bar (every part, the current one marked), then `body`. `current` is the
    lab whose page this is (at site/<lab>/index.html), None for the overview (site/index.html)."""
    up = "" if current is None else "../"
    home = ' aria-current="page"' if current is None else ""
    links = [f'<a class="home" href="{up}index.html"{home}>nnlabs</a>']
    for lab, info in LABS.items():
        mark = ' aria-current="page"' if lab == current else ""
        links.append(f'<a href="{up}{lab}/index.html"{mark}>{info.part} · {html.escape(short_title(lab))}</a>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nnlabs report">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{up}site.css">
</head><body>
<nav class="bar" aria-label="parts"><div class="bar-inner">{"".join(links)}</div></nav>
<main>
{body}
</main>
</body></html>
"""


def fmt(x: float) -> str:
    """A number as the pages show it: whole numbers and from 1,000 up with thousands separators, others to 4
    significant digits, trailing zeros kept (2.450 next to 2.504, not 2.45)."""
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 1000 else f"{x:#.4g}"


def num_cell(x: float) -> str:
    return f'<td class="num" data-value="{float(x)!r}">{fmt(x)}</td>'


# -----------------------------------------------------------------------------
# one page per part


def prev_next(lab: str) -> str:
    names = list(LABS)
    i = names.index(lab)
    parts = []
    if i > 0:
        p = names[i - 1]
        parts.append(f'<a class="prev" rel="prev" href="../{p}/index.html">← Part {LABS[p].part}: '
                     f"{html.escape(LABS[p].title)}</a>")
    if i + 1 < len(names):
        n = names[i + 1]
        parts.append(f'<a class="next" rel="next" href="../{n}/index.html">Part {LABS[n].part}: '
                     f"{html.escape(LABS[n].title)} →</a>")
    return f'<nav class="prevnext" aria-label="previous and next part">{"".join(parts)}</nav>'


def config_text(value, indent: str = "") -> str:
    """A config as JSON, one key a line, but a list of plain values (a vocabulary) on one line."""
    if isinstance(value, dict) and value:
        inner = indent + "  "
        items = ",\n".join(f"{inner}{json.dumps(k)}: {config_text(v, inner)}" for k, v in sorted(value.items()))
        return f"{{\n{items}\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + config_text(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def runs_footer(lab_dir: Path) -> str:
    """The foot of a part's page: which runs made it, at which budget and seed(s), each run's config."""
    groups = group_by_name(load_runs(lab_dir)) if lab_dir.is_dir() else {}
    if not groups:
        return '<footer class="runs"><h2>Runs</h2><p>No run directories yet.</p></footer>'
    runs = [r for rs in groups.values() for r in rs]
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    budgets = sorted({str(r.config["budget"]) for r in runs if "budget" in r.config})
    seed_text = ", ".join(map(str, seeds)) if seeds else "not recorded"
    items = []
    for name, rs in groups.items():
        run_seeds = ", ".join(str(r.seed) for r in rs if r.seed is not None) or "—"
        configs = "".join(f'<p class="muted">{html.escape(str(r.path.relative_to(lab_dir.parent)))}'
                          f'{"" if r.complete else " (no analysis.json)"}</p>'
                          f"<pre><code>{html.escape(config_text(r.config))}</code></pre>"
                          for r in rs)
        items.append(f"<details><summary><code>{html.escape(name)}</code> · seed{'s' if len(rs) > 1 else ''} "
                     f"{html.escape(run_seeds)}</summary>{configs}</details>")
    lab_json = lab_dir / "lab.json"
    if lab_json.exists():
        items.append(f"<details><summary>the lab's own settings (lab.json)</summary><pre><code>"
                     f"{html.escape(config_text(read_json(lab_json)))}</code></pre></details>")
    return (f'<footer class="runs" id="runs"><h2>Runs, config and seeds</h2>'
            f"<p>{len(groups)} runs · budget {html.escape(', '.join(budgets) or 'not recorded')} · "
            f"seed{'s' if len(seeds) > 1 else ''} {html.escape(seed_text)}"
            f"{' (one seed: a single draw, not a distribution)' if len(seeds) == 1 else ''}. "
            f"Each run's config.json:</p>{''.join(items)}</footer>")


def lab_page(runs: Path, site: Path, lab: str) -> Path:
    info = LABS[lab]
    lab_dir, out = runs / lab, site / lab
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    copied = {}
    if (lab_dir / "figures").is_dir():
        shutil.copytree(lab_dir / "figures", out / "figures")
        copied = {p.relative_to(out).as_posix(): p for p in (out / "figures").rglob("*") if p.is_file()}
    explorable = lab_dir / f"{lab}.html"
    if explorable.exists():
        copied[explorable.name] = Path(shutil.copy2(explorable, out / explorable.name))
    body = [f'<p class="kicker">Part {info.part} · routing {html.escape(info.routing)}</p>'
            f"<h1>{html.escape(info.title)}</h1>"]
    report = lab_dir / "report.md"
    if report.exists():
        text = report.read_text(encoding="utf-8")
        # every figure the lab drew is on its page: those report.md does not show come after it
        unshown = sorted(url for url in copied if url.startswith("figures/") and url.endswith(".png")
                         and url not in images_in(text))
        if unshown:
            text += "\n\n## More figures\n\n" + "\n\n".join(f"![{Path(url).stem}]({url})" for url in unshown)
        rendered, toc = render_report(text, lab, copied)
        sections = [(label, anchor) for level, label, anchor in toc if level == 3]
        sections += [("Explorable", "explorable")] if explorable.exists() else []
        if len(sections) > 2:
            body.append('<nav class="toc" aria-label="on this page"><strong>On this page</strong><ul>'
                        + "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for t, a in sections)
                        + '<li><a href="#runs">Runs, config and seeds</a></li></ul></nav>')
        body.append(f'<article class="report">{rendered}</article>')
    else:
        body.append(f"<p>This part has not been run yet: <code>nnlabs lab {lab} --out runs/{lab}</code>, "
                    "then <code>nnlabs report</code>.</p>")
    if explorable.exists():
        body.append(f'<section class="explorable" id="explorable"><h2>Explorable</h2>'
                    f'<p class="muted"><a href="{explorable.name}">Open it on its own page</a>.</p>'
                    f'<iframe src="{explorable.name}" title="{html.escape(info.title)}: explorable" '
                    'loading="lazy"></iframe></section>')
    body.append(prev_next(lab))
    body.append(runs_footer(lab_dir))
    path = out / "index.html"
    path.write_text(page(f"Part {info.part}: {info.title} — nnlabs", "\n".join(body), lab),
                    encoding="utf-8")
    return path


# -----------------------------------------------------------------------------
# the overview page and its payoff figure

UNITS_NOTE = """Every lab measures quality and the compute it spent, and every panel keeps its lab's own
units, named on its axes (the list below is read from each payoff.json). The neural parts count forward
multiply-accumulates (MACs) per token or per example from the shapes actually used (active experts only,
halting steps actually taken), so their axes share one unit. Tool use charges each call a declared cost in
MACs on top of the model's own: a price the series sets, not a measurement. DreamCoder's panel counts
programs searched; Part 7.5 converts a program tried into MAC-equivalents at an exchange rate measured on
the machine that ran it (CPU seconds per program ÷ CPU seconds per MAC, in Part 7's report), a rate that
moves with the interpreter and the hardware, so this figure keeps the count. Panels do not share an axis:
what carries across the parts is the shape. Where the red frontier (all runs)
leaves the dashed one (baselines only), that part's routing decision bought quality for its compute."""


def payoff_section(payoffs: dict[str, Payoff | None]) -> str:
    units, tables = [], []
    for lab, p in payoffs.items():
        name = f"Part {LABS[lab].part} · {html.escape(short_title(lab))}"
        if p is None:
            units.append(f"<li>{name}: no data yet (the lab has not written payoff.json)</li>")
            continue
        units.append(f"<li>{name}: quality = {html.escape(p.quality)} "
                     f"({'lower' if p.lower_is_better else 'higher'} is better); "
                     f"compute = {html.escape(p.compute)}</li>")
        rows = "".join(f'<tr><td>{html.escape(str(pt["label"]))}</td><td><code>{html.escape(str(pt["run"]))}'
                       f'</code></td><td>{html.escape(pt["kind"])}</td><td class="num">{html.escape(str(pt["seed"]))}'
                       f"</td>{num_cell(pt['quality'])}{num_cell(pt['compute'])}</tr>" for pt in p.points)
        tables.append(f'<details class="payoff-numbers" data-lab="{lab}"><summary>{name}: the numbers behind '
                      f"its panel</summary><table><thead><tr><th>label</th><th>run</th><th>kind</th><th>seed</th>"
                      f"<th>{html.escape(p.quality)}</th><th>{html.escape(p.compute)}</th></tr></thead>"
                      f"<tbody>{rows}</tbody></table></details>")
    return f"""<section id="payoff"><h2>All routing is resource allocation</h2>
<figure class="payoff"><a href="figures/payoff.svg"><picture>
<source media="(max-width: 700px)" srcset="figures/payoff_narrow.png">
<img src="figures/payoff.png" alt="Quality against compute, one panel per part: baselines, routed variants
and the frontier each routing decision buys"></picture></a>
<figcaption>One panel per part, built from each lab's payoff.json (one point per run and seed). With several
seeds a marker is their mean with its 95 % t-interval, every seed shown faint beneath; frontiers join means.
<a href="figures/payoff.svg">SVG</a> · <a href="figures/payoff.png">PNG</a></figcaption></figure>
<h3>How the units meet</h3><p>{UNITS_NOTE}</p><ul>{"".join(units)}</ul>
{"".join(tables)}</section>"""


def overview(runs: Path, site: Path, payoffs: dict[str, Payoff | None]) -> Path:
    payoff_figure(payoffs, site / "figures" / "payoff", ncols=3)
    # a phone gets one panel a row, taller than wide (the screen scrolls down, and a wrapped axis label fits)
    payoff_figure(payoffs, site / "figures" / "payoff_narrow", ncols=1, width=3.6, height=3.4)
    cards = []
    for lab, info in LABS.items():
        state = "" if (runs / lab / "report.md").exists() else ' <span class="muted">(not run yet)</span>'
        cards.append(f'<li><div class="part">Part {info.part} · routing {html.escape(info.routing)}</div>'
                     f'<a href="{lab}/index.html">{html.escape(info.title)}</a>{state}</li>')
    body = f"""<h1>Neural Nets from Scratch: conditional computation under a budget</h1>
<p class="kicker">One makemore-style spine and a lab per part, each a small patch on it. Every number and
figure here was regenerated from the run directories under <code>{html.escape(str(runs))}</code>.</p>
<h2>The parts</h2><ul class="parts">{"".join(cards)}</ul>
{payoff_section(payoffs)}"""
    path = site / "index.html"
    path.write_text(page("nnlabs — the series", body, None), encoding="utf-8")
    return path


def build_site(runs: str | Path) -> Path:
    """Write `runs/site/`: the overview (returned) and one page per registered part."""
    runs = Path(runs)
    site = runs / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "site.css").write_text(resources.files(__package__).joinpath("site.css").read_text(encoding="utf-8"),
                                   encoding="utf-8")
    payoffs = {lab: read_payoff(runs / lab / "payoff.json") if (runs / lab / "payoff.json").exists() else None
               for lab in LABS}
    for lab in LABS:
        lab_page(runs, site, lab)
    return overview(runs, site, payoffs)
