"""Figures and explorables: model text that reaches a page is data, never markup."""

from __future__ import annotations

import json

from nnlabs.report.explorable import embed_json, write_html
from nnlabs.report.figures import new_figure, save

HOSTILE = '</script><img src=x onerror="document.title=\'pwned\'"><b>bold</b> & \u2028'


def test_embedded_json_cannot_close_its_script_tag():
    text = embed_json({"sample": HOSTILE})
    assert "<" not in text and ">" not in text
    assert json.loads(text) == {"sample": HOSTILE}


def test_explorable_shows_hostile_text_as_text(tmp_path, render_html):
    page = write_html(tmp_path / "x.html", "escape test", {"sample": HOSTILE},
                      body='<div id="out"></div>',
                      script="document.getElementById('out').append(el('p', {id: 'shown'}, DATA.sample));")
    dom, shot = render_html(page)
    assert "<title>escape test</title>" in dom  # the onerror handler never ran ...
    assert "<img" not in dom and "<b>" not in dom  # ... no element was made from the data ...
    assert 'id="shown">&lt;/script&gt;&lt;img' in dom  # ... because it was inserted as text
    assert shot.exists() and shot.stat().st_size > 1000


def test_figures_are_written_as_png_and_svg(tmp_path):
    fig, ax = new_figure()
    ax[0][0].plot([0, 1], [1, 0])
    paths = save(fig, tmp_path / "figures" / "line", source="runs/x")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)

