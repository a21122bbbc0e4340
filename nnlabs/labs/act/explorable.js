const $ = (id) => document.getElementById(id);
function fill(sel, values) { clear(sel); for (const v of values) sel.append(el('option', {value: v}, v)); }
function render() {
  const T = DATA.tasks[$('task').value], b = $('bucket').value;
  const maxMacs = Math.max(...T.models.map(m => (m.buckets[b] || {macs: 0}).macs));
  const table = clear($('table'));
  table.append(el('tr', {}, el('th', {}, 'model'), el('th', {}, 'accuracy'), el('th', {}, 'MACs / example'),
                  el('th', {}, 'passes at answer'), el('th', {}, 'n')));
  for (const m of T.models) {
    const s = m.buckets[b];
    if (!s) continue;
    const bar = (frac, color) => el('div', {style: {width: Math.round(160 * frac) + 'px', height: '10px',
                                                    background: color, display: 'inline-block'}});
    table.append(el('tr', {}, el('td', {}, m.name),
      el('td', {style: {textAlign: 'left'}}, bar(s.acc, '#1f77b4'), ' ' + (100 * s.acc).toFixed(1) + '%'),
      el('td', {style: {textAlign: 'left'}}, bar(s.macs / maxMacs, '#ff7f0e'),
         ' ' + Math.round(s.macs).toLocaleString()),
      el('td', {}, s.steps.toFixed(2)), el('td', {}, s.n)));
  }
  const box = clear($('examples'));
  const model = T.models.find(m => m.name === $('model').value);
  const shown = model.examples.filter(e => b === 'all' || String(e.difficulty) === b);
  if (!shown.length) box.append(el('p', {class: 'note'}, 'no stored example at this difficulty'));
  for (const e of shown) {
    const row = el('div', {style: {margin: '3px 0'}});
    row.append(el('span', {class: 'note', style: {display: 'inline-block', width: '9em'}},
                  `${e.split} ${e.difficulty} ${e.correct ? '✓' : '✗'}`));
    [...e.chars].forEach((ch, i) => {
      const t = (e.steps[i] - 1) / Math.max(1, model.max_steps - 1);
      const shade = `rgba(31,119,180,${0.1 + 0.85 * t})`;
      row.append(el('span', {title: e.steps[i] + ' passes', style: {background: shade,
        color: t > 0.5 ? 'white' : 'black', padding: '2px 4px', marginRight: '1px'}}, ch));
    });
    row.append(el('span', {class: 'note'}, '  answer ' + e.answer));
    box.append(row);
  }
}
function onTask() {
  const T = DATA.tasks[$('task').value];
  fill($('bucket'), ['all', ...T.buckets.map(String)]);
  fill($('model'), T.models.map(m => m.name));
  const adaptive = T.models.find(m => m.name === T.best);
  if (adaptive) $('model').value = adaptive.name;
  render();
}
fill($('task'), Object.keys(DATA.tasks));
$('task').onchange = onTask; $('bucket').onchange = render; $('model').onchange = render;
onTask();
