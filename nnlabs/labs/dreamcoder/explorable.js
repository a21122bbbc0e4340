const byId = id => document.getElementById(id);
const slider = byId('cycle'), nodeIn = byId('node'), K = DATA.cycles.length;
slider.max = K;
const byName = Object.fromEntries(DATA.nodes.map(n => [n.name, n]));
const usedBy = name => DATA.nodes.filter(n => n.calls.includes(name));
const ROW = 26, BOX = 20, CHAR = 6.7;
let graph = null;

// Column 0: the primitives the library is built from; column k: the abstractions cycle k's sleep invented
function buildGraph() {
  const box = byId('graph'), W = Math.max(300, Math.min(760, box.clientWidth || 700));
  const cols = [DATA.primitives.map(name => ({name, cycle: 0, prim: true, calls: []}))];
  for (let k = 1; k <= K; k++) cols.push(DATA.nodes.filter(n => n.cycle === k));
  const colW = (W - 8) / (K + 1), w = Math.min(colW - 12, 66), top = 22, mid = k => 4 + colW * (k + 0.5);
  const H = top + Math.max(1, ...cols.map(c => c.length)) * ROW + 4, pos = {};
  cols.forEach((col, k) => col.forEach((n, i) => { pos[n.name] = {x: mid(k) - w / 2, y: top + i * ROW, n}; }));
  const svg = svgEl('svg', {viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'group',
                            'aria-label': 'the library: primitives on the left, one column per cycle'});
  cols.forEach((col, k) => {
    svg.append(svgEl('text', {x: mid(k), y: 12, 'text-anchor': 'middle', class: 'col'},
                     k === 0 ? 'base DSL' : (colW > 80 ? 'cycle ' : 'c') + k));
    if (!col.length) svg.append(svgEl('text', {x: mid(k), y: top + 14, 'text-anchor': 'middle', class: 'col'}, 'none'));
  });
  const edges = [], nodes = {};
  for (const n of DATA.nodes) for (const t of n.calls) {
    const a = pos[n.name], b = pos[t], y1 = a.y + BOX / 2, y2 = b.y + BOX / 2;
    // to an earlier column: this node's left side to the callee's right side; within a column: loop left
    const d = b.x < a.x ? `M${a.x},${y1} C${a.x - 24},${y1} ${b.x + w + 24},${y2} ${b.x + w},${y2}`
                        : `M${a.x},${y1} C${a.x - 26},${y1} ${b.x - 26},${y2} ${b.x},${y2}`;
    const e = svgEl('path', {d, class: 'edge'});
    edges.push({e, from: n.name, to: t});
    svg.append(e);
  }
  const fits = Math.floor((w - 4) / CHAR);
  for (const [name, {x, y, n}] of Object.entries(pos)) {
    const label = n.prim ? name + ', a primitive' : name + ', ' + n.suggested + ', cycle ' + n.cycle;
    const g = svgEl('g', {class: 'node', role: 'button', 'aria-label': label,
                          onmouseenter: () => choose(name), onfocus: () => choose(name), onclick: () => choose(name)},
      svgEl('rect', {x, y, width: w, height: BOX, rx: 4}),
      svgEl('text', {x: x + w / 2, y: y + 14, 'text-anchor': 'middle'},
            name.length > fits ? name.slice(0, fits - 1) + '…' : name));
    nodes[name] = {g, n};
    svg.append(g);
  }
  clear(box).append(svg);
  graph = {edges, nodes};
}
// The graph at cycle k: later abstractions (and primitives only they use) faded and out of the Tab order
function paintGraph(k) {
  const sel = nodeIn.value;
  for (const [name, {g, n}] of Object.entries(graph.nodes)) {
    const later = n.prim ? usedBy(name).every(m => m.cycle > k) : n.cycle > k;
    g.setAttribute('class', 'node' + (n.prim ? ' prim' : '') + (later ? ' later' : '') +
                   (n.cycle === k ? ' new' : '') + (name === sel ? ' on' : ''));
    g.setAttribute('tabindex', later ? '-1' : '0');
  }
  for (const {e, from, to} of graph.edges)
    e.setAttribute('class', 'edge' + (byName[from].cycle > k ? ' later' : '') +
                   (sel === from || sel === to ? ' on' : ''));
}
function row(label, ...value) { return el('div', {class: 'row'}, el('b', {}, label), el('span', {}, ...value)); }
function program(text, id, length) { return [el('code', {}, text), ' ', el('span', {id}, '(' + length + ' tokens)')]; }
function showInfo(k) {
  const info = clear(byId('info')), name = nodeIn.value, c = DATA.cycles[k - 1];
  if (!(name in byName) && !DATA.primitives.includes(name)) {
    info.append(el('p', {class: 'note'}, 'Hover a node, or Tab to it, to see what it is.'));
    return;
  }
  if (!(name in byName)) {
    const users = usedBy(name).map(n => n.name + ' (cycle ' + n.cycle + ')');
    info.append(row('primitive', el('code', {}, name)), row('in the bodies of', users.join(', ')));
    return;
  }
  const n = byName[name], ex = n.example, held = DATA.held_out_uses[name] || [];
  const usage = n.cycle > k ? 'not invented yet at cycle ' + k
    : el('span', {id: 'usage'}, n.usage[k - 1] + ' of ' + c.solutions.length + ' training solutions after cycle ' + k);
  info.append(row('abstraction', el('code', {}, n.name), ' — ' + n.suggested + ', invented by cycle ' + n.cycle +
                  "'s sleep"),
              row('definition', el('code', {}, n.body)), row('type', el('code', {}, n.type)),
              row('calls', n.calls.join(', ')), row('usage', usage),
              row('held-out tasks', held.length ? held.join(', ') : 'none solved with it'));
  if (ex) info.append(row('a task it shortened', el('code', {}, ex.task)),
                      row('before that sleep', ...program(ex.before, 'before-len', ex.before_len)),
                      row('after', ...program(ex.after, 'after-len', ex.after_len)));
}
// a quarter cycle of margin, so the first and last points sit off the frame
const cycleAxis = {min: 0.75, max: K + 0.25, ticks: DATA.cycles.map(c => c.cycle), fmt: String,
                   label: 'wake–sleep cycle'};
function drawCharts(k) {
  const pct = v => (100 * v).toFixed(0) + '%';
  const solved = axes(byId('solved'), {title: 'tasks solved per cycle', height: 240, x: cycleAxis,
    y: {min: 0, max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], fmt: pct, label: 'solved'}});
  series(solved, DATA.cycles.map(c => [c.cycle, c.train_solved / DATA.n_train]), '#2e86c1',
         (x, y) => 'cycle ' + x + ': ' + pct(y) + ' of training tasks', true);
  series(solved, DATA.cycles.map(c => [c.cycle, c.test_solved / DATA.n_test]), '#c0392b',
         (x, y) => 'cycle ' + x + ': ' + pct(y) + ' of held-out tasks');
  cursor(solved, k);
  legend(byId('solved-legend'), [['training tasks (solved so far)', '#2e86c1', true],
                                 ['held-out tasks (this wake)', '#c0392b']]);
  const dls = DATA.cycles.flatMap(c => [c.dl_before, c.dl_after]).filter(v => v !== null);
  if (!dls.length) {
    clear(byId('dl')).append(el('p', {class: 'note'}, 'No description lengths: no sleep compressed a corpus in ' +
      'this run, or the run predates these records (rerun the lab).'));
    clear(byId('dl-legend'));
    return;
  }
  const hi = Math.max(...dls) * 1.08;
  const kfmt = v => v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + 'k' : String(v);
  const dl = axes(byId('dl'), {title: 'description length of the training corpus', height: 240, x: cycleAxis,
    y: {min: 0, max: hi, ticks: niceTicks(0, hi, 4), fmt: kfmt, label: 'corpus + library (cost)'}});
  series(dl, DATA.cycles.map(c => [c.cycle, c.dl_before]), '#e67e22',
         (x, y) => 'cycle ' + x + ' before its sleep: ' + y, true);
  series(dl, DATA.cycles.map(c => [c.cycle, c.dl_after]), '#2e86c1',
         (x, y) => 'cycle ' + x + ' after its sleep: ' + y);
  cursor(dl, k);
  const c = DATA.cycles[k - 1], rel = c => (100 * (c.dl_after - c.dl_before) / c.dl_before).toFixed(1);
  const change = c.dl_before === null ? 'no sleep in cycle ' + k
    : `cycle ${k}'s sleep: ${c.dl_before} → ${c.dl_after} (${rel(c)}%)`;
  legend(byId('dl-legend'), [['before the sleep', '#e67e22', true], ['after: rewritten + library', '#2e86c1'],
    [change, null, false, 'dl-saved'],
    ["(Stitch's cost: 100 per primitive or variable, 1 per application or lambda)"]]);
}
function programs(id, rows) {
  const t = clear(byId(id));
  t.append(el('tr', {}, el('th', {}, 'task'), el('th', {}, 'program')));
  for (const [task, prog] of rows) t.append(el('tr', {}, el('td', {}, task), el('td', {class: 'mono'}, prog)));
  if (!rows.length) t.append(el('tr', {}, el('td', {colspan: 2}, 'none')));
}
function draw() {
  const k = Math.min(K, Math.max(1, +slider.value)), c = DATA.cycles[k - 1];
  byId('summary').textContent = `cycle ${c.cycle} of ${K}: train solved ${c.train_solved}/${DATA.n_train}, ` +
    `held-out solved ${c.test_solved}/${DATA.n_test}, library ${c.library_size}`;
  byId('lib-cycle').textContent = String(k);
  byId('prev').disabled = k <= 1;
  byId('next').disabled = k >= K;
  paintGraph(k); showInfo(k); drawCharts(k);
  programs('sols', c.solutions); programs('tests', c.test_programs);
}
// A node chosen by hover, focus or click: repainted in place (a rebuilt graph would lose the keyboard focus)
function choose(name) {
  if (nodeIn.value === name) return;
  nodeIn.value = name;
  writeState({...readState(), cycle: slider.value, node: name});
  paintGraph(+slider.value); showInfo(+slider.value);
}
for (const [id, step] of [['prev', -1], ['next', 1]])
  byId(id).onclick = () => { slider.value = +slider.value + step; slider.dispatchEvent(new Event('input')); };
buildGraph();
bindControls(['cycle', 'node', ...NEURAL_IDS], () => { draw(); drawNeural(); });
draw(); drawNeural();
// only a change of width re-lays the graph (a phone's toolbar sliding away fires resize too)
let width = window.innerWidth;
window.addEventListener('resize', () => {
  if (window.innerWidth !== width) { width = window.innerWidth; buildGraph(); draw(); }
});
