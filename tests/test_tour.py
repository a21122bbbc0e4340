"""Part 3 lab: the diagnostics on hand-checked tensors, the recorder on a real MLP, the lab end to end."""

from __future__ import annotations

import importlib
import json

import matplotlib.pyplot as plt
import pytest
import torch

from nnlabs.labs import tour
from nnlabs.spine.models import ModelConfig, build_model
from nnlabs.spine.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_saturated_and_dead_fractions_by_hand():
    # 4 examples x 3 units. unit 0: saturated on every example (dead); unit 1: on 3 of 4; unit 2: never.
    a = torch.tensor([[0.99, -0.98, 0.10],
                      [-0.999, 0.975, -0.50],
                      [0.98, 0.99, 0.96],
                      [1.00, 0.20, -0.90]])
    stats = tour.saturation(a, threshold=0.97, share=0.75)
    assert stats["saturated"] == pytest.approx((4 + 3 + 0) / 12)
    assert stats["dead"] == pytest.approx(1 / 3)
    assert stats["mostly_dead"] == pytest.approx(2 / 3)
    assert tour.saturation(a, threshold=0.97, share=1.0)["mostly_dead"] == pytest.approx(stats["dead"])


def test_histogram_is_a_distribution_with_clamped_tails():
    h = tour.histogram(torch.tensor([-5.0, -1.0, 0.01, 1.0, 5.0]), -1.0, 1.0, bins=4)
    assert sum(h) == pytest.approx(1.0)
    assert h == pytest.approx([0.4, 0.0, 0.2, 0.4])


def test_recorder_sees_every_layer_and_leaves_no_hooks(names_path, tmp_path):
    from nnlabs.spine.data import create_datasets

    data = create_datasets(names_path)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, n_embd=8, n_embd2=20,
                      mlp_layers=3, init="naive")
    model = build_model("mlp", cfg)
    rec = tour.DeepMLPRecorder(model, every=2)
    try:
        train(model, data.train, data.test, TrainConfig(max_steps=5, eval_interval=100, batch_size=8, device="cpu"),
              tmp_path / "run", progress=False)
    finally:
        rec.close()
    assert [r["step"] for r in rec.records] == [0, 2, 4]  # evaluation forwards are not recorded
    assert all(len(r["layers"]) == 3 and "grad_hist" in r["layers"][0] for r in rec.records)
    assert len(rec.update_ratio) == 5 and all(len(u) == 3 for u in rec.update_ratio)
    assert rec.records[0]["layers"][0]["saturated"] > 0.5  # N(0,1) weights on 16 x 8 inputs saturate tanh
    # after close() nothing fires: neither the forward hooks nor the global optimizer hooks
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(data.train.x[:4], data.train.y[:4])[1].backward()
    opt.step()
    assert len(rec.records) == 3 and len(rec.update_ratio) == 5


def test_lab_end_to_end_tiny(tmp_path, render_html, monkeypatch):
    out = tmp_path / "tour"
    assert tour.main(["--budget", "tiny", "--out", str(out)]) == 0
    runs = ["bigram_count", "bigram_learned", *tour.DEEP_RUNS, "mlp", "transformer"]
    for run in runs:
        for f in ("config.json", "metrics.jsonl", "samples.txt"):
            assert (out / run / f).stat().st_size > 0, (run, f)
    for name in ("delta1_bigram", "delta2_activations", "delta2_gradients", "delta2_saturation",
                 "delta2_update_ratio", "delta3_attention"):
        assert (out / "figures" / f"{name}.png").exists() and (out / "figures" / f"{name}.svg").exists()
    count = json.loads((out / "bigram_count" / "analysis.json").read_text())
    assert 2.3 < count["test_nll"] < 2.6  # makemore's bigram: ~2.45 nats on names
    deep = json.loads((out / "mlp_deep_naive" / "analysis.json").read_text())
    assert deep["records"][0]["layers"][0]["saturated"] > 0.5  # the naive init starts saturated
    bn = json.loads((out / "mlp_deep_batchnorm" / "analysis.json").read_text())
    assert bn["records"][0]["layers"][0]["saturated"] < 0.2  # BatchNorm keeps it in the linear range
    metrics = [json.loads(line) for line in (out / "mlp_deep_naive" / "metrics.jsonl").read_text().splitlines()]
    assert "dead_frac" in metrics[-1] and "saturated_frac" in metrics[-1]
    report = (out / "report.md").read_text()
    assert f"{count['test_nll']:.4f}" in report and "## 3. Local → attention" in report
    payoff = json.loads((out / "payoff.json").read_text())
    assert {p["run"] for p in payoff["points"]} == set(runs) and payoff["points"][0]["seed"] == 3407
    # report() regenerates the report from the run directories alone (figures skipped here: slow to render)
    (out / "report.md").unlink()
    monkeypatch.setattr(importlib.import_module("nnlabs.labs.tour.report"), "save",
                        lambda fig, path, source=None: plt.close(fig))
    tour.report(out)
    assert (out / "report.md").read_text() == report
    # the explorable renders: one row per hidden layer, samples in the table
    dom, shot = render_html(out / "tour.html")
    assert dom.count('class="layer"') == tour.DEEP_MODEL["mlp_layers"]
    assert "dead units" in dom and "<td>" in dom
    assert shot.exists()


def test_diff_shows_counting_to_learning():
    from nnlabs.cli import lab_diff

    diff = lab_diff("tour")
    assert "-class CountBigram" in diff and "+class Bigram" in diff
    assert "+class DeepMLPRecorder" in diff and "+def saturation" in diff
