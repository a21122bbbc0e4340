// Small SVG charts built with the DOM, for explorables that move a marker along a curve (no library).
// Text goes in through text nodes, as el() does. An explorable's writer prepends this file to its script
// and plot.css to its CSS.
const SVG_NS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) e[k] = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
// "x,y x,y ..." for a polyline from [[x, y], ...] already in pixels
function pointsAttr(points) { return points.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' '); }
// A value axis: {min, max, log, ticks, fmt, label}. A degenerate range (one swept point) is widened.
function scaleOf(axis, lo, hi) {
  let a = axis.min, b = axis.max;
  if (!(b > a)) { if (axis.log) { a /= 2; b *= 2; } else { a -= 0.5; b += 0.5; } }
  const f = axis.log ? Math.log : v => v, fa = f(a), fb = f(b);
  return v => lo + (f(v) - fa) / (fb - fa) * (hi - lo);
}
// Axes in `box`: the SVG's viewBox is the box's own width in pixels (280..720), so labels keep their
// size on a phone instead of shrinking with a fixed-width drawing. Returns {svg, sx, sy, plot}: the
// scales from data to pixels and the plot area {left, right, top, bottom}; the caller adds its marks.
function axes(box, spec) {
  const W = Math.max(280, Math.min(720, box.clientWidth || 600)), H = spec.height || 300;
  const area = {left: 54, right: W - 20, top: 14, bottom: H - 42};
  const sx = scaleOf(spec.x, area.left, area.right), sy = scaleOf(spec.y, area.bottom, area.top);
  const svg = svgEl('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', class: 'plot', role: 'img',
                            'aria-label': spec.title});
  svg.append(svgEl('title', {}, spec.title));
  for (const t of spec.x.ticks) {
    svg.append(svgEl('line', {x1: sx(t), x2: sx(t), y1: area.top, y2: area.bottom, class: 'grid'}),
               svgEl('text', {x: sx(t), y: area.bottom + 15, 'text-anchor': 'middle', class: 'tick'}, spec.x.fmt(t)));
  }
  for (const t of spec.y.ticks) {
    svg.append(svgEl('line', {x1: area.left, x2: area.right, y1: sy(t), y2: sy(t), class: 'grid'}),
               svgEl('text', {x: area.left - 5, y: sy(t) + 4, 'text-anchor': 'end', class: 'tick'}, spec.y.fmt(t)));
  }
  svg.append(svgEl('rect', {x: area.left, y: area.top, width: area.right - area.left,
                            height: area.bottom - area.top, class: 'frame'}),
             svgEl('text', {x: (area.left + area.right) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis'},
                   spec.x.label),
             svgEl('text', {x: 12, y: (area.top + area.bottom) / 2, 'text-anchor': 'middle', class: 'axis',
                            transform: `rotate(-90 12 ${(area.top + area.bottom) / 2})`}, spec.y.label));
  clear(box).append(svg);
  return {svg, sx, sy, plot: area};
}
// Evenly spaced round ticks covering [lo, hi] (about n of them)
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n), mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map(s => s * mag).find(s => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9; t += step) out.push(+t.toFixed(10));
  return out;
}
// A series: a line through [x, y] points in data units (a null y is skipped), a dot on each point whose
// tooltip is label(x, y)
function series(chart, points, color, label, dash) {
  const pts = points.filter(p => p[1] !== null && p[1] !== undefined);
  chart.svg.append(svgEl('polyline', {points: pointsAttr(pts.map(([x, y]) => [chart.sx(x), chart.sy(y)])),
                                      fill: 'none', stroke: color, 'stroke-width': 2,
                                      'stroke-dasharray': dash ? '5 3' : 'none'}));
  for (const [x, y] of pts)
    chart.svg.append(svgEl('circle', {cx: chart.sx(x), cy: chart.sy(y), r: 3.5, fill: color},
                           svgEl('title', {}, label(x, y))));
}
// The chosen value: a dashed vertical line across the plot area at x
function cursor(chart, x) {
  chart.svg.append(svgEl('line', {x1: chart.sx(x), x2: chart.sx(x), y1: chart.plot.top, y2: chart.plot.bottom,
                                  class: 'cursor'}));
}
// A legend in `box` (HTML, so it wraps on a phone): [label, colour or null for no swatch, dashed, id] per item
function legend(box, items) {
  clear(box).append(...items.map(([label, color, dash, id]) => el('span', id ? {id} : {},
    color ? el('i', {style: {borderTopColor: color, borderTopStyle: dash ? 'dashed' : 'solid'}}) : '', label)));
}
