const COLORS = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#b8a31f','#b07aa1','#9c755f'];
const $ = id => document.getElementById(id);
for (const name of Object.keys(DATA.runs)) $('run').append(el('option', {value: name}, name));
function setup() {
  const r = DATA.runs[$('run').value];
  clear($('layer'));
  r.domain_expert[0].forEach((_, i) => $('layer').append(el('option', {value: i}, String(i))));
  $('step').max = r.steps.length - 1; $('step').value = r.steps.length - 1; draw();
}
function cell(f) {
  const style = {background: `rgba(78,121,167,${f})`, color: f > 0.55 ? '#fff' : '#222'};
  return el('td', {style}, f.toFixed(2));
}
function draw() {
  const r = DATA.runs[$('run').value], s = +$('step').value, l = +$('layer').value;
  $('steplabel').textContent = 'step ' + r.steps[s] + ' (load-balance ratio ' + r.lbr[s][l] + ')';
  const byDomain = $('group').value === 'domain', byRow = $('norm').value === 'row';
  const m = (byDomain ? r.domain_expert : r.class_expert)[s][l], labels = byDomain ? DATA.domains : DATA.classes;
  const colSum = m[0].map((_, e) => m.reduce((a, row) => a + row[e], 0));
  const table = el('table', {class: 'heat'});
  const corner = (byDomain ? 'domain' : 'class') + ' \\ expert';
  table.append(el('tr', {}, el('th', {}, corner), ...m[0].map((_, e) => el('th', {}, 'E' + e))));
  m.forEach((row, d) => {
    const rowSum = row.reduce((a, b) => a + b, 0);
    table.append(el('tr', {}, el('th', {}, labels[d]),
      ...row.map((v, e) => cell(byRow ? v / Math.max(rowSum, 1) : v / Math.max(colSum[e], 1)))));
  });
  clear($('heat')).append(table);
  clear($('legend')).append(...m[0].map((_, e) =>
    el('span', {style: {background: COLORS[e % 8], color: '#fff', padding: '1px 6px'}}, 'expert ' + e)));
  const box = clear($('strings'));
  for (const item of r.strings[s]) {
    const line = el('div', {style: {margin: '3px 0'}}, el('span', {class: 'note'}, item.kind + ': '));
    [...item.text].forEach((ch, i) => {
      const e = item.experts[l][i];
      line.append(el('span', {title: 'expert ' + e, style: {background: COLORS[e % 8], color: '#fff',
                                                               padding: '0 1px', whiteSpace: 'pre'}}, ch));
    });
    box.append(line);
  }
}
$('run').onchange = setup; $('layer').onchange = draw; $('step').oninput = draw;
$('norm').onchange = draw; $('group').onchange = draw;
if (DATA.runs.top1_e8) $('run').value = 'top1_e8';  // the main run, when there is one
if ($('run').options.length) setup();
