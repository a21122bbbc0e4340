const byId = id => document.getElementById(id);
const priceIn = byId('price'), policySel = byId('policy'), querySel = byId('query');
priceIn.max = DATA.prices.length - 1;
// every run scored the same test queries in the same order: one list of options serves every price
DATA.prices[0].queries.forEach((r, i) => querySel.append(el('option', {value: i}, r.family + ': ' + r.query)));
const pct = v => v === null || v === undefined ? '–' : (100 * v).toFixed(1) + '%';
// a price as the report writes it (Python's :g on a swept price, :.2g on the interpolated one)
const price = v => String(Number(v.toPrecision(2)));
const fmt = n => (n / 1e6).toFixed(2) + ' M MACs';
const COLORS = {learned: '#2e86c1', oracle: '#222', never: '#27ae60', always: '#e67e22', dream: '#c0392b',
                memorizable: '#e67e22', needed: '#8e44ad'};

// The run shown: the policy trained at the slider's price, or the dream state (it continues the moderate price)
function current() {
  const k = +priceIn.value, dreamOk = DATA.dream !== null && k === DATA.moderate;
  policySel.disabled = !dreamOk;
  if (dreamOk && policySel.value === 'dream') return {...DATA.dream, label: 'after the dream state'};
  return {...DATA.prices[k], label: 'learned'};
}
// The oracle's accuracy at call rate x: linear between its corners
function oracleAt(x) {
  const o = DATA.oracle;
  for (let i = 1; i < o.length; i++) {
    const [x0, y0] = o[i - 1], [x1, y1] = o[i];
    if (x <= x1) return x1 === x0 ? y1 : y0 + (x - x0) / (x1 - x0) * (y1 - y0);
  }
  return o[o.length - 1][1];
}
function num(id, text) { return el('b', {id}, text); }
function drawSummary(p) {
  byId('price-label').textContent = 'c = ' + price(p.cost);
  const s = p.learned, box = clear(byId('summary'));
  box.append('At c = ' + price(p.cost) + (p.label === 'learned' ? '' : ', after the dream state,') +
    ' the policy calls on ', num('calls', pct(s.call_rate)), ' of the ' + DATA.n_queries +
    ' test queries (needs-tool ' + pct(s.call_rate_needs_tool) + ', memorizable ' + pct(s.call_rate_memorizable) +
    ') and answers ', num('acc', pct(s.accuracy)), ' correctly, at ' + fmt(s.compute) +
    ' per query; the oracle reaches ', num('oracle-acc', pct(oracleAt(s.call_rate))), ' at the same call rate. ' +
    'It makes ' + pct(p.needed_call_rate) + " of the needed calls (no-tool answer wrong, tool's right). Over the " +
    'sweep the learned curve covers ', num('apgr', DATA.area_fraction === null ? '–' : DATA.area_fraction.toFixed(2)),
    " of the oracle's gain over never calling (RouteLLM's APGR); needed calls stop at ",
    num('stop', DATA.calls_stop === null ? 'no swept price' : 'c ≈ ' + price(DATA.calls_stop)), '.');
}
function dot(x, y, r, color, title) {
  return svgEl('circle', {cx: x, cy: y, r, fill: color}, svgEl('title', {}, title));
}
const ratePct = v => (100 * v) + '%';
// Accuracy against call rate: the swept policies, the oracle ("optimal"), never/always, the chosen price
function drawFrontier(p) {
  const b = DATA.baselines, ys = [...DATA.curve, ...DATA.oracle].map(q => q[1]).concat(b.never.accuracy);
  const lo = Math.max(0, Math.floor((Math.min(...ys) - 0.02) * 10) / 10);
  const hi = Math.min(1, Math.ceil(Math.max(...ys) * 10) / 10);
  const chart = axes(byId('frontier'), {
    title: 'accuracy against the fraction of queries that call the tool', height: 290,
    x: {min: 0, max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], fmt: ratePct, label: 'queries that call the tool'},
    y: {min: lo, max: hi, ticks: niceTicks(lo, hi, 5), fmt: v => Math.round(100 * v) + '%',
        label: 'accuracy (all test queries)'}});
  const {svg, sx, sy} = chart, px = q => [sx(q[0]), sy(q[1])], floor = b.never.accuracy;
  svg.append(svgEl('polygon', {points: pointsAttr([...DATA.curve.map(px), [sx(1), sy(floor)], [sx(0), sy(floor)]]),
                               fill: COLORS.learned, 'fill-opacity': 0.12}),
             svgEl('polyline', {points: pointsAttr(DATA.oracle.map(px)), fill: 'none', stroke: COLORS.oracle,
                                'stroke-dasharray': '6 4', 'stroke-width': 1.5}),
             svgEl('polyline', {points: pointsAttr(DATA.curve.map(px)), fill: 'none', stroke: COLORS.learned,
                                'stroke-width': 2}));
  for (const q of DATA.prices)
    svg.append(dot(sx(q.learned.call_rate), sy(q.learned.accuracy), 3.5, COLORS.learned, 'c = ' + price(q.cost) +
                   ': ' + pct(q.learned.call_rate) + ' calls, ' + pct(q.learned.accuracy) + ' right'));
  svg.append(svgEl('rect', {x: sx(0) - 5, y: sy(b.never.accuracy) - 5, width: 10, height: 10, fill: COLORS.never},
                   svgEl('title', {}, 'never call: ' + pct(b.never.accuracy))),
             svgEl('path', {d: `M${sx(1)},${sy(b.always.accuracy) - 7}l6,11h-12z`, fill: COLORS.always},
                   svgEl('title', {}, 'always call: ' + pct(b.always.accuracy))));
  if (DATA.dream) {
    const d = DATA.dream.learned;
    svg.append(svgEl('path', {d: `M${sx(d.call_rate)},${sy(d.accuracy) - 7}l7,7l-7,7l-7,-7z`, fill: COLORS.dream},
                     svgEl('title', {}, 'after the dream state: ' + pct(d.accuracy))));
  }
  // the chosen policy: a ring on its point, a line down to the call-rate axis, the oracle at the same call rate
  const x = sx(p.learned.call_rate), y = sy(p.learned.accuracy), right = x < (sx(0) + sx(1)) / 2;
  cursor(chart, p.learned.call_rate);
  svg.append(dot(x, sy(oracleAt(p.learned.call_rate)), 3.5, COLORS.oracle, 'oracle at the same call rate'),
             svgEl('circle', {cx: x, cy: y, r: 8, fill: 'none', stroke: COLORS.dream, 'stroke-width': 2.5,
                              id: 'chosen'}),
             svgEl('text', {x: x + (right ? 12 : -12), y: y + 16, 'text-anchor': right ? 'start' : 'end',
                            class: 'axis halo'}, 'c = ' + price(p.cost)));
  const oracle = "oracle, the optimal router (on the c = " + price(DATA.prices[DATA.moderate].cost) + " run's answers)";
  legend(byId('frontier-legend'), [['learned, one policy per price', COLORS.learned], [oracle, COLORS.oracle, true],
    ['never call (square)', COLORS.never], ['always call (triangle)', COLORS.always]]
    .concat(DATA.dream ? [['after the dream state (diamond)', COLORS.dream]] : []));
}
// What each price buys: call rates against the price (log axis), the chosen price and where needed calls stop
function drawBuys(p) {
  const cs = DATA.prices.map(q => q.cost), lo = Math.min(...cs), hi = Math.max(...cs);
  const decades = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100].filter(t => t >= lo * 0.999 && t <= hi * 1.001);
  const chart = axes(byId('buys'), {
    title: 'call rates of the learned policy against the price of a call', height: 290,
    x: {min: lo, max: hi, log: true, ticks: decades.length >= 2 ? decades : cs, fmt: price,
        label: 'price of a call (log scale)'},
    y: {min: 0, max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], fmt: ratePct, label: 'call rate'}});
  const label = (x, y) => 'c = ' + price(x) + ': ' + pct(y);
  series(chart, DATA.prices.map(q => [q.cost, q.learned.call_rate_needs_tool]), COLORS.learned, label);
  series(chart, DATA.prices.map(q => [q.cost, q.learned.call_rate_memorizable]), COLORS.memorizable, label);
  series(chart, DATA.prices.map(q => [q.cost, q.needed_call_rate]), COLORS.needed, label, true);
  if (DATA.calls_stop !== null) {
    const x = chart.sx(DATA.calls_stop);
    chart.svg.append(svgEl('line', {x1: x, x2: x, y1: chart.plot.top, y2: chart.plot.bottom, stroke: COLORS.needed,
                                    'stroke-dasharray': '2 3'}),
                     svgEl('text', {x: x - 4, y: chart.plot.top + 12, 'text-anchor': 'end', class: 'tick halo'},
                           'calls stop'));
  }
  cursor(chart, p.cost);
  legend(byId('buys-legend'), [['needs-tool queries', COLORS.learned], ['memorizable queries', COLORS.memorizable],
                               ['needed calls (no-tool wrong, tool right)', COLORS.needed, true]]);
}
function outcome(r) {
  const call = r.p_call > 0.5;
  return {call, ok: call ? r.tool_ok : r.direct_ok, answer: call ? r.tool_answer : r.direct_answer};
}
// Every shown query, grouped by family, drawn with the chosen policy's decision
function drawGrid(p) {
  const grid = clear(byId('grid')), fams = {};
  p.queries.forEach((r, i) => (fams[r.family] = fams[r.family] || []).push([r, i]));
  for (const [fam, rows] of Object.entries(fams)) {
    const calls = rows.filter(([r]) => outcome(r).call).length;
    const head = fam + ' (' + rows[0][0].kind.replace('_', '-') + '): ' + calls + ' of ' + rows.length + ' call';
    grid.append(el('div', {class: 'fam'}, el('b', {}, head), ...rows.map(([r, i]) => {
      const o = outcome(r), sel = i === +querySel.value;
      const title = 'P(CALL) ' + r.p_call.toFixed(2) + (o.call ? ', calls' : ', from memory') + ': ' + o.answer;
      return el('span', {class: 'q' + (o.call ? ' call' : '') + (o.ok ? '' : ' wrong') + (sel ? ' sel' : ''), title,
                         onclick: () => { querySel.value = i; querySel.dispatchEvent(new Event('change')); }},
                r.query + (o.ok ? '' : ' ✗'));
    })));
  }
}
function row(label, ...value) { return el('div', {class: 'row'}, el('b', {}, label), el('span', {}, ...value)); }
function drawTrace(p) {
  const r = p.queries[+querySel.value || 0], t = clear(byId('trace')), {call, ok, answer} = outcome(r);
  const bar = el('span', {class: 'bar'}, el('span', {style: {width: (100 * r.p_call).toFixed(1) + '%'}}));
  t.append(row('query', el('code', {}, r.query)), row('kind', r.kind + ' (' + r.family + ')'),
           row('P(CALL_TOOL)', bar, ' ' + r.p_call.toFixed(3)),
           row('decision', call ? '<CALL_TOOL>: call the tool' : '<NO_TOOL>: answer from memory'));
  if (call) t.append(row('the call', el('code', {}, r.call)),
                     row('tool output', el('code', {}, r.output === null ? '(the call was never closed)' : r.output)));
  t.append(row('answer', el('code', {}, answer), ' ', el('span', {class: ok ? 'ok' : 'bad'},
           ok ? '✓ correct' : '✗ wrong (gold ' + r.gold + ')')));
  const model = call ? r.tool_macs : r.direct_macs, tool = call ? r.call_cost : 0;
  t.append(row('cost', fmt(model) + ' model' + (call ? ' + ' + fmt(tool) + ' declared call cost' : '') +
               ' = ' + fmt(model + tool)));
  const other = call ? 'from memory it would say ' + r.direct_answer + (r.direct_ok ? ' (right)' : ' (wrong)')
                     : 'with the tool it would say ' + r.tool_answer + (r.tool_ok ? ' (right)' : ' (wrong)');
  t.append(row('road not taken', other));
}
function draw() {
  const p = current();
  drawSummary(p); drawFrontier(p); drawBuys(p); drawGrid(p); drawTrace(p);
}
bindControls(['price', 'policy', 'query'], draw);
draw();
window.addEventListener('resize', () => { const p = current(); drawFrontier(p); drawBuys(p); });

// calc: the pack's grammar. expr := term (('+'|'-') term)*; term := power ('*' power)*;
// power := unary ('^' power)?; unary := '-' unary | atom; atom := NUMBER | '(' expr ')'
function calc(text) {
  if (text.length > 64) throw new Error('expression is ' + text.length + ' characters long (limit 64)');
  const toks = [];
  for (let i = 0; i < text.length;) {
    const ch = text[i];
    if (!'0123456789+-*^() '.includes(ch)) throw new Error('character ' + JSON.stringify(ch) + ' at position ' + i +
      ' is outside the grammar (digits, + - * ^ ( ) and spaces only)');
    if (/[0-9]/.test(ch)) { let j = i; while (j < text.length && /[0-9]/.test(text[j])) j++;
      if (j - i > 12) throw new Error('number at position ' + i + ' has ' + (j - i) + ' digits (limit 12)');
      toks.push(text.slice(i, j)); i = j; } else { if (ch !== ' ') toks.push(ch); i++; }
  }
  let pos = 0, depth = 0;
  const LIMIT = 10n ** 30n, peek = () => toks[pos];
  const take = () => { if (pos >= toks.length) throw new Error('expression ends too early'); return toks[pos++]; };
  const bounded = v => { if ((v < 0n ? -v : v) >= LIMIT) throw new Error('a value exceeds 30 digits'); return v; };
  function expr() { let v = term();
    while (peek() === '+' || peek() === '-') v = bounded(take() === '+' ? v + term() : v - term()); return v; }
  function term() { let v = power(); while (peek() === '*') { take(); v = bounded(v * power()); } return v; }
  function power() { const b = unary(); if (peek() !== '^') return b; take(); const e = power();
    if (e < 0n || e > 64n) throw new Error('exponent ' + e + ' is outside 0..64');
    const d = (b < 0n ? -b : b).toString().length;
    if (b > 1n || b < -1n) { if (Number(e) * (d - 1) >= 30) throw new Error('a value exceeds 30 digits'); }
    return bounded(b ** e); }
  function unary() { if (++depth > 16) throw new Error('nesting deeper than 16');
    const v = peek() === '-' ? (take(), -unary()) : atom(); depth--; return v; }
  function atom() { const t = take(); if (/^[0-9]+$/.test(t)) return BigInt(t);
    if (t === '(') { const v = expr(); if (take() !== ')') throw new Error("expected ')'"); return v; }
    throw new Error('unexpected ' + JSON.stringify(t) + "; expected a number or '('"); }
  if (!toks.length) throw new Error('empty expression');
  const v = expr();
  if (pos < toks.length) throw new Error('unexpected ' + JSON.stringify(peek()) + ' after a complete expression');
  return v.toString();
}
const exprIn = document.getElementById('expr'), calcOut = document.getElementById('calc-out');
function runCalc() { try { calcOut.textContent = '= ' + calc(exprIn.value); calcOut.className = 'mono ok'; }
  catch (e) { calcOut.textContent = 'calc: ' + e.message; calcOut.className = 'mono bad'; } }
exprIn.oninput = runCalc; runCalc();
