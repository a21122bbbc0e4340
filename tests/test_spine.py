"""The spine: makemore-compatible data, the models' interface, MAC counting, the trainer's guarantees."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nnlabs.cli import main as cli
from nnlabs.spine.data import SequenceData, Vocab, create_datasets, encode_words, read_words
from nnlabs.spine.errors import UserError
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import CountBigram, ModelConfig, Transformer, build_model
from nnlabs.spine.train import TrainConfig, evaluate, evaluate_parts, train

# ----------------------------------------------------------------------------- data


def test_split_and_vocab_reproduce_makemore(names_path):
    data = create_datasets(names_path)
    assert data.test_words[:5] == ["kalub", "shaima", "sthefany", "jakyri", "emanuella"]
    assert (len(data.train_words), len(data.test_words)) == (31033, 1000)
    assert len(data.vocab) == 27 and data.block_size == 16
    assert data.vocab.itos[:3] == [".", "a", "b"]


def test_encoding_is_makemores():
    v = Vocab("abc")
    d = encode_words(["cab"], v, 5)
    assert d.x.tolist() == [[0, 3, 1, 2, 0]]
    assert d.y.tolist() == [[3, 1, 2, 0, -1]]


def test_special_tokens_encode_as_one_token():
    v = Vocab("ab", specials=["<CALL>"])
    ids = v.encode("a<CALL>b")
    assert ids == [1, 3, 2] and v.decode(ids) == "a<CALL>b"


@pytest.mark.parametrize("content, message", [
    (b"", "no non-empty lines"),
    (b"\n  \n", "no non-empty lines"),
    (b"ab\x00cd\n", "binary"),
    (b"caf\xe9\n", "not valid UTF-8"),
    (b"a" * 600 + b"\n", "600 characters"),
])
def test_bad_input_files_get_one_clear_error(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_words(p)


def test_missing_file_and_too_small_block_size(tmp_path, tiny_corpus, capsys):
    with pytest.raises(UserError, match="does not exist"):
        read_words(tmp_path / "nope.txt")
    with pytest.raises(UserError, match="--block-size"):
        create_datasets(tiny_corpus, block_size=4)
    assert cli(["train", "-i", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


# ----------------------------------------------------------------------------- models


def test_count_bigram_nll_matches_hand_computation():
    # corpus "ab", "b": pairs .->a a->b b->. .->b b->.   (vocab . a b, add-one smoothing)
    v = Vocab("ab")
    d = encode_words(["ab", "b"], v, 3)
    model = CountBigram(ModelConfig(vocab_size=3), alpha=1.0).fit(d.x, d.y)
    # rows with smoothing: '.': a=2 b=2 .=1 (of 5); 'a': b=2 (of 4); 'b': .=3 (of 5)
    expected = -(math.log(2 / 5) + math.log(2 / 4) + math.log(3 / 5) + math.log(2 / 5) + math.log(3 / 5)) / 5
    _, loss = model(d.x, d.y)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["bigram", "mlp", "transformer"])
def test_every_model_shapes_gradients_and_learning(kind, tiny_corpus, tmp_path):
    data = create_datasets(tiny_corpus)
    torch.manual_seed(0)
    model = build_model(kind, ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, n_embd=16,
                                          n_embd2=16, n_layer=1, n_head=2))
    logits, loss = model(data.train.x[:4], data.train.y[:4])
    assert logits.shape == (4, data.block_size, len(data.vocab))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    lr = 0.1 if kind == "bigram" else 1e-2  # a lookup table takes big steps; Adam moves each entry ~lr per step
    records = train(model, data.train, data.test, TrainConfig(max_steps=60, eval_interval=59, batch_size=16,
                                                              learning_rate=lr, warmup_steps=5),
                    tmp_path, progress=False)
    val = [r["loss"] for r in records if r["split"] == "val"]
    assert val[-1] < val[0] - 0.5


def test_transformer_macs_are_counted_from_shapes():
    cfg = ModelConfig(vocab_size=27, block_size=16)
    model = Transformer(cfg)
    B, T, C, L = 3, 16, cfg.n_embd, cfg.n_layer
    with count_macs(model) as c:
        model(torch.zeros(B, T, dtype=torch.long))
    per_layer = B * T * (3 * C * C + C * C + 8 * C * C) + B * T * (T + 1) * C  # qkv, proj, ffn, attention
    assert c.macs == L * per_layer + B * T * C * cfg.vocab_size


def test_evaluate_parts_gives_the_whole_sets_numbers_and_each_parts_loss():
    vocab, words = Vocab("abcde"), ["abc", "de", "a", "bcd", "eab", "c", "dd", "b"]
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(vocab), block_size=5, n_layer=1, n_head=2, n_embd=16))
    parts = {"first": encode_words(words[:4], vocab, 5), "rest": encode_words(words[4:], vocab, 5)}
    loss, macs, per_part = evaluate_parts(model, parts, batch_size=2)
    # the parts' batches are the whole set's batches (2 divides each part), summed in the same order
    assert (loss, macs) == evaluate(model, encode_words(words, vocab, 5), batch_size=2)
    assert per_part == {name: evaluate(model, data, batch_size=2)[0] for name, data in parts.items()}
    assert per_part["first"] != per_part["rest"]


# ----------------------------------------------------------------------------- trainer


def _tiny_run(tmp_path, corpus, name, max_steps=40, packed=False, **kw):
    data = create_datasets(corpus)
    torch.manual_seed(1)
    model = build_model("transformer", ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size,
                                                   n_layer=1, n_head=2, n_embd=16, dropout=0.1, packed=packed))
    cfg = TrainConfig(max_steps=max_steps, eval_interval=10, batch_size=8, warmup_steps=5, seed=7)
    train(model, data.train, data.test, cfg, tmp_path / name, progress=False, **kw)
    return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def test_a_labs_own_validation_pass_replaces_the_trainers(tmp_path, tiny_corpus):
    calls = []

    def val_pass(model):
        calls.append(model)
        return 1.25, 99.0

    records = _tiny_run(tmp_path, tiny_corpus, "own_val", max_steps=20, evaluate_val=val_pass)
    val = [r for r in records if r["split"] == "val"]
    assert [(r["loss"], r["macs"]) for r in val] == [(1.25, 99.0)] * 3 and len(calls) == 3


def _strip_wall(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


@pytest.mark.parametrize("packed", [False, True])
def test_same_seed_same_metrics(tmp_path, tiny_corpus, packed):
    a, b = (_strip_wall(_tiny_run(tmp_path, tiny_corpus, name, packed=packed)) for name in "ab")
    assert a == b


@pytest.mark.parametrize("packed", [False, True])
def test_resume_continues_the_same_trajectory(tmp_path, tiny_corpus, monkeypatch, packed):
    full = _tiny_run(tmp_path, tiny_corpus, "full", packed=packed)

    # interrupt "cut" just after the step-20 checkpoint, mid-way to the next evaluation
    import nnlabs.spine.train as trainer
    real_batch = SequenceData.batch
    calls = {"n": 0}

    def dying_batch(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt
        return real_batch(self, *a, **k)

    monkeypatch.setattr(SequenceData, "batch", dying_batch)
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path, tiny_corpus, "cut", packed=packed)
    monkeypatch.setattr(SequenceData, "batch", real_batch)
    assert trainer.torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"] == 20
    resumed = _tiny_run(tmp_path, tiny_corpus, "cut", packed=packed, resume=True)
    assert _strip_wall(resumed) == _strip_wall(full)


def test_a_failed_checkpoint_write_keeps_the_last_good_one(tmp_path, monkeypatch):
    import nnlabs.spine.train as trainer

    path = tmp_path / "checkpoint.pt"
    trainer.atomic_save({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(trainer.torch, "save", broken_save)
    with pytest.raises(OSError):
        trainer.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["step"] == 1


# ----------------------------------------------------------------------------- CLI end to end


def test_cli_train_resume_and_sample(tmp_path, tiny_corpus, capsys):
    out = tmp_path / "run"
    args = ["train", "-i", str(tiny_corpus), "-o", str(out), "--type", "transformer", "--n-layer", "1",
            "--n-embd", "16", "--max-steps", "30", "--eval-interval", "10", "-b", "8"]
    assert cli(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["max_steps"] == 30 and config["model"]["n_layer"] == 1
    assert config["model"]["packed"]  # the transformer's default; the MLP's is off (test_cli_rejects_bad_flags)
    samples = (out / "samples.txt").read_text().splitlines()
    assert {line.split("\t")[0] for line in samples} == {"0", "10", "20", "29"}
    # a longer run is a different schedule: --resume refuses it unless --force (tests/test_reliability.py)
    assert cli(args[:-6] + ["--max-steps", "40", "--eval-interval", "10", "-b", "8", "--resume", "--force"]) == 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 39
    plain = ["train", "-i", str(tiny_corpus), "-o", str(tmp_path / "plain"), "--n-layer", "1", "--n-embd", "16",
             "-b", "8", "--eval-interval", "10"]
    assert cli(plain + ["--max-steps", "10", "--no-packed"]) == 0
    assert cli(plain + ["--max-steps", "20", "--resume", "--force"]) == 0  # resumes in the layout it started with
    assert not json.loads((tmp_path / "plain" / "config.json").read_text())["model"]["packed"]
    capsys.readouterr()
    assert cli(["sample", "-o", str(out), "-n", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert cli(["train", "-o", str(out), "--sample-only", "--num-samples", "3"]) == 0


def test_cli_rejects_bad_flags(tmp_path, tiny_corpus):
    with pytest.raises(SystemExit):
        cli(["train", "--type", "lstm"])
    assert cli(["train", "-i", str(tiny_corpus), "-o", str(tmp_path), "--max-steps", "0"]) == 2
    assert cli(["frobnicate"]) == 2
    mlp = ["train", "-i", str(tiny_corpus), "-o", str(tmp_path / "mlp"), "--type", "mlp", "--max-steps", "2"]
    assert cli(mlp + ["--packed"]) == 2  # its window would cross items
    assert cli(mlp) == 0 and not json.loads((tmp_path / "mlp" / "config.json").read_text())["model"]["packed"]


def test_batches_are_cut_after_their_longest_item_without_changing_loss_or_gradients():
    v = Vocab("abcdef")
    data = encode_words(["ab", "abc", "fedcbaab"], v, 12)
    x, y = data.batch(2, torch.Generator().manual_seed(0))
    assert x.shape[1] == int(data.extent.max()) or x.shape[1] < 12
    assert (y[:, -1] >= 0).any()  # the last kept column still has a target
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=len(v), block_size=12, n_layer=1, n_head=2, n_embd=8))
    full_x, full_y = data.x, data.y
    cut = int(data.extent.max())
    grads = []
    for xb, yb in ((full_x, full_y), (full_x[:, :cut], full_y[:, :cut])):
        model.zero_grad()
        _, loss = model(xb, yb)
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    assert cut == 9 and grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_packed_rows_hold_every_item_intact_in_fewer_positions():
    v = Vocab("abcdef")
    words = ["ab", "abc", "fedcbaab", "f", "cab", "dd", "e"]
    data = encode_words(words, v, 10)
    ix = torch.tensor([2, 0, 1, 3, 4, 5, 6, 1])
    x, y = data.pack(ix)
    assert x.shape[1] <= 10 and x.numel() < len(ix) * int(data.extent[ix].max())
    assert int((y >= 0).sum()) == int((data.y[ix] >= 0).sum())  # every target kept, none invented
    found = []
    for row_x, row_y in zip(x.tolist(), y.tolist()):  # each item = a start token, its characters, the end target
        starts = [t for t, tok in enumerate(row_x) if tok == 0 and row_y[t] >= 0]
        for a, b in zip(starts, starts[1:] + [len(row_x)]):
            found.append(v.decode(row_x[a:b]))
            assert row_y[a:b][:len(found[-1]) + 1][-1] == 0
    assert sorted(found) == sorted(words[i] for i in ix.tolist())


def test_a_packed_batch_has_the_same_loss_and_gradients_as_one_item_per_row(tmp_path):
    v = Vocab("abcdef")
    data = encode_words(["ab", "abc", "fedcbaab", "f", "cab", "dd", "e"], v, 10)
    ix = torch.tensor([2, 0, 1, 3, 4, 5, 6, 1])
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=len(v), block_size=10, n_layer=2, n_head=2, n_embd=8)
    packed, plain = Transformer(ModelConfig(**{**config.__dict__, "packed": True})), Transformer(config)
    plain.load_state_dict(packed.state_dict())
    results = []
    for model, (x, y) in ((packed, data.pack(ix)), (plain, (data.x[ix], data.y[ix]))):
        _, loss = model(x, y)
        loss.backward()
        results.append((loss.item(), [p.grad for p in model.parameters()]))
    assert data.pack(ix)[0].shape[0] < len(ix) and results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="--packed"):
        build_model("mlp", ModelConfig(vocab_size=len(v), packed=True))
    no_start = data.x.clone()
    no_start[:, 0] = 1  # items that do not start with token 0 cannot be told apart inside a row
    with pytest.raises(UserError, match="start with token 0"):
        train(packed, SequenceData(no_start, data.y), data, TrainConfig(max_steps=1), tmp_path, progress=False)


def test_cli_lab_diff_and_report_errors_are_clear(tmp_path, capsys):
    assert cli(["lab", "nosuchlab"]) == 2
    assert "unknown lab 'nosuchlab'" in capsys.readouterr().err
    assert cli(["report", "--runs", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["diff", "moe"]) == 0
    patch = capsys.readouterr().out
    assert "--- nnlabs.spine.models:FeedForward\n+++ nnlabs.labs.moe.layer:MoE" in patch
