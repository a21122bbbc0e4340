"""The ACT lab: the halting recurrence against a hand-checked step-by-step reference, gradients of the
ponder cost, frozen halted positions, compute counted = passes actually run, the lab end to end."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from nnlabs.cli import lab_diff
from nnlabs.labs import act
from nnlabs.labs.act import experiment, metrics
from nnlabs.labs.act.data import VOCAB
from nnlabs.labs.act.halting import ActConfig, HaltingUnit, RecurrentDepth
from nnlabs.labs.act.report import report
from nnlabs.labs.act.router import RoutedDepth
from nnlabs.labs.moe.layer import MoE, MoEConfig
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import ModelConfig, Transformer

C, V = 8, 15


def model(halting="act", max_steps=5, window=0, **kw) -> RecurrentDepth:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, block_size=6, n_layer=1, n_head=2, n_embd=C)
    return RecurrentDepth(cfg, ActConfig(halting=halting, max_steps=max_steps, window=window, **kw))


def scripted(m: RecurrentDepth, H: torch.Tensor | None) -> list:
    """Record (pass, running rows, new states, state) of every pass; make the halting unit say
    h = H[pass, position] when H is given (through its linear layer: sigmoid(logit(h)) = h)."""
    calls = []
    step = m.step

    def recording_step(state, n, rows, kv, T):
        s, kv = step(state, n, rows, kv, T)
        calls.append((n, rows.clone(), s.detach().clone(), state.detach().clone()))
        return s, kv

    m.step = recording_step
    if H is not None:
        m.halting.linear.forward = lambda s: torch.logit(H[calls[-1][0], calls[-1][1]].double()).float()[:, None]
    return calls


# hand-checked: position 0 halts at N=3 (0.3+0.5+0.4 >= 0.99, R = 1-0.8 = 0.2, rho = 3.2); position 1 at
# N=1 (0.995 >= 0.99, R = 1, rho = 2); position 2 never reaches 0.99 and is cut at max_steps=5
# (R = 1-0.4 = 0.6, rho = 5.6)
H = torch.tensor([[0.3, 0.995, 0.1], [0.5, 0.5, 0.1], [0.4, 0.5, 0.1], [0.9, 0.9, 0.1], [0.9, 0.9, 0.1]])
N, RHO = [3, 1, 5], [3.2, 2.0, 5.6]


def test_act_halting_matches_step_by_step_reference():
    m = model(tau=1.0)
    calls = scripted(m, H)
    x = torch.randn(1, 3, C)
    y = m.run_blocks(x)[0]
    assert m.halting.steps[0].tolist() == N
    assert float(m.halting.aux_loss) == pytest.approx(sum(RHO) / 3)  # tau * mean(rho)
    for j in range(3):  # reference: walk the passes this position ran, in plain Python
        states = [s[(rows == j).nonzero()[0, 0]] for n, rows, s, _ in calls if j in rows.tolist()]
        assert len(states) == N[j]
        total, ref = 0.0, torch.zeros(C)
        for n, s in enumerate(states):
            h = float(H[n, j])
            p = 1 - total if (total + h >= 0.99 or n == len(states) - 1) else h
            ref += p * s
            total += p
        assert total == pytest.approx(1.0)
        assert torch.allclose(y[j], ref, atol=1e-6)


def test_halted_position_is_frozen_and_not_computed():
    m = model()
    calls = scripted(m, H)
    m.run_blocks(torch.randn(1, 3, C))
    for n, rows, _, _ in calls:
        assert (1 in rows.tolist()) == (n == 0)  # position 1 halted after pass 1: never run again
        assert (0 in rows.tolist()) == (n < 3)
    frozen = calls[1][3][1]  # state of position 1 entering pass 2
    assert all(torch.equal(state[1], frozen) for _, _, _, state in calls[1:])


def test_ponder_cost_gradient_reaches_the_halting_unit():
    m = model(tau=0.1, halt_bias=-1.0)  # h ~ 0.27: several passes, so R depends on h
    m(torch.randint(V, (2, 6)))
    assert m.halting.steps.min() >= 2
    m.halting.aux_loss.backward()
    assert m.halting.linear.weight.grad.abs().sum() > 0 and m.halting.linear.bias.grad.abs() > 0


def test_ponder_kl_is_a_distribution_and_trains_the_halting_unit():
    m = model("ponder", prior=0.3, halt_bias=-1.0)
    m(torch.randint(V, (2, 6)))
    assert float(m.halting.aux_loss.detach()) >= 0
    m.halting.aux_loss.backward()
    assert m.halting.linear.bias.grad.abs() > 0


def test_ponder_prior_is_the_renormalised_truncated_geometric():
    # KL(p || p_G) = 0 when p is the prior itself: p_G(n) = lp (1 - lp)^(n-1) / (1 - (1 - lp)^N), n = 1..N
    lp, cap = 0.3, 5
    prior = torch.tensor([lp * (1 - lp) ** n for n in range(cap)]) / (1 - (1 - lp) ** cap)
    assert float(prior.sum()) == pytest.approx(1.0)
    kl = sum(HaltingUnit.kl_term(prior[n:n + 1], n, lp, cap) for n in range(cap))
    assert float(kl) == pytest.approx(0.0, abs=1e-6)


def test_ponder_trains_on_the_expected_loss_and_halts_by_sampling_at_evaluation():
    m = model("ponder", prior=0.3, halt_bias=3.0, ponder_eval="sample")  # lambda ~ 0.95 on every pass
    x, y = torch.randint(V, (4, 6)), torch.randint(V, (4, 6))
    _, loss = m(x, y)  # training: p_1 = 0.95, p_2 = 0.05 * 0.95 -> the mass passes 1 - eps at pass 2
    assert m.halting.steps.eq(2).all()
    nll = [torch.nn.functional.cross_entropy(m.lm_head(m.ln_f(s)), y.reshape(-1)[rows], reduction="none")
           for rows, _, s in m.halting.passes]
    expected = sum((p * l).sum() for (_, p, _), l in zip(m.halting.passes, nll)) / y.numel()
    kl = m.act.beta * m.halting.reg.mean()
    assert float(loss.detach()) == pytest.approx((expected + kl).item() + float(m.diagnostics["nll"]), rel=1e-5)
    loss.backward()  # the reported NLL of the p-weighted state carries no gradient; the expected loss does
    assert m.halting.linear.bias.grad.abs() > 0
    m.eval()
    m(x)
    first = m.halting.steps.clone()
    assert first.float().mean() < 1.2  # sampled: halts at pass 1 with probability ~0.95
    m(x)
    assert torch.equal(m.halting.steps, first)  # the sampler is seeded: evaluation repeats exactly
    answer = torch.full_like(y, -1)
    answer[:, -1] = y[:, -1]
    torch.nn.init.constant_(m.halting.linear.bias, 0.0)  # lambda ~ 0.5: the draws differ between positions
    m(x, answer)  # with targets: one halting pass per example, the one its answer position drew
    assert (m.halting.steps == m.halting.steps[:, -1:]).all() and m.halting.steps.unique().numel() > 1


def test_ponder_halts_at_the_median_of_its_halting_distribution_at_evaluation():
    # lambda = 0.2 on every pass: sum_{i<=n} p_i = 1 - 0.8^n = 0.2, 0.36, 0.488, 0.59 -> the median is pass 4
    m = model("ponder", max_steps=8, prior=0.3, halt_bias=math.log(0.2 / 0.8)).eval()
    x = torch.randint(V, (3, 6))
    m(x)
    assert m.halting.steps.eq(4).all()
    m(x)
    assert m.halting.steps.eq(4).all()  # deterministic: no draw
    torch.nn.init.constant_(m.halting.linear.bias, math.log(0.6 / 0.4))  # lambda = 0.6: 0.6 >= 1/2 at pass 1
    m(x)
    assert m.halting.steps.eq(1).all()


def test_depth_router_trains_on_its_paths_and_runs_only_the_chosen_one():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, block_size=6, n_layer=1, n_head=2, n_embd=C)
    m = RoutedDepth(cfg, ActConfig(halting="router", max_steps=8, tau=0.1))
    assert m.halting.depths == (2, 4, 8)
    x, y = torch.randint(V, (3, 6)), torch.full((3, 6), -1)
    y[:, 3] = torch.randint(V, (3,))  # one answer position per example
    _, loss = m(x, y)
    # training: every position runs to the cap; loss = mean_k L_k (every path answers every input)
    #   + cross-entropy(router, k* = argmin_k L_k + tau d_k / d_max) (+ the reported NLL)
    assert m.halting.steps.eq(8).all()
    logits = m.halting.logits.view(3, 6, 3)
    assert torch.equal(logits, logits[:, 3:4].expand(3, 6, 3))  # one decision per example: its answer position's
    per_path = torch.stack([torch.nn.functional.cross_entropy(m.lm_head(m.ln_f(m.halting.passes[d - 1][2]))[3::6],
                                                              y[:, 3], reduction="none") for d in (2, 4, 8)], -1)
    best = (per_path + 0.1 * torch.tensor([2.0, 4.0, 8.0]) / 8).argmin(-1)  # [B]
    router = torch.nn.functional.cross_entropy(logits[:, 3], best)
    want = per_path.mean() + router + m.diagnostics["nll"]
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    loss.backward()
    assert m.halting.linear.weight.grad.abs().sum() > 0
    # evaluation: each example runs exactly the path its router picked, every position alike
    m.eval()
    with torch.no_grad():
        torch.nn.init.zeros_(m.halting.linear.weight)
        m.halting.linear.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))  # the middle path: 4 passes
        calls = scripted(m, None)
        m(x, y)
    assert m.halting.steps.eq(4).all() and len(calls) == 4  # passes 5..8 never computed


def expected_macs(m, calls, T):
    """Linear rows actually run (qkv 3C^2 + proj C^2 + ffn 8C^2 + halting C) per running position and
    pass, causal attention 2C(t+1) per running query, and the LM head once per position."""
    per_row = 12 * C * C + (C if m.act.halting != "fixed" else 0)
    total = 0
    for _, rows, _, _ in calls:
        total += len(rows) * per_row + int(sum(2 * C * (min(int(r) % T + 1, m.act.window or T)) for r in rows))
    return total + len(calls[0][1]) * C * V


@pytest.mark.parametrize("halting,window", [("act", 0), ("fixed", 0), ("act", 2)])
def test_compute_counted_equals_passes_actually_taken(halting, window):
    m = model(halting, window=window, halt_bias=0.0)
    torch.nn.init.normal_(m.halting.linear.weight, 0.0, 3.0)  # spread the halting steps across positions
    calls = scripted(m, None)
    x = torch.randint(V, (2, 6))
    with count_macs(m) as c:
        m(x)
    assert c.macs == expected_macs(m, calls, 6)
    assert sum(len(rows) for _, rows, _, _ in calls) == int(m.halting.steps.sum())  # one row per pass taken
    if halting == "act":
        assert m.halting.steps.min() < m.halting.steps.max()  # really adaptive: some positions skipped passes


def test_one_fixed_pass_is_the_spine_transformer():
    m = model("fixed", max_steps=1)
    with torch.no_grad():
        m.wse.weight.zero_()
    t = Transformer(m.config)
    t.load_state_dict({k: v for k, v in m.state_dict().items() if k in t.state_dict()})
    x = torch.randint(V, (2, 6))
    assert torch.allclose(m(x)[0], t(x)[0], atol=1e-6)
    with count_macs(m) as a:
        m(x)
    with count_macs(t) as b:
        t(x)
    assert a.macs == b.macs


def test_early_exit_stops_when_confident():
    m = model("fixed", max_steps=4)
    x = torch.randint(V, (3, 6))
    cols = torch.zeros(6, dtype=torch.bool)
    cols[-1] = True
    _, steps = metrics.early_exit(m, x, cols, threshold=0.0)
    assert steps.eq(1).all()
    _, steps = metrics.early_exit(m, x, cols, threshold=1.1)
    assert steps.eq(4).all()


def moe_model(**kw) -> RecurrentDepth:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, block_size=6, n_layer=1, n_head=2, n_embd=C)
    moe = MoEConfig(n_experts=3, balance_alpha=0.5, z_alpha=0.0)
    return RecurrentDepth(cfg, ActConfig(max_steps=5, **kw), lambda c, layer: MoE(c, layer, moe))


def test_moe_in_the_shared_block_routes_every_pass_and_counts_its_loss_on_each():
    m = moe_model(halt_bias=0.0)
    torch.nn.init.normal_(m.halting.linear.weight, 0.0, 3.0)  # spread the halting steps across positions
    seen = []  # (pass, chosen, balance loss) of every MoE call
    route = m.blocks[0].ffn.route

    def recording_route(*args):
        out = route(*args)
        seen.append((len(seen), out[1][:, 0].clone(), m.blocks[0].ffn.aux_loss))
        return out

    m.blocks[0].ffn.route = recording_route
    x = torch.randint(V, (2, 6))
    m(x, x)
    steps, ffn = m.halting.steps, m.blocks[0].ffn
    assert steps.min() < steps.max() and len(seen) == len(ffn.per_call) == int(steps.max())
    grid = metrics.experts_by_pass(m, steps)
    for n, chosen, _ in seen:  # pass n ran exactly the positions with steps > n, in flat order
        assert torch.equal(grid.view(-1, 5)[:, n][steps.view(-1) > n], chosen)
        assert grid.view(-1, 5)[:, n][steps.view(-1) <= n].eq(-1).all()
    moe_loss = sum(float(a.detach()) for a, _ in ffn.per_call)  # the spine counts it on every pass
    assert moe_loss == pytest.approx(sum(float(a.detach()) for _, _, a in seen))
    assert float(m.diagnostics["aux_loss"]) == pytest.approx(moe_loss + float(m.halting.aux_loss.detach()))


def warm_started(tmp_path, source: str, target: str):
    """(the `source` model, a `target` model warm-started from its checkpoint), tiny budget."""
    budget = experiment.BUDGETS["tiny"]
    torch.manual_seed(0)
    trained = experiment.build_model(budget, source, block_size=8)
    torch.save({"model": trained.state_dict()}, tmp_path / "checkpoint.pt")
    model = experiment.build_model(budget, target, block_size=8)
    experiment.warm_start(model, tmp_path / "checkpoint.pt")
    return trained, model


def test_upcycled_moe_starts_as_the_dense_model(tmp_path):
    dense, moe = warm_started(tmp_path, "fixed2", "fixed2_moe4")
    x = torch.randint(len(VOCAB), (3, 8))
    dense.eval(), moe.eval()
    torch.testing.assert_close(moe(x)[0], dense(x)[0], rtol=1e-5, atol=1e-5)  # top-2 of identical experts
    assert all(torch.equal(w, dense.blocks[0].ffn.up.weight.t()) for w in moe.blocks[0].ffn.up.weight)  # [E, in, out]


def test_warm_started_adaptive_model_starts_at_the_cap(tmp_path):
    """ACT fine-tunes from a fixed-depth checkpoint with a fresh halting unit (bias -3: ponder to the cap
    first), not the fixed model's untrained one (bias -1)."""
    fixed, act = warm_started(tmp_path, "fixed2", "act_tau0.01")
    assert act.halting.linear.bias.eq(-3.0).all()
    assert torch.equal(act.blocks[0].ffn.up.weight, fixed.blocks[0].ffn.up.weight)


def test_routing_by_pass_information_on_hand_made_routing():
    # input "1", answer "0": positions '.', '1', '=' (3 characters); 2 passes, 2 experts.
    # run A: the expert is the pass, whatever the character -> I(expert; pass) = 1 bit, I(expert; char) = 0
    ex = [{"input": "1", "answer": "0", "experts": [[0, 1], [0, 1], [0, 1]]}]
    a = {"max_steps": 2, "experts": 2, "splits": {"test": {"examples": ex}}}
    r = metrics.routing_by_pass(a)
    assert r["mi_pass"] == pytest.approx(1.0) and r["mi_char"] == pytest.approx(0.0)
    assert r["mi_pass_given_char"] == pytest.approx(1.0) and r["share"] == [[1.0, 0.0], [0.0, 1.0]]
    # run B: '.' always goes to expert 0, the rest to 1, and position '=' halted after one pass (-1):
    # assignments (char, pass, expert): (.,0,0) (.,1,0) (1,0,1) (1,1,1) (=,0,1) -> the character decides
    ex = [{"input": "1", "answer": "0", "experts": [[0, 0], [1, 1], [1, -1]]}]
    r = metrics.routing_by_pass({**a, "splits": {"test": {"examples": ex}}})
    assert r["assignments"] == 5 and r["mi_pass_given_char"] == pytest.approx(0.0)
    assert r["mi_char"] == pytest.approx(r["h_expert"])  # H(expert) = H(2/5, 3/5)
    assert r["h_expert"] == pytest.approx(-(0.4 * math.log2(0.4) + 0.6 * math.log2(0.6)))


def test_routing_by_pass_null_separates_the_pass_from_the_character():
    """5.5's verdict reads I(expert; pass | character) against passes shuffled within each character: routing
    that follows the pass (80 % of the time) stands clear of that null; routing by character alone does not."""
    rng = np.random.default_rng(0)

    def run(expert_of):  # 60 examples of 4 random bits, 2 passes at each of the 6 routed positions, 2 experts
        ex = []
        for _ in range(60):
            bits = "".join(rng.choice(["0", "1"], 4))
            text = "." + bits + "="
            ex.append({"input": bits, "answer": "0",
                       "experts": [[expert_of(ch, n) for n in range(2)] for ch in text]})
        a = {"max_steps": 2, "experts": 2, "splits": {"test": {"examples": ex}}}
        return metrics.routing_by_pass(a), metrics.routing_by_pass_null(a)

    by_pass, null = run(lambda ch, n: n if rng.random() < 0.8 else int(rng.integers(2)))
    assert null["observed"] == pytest.approx(by_pass["mi_pass_given_char"])
    assert null["observed"] > null["null_q95"] and null["p_value"] <= 0.05
    by_char, null = run(lambda ch, n: int(ch == "1"))
    assert by_char["mi_pass_given_char"] == pytest.approx(0.0) and null["p_value"] > 0.5


def test_the_5_5_verdict_names_its_seed_and_is_counted_over_every_seed(tmp_path):
    models = "fixed1,fixed2,fixed2_moe4,act_tau0.001_moe4"
    for seed in (0, 1):
        assert act.main(["--budget", "tiny", "--tasks", "parity", "--models", models, "--seed", str(seed),
                         "--out", str(tmp_path / f"seed-{seed}")]) == 0
    report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "fixed2_moe4 (seed 0): the most used expert" in text
    assert "Over 2 seeds, fixed2_moe4: I(expert; pass | character)" in text and " of 2 seeds." in text


def test_lab_end_to_end_tiny(tmp_path, render_html):
    assert act.main(["--budget", "tiny", "--out", str(tmp_path)]) == 0
    for name in ("report.md", "act.html", "figures/accuracy_vs_compute.png", "figures/halting_by_difficulty.png",
                 "figures/tau_tradeoff.png", "figures/per_example_compute.png", "parity-act_tau0.01/metrics.jsonl",
                 "figures/moe_routing_by_pass.png", "parity-act_tau0.001_moe4/analysis.json",
                 "parity-exit0.9/analysis.json", "payoff.json", "figures/extrapolation.png",
                 "parity-loop_act/analysis.json"):
        assert (tmp_path / name).exists(), name
    a = json.loads((tmp_path / "parity-act_tau0.01" / "analysis.json").read_text())
    assert {"test", "lengthgen"} <= set(a["splits"]) and a["splits"]["test"]["macs_per_example"] > 0
    ponder = tmp_path / "parity-ponder_lp0.2" / "metrics.jsonl"
    metrics = [json.loads(line) for line in ponder.read_text().splitlines()]
    assert {"step", "split", "loss", "tokens", "macs", "wall_s"} <= set(metrics[-1])
    assert "run_blocks" in lab_diff("act")
    assert "5.5 — a mixture of experts inside the shared block" in (tmp_path / "report.md").read_text()
    assert "parity: thinking longer than in training" in (tmp_path / "report.md").read_text()
    loop = json.loads((tmp_path / "parity-loop_act" / "analysis.json").read_text())
    assert loop["looped"] and {"lengthgen", "lengthgen_capped"} <= set(loop["splits"])
    dom, _ = render_html(tmp_path / "act.html")
    assert "act_tau0.01" in dom and "passes at answer" in dom


def looped(halting="horizon", max_steps=3, **kw):
    from nnlabs.labs.act.looped import LoopedDepth

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, block_size=6, n_layer=1, n_head=2, n_embd=C)
    return LoopedDepth(cfg, ActConfig(halting=halting, max_steps=max_steps, window=2, **kw))


def test_looped_model_runs_beyond_its_training_length_and_cap():
    # block_size 6 and a cap of 3 passes in training; at evaluation a row of 10 runs up to T = 10 passes
    m = looped().eval()
    idx = torch.randint(V, (2, 10))
    logits, _ = m(idx)
    assert logits.shape == (2, 10, V)
    assert m.halting.steps[0].tolist() == list(range(1, 11))  # horizon: position t halts after t + 1 passes
    assert m.act.max_steps == 3  # the training config is back after the forward
    m.capped = True  # the same weights held to the training cap
    m(idx)
    assert m.halting.steps[0].tolist() == [1, 2, 3] + [3] * 7
    m.capped = False
    m.train()  # training keeps the training cap
    m(idx)
    assert m.halting.steps.max() == 3


def test_looped_act_takes_more_passes_when_allowed():
    m = looped("act", max_steps=3, halt_bias=-6.0)  # h ~ 0.0025: no position halts before the cap
    idx = torch.randint(V, (1, 7))
    m(idx)
    assert m.halting.steps.eq(3).all()
    m.eval()
    m(idx)
    assert m.halting.steps.eq(7).all()


def test_looped_model_is_position_free_and_renormalises_its_state():
    m = looped("fixed", max_steps=4).eval()
    m.capped = True  # 4 passes whatever the row's length
    # no position embedding: after 4 passes through a window of two, position t depends on t-4..t only, so
    # the same characters shifted by one position give the same outputs from position 4 on
    a = torch.tensor([[7, 7, 7, 7, 5, 6, 5, 5, 6]])
    b = torch.cat([torch.tensor([[7]]), a], 1)
    assert torch.allclose(m(a)[0][0, 4:], m(b)[0][0, 5:], atol=1e-5)
    calls = scripted(m, None)
    m(a)
    s = calls[-1][2]  # [R, C] the last pass's new states
    assert torch.allclose(s.mean(-1), torch.zeros(len(s)), atol=1e-5)
    assert torch.allclose(s.var(-1, unbiased=False), torch.ones(len(s)), atol=1e-3)


def test_tasks_side_by_side_give_the_numbers_of_one_after_another(tmp_path, monkeypatch):
    """With two cores the lab runs its tasks' curricula in two processes; each run is seeded on its own, so
    every number is the one the tasks give run one after another (one core, as under the sweep)."""
    two_tasks = {t: ("fixed1", "fixed2") for t in ("parity", "addition")}
    budget = dataclasses.replace(experiment.BUDGETS["tiny"], tasks=two_tasks)
    monkeypatch.setitem(experiment.BUDGETS, "tiny", budget)
    analyses = {}
    for cores in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", cores)
        assert act.main(["--budget", "tiny", "--out", str(tmp_path / cores)]) == 0
        analyses[cores] = {run.name: {k: v for k, v in json.loads((run / "analysis.json").read_text()).items()
                                      if k != "train_s"} for run in (tmp_path / cores).glob("*-*")}
    assert len(analyses["1"]) == 6  # fixed1, fixed2 and its early exit, on each task
    assert analyses["2"] == analyses["1"]


def test_looped_models_alone_get_their_report(tmp_path):
    assert act.main(["--budget", "tiny", "--models", "loop_horizon,loop_act", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "parity: thinking longer than in training" in text and "| loop_act (cap T) |" in text
    assert "| fixed" not in text  # no fixed model ran, so none is shown beside them
    assert (tmp_path / "figures" / "extrapolation.png").exists()


def test_wavefront_keeps_a_position_waiting_until_the_start_reaches_it():
    m = looped("wavefront", max_steps=3).eval()
    calls = scripted(m, None)
    idx = torch.randint(V, (1, 6))
    m(idx)
    assert m.halting.steps[0].tolist() == [2, 3, 4, 5, 6, 6]  # t + 2 passes, at most T = 6
    for n, rows, s, state in calls:
        waiting = rows % 6 > n  # [R] positions the start token's information has not reached
        assert torch.equal(s[waiting], state[rows][waiting])
        assert not torch.allclose(s[~waiting], state[rows][~waiting])


def test_pondering_slopes_and_the_ponder_bar_on_hand_checked_runs():
    from nnlabs.labs.act.report import difficulty_slopes, ponder_bar

    def run(seed, kind, per_digit, acc=1.0, passes=3.0):
        # answers of two characters; passes per answer position = 1 + per_digit * digits (+ seed's offset)
        n = [1 + per_digit * d + seed for d in (1, 2, 3)]
        ex = [{"digits": d, "carries": d % 2, "answer": "00", "steps": [1, 1, n[d - 1], n[d - 1]]}
              for d in (1, 2, 3) for _ in range(4)]
        return {"seed": seed, "kind": kind, "max_steps": 8, "config": {"act": {"beta": 1.0, "prior": 0.4}},
                "splits": {"test": {"examples": ex, "acc": acc, "steps_answer": passes}}}

    lines = difficulty_slopes("addition", {"act_x": [run(s, "act", 2.0) for s in range(3)],
                                           "fixed8": [run(s, "fixed", 0.0) for s in range(3)]})
    row = next(line for line in "\n".join(lines).splitlines() if line.startswith("| act_x"))
    assert "+2.00 ± 0.00 (rises)" in row and "fixed8" not in "".join(lines)
    # >= 99 % within 60 % of the cap of 8 (4.8 passes at the answer), on the seeds' means
    met = ponder_bar([("lp0.4", [run(s, "ponder", 0, 0.995, 4.5) for s in range(3)])])
    assert "met by lp0.4 (99.5% at 4.50 passes)" in met[0]
    missed = ponder_bar([("lp0.2", [run(s, "ponder", 0, 0.995, 5.5) for s in range(3)]),
                         ("lp0.6", [run(s, "ponder", 0, 0.90, 3.5) for s in range(3)])])
    assert "**not met**" in missed[0] and "cheapest setting that accurate is lp0.2" in missed[0]
    assert "most accurate within the passes is lp0.6" in missed[0]
