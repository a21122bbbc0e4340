"""Self-contained HTML explorables: one file, no CDN, opens from disk, data embedded as escaped JSON.

Model-generated text reaches these pages (samples, programs, tool outputs), so nothing from the data
is ever pasted into HTML: the data goes in as JSON inside a <script type="application/json"> block,
with `<`, `>` and `&` escaped so no string can close the script tag, and the page's JS puts text into
the DOM with `textContent` (never `innerHTML`) — see `el()` in BASE_JS.
"""

from __future__ import annotations

import html
import json
from pathlib import Path


def embed_json(data) -> str:
    """JSON safe to place inside <script type="application/json">: no `</script>` can appear."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (
        text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


BASE_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 1.2em; color: #222;
       max-width: 980px; }
h1 { font-size: 1.3em; margin: 0 0 .3em 0; } h2 { font-size: 1.05em; margin: 1em 0 .3em 0; }
.note { color: #666; font-size: .85em; }
.controls { display: flex; gap: 1.2em; flex-wrap: wrap; align-items: center; margin: .6em 0; }
table.heat { border-collapse: collapse; font-size: .8em; }
table.heat td, table.heat th { padding: 3px 6px; text-align: center; border: 1px solid #eee; }
.mono { font-family: ui-monospace, Menlo, Consolas, monospace; }
"""

# Tiny DOM helper shared by every page: text always goes through textContent, so it is never parsed as HTML.
BASE_JS = """
const DATA = JSON.parse(document.getElementById('data').textContent);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'style') Object.assign(e.style, v); else if (k.startsWith('on')) e[k] = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
// The view lives in the URL's hash (#run=top1_e8&step=3), so a post can link the exact view it describes.
function readState() { return Object.fromEntries(new URLSearchParams(location.hash.slice(1))); }
function writeState(state) { history.replaceState(null, '', '#' + new URLSearchParams(state).toString()); }
// Bind form controls (by id) to the hash: values from the URL first, then every change rewrites it and
// calls `draw`. Sliders and selects are native controls, so arrow keys and Tab already work on them.
function bindControls(ids, draw) {
  const saved = readState(), box = id => document.getElementById(id);
  const save = () => writeState(Object.fromEntries(ids.map(id => [id, box(id).value])));
  for (const id of ids) {
    if (saved[id] !== undefined && [...(box(id).options || [{value: saved[id]}])].some(o => o.value === saved[id]))
      box(id).value = saved[id];
    box(id).addEventListener(box(id).type === 'range' ? 'input' : 'change', () => { save(); draw(); });
  }
  save();
}
// Hover detail that a keyboard reaches too: a grid of elements (`rows`, e.g. one array per line of text) is
// one Tab stop; the arrow keys move focus inside it, and hovering or focusing an element calls show(element).
function roving(rows, show) {
  const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
  rows.forEach((row, i) => row.forEach((cell, j) => {
    cell.tabIndex = i === 0 && j === 0 ? 0 : -1;
    cell.onmouseenter = cell.onfocus = () => show(cell);
    cell.onkeydown = ev => {
      const [di, dj] = moves[ev.key] || [0, 0], row = rows[i + di];
      const next = (di || dj) && row && j + dj >= 0 ? row[Math.min(j + dj, row.length - 1)] : null;
      if (next) { ev.preventDefault(); cell.tabIndex = -1; next.tabIndex = 0; next.focus(); }
    };
  }));
}
"""


def write_html(path: str | Path, title: str, data, body: str, script: str, css: str = "") -> Path:
    """Write one self-contained page. `body` and `script` are the page's own (trusted) markup and JS;
    `data` is anything JSON-serialisable, available to the script as DATA."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{BASE_CSS}{css}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{body}
<script type="application/json" id="data">{embed_json(data)}</script>
<script>{BASE_JS}
{script}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
