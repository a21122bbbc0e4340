// Part 7.5: one held-out task and input band at a time — the task's examples, the program the last wake found,
// every fresh query with the model's and the program's answers and the side each router took; accuracy by band
// for the five policies and the exchange rate. Every number is the lowest seed's neural/analysis.json, as
// explorable.py passes it. Loaded before explorable.js, whose bindControls puts NEURAL_IDS in the URL hash.
const H2H = DATA.head_to_head, NEURAL_IDS = H2H ? ['task', 'band'] : [];
// the report figure's colours (matplotlib C0, C2, C1, C4 and grey 0.4)
const H2H_COLORS = {neural: '#1f77b4', symbolic: '#2ca02c', rule: '#ff7f0e', learned: '#9467bd', oracle: '#666666'};
const h2hBox = id => document.getElementById(id);
const h2hPct = v => (100 * v).toFixed(1) + '%';
const h2hBig = v => Math.round(v).toLocaleString('en-US');
// the policies in the report's order, and their names
const H2H_KEYS = H2H ? H2H.labels.map(([k]) => k) : [], H2H_LABEL = H2H ? Object.fromEntries(H2H.labels) : {};

(function setUpNeural() {
  if (!H2H) {
    h2hBox('h2h-controls').style.display = 'none';
    h2hBox('h2h-seeds').textContent = "No `neural` run in this output: Part 7.5 runs after the `full` run when the " +
      "lab's tasks come with reference programs (the built-in list pack).";
    return;
  }
  for (const t of H2H.tasks)
    h2hBox('task').append(el('option', {value: t.name}, t.name + (t.program === null ? ' (no program found)' : '')));
  for (const b of H2H.bands) h2hBox('band').append(el('option', {value: b}, b));
  h2hBox('h2h-seeds').textContent = H2H.seeds > 1
    ? `Shown: seed ${H2H.seed}'s run (budget ${H2H.budget}), the lowest of ${H2H.seeds} seeds; the report's 7.5 ` +
      'table gives the mean over every seed with intervals.'
    : `One seed (seed ${H2H.seed}, budget ${H2H.budget}): read differences as indicative only.`;
})();

function h2hRow(label, ...value) { return el('div', {class: 'row'}, el('b', {}, label), el('span', {}, ...value)); }
function h2hTask(task) {
  const box = clear(h2hBox('h2h-task'));
  box.append(h2hRow('examples (as the model read them)',
                    el('span', {class: 'examples'}, ...task.examples.map(([i, o]) => el('code', {}, i + ' → ' + o)))),
             h2hRow('program', task.program === null
               ? el('i', {id: 'h2h-program'}, 'none found within the budget')
               : el('code', {id: 'h2h-program'}, task.program)));
  for (const [fn, body] of task.calls) box.append(h2hRow('', el('code', {}, 'where ' + fn + ' = ' + body)));
  box.append(h2hRow('search', `${h2hBig(task.tried)} programs tried over every wake ≈ ` +
                    `${h2hBig(task.search_macs)} MAC-equivalents, shared by its ${task.queries.length} fresh queries`));
}
// one cell: a label (shown on a phone, where the rows stack) and a value
function h2hCell(label, cls, ...value) { return el('td', {'data-label': label, class: cls}, el('span', {}, ...value)); }
function h2hAnswer(label, text, ok) {
  return h2hCell(label, ok ? 'ok' : 'bad', text === '' ? el('i', {}, '(empty)') : el('code', {}, text),
                 el('span', {class: 'mark'}, ok ? ' ✓' : ' ✗'));
}
function h2hQueries(task, band) {
  const t = clear(h2hBox('h2h-queries')), qs = task.queries.filter(q => q.band === band);
  t.append(el('caption', {}, `${task.name}, ${band}: ${qs.length} fresh input${qs.length === 1 ? '' : 's'}`),
           el('thead', {}, el('tr', {}, ...['input', 'true output', 'neural', 'program', 'rule router',
                                            'learned router', 'oracle'].map(h => el('th', {scope: 'col'}, h)))));
  const body = el('tbody', {});
  for (const q of qs) {
    const prog = !q.has_program ? h2hCell('program', 'none', 'no program')
      : q.symbolic === null ? h2hCell('program', 'bad', el('i', {}, 'fails on this input'), el('span', {class: 'mark'}, ' ✗'))
      : h2hAnswer('program', q.symbolic, q.symbolic_ok);
    const picks = ['rule', 'learned', 'oracle'].map(r => {
      const side = q.picks[r], ok = side === 'program' ? q.symbolic_ok : q.neural_ok;
      return h2hCell(r === 'oracle' ? 'oracle' : r + ' router', 'pick ' + side + (ok ? ' ok' : ' bad'), side,
                     el('span', {class: 'mark'}, ok ? ' ✓' : ' ✗'));
    });
    body.append(el('tr', {}, h2hCell('input', '', el('code', {}, q.input)),
                   h2hCell('true output', '', el('code', {}, q.expected)),
                   h2hAnswer('neural', q.neural, q.neural_ok), prog, ...picks));
  }
  if (!qs.length) body.append(el('tr', {}, el('td', {colspan: 7}, 'no fresh inputs of this band for this task')));
  t.append(body);
}
function h2hChart(band) {
  const bands = H2H.bands, keys = H2H_KEYS;
  const c = axes(h2hBox('h2h-chart'), {title: 'exact answers by input band, every held-out task', height: 250,
    x: {min: -0.5, max: bands.length - 0.5, ticks: [], fmt: String, label: ''},
    y: {min: 0, max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], fmt: v => 100 * v + '%', label: 'exact answers'}});
  const step = c.sx(1) - c.sx(0), w = 0.8 * step / keys.length, zero = c.sy(0);
  bands.forEach((b, i) => {
    const on = b === band;
    // the chosen band's column shaded behind the grid
    if (on) c.svg.insertBefore(svgEl('rect', {x: c.sx(i) - step / 2, y: c.plot.top, width: step,
                                              height: c.plot.bottom - c.plot.top, class: 'band-on'}),
                               c.svg.firstChild.nextSibling);
    keys.forEach((k, j) => {
      const {accuracy, n} = H2H.by_band[b][k], x = c.sx(i) + (j - keys.length / 2) * w, y = c.sy(accuracy);
      // a zero still shows as a sliver on the axis
      c.svg.append(svgEl('rect', {x, y: Math.min(y, zero - 1.5), width: w - 1, height: Math.max(zero - y, 1.5),
                                  fill: H2H_COLORS[k], class: 'bar' + (on ? '' : ' off')},
                         svgEl('title', {}, `${H2H_LABEL[k]}, ${b}: ${h2hPct(accuracy)} of ${n} queries`)));
    });
    const [first, ...rest] = b.split(' ');
    c.svg.append(svgEl('text', {x: c.sx(i), y: c.plot.bottom + 15, 'text-anchor': 'middle', class: 'tick' + (on ? ' on' : '')},
                       svgEl('tspan', {x: c.sx(i)}, first), svgEl('tspan', {x: c.sx(i), dy: 13}, rest.join(' '))));
  });
  legend(h2hBox('h2h-legend'), keys.map(k => [H2H_LABEL[k], H2H_COLORS[k]]));
  const acc = clear(h2hBox('h2h-acc')), n = H2H.by_band[band].neural.n;
  acc.append(`Exact answers in the “${band}” band (${n} fresh queries over ${H2H.tasks.length} held-out tasks): `);
  keys.forEach((k, j) => acc.append(j ? '; ' : '', H2H_LABEL[k] + ' ',
                                    el('b', {id: 'acc-' + k}, h2hPct(H2H.by_band[band][k].accuracy))));
  acc.append('.');
}
function h2hRate() {
  const p = H2H.policies, unit = k => k === 'neural' ? ' MACs' : ' MAC-equivalents';
  clear(h2hBox('h2h-rate')).append(
    'Compute in one unit: one program tried in the search took as long on this machine as ',
    el('b', {id: 'h2h-xrate'}, h2hBig(H2H.macs_per_program)), " MACs of the model's forward pass (",
    `${H2H.seconds_per_program.toPrecision(2)} s per program ÷ ${H2H.seconds_per_mac.toExponential(1)} s per MAC). ` +
    "Per query, over every band (a program's side pays its task's search, shared by the task's queries, and " +
    'one run): ' + H2H_KEYS.map(k => H2H_LABEL[k] + ' ' + h2hBig(p[k].macs_per_query) + unit(k))
      .join('; ') + '.');
}
function drawNeural() {
  if (!H2H) return;
  const task = H2H.tasks.find(t => t.name === h2hBox('task').value) || H2H.tasks[0], band = h2hBox('band').value;
  h2hTask(task); h2hQueries(task, band); h2hChart(band); h2hRate();
}
