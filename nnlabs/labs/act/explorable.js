const $ = id => document.getElementById(id);
const KINDS = {fixed: ['#7f7f7f', 'fixed depth'], act: ['#1f77b4', 'ACT, τ swept'], ponder: ['#2ca02c', 'PonderNet'],
               router: ['#9467bd', 'depth router'], exit: ['#ff7f0e', 'confidence exit']};
const task = () => DATA.tasks[$('task').value];
const actPoints = () => task().points.filter(p => p.kind === 'act');
const pct = v => (100 * v).toFixed(1) + '%';
function fill(sel, values, labels) {
  clear(sel);
  values.forEach((v, i) => sel.append(el('option', {value: v}, labels ? labels[i] : v)));
}

// ----------------------------------------------------------------------------------------------------------
// Controls that depend on others: a task has its own τ stops, models and traced examples.

function onTask() {
  const T = task(), taus = actPoints();
  fill($('bucket'), ['all', ...T.buckets.map(String)]);
  fill($('model'), T.models.map(m => m.name));
  if (T.best) $('model').value = T.best;
  $('tau').max = Math.max(0, taus.length - 1);
  $('tau').value = Math.max(0, taus.findIndex(p => p.model === T.best));
  $('tau').disabled = taus.length < 2;
  const traced = T.traces.map(tr => tr.model);
  fill($('tmodel'), traced);
  if (traced.includes(T.best)) $('tmodel').value = T.best;
  onTraceModel();
}
function onTraceModel() {
  const tr = task().traces.find(tr => tr.model === $('tmodel').value), field = task().field;
  const examples = tr ? tr.examples : [];
  fill($('example'), examples.map((_, i) => String(i)), examples.map(e =>
    `${e.split}, ${field} ${e[field]}: ${e.input} → ${e.answer}`));
  onExample();
}
function onExample() {
  const ex = traced();
  $('pass').max = ex ? ex.mass.length : 1;
  $('pass').value = 1;
}
function traced() {
  const tr = task().traces.find(tr => tr.model === $('tmodel').value);
  return tr ? tr.examples[+$('example').value] : null;
}

// ----------------------------------------------------------------------------------------------------------
// The τ tradeoff: every dense run on accuracy vs compute, the chosen τ's point marked.

function drawTradeoff() {
  const T = task(), split = $('split').value, key = $('x').value, pts = T.points, taus = actPoints();
  const at = p => [p[split][key], 100 * p[split].acc];
  const xs = pts.map(p => at(p)[0]), ys = pts.map(p => at(p)[1]);
  const xlo = Math.min(...xs), xhi = Math.max(...xs), pad = (xhi - xlo) * 0.06 || xlo * 0.1 || 1;
  const ylo = Math.max(0, Math.floor((Math.min(...ys) - 5) / 10) * 10), yhi = 100;
  const x = {min: Math.max(0, xlo - pad), max: xhi + pad, label: key === 'macs' ? 'MACs per example' :
             'mean passes per position (ponder cost N)'};
  x.ticks = niceTicks(x.min, x.max, 5);
  x.fmt = key === 'macs' ? v => (v >= 1e6 ? (v / 1e6).toFixed(1) + 'M' : Math.round(v / 1e3) + 'k') : v => String(v);
  const y = {min: ylo, max: yhi, ticks: niceTicks(ylo, yhi, 5), fmt: v => v + '%', label: `accuracy (${split})`};
  const {svg, sx, sy, plot} = axes($('chart'), {x, y, height: 300, title: `${$('task').value}: accuracy vs compute`});
  const chart = {svg, sx, sy, plot}, kinds = Object.keys(KINDS).filter(k => pts.some(p => p.kind === k));
  // one line per family: the fixed depths, τ, PonderNet's prior, the exit threshold
  for (const kind of kinds) {
    const family = pts.filter(p => p.kind === kind);
    series(chart, family.map(at), KINDS[kind][0], (px, py) => family.find(p => at(p)[0] === px && at(p)[1] === py).label);
  }
  for (const p of pts.filter(p => p.kind === 'fixed')) {
    const [cx, cy] = [sx(at(p)[0]), sy(at(p)[1])], right = cx > (plot.left + plot.right) / 2;
    // below the point, or above it at the foot of the plot
    svg.append(svgEl('text', {x: cx + (right ? -6 : 6), y: cy + 14 > plot.bottom - 4 ? cy - 8 : cy + 14,
                              class: 'tick halo', 'text-anchor': right ? 'end' : 'start'}, p.label));
  }
  legend($('legend'), kinds.map(k => [KINDS[k][1], KINDS[k][0]]));
  const chosen = taus[+$('tau').value];
  $('taulabel').textContent = chosen ? chosen.label : 'no ACT run';
  if (!chosen) { clear($('readout')).append('No ACT run on this task.'); return; }
  const [cx, cy] = [sx(at(chosen)[0]), sy(at(chosen)[1])];
  svg.append(svgEl('circle', {cx, cy, r: 9, fill: 'none', stroke: '#c0392b', 'stroke-width': 2.5, class: 'chosen'}),
             // above the point, or below it when the point is at the top of the plot
             svgEl('text', {x: cx, y: cy - 13 < plot.top + 12 ? cy + 30 : cy - 13, 'text-anchor': 'middle',
                            class: 'axis halo'}, chosen.label));
  const s = chosen[split];
  clear($('readout')).append(el('b', {}, chosen.label), ` (${chosen.model}): `,
    el('b', {class: 'acc'}, pct(s.acc)), ` accuracy on the ${split} examples at `,
    el('b', {class: 'passes'}, s.passes.toFixed(2)), ' passes per position, ',
    el('b', {class: 'macs'}, Math.round(s.macs).toLocaleString('en-US')), ' MACs per example.');
}

// ----------------------------------------------------------------------------------------------------------
// One example's halting, pass by pass.

function drawTrace() {
  const box = clear($('trace')), ex = traced();
  for (const b of ['prev', 'next', 'pass']) $(b).disabled = !ex;
  if (!ex) { box.append(el('p', {class: 'note'}, 'No ACT run with a recorded trace on this task.')); return; }
  const n = +$('pass').value, last = ex.mass.length, chars = [...ex.chars];
  $('passlabel').textContent = `${n} of ${last}`;
  $('prev').disabled = n <= 1; $('next').disabled = n >= last;
  const ran = ex.steps.filter(s => s >= n).length, stopped = ex.steps.filter(s => s === n).length;
  box.append(el('p', {}, `Pass ${n}: ${ran} of ${chars.length} positions ran it and ${stopped} halted after it. ` +
                `Answer ${ex.answer}; the model says ${ex.output} `, el('b', {}, ex.correct ? '✓' : '✗')));
  const info = el('p', {class: 'note', 'aria-live': 'polite'}, 'hover or focus a position for its numbers');
  const cols = chars.map((ch, t) => {
    const m = ex.mass[n - 1][t], halted = ex.steps[t] < n;
    return el('div', {class: 'col' + (halted ? ' halted' : '') + (t >= ex.answer_from ? ' answer' : ''),
                      'data-t': t},
              el('div', {class: 'well'}, el('div', {class: 'fill', style: {height: (100 * m) + '%'}})),
              el('span', {class: 'chr'}, ch), el('span', {class: 'num'}, m.toFixed(2)));
  });
  roving([cols], c => {
    const t = +c.dataset.t;
    clear(info).append(`position ${t} (${JSON.stringify(chars[t])}): Σp = `,
                       el('b', {class: 'mass'}, ex.mass[n - 1][t].toFixed(3)),
                       ` after pass ${n}; it ran ${ex.steps[t]} pass${ex.steps[t] > 1 ? 'es' : ''}`);
  });
  box.append(el('div', {class: 'scroll'}, el('div', {class: 'cols'}, ...cols)), info);
  // every pass so far: a row per pass, a column per position
  const table = el('table', {class: 'heat passes'}, el('tr', {}, el('th', {}, 'pass'),
                   ...chars.map(ch => el('th', {class: 'mono'}, ch))));
  for (let k = 1; k <= n; k++) {
    table.append(el('tr', {class: k === n ? 'now' : ''}, el('th', {}, String(k)), ...chars.map((_, t) => {
      if (ex.steps[t] < k) return el('td', {class: 'note'}, '·');
      const m = ex.mass[k - 1][t];
      return el('td', {style: {background: `rgba(31,119,180,${0.08 + 0.85 * m})`, color: m > 0.55 ? '#fff' : '#222'}},
                m.toFixed(2));
    })));
  }
  box.append(el('div', {class: 'scroll'}, table));
}

// ----------------------------------------------------------------------------------------------------------
// Every model by difficulty, and stored examples coloured by passes per position.

function drawTable() {
  const T = task(), b = $('bucket').value;
  const maxMacs = Math.max(...T.models.map(m => (m.buckets[b] || {macs: 0}).macs));
  const table = clear($('table'));
  table.append(el('tr', {}, el('th', {}, 'model'), el('th', {}, 'accuracy'), el('th', {}, 'MACs / example'),
                  el('th', {}, 'passes at answer'), el('th', {}, 'n')));
  const bar = (frac, color) => el('div', {style: {width: Math.round(110 * frac) + 'px', height: '10px',
                                                  background: color, display: 'inline-block'}});
  for (const m of T.models) {
    const s = m.buckets[b];
    if (!s) continue;
    table.append(el('tr', {}, el('td', {}, m.name),
      el('td', {style: {textAlign: 'left', whiteSpace: 'nowrap'}}, bar(s.acc, '#1f77b4'), ' ' + pct(s.acc)),
      el('td', {style: {textAlign: 'left', whiteSpace: 'nowrap'}}, bar(s.macs / maxMacs, '#ff7f0e'),
         ' ' + Math.round(s.macs).toLocaleString('en-US')),
      el('td', {}, s.steps.toFixed(2)), el('td', {}, s.n)));
  }
  const box = clear($('examples'));
  const model = T.models.find(m => m.name === $('model').value);
  const shown = model.examples.filter(e => b === 'all' || String(e.difficulty) === b);
  if (!shown.length) box.append(el('p', {class: 'note'}, 'no stored example at this difficulty'));
  const info = el('p', {class: 'note', 'aria-live': 'polite'}, 'hover or focus a character for its passes');
  const rows = shown.map(e => {
    const cells = [...e.chars].map((ch, i) => {
      const t = (e.steps[i] - 1) / Math.max(1, model.max_steps - 1);
      return el('span', {class: 'c', 'data-n': e.steps[i], style: {background: `rgba(31,119,180,${0.1 + 0.85 * t})`,
                                                                     color: t > 0.5 ? 'white' : 'black'}}, ch);
    });
    box.append(el('div', {class: 'ex'}, el('span', {class: 'note lab'},
                                           `${e.split} ${e.difficulty} ${e.correct ? '✓' : '✗'}`),
                  ...cells, el('span', {class: 'note'}, '  answer ' + e.answer)));
    return cells;
  });
  roving(rows, c => { info.textContent = `${c.textContent}: ${c.dataset.n} passes`; });
  if (shown.length) box.prepend(info);
}

function draw() { drawTradeoff(); drawTrace(); drawTable(); }

fill($('task'), Object.keys(DATA.tasks));
// restore a linked view in dependency order (each level's options exist before its value is read back),
// then let bindControls keep the hash in step; the refills run before bindControls' own listeners
const saved = readState();
const restore = (id, then) => {
  if ([...$(id).options].some(o => o.value === saved[id])) $(id).value = saved[id];
  then();
};
$('task').addEventListener('change', onTask);
$('tmodel').addEventListener('change', onTraceModel);
$('example').addEventListener('change', onExample);
for (const [id, step] of [['prev', -1], ['next', 1]]) {
  $(id).onclick = () => { $('pass').value = +$('pass').value + step; $('pass').dispatchEvent(new Event('input')); };
}
if ($('task').options.length) {
  restore('task', onTask); restore('tmodel', onTraceModel); restore('example', onExample);
  bindControls(['task', 'tau', 'x', 'split', 'tmodel', 'example', 'pass', 'bucket', 'model'], draw);
  draw();
  addEventListener('resize', drawTradeoff);
}
