// [background, text] per expert: text colour picked for contrast on each background
const COLORS = [['#4e79a7', '#fff'], ['#f28e2b', '#000'], ['#e15759', '#000'], ['#76b7b2', '#000'],
                ['#59a14f', '#000'], ['#edc948', '#000'], ['#b07aa1', '#000'], ['#9c755f', '#fff']];
const colour = e => COLORS[e % COLORS.length];
const $ = id => document.getElementById(id);
const names = DATA.order;
// every evaluation step of any run: the slider picks a step, each side shows its run's evaluation there
const STEPS = [...new Set(Object.values(DATA.runs).flatMap(r => r.steps))].sort((x, y) => x - y);
for (const name of names) for (const id of ['a', 'b']) $(id).append(el('option', {value: name}, name));
// the default pair: a run without balancing beside the same run with the Switch loss, when both ran
for (const [a, b] of [['collapse_none', 'collapse_switch'], ['top1_e8_nobal', 'top1_e8']]) {
  if (DATA.runs[a] && DATA.runs[b]) { $('a').value = a; $('b').value = b; break; }
}
if ($('a').value === $('b').value && names.length > 1) $('b').value = names[1];
const layers = names.length ? DATA.runs[names[0]].load[0].length : 0;
for (let l = 0; l < layers; l++) $('layer').append(el('option', {value: l}, String(l)));
$('step').max = STEPS.length - 1; $('step').value = STEPS.length - 1;

function heatmap(r, e, l) {
  const byDomain = $('group').value === 'domain', byRow = $('norm').value === 'row';
  const m = (byDomain ? r.domain_expert : r.class_expert)[e][l], labels = byDomain ? DATA.domains : DATA.classes;
  const colSum = m[0].map((_, x) => m.reduce((a, row) => a + row[x], 0));
  const table = el('table', {class: 'heat'});
  table.append(el('tr', {}, el('th', {}, (byDomain ? 'domain' : 'class') + ' \\ expert'),
                  ...m[0].map((_, x) => el('th', {}, 'E' + x))));
  m.forEach((row, d) => {
    const rowSum = row.reduce((a, b) => a + b, 0);
    table.append(el('tr', {}, el('th', {}, labels[d]), ...row.map((v, x) => {
      const f = byRow ? v / Math.max(rowSum, 1) : v / Math.max(colSum[x], 1);
      return el('td', {style: {background: `rgba(78,121,167,${f})`, color: f > 0.55 ? '#fff' : '#222'}},
                f.toFixed(2));
    })));
  });
  return el('div', {class: 'scroll'}, table);
}

function loadBars(r, e, l, top) {
  const load = r.load[e][l], mean = 1 / load.length;
  const bars = el('div', {class: 'bars', role: 'img',
                          'aria-label': 'share of assignments per expert: ' +
                            load.map((u, x) => `expert ${x} ${(100 * u).toFixed(1)}%`).join(', ')},
                  el('div', {class: 'mean', title: 'mean load', style: {bottom: (96 * mean / top) + 'px'}}),
                  ...load.map((u, x) => el('div', {class: 'bar', title: `expert ${x}: ${(100 * u).toFixed(1)}%`,
                                                  style: {height: (96 * u / top) + 'px', background: colour(x)[0]}})));
  const labels = el('div', {class: 'barlabels'}, ...load.map((u, x) => el('span', {}, `E${x}`, el('br'),
                                                                           (100 * u).toFixed(0) + '%')));
  const val = r.maxvio_val[e][l];
  const vio = el('p', {class: 'maxvio'}, 'MaxVio ', el('b', {class: 'mv'}, r.maxvio[e][l].toFixed(3)),
                 ' on these probe lines (dashed line: the mean load)',
                 val === null ? '' : ', ' + val.toFixed(3) + ' on the validation set');
  return [bars, labels, vio];
}

// What the router did at one character: its top-k experts (and the runner-up) with their probabilities.
function describe(r, item, l, i) {
  const ch = JSON.stringify([...item.text][i]), where = `${ch}, character ${i + 1} of this ${item.kind} line, layer ${l}: `;
  if (!item.choices) return [where, `expert ${item.experts[l][i]} (router probabilities not recorded in this run)`];
  const parts = item.choices[l][i].map(([x, p], rank) =>
    el('span', {class: 'choice', style: {whiteSpace: 'nowrap'}},
       el('span', {style: {background: colour(x)[0], color: colour(x)[1], padding: '0 4px'}}, 'expert ' + x),
       ' p = ', el('b', {class: 'p'}, p.toFixed(3)), rank < r.top_k ? ' (chosen)' : ' (runner-up)'));
  return [where, ...parts.flatMap((p, k) => k ? ['; ', p] : [p])];
}

function side(box, name, step, l, top) {
  const r = DATA.runs[name], e = r.steps.indexOf(step);
  clear(box).append(el('h2', {}, name), el('p', {class: 'note sub'}, r.label));
  if (e < 0) { box.append(el('p', {class: 'note'}, `no evaluation of this run at step ${step}`)); return; }
  const info = el('div', {class: 'info', 'aria-live': 'polite'}, 'hover or focus a character below');
  box.append(...loadBars(r, e, l, top), heatmap(r, e, l), info);
  // one span per character, coloured by its first-choice expert; the strings are one Tab stop (arrows move)
  const strings = el('div', {class: 'mono strings'}), items = r.strings[e];
  const rows = items.map((item, j) => {
    const cells = [...item.text].map((ch, i) => el('span', {class: 'ch', 'data-j': j, 'data-i': i,
      style: {background: colour(item.experts[l][i])[0], color: colour(item.experts[l][i])[1]}}, ch));
    strings.append(el('div', {class: 'line'}, el('span', {class: 'note'}, item.kind + ': '), ...cells));
    return cells;
  });
  roving(rows, c => clear(info).append(...describe(r, items[+c.dataset.j], l, +c.dataset.i)));
  box.append(strings);
}

function draw() {
  const step = STEPS[+$('step').value], l = +$('layer').value;
  $('steplabel').textContent = String(step);
  const shown = [$('a').value, $('b').value].map(n => DATA.runs[n]);
  // both sides' bars on one scale, so the same height is the same share
  const top = Math.max(...shown.map(r => r.steps.includes(step) ? Math.max(...r.load[r.steps.indexOf(step)][l]) : 0),
                       2 / Math.max(...shown.map(r => r.experts)));
  side($('sideA'), $('a').value, step, l, top);
  side($('sideB'), $('b').value, step, l, top);
}
if (names.length) { bindControls(['a', 'b', 'layer', 'step', 'group', 'norm'], draw); draw(); }
