const modelSel = document.getElementById('model'), querySel = document.getElementById('query');
for (const name of Object.keys(DATA.models)) modelSel.append(el('option', {value: name}, name));
function fillQueries() {
  clear(querySel);
  DATA.models[modelSel.value].forEach((r, i) => querySel.append(el('option', {value: i}, r.family + ': ' + r.query)));
  show();
}
function fmt(n) { return (n / 1e6).toFixed(2) + ' M MACs'; }
function row(label, ...value) { return el('div', {class: 'row'}, el('b', {}, label), el('span', {}, ...value)); }
function show() {
  const r = DATA.models[modelSel.value][+querySel.value || 0], t = clear(document.getElementById('trace'));
  const call = r.p_call > 0.5;
  const bar = el('span', {class: 'bar'}, el('span', {style: {width: (100 * r.p_call).toFixed(1) + '%'}}));
  t.append(row('query', el('code', {}, r.query)), row('kind', r.kind + ' (' + r.family + ')'),
           row('P(CALL_TOOL)', bar, ' ' + r.p_call.toFixed(3)),
           row('decision', call ? '<CALL_TOOL>: call the tool' : '<NO_TOOL>: answer from memory'));
  if (call) t.append(row('the call', el('code', {}, r.call)),
                     row('tool output', el('code', {}, r.output === null ? '(the call was never closed)' : r.output)));
  const answer = call ? r.tool_answer : r.direct_answer, ok = call ? r.tool_ok : r.direct_ok;
  t.append(row('answer', el('code', {}, answer), ' ', el('span', {class: ok ? 'ok' : 'bad'},
           ok ? '✓ correct' : '✗ wrong (gold ' + r.gold + ')')));
  const model = call ? r.tool_macs : r.direct_macs, tool = call ? r.call_cost : 0;
  t.append(row('cost', fmt(model) + ' model' + (call ? ' + ' + fmt(tool) + ' declared call cost' : '') +
               ' = ' + fmt(model + tool)));
  const other = call ? 'from memory it would say ' + r.direct_answer + (r.direct_ok ? ' (right)' : ' (wrong)')
                     : 'with the tool it would say ' + r.tool_answer + (r.tool_ok ? ' (right)' : ' (wrong)');
  t.append(row('road not taken', other));
}
function fillTable() {
  const tab = clear(document.getElementById('all'));
  const heads = ['family', 'query', 'P(CALL)', 'decision', 'answer', 'correct', 'cost'];
  tab.append(el('tr', {}, ...heads.map(h => el('th', {}, h))));
  DATA.models[modelSel.value].forEach((r, i) => {
    const call = r.p_call > 0.5, ok = call ? r.tool_ok : r.direct_ok;
    const cost = call ? r.tool_macs + r.call_cost : r.direct_macs;
    const tr = el('tr', {style: {cursor: 'pointer'}, onclick: () => { querySel.value = i; show(); }},
      el('td', {}, r.family), el('td', {class: 'mono'}, r.query), el('td', {}, r.p_call.toFixed(2)),
      el('td', {}, call ? 'call' : 'memory'), el('td', {class: 'mono'}, call ? r.tool_answer : r.direct_answer),
      el('td', {class: ok ? 'ok' : 'bad'}, ok ? '✓' : '✗'), el('td', {}, (cost / 1e6).toFixed(2)));
    tr.firstChild.style.textAlign = 'left';
    tab.append(tr);
  });
}
modelSel.onchange = () => { fillQueries(); fillTable(); }; querySel.onchange = show; fillQueries(); fillTable();

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
