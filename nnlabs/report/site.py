"""The report site: runs/index.html, one page linking every lab's report, figures and explorable.
It reads only what the labs wrote into runs/<lab>/ (report.md, figures/*.png, <lab>.html)."""

from __future__ import annotations

import html
from pathlib import Path

from nnlabs.labs import LABS

TITLES = {lab.name: f"Part {lab.part} — {lab.title}" for lab in LABS.values()}


def build_index(runs: str | Path) -> Path:
    runs = Path(runs)
    sections = []
    for lab, title in TITLES.items():
        lab_dir = runs / lab
        if not lab_dir.is_dir():
            continue
        links = [f'<a href="{lab}/{name}">{label}</a>' for name, label in
                 (("report.md", "report (markdown)"), (f"{lab}.html", "explorable")) if (lab_dir / name).exists()]
        figures = "".join(f'<figure><a href="{lab}/figures/{p.name}"><img src="{lab}/figures/{p.name}" '
                          f'alt="{html.escape(p.stem)}"></a><figcaption>{html.escape(p.stem)}</figcaption></figure>'
                          for p in sorted((lab_dir / "figures").glob("*.png")))
        sections.append(f"<section><h2>{html.escape(title)}</h2><p>{' · '.join(links)}</p>"
                        f"<div class=grid>{figures}</div></section>")
    body = "\n".join(sections) or "<p>No lab runs yet: run <code>make labs</code>.</p>"
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>nnlabs report</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px}} h2{{margin-top:1.6em}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}}
figure{{margin:0}} img{{width:100%;border:1px solid #ddd}} figcaption{{font-size:.8em;color:#555}}</style>
</head><body><h1>Neural Nets from Scratch — lab report</h1>
<p>Every figure below was regenerated from the run directories under <code>{html.escape(str(runs))}</code>;
each run's config.json records its seed and settings.</p>
{body}</body></html>
"""
    out = runs / "index.html"
    out.write_text(page, encoding="utf-8")
    return out
