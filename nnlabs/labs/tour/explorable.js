
const runSel = document.getElementById('run'), stepIn = document.getElementById('step');
for (const r of DATA.deep) runSel.append(el('option', {value: r.name}, r.label));
function bars(hist, cls, satMask) {
  const peak = Math.max(...hist, 1e-9), box = el('div', {class: 'hist ' + cls});
  hist.forEach((v, i) => box.append(el('div', {class: satMask && satMask[i] ? 'sat' : '',
    style: {height: (70 * Math.sqrt(v / peak)).toFixed(1) + 'px'}, title: (100 * v).toFixed(2) + '%'})));
  return box;
}
function drawDeep() {
  const run = DATA.deep.find(r => r.name === runSel.value);
  stepIn.max = run.records.length - 1;
  const rec = run.records[Math.min(+stepIn.value, run.records.length - 1)];
  document.getElementById('steplabel').textContent = 'training step ' + rec.step;
  const box = clear(document.getElementById('layers'));
  const sat = DATA.act_centers.map(c => Math.abs(c) > DATA.threshold);
  rec.layers.forEach((s, i) => {
    const label = el('div', {class: 'label'}, el('b', {}, 'layer ' + (i + 1)), el('br'),
      'saturated ' + (100 * s.saturated).toFixed(1) + '%', el('br'), 'dead units ' + (100 * s.dead).toFixed(1) + '%'
      + ' (mostly dead ' + (100 * s.mostly_dead).toFixed(1) + '%)',
      el('br'), 'mean ' + s.mean.toFixed(3) + ', std ' + s.std.toFixed(3));
    const act = el('div', {}, bars(s.act_hist, '', sat), el('div', {class: 'axis'}, el('span', {}, '-1'),
      el('span', {}, 'tanh output'), el('span', {}, '1')));
    const grad = s.grad_hist ? el('div', {}, bars(s.grad_hist, 'grad'), el('div', {class: 'axis'},
      el('span', {}, String(DATA.grad_range[0])), el('span', {}, 'log10 |dL/dx|'),
      el('span', {}, String(DATA.grad_range[1]))))
      : el('div', {}, '');
    box.append(el('div', {class: 'layer'}, label, act, grad));
  });
}
const srun = document.getElementById('srun'), sstep = document.getElementById('sstep');
for (const r of DATA.samples) srun.append(el('option', {value: r.name}, r.name));
function drawSamples() {
  const run = DATA.samples.find(r => r.name === srun.value);
  sstep.max = run.evals.length - 1;
  const ev = run.evals[Math.min(+sstep.value, run.evals.length - 1)];
  document.getElementById('sinfo').textContent =
    'step ' + ev.step + (ev.loss === null ? '' : ', test NLL ' + ev.loss.toFixed(4));
  const t = clear(document.getElementById('samples'));
  t.append(el('tr', {}, el('th', {}, 'prompt'), el('th', {}, 'sample')));
  ev.samples.forEach(([p, s]) => t.append(el('tr', {}, el('td', {}, p || '(start)'), el('td', {}, s))));
}
runSel.onchange = () => { stepIn.value = 0; drawDeep(); }; stepIn.oninput = drawDeep;
srun.onchange = () => { sstep.value = 0; drawSamples(); }; sstep.oninput = drawSamples;
drawDeep(); drawSamples();
