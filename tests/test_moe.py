"""Part 4, the MoE lab: sparse dispatch against a dense oracle, the balancing losses and capacity on
hand-checked cases, routing metrics on hand-made assignments, collapse and its cures, the lab end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnlabs.cli import lab_diff
from nnlabs.labs import moe as lab
from nnlabs.labs.moe.experiment import build_model
from nnlabs.labs.moe.layer import (
    MoE,
    MoEConfig,
    capacity_mask,
    dense_reference,
    moe_transformer,
    switch_balance_loss,
    update_balance_bias,
)
from nnlabs.labs.moe.metrics import max_violation, routing_metrics, same_expert_rate
from nnlabs.report.info import permutation_null
from nnlabs.spine.errors import UserError
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import ModelConfig
from nnlabs.spine.train import param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def share_of(chosen: torch.Tensor, n_experts: int) -> torch.Tensor:
    """[E] the share of the assignments in `chosen` each expert got, counted independently of the layer."""
    return torch.tensor([float((chosen == e).sum()) for e in range(n_experts)]) / chosen.numel()


def mean_weight(n: int) -> torch.Tensor:
    """Every position's share in a mean over n tokens (the layer gives padding 0)."""
    return torch.full((n,), 1 / n)


def make_moe(k=1, E=4, cf=0.0, **kw) -> MoE:
    torch.manual_seed(0)
    m = MoE(ModelConfig(n_embd=16), 0, MoEConfig(n_experts=E, top_k=k, capacity_factor=cf, **kw))
    for p in m.parameters():  # the spine's 0.02 init makes every expert nearly zero; spread them out
        torch.nn.init.normal_(p, 0.0, 0.3)
    return m


# ----------------------------------------------------------------------------- the mechanism


@pytest.mark.parametrize("k, cf", [(1, 0.0), (2, 0.0), (1, 0.5), (2, 0.6)])
def test_sparse_dispatch_equals_dense_reference_forward_and_backward(k, cf):
    m = make_moe(k=k, E=4, cf=cf)
    x = torch.randn(3, 7, 16)
    upstream = torch.randn(3, 7, 16)
    results = []
    for fn in (m, lambda t: dense_reference(m, t)):
        xi = x.clone().requires_grad_(True)
        m.zero_grad()
        y = fn(xi)
        (y * upstream).sum().backward()
        results.append((y.detach(), xi.grad, {n: p.grad.clone() for n, p in m.named_parameters()}))
    (ys, gxs, gps), (yd, gxd, gpd) = results
    # float32 sums taken in a different order: equal to a few ulps, not bit for bit
    torch.testing.assert_close(ys, yd, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gxs, gxd, rtol=1e-5, atol=1e-6)
    for name in gpd:
        torch.testing.assert_close(gps[name], gpd[name], rtol=1e-5, atol=1e-5, msg=name)
    if cf:
        assert not m.stats["kept"].all()  # capacity really dropped something in this case


def test_compute_scales_with_k_not_with_the_number_of_experts():
    x = torch.randn(4, 8, 16)

    def expert_macs(k, E):
        m = make_moe(k=k, E=E)
        with count_macs(m) as c:
            m(x)
        return c.macs - x.numel() // 16 * 16 * E  # minus the router's own N x C x E

    one = expert_macs(1, 4)
    assert one == 32 * 2 * 16 * 64  # every token through exactly one C -> 4C -> C expert
    assert expert_macs(1, 8) == one
    assert expert_macs(2, 8) == 2 * one


def test_balance_loss_hand_computed_and_minimised_by_uniform_routing():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    chosen = probs.argmax(-1, keepdim=True)
    # f = (2/3, 1/3), P = (0.6, 0.4): L = 2 * (2/3 * 0.6 + 1/3 * 0.4) = 16/15
    assert switch_balance_loss(probs, share_of(chosen, 2), mean_weight(3)).item() == pytest.approx(16 / 15)
    # token 1 as padding (weight 0, no share) counts in neither f nor P: f = (1/2, 1/2), P = (0.6, 0.4), L = 1
    padded = torch.tensor([0.5, 0.0, 0.5])
    assert switch_balance_loss(probs, torch.tensor([0.5, 0.5]), padded).item() == pytest.approx(1.0)
    # with hard routing f = P, L = E * sum_i P_i^2 >= 1, with equality only when every expert gets 1/E
    E = 4
    uniform = torch.eye(E).repeat(5, 1)
    balanced = switch_balance_loss(uniform, share_of(uniform.argmax(-1, keepdim=True), E), mean_weight(20))
    assert balanced.item() == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        hard = torch.eye(E)[torch.randint(0, E, (20,), generator=g)]
        if hard.sum(0).min() < hard.sum(0).max():
            assert switch_balance_loss(hard, share_of(hard.argmax(-1, keepdim=True), E), mean_weight(20)).item() > 1.0


def test_the_layer_reports_its_aux_loss_to_the_spine():
    m = make_moe(k=1, E=4, balance_alpha=0.5, z_alpha=0.0)
    x = torch.randn(2, 5, 16)
    m(x)
    probs, chosen = m.stats["probs"], m.stats["chosen"]
    switch = switch_balance_loss(probs, share_of(chosen, 4), mean_weight(10))
    assert m.aux_loss.item() == pytest.approx(0.5 * switch.item())
    # the layer reads log Z off its log-softmax (h_0 - log p_0): the z-loss of the router's logits all the same
    m = make_moe(k=1, E=4, balance_alpha=0.0, z_alpha=1.0)
    m(x)
    assert m.aux_loss.item() == pytest.approx(m.router(x.view(-1, 16)).logsumexp(-1).square().mean().item(), rel=1e-5)
    model = build_model(ModelConfig(vocab_size=5, block_size=6, n_layer=2, n_head=2, n_embd=16),
                        MoEConfig(n_experts=4))
    idx = torch.randint(0, 5, (3, 6))
    _, loss = model(idx, idx)
    assert loss.item() == pytest.approx((model.diagnostics["nll"] + model.diagnostics["aux_loss"]).item())
    assert {"blocks.0.ffn", "blocks.1.ffn"} <= set(model.diagnostics)


def test_noisy_top_k_explores_while_training_only():
    m = make_moe(k=1, E=4, noise_std=1.0)
    x = torch.randn(2, 16, 16)
    m.train()
    first = m(x).clone()
    assert not torch.equal(first, m(x))  # fresh noise, different experts for some tokens
    m.eval()
    assert torch.equal(m(x), m(x))


def test_capacity_drops_exactly_the_overflow_tokens():
    # top-1, E=2, 5 tokens, cf=1: capacity = ceil(1 * 1 * 5 / 2) = 3; expert 0 is asked by tokens 0,1,2,4
    chosen = torch.tensor([[0], [0], [0], [1], [0]])
    assert capacity_mask(chosen, 2, 1.0).view(-1).tolist() == [True, True, True, True, False]
    # top-2, cf=0.5: capacity = ceil(0.5 * 2 * 3 / 2) = 2; first choices queue before second choices
    chosen = torch.tensor([[0, 1], [0, 1], [1, 0]])
    assert capacity_mask(chosen, 2, 0.5).tolist() == [[True, True], [True, False], [True, False]]
    assert capacity_mask(chosen, 2, 0.0).all()
    # a token whose every assignment is dropped gets zero from the layer: the residual carries it
    m = make_moe(k=1, E=2, cf=0.3)
    x = torch.randn(1, 10, 16)
    y = m(x).view(10, 16)
    dropped = ~m.stats["kept"].view(-1)
    capacity = math.ceil(0.3 * 10 / 2)
    counts = torch.bincount(m.stats["chosen"].view(-1), minlength=2)
    assert int(dropped.sum()) == int((counts - capacity).clamp_min(0).sum()) > 0
    assert torch.all(y[dropped] == 0) and torch.all(y[~dropped].abs().sum(-1) > 0)


def test_routing_metrics_on_hand_made_assignments():
    E = 4
    chosen = torch.tensor([[0], [0], [0], [0], [1], [1]])
    probs = torch.full((6, E), 0.25)  # uniform router: 2 bits of entropy per token
    kept = torch.tensor([[True]] * 5 + [[False]])
    domain = np.array([0, 0, 1, 1, 2, 2])
    char = np.array([3, 3, 3, 3, 7, 7])  # the expert is a function of the character
    cls = np.array([1, 1, 1, 1, 2, 2])
    m = routing_metrics(chosen, probs, kept, domain, cls, char, E, prev_top1=np.array([0, 1, 0, 0, 1, 2]))
    assert m["utilisation"] == pytest.approx([4 / 6, 2 / 6, 0, 0], abs=1e-4)
    assert m["load_balance_ratio"] == pytest.approx((4 / 6) / (1 / 4))
    assert m["domain_expert"] == [[2, 0, 0, 0], [2, 0, 0, 0], [0, 2, 0, 0]]
    assert m["class_expert"][1] == [4, 0, 0, 0] and m["class_expert"][2] == [0, 2, 0, 0]
    assert m["routing_entropy"] == pytest.approx(2.0)
    assert m["utilisation_entropy"] == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert m["dropped_frac"] == pytest.approx(1 / 6)
    assert m["instability"] == pytest.approx(2 / 6)
    assert m["mi_char"] == pytest.approx(m["utilisation_entropy"])  # the character tells everything
    assert m["mi_domain_given_char"] == pytest.approx(0.0)
    assert m["mi_domain"] == pytest.approx(m["mi_char"])  # here the domain does too


def _train_biased(alpha: float, bias_rate: float, steps: int = 100, bias_sign: bool = False) -> list[float]:
    """One MoE layer whose router is deliberately biased to expert 0, trained to copy a random linear map."""
    torch.manual_seed(0)
    m = MoE(ModelConfig(n_embd=16), 0, MoEConfig(n_experts=4, balance_alpha=alpha, z_alpha=0.0,
                                                  bias_rate=bias_rate, bias_sign=bias_sign))
    offset = torch.randn(16)
    with torch.no_grad():
        m.router.weight[0] = 3 * offset / offset.norm()
    teacher = torch.nn.Linear(16, 16)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    ratios = []
    for _ in range(steps):
        x = torch.randn(8, 16, 16) + offset
        loss = (m(x) - teacher(x).detach()).pow(2).mean() + (m.aux_loss if m.aux_loss is not None else 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        load = torch.bincount(m.stats["chosen"].view(-1), minlength=4) / m.stats["chosen"].numel()
        ratios.append(float(load.max() * 4))
    assert abs(float(m.balance_bias.mean())) < 1e-6  # re-centred after every update
    return ratios


def test_biased_router_collapses_without_balancing_and_recovers_with_it():
    none = _train_biased(0.0, 0.0)
    assert min(none) > 3.9  # (almost) every token on expert 0, the whole time: collapse
    switch = _train_biased(0.1, 0.0)
    assert switch[0] == pytest.approx(4.0) and switch[-1] < 2.0
    # the loss-free bias breaks the collapse too, but a saturated router flips all tokens at once, so the
    # ratio oscillates instead of settling (docs/moe.md)
    sign = _train_biased(0.0, 1e-2, bias_sign=True)
    assert min(sign) < 2.0 and np.mean(sign[-50:]) < 3.5
    proportional = _train_biased(0.0, 1e-2)
    assert min(proportional) < 2.0


def test_a_bias_of_minus_infinity_removes_an_expert_whatever_the_balancing():
    # the report's expert-removal control sets b_e = -inf on runs without loss-free balancing too
    m = make_moe(k=2, E=4)
    x = torch.randn(2, 16, 16)
    m(x)
    assert (m.stats["chosen"] == 1).any()
    m.balance_bias[1] = -math.inf
    m(x)
    assert not (m.stats["chosen"] == 1).any()


def test_loss_free_bias_update_hand_computed():
    # loads (3, 1, 0, 0): mean 1, e = (mean - load) / mean = (-2, 0, 1, 1), already mean 0
    load = torch.tensor([3.0, 1.0, 0.0, 0.0])
    bias = torch.zeros(4)
    update_balance_bias(bias, load, 0.1, sign=False)
    assert bias.tolist() == pytest.approx([-0.2, 0.0, 0.1, 0.1])
    # sign(e) = (-1, 0, 1, 1) has mean 0.25: re-centred to (-1.25, -0.25, 0.75, 0.75) * u
    bias = torch.zeros(4)
    update_balance_bias(bias, load, 0.1, sign=True)
    assert bias.tolist() == pytest.approx([-0.125, -0.025, 0.075, 0.075])
    assert max_violation([3, 1, 0, 0]) == pytest.approx(2.0) and max_violation([2, 2, 2, 2]) == 0.0


def test_padding_counts_in_no_balancing_statistic_and_changes_no_output():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=16),
                        MoEConfig(n_experts=4, balance_alpha=1.0, z_alpha=1.0))
    layer = model.blocks[0].ffn
    idx = torch.randint(0, 7, (3, 6))
    targets = idx.clone()
    targets[:, 4:] = -1  # the last two positions of every row are padding
    seen = []
    layer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    logits, _ = model(idx, targets)
    real = (targets >= 0).view(-1)
    probs, chosen, log_z = layer.stats["probs"], layer.stats["chosen"], layer.router(seen[0].view(-1, 16)).logsumexp(-1)
    n = int(real.sum())
    expected = switch_balance_loss(probs[real], share_of(chosen[real], 4), mean_weight(n)) + log_z[real].square().mean()
    assert layer.aux_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with_padding = switch_balance_loss(probs, share_of(chosen, 4), mean_weight(len(probs))) + log_z.square().mean()
    assert layer.aux_loss.item() != pytest.approx(with_padding.item(), rel=1e-5)
    # the mask changes statistics only: every position, padding included, is computed as before
    logits_unmasked, _ = model(idx)
    torch.testing.assert_close(logits, logits_unmasked)


def test_padding_adds_no_load_to_the_loss_free_update():
    # the loss-free bias moves by the real positions' load only: the same update as with the padding left out
    m = make_moe(k=2, E=4, balance_alpha=0.0, z_alpha=0.0, bias_rate=0.1)
    x = torch.randn(3, 6, 16)
    m.target_mask = torch.ones(3, 6, dtype=torch.bool)
    m.target_mask[:, 4:] = False
    m(x)
    real = m.target_mask.reshape(-1)
    expected = torch.zeros(4)
    update_balance_bias(expected, share_of(m.stats["chosen"][real], 4), 0.1, sign=False)
    assert m.balance_bias.tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    with_padding = torch.zeros(4)
    update_balance_bias(with_padding, share_of(m.stats["chosen"], 4), 0.1, sign=False)
    assert m.balance_bias.tolist() != pytest.approx(with_padding.tolist(), abs=1e-6)


def test_the_loss_free_bias_leaves_the_line_start_to_the_router():
    # position 0 has one hidden state in every line: with bias_skips_start it takes the top-k of p alone while b
    # steers every other position; an expert removed by the report (b = -inf) stays removed at the start too
    m = make_moe(k=1, E=4, balance_alpha=0.0, z_alpha=0.0, bias_skips_start=True).eval()
    x = torch.randn(3, 6, 16)
    by_router = m.route(x.reshape(-1, 16))[0].argmax(-1)  # [18] no bias yet: the router's own first choice
    other = next(e for e in range(4) if e not in by_router[::6].tolist())  # an expert no start takes
    m.balance_bias.fill_(-10.0)
    m.balance_bias[other] = 10.0  # every position but the starts goes to `other`
    y = m(x)
    starts = torch.zeros(18, dtype=torch.bool)
    starts[::6] = True
    assert m.stats["chosen"][starts, 0].tolist() == by_router[starts].tolist()
    assert (m.stats["chosen"][~starts, 0] == other).all()
    torch.testing.assert_close(y, dense_reference(m, x))  # the oracle routes the same
    m.balance_bias[by_router[0]] = -math.inf
    m(x)
    assert m.stats["chosen"][0, 0] != by_router[0]
    # rows that are not lines (ACT's loop hands the layer [rows, C]): every row is steered
    m(x.reshape(-1, 16))
    assert (m.stats["chosen"][:, 0] == other).all()
    # packed rows hold several lines, so position 0 of a row is not every line's start: refused, not misread
    with pytest.raises(UserError, match="one line per row"):
        build_model(ModelConfig(packed=True), MoEConfig(bias_rate=1e-3, bias_skips_start=True))
    # and without the switch the starts are steered as well
    m.moe.bias_skips_start = False
    m.balance_bias[by_router[0]] = -10.0
    m(x)
    assert (m.stats["chosen"][:, 0] == other).all()


def test_specialisation_control_on_hand_made_routing():
    rng = np.random.default_rng(0)
    char = rng.integers(0, 5, 600)
    domain = rng.integers(0, 3, 600)
    by_char = char % 4  # the expert reads only the character: the domain adds nothing beyond it
    null = permutation_null(by_char, domain, char, 100, seed=0)
    assert null["observed"] == pytest.approx(0.0) and null["p_value"] > 0.5
    by_domain = (char + domain) % 4  # the expert reads the domain too
    null = permutation_null(by_domain, domain, char, 100, seed=0)
    assert null["observed"] > null["null_q95"] and null["p_value"] < 0.05
    top1 = np.array([0, 0, 1, 1, 2, 2])
    rate = same_expert_rate(top1, np.array([0, 2, 4]), np.bincount(top1, minlength=4))
    assert rate == {"rate": 1.0, "uniform": 0.25, "utilisation": pytest.approx(1 / 3)}


# ----------------------------------------------------------------------------- the lab


def test_diff_is_a_short_patch_on_the_spine_ffn():
    diff = lab_diff("moe")
    assert "+class MoE(nn.Module):" in diff and "-class FeedForward(nn.Module):" in diff
    assert "ffn_factory=lambda c, layer: MoE(c, layer, moe)" in diff  # the wiring is part of the patch


@pytest.mark.slow
def test_lab_end_to_end_tiny(tmp_path, render_html):
    out = tmp_path / "moe"
    assert lab.main(["--budget", "tiny", "--out", str(out), "--threads", "1",
                     "--runs", "dense,top2_e4,top1_e8_nobal"]) == 0
    for run in ("dense", "top2_e4", "top1_e8_nobal"):
        for name in ("config.json", "metrics.jsonl", "samples.txt", "checkpoint.pt"):
            assert (out / run / name).exists(), (run, name)
    val = [json.loads(line) for line in (out / "top2_e4" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in val if r["split"] == "val"]
    assert {"macs", "wall_s", "val_loss_names", "val_loss_arith", "val_loss_code", "load_balance_ratio",
            "routing_entropy", "dropped_frac"} <= set(val[-1])
    assert "instability" in val[-1]
    analysis = json.loads((out / "top2_e4" / "analysis.json").read_text())
    assert len(analysis["evals"]) == len(val) and len(analysis["evals"][0]["layers"]) == 2
    text = (out / "report.md").read_text()
    assert "routing follows" in text and "honest gap" in text
    for fig in ("loss_curves", "loss_vs_compute", "routing_heatmaps", "balance_over_training",
                "routing_entropy", "val_loss_by_domain"):
        assert (out / "figures" / f"{fig}.png").exists() and (out / "figures" / f"{fig}.svg").exists()
    lab.report(out)  # regenerated from the run directories alone, without training
    assert (out / "report.md").read_text() == text
    # the same seed gives the same run to the last digit (wall time aside)
    again = tmp_path / "again"
    assert lab.main(["--budget", "tiny", "--out", str(again), "--threads", "1", "--runs", "top2_e4"]) == 0
    strip = lambda p: [{k: v for k, v in json.loads(line).items() if k != "wall_s"}  # noqa: E731
                       for line in p.read_text().splitlines()]
    assert strip(again / "top2_e4" / "metrics.jsonl") == strip(out / "top2_e4" / "metrics.jsonl")
    assert (again / "top2_e4" / "analysis.json").read_text() == (out / "top2_e4" / "analysis.json").read_text()
    dom, shot = render_html(out / "moe.html")
    assert "domain \\ expert" in dom and "expert 0" in dom and "top2_e4" in dom
    assert shot.exists()


@pytest.mark.slow
def test_lab_reports_loss_free_balancing_with_the_line_start(tmp_path):
    out = tmp_path / "moe"
    runs = ("top2_e8", "top2_e8_lossfree", "top2_e8_lossfree_nostart")
    assert lab.main(["--budget", "tiny", "--out", str(out), "--threads", "1", "--runs", ",".join(runs)]) == 0
    for run in runs:
        evals = json.loads((out / run / "analysis.json").read_text())["evals"]
        # the line start's share: one position per validation line among its real positions
        assert 0.0 < evals[-1]["start_share"] < 0.5
        # the share of the steps between two evaluations at which the start switched experts, per layer
        rates = [m["start_switch_rate"] for e in evals[1:] for m in e["layers"]]
        assert len(rates) == 2 * (len(evals) - 1) and all(0.0 <= r <= 1.0 for r in rates)
    text = (out / "report.md").read_text()
    assert "Loss-free balancing as published" in text and "line start switched experts" in text
    assert "top2_e8_lossfree_nostart minus top2_e8_lossfree (the published rule)" in text
    assert "not at the line start" in text


def test_expert_biases_get_no_weight_decay():
    """The experts' biases are one [E, out] tensor each: 2-D, yet biases, so AdamW must not decay them."""
    model = moe_transformer(ModelConfig(vocab_size=8, block_size=4, n_layer=1, n_embd=16), MoEConfig(n_experts=4))
    decay, plain = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in plain["params"]} >= {"blocks.0.ffn.up.bias", "blocks.0.ffn.down.bias"}
    assert "blocks.0.ffn.up.weight" in {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))
