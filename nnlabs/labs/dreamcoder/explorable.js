
const slider = document.getElementById('cycle');
slider.max = DATA.cycles.length;
function render() {
  const k = +slider.value, c = DATA.cycles[k - 1];
  document.getElementById('summary').textContent =
    `cycle ${c.cycle}: train solved ${c.train_solved}/${DATA.n_train}, held-out solved ${c.test_solved}/${DATA.n_test}`;
  const lib = clear(document.getElementById('lib'));
  lib.append(el('tr', {}, el('th', {}, 'name'), el('th', {}, 'suggested'), el('th', {}, 'body'),
                el('th', {}, 'training tasks it compresses'), el('th', {}, 'held-out tasks solved with it')));
  for (const a of c.library) {
    const style = a.cycle === c.cycle ? {fontWeight: 'bold'} : {};
    lib.append(el('tr', {style}, el('td', {}, a.name), el('td', {}, a.suggested),
      el('td', {class: 'mono', style: {textAlign: 'left'}}, a.body),
      el('td', {style: {textAlign: 'left'}}, a.helps.join(', ')),
      el('td', {style: {textAlign: 'left'}}, (DATA.test_uses[a.name] || []).join(', '))));
  }
  const tests = clear(document.getElementById('tests'));
  tests.append(el('tr', {}, el('th', {}, 'task'), el('th', {}, 'program found')));
  for (const [task, prog] of c.test_programs)
    tests.append(el('tr', {}, el('td', {}, task), el('td', {class: 'mono', style: {textAlign: 'left'}}, prog)));
  const sols = clear(document.getElementById('sols'));
  sols.append(el('tr', {}, el('th', {}, 'task'), el('th', {}, 'program')));
  for (const [task, prog] of c.solutions)
    sols.append(el('tr', {}, el('td', {}, task), el('td', {class: 'mono', style: {textAlign: 'left'}}, prog)));
}
slider.oninput = render;
render();
