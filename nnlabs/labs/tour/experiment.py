"""The tour's runs: delta 1 (counted and learned bigrams), delta 2 (three deep tanh MLPs under the
recorder) and delta 3 (the spine's MLP and transformer), each trained through `nnlabs.spine.train`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nnlabs.labs import lab_parser, run_config
from nnlabs.labs.tour.diagnostics import DeepMLPRecorder, latest_layer_means
from nnlabs.spine.data import create_datasets
from nnlabs.spine.models import CountBigram, ModelConfig, build_model
from nnlabs.spine.rundir import claim, finished
from nnlabs.spine.sample import NAMES_PROMPTS, sample_prompts
from nnlabs.spine.train import TrainConfig, evaluate, train, write_json

INPUT_FILE = "names.txt"
# run name -> (init, batchnorm, label)
DEEP_RUNS = {
    "mlp_deep_naive": ("naive", False, "naive init"),
    "mlp_deep_scaled": ("scaled", False, "scaled init (5/3 / sqrt(fan_in))"),
    "mlp_deep_batchnorm": ("naive", True, "naive init + BatchNorm"),
}
# One CPU thread for every run: a reduction summed over another thread count rounds differently, so the
# same seed would give different numbers on a laptop and a workstation (docs/design.md, "same numbers").
THREADS = 1
DEEP_MODEL = dict(n_embd=16, n_embd2=100, mlp_layers=5)


@dataclass(frozen=True, kw_only=True)
class TourBudget:
    """Training steps per run; `record` = training steps between activation snapshots of the deep MLPs."""

    name: str
    bigram_steps: int
    bigram_eval: int
    deep_steps: int
    lm_steps: int
    eval_interval: int
    record: int


BUDGETS = {budget.name: budget for budget in (
    TourBudget(name="tiny", bigram_steps=40, bigram_eval=10, deep_steps=30, lm_steps=30, eval_interval=15, record=5),
    TourBudget(name="quick", bigram_steps=1000, bigram_eval=10, deep_steps=2000, lm_steps=2000, eval_interval=200,
               record=50),
    TourBudget(name="full", bigram_steps=3000, bigram_eval=10, deep_steps=6000, lm_steps=6000, eval_interval=250,
               record=100),
)}


def sampler(data):
    prompts = [p for p in NAMES_PROMPTS if all(c in data.vocab.stoi for c in p)]
    return lambda m: sample_prompts(m, data.vocab, prompts, data.block_size, block_size=data.block_size,
                                    device=next(iter(m.state_dict().values())).device)


def config(name: str, kind: str, mcfg: ModelConfig, data, budget: TourBudget, seed: int, **lab_config) -> dict:
    return run_config(lab="tour", run=name, budget=budget.name, seed=seed, model=vars(mcfg).copy(), type=kind,
                      input_file=INPUT_FILE, vocab=data.vocab.to_dict(), **lab_config)


def probs_table(p: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), 6) for v in row] for row in p]


def run_bigrams(out: Path, data, budget: TourBudget, seed: int, progress, resume: bool = False) -> None:
    mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size)
    # counting: one pass over the training pairs, add-one smoothing
    t0 = time.perf_counter()
    count = CountBigram(mcfg, alpha=1.0).fit(data.train.x, data.train.y)
    fit_s = time.perf_counter() - t0
    run = out / "bigram_count"
    run.mkdir(parents=True, exist_ok=True)
    train_nll, _ = evaluate(count, data.train)
    test_nll, _ = evaluate(count, data.test)
    write_json(run / "config.json", config("bigram_count", "count_bigram", mcfg, data, budget, seed, alpha=1.0))
    tokens = int((data.train.y >= 0).sum())
    base = {"step": 0, "tokens": tokens, "macs": 0.0, "wall_s": round(fit_s, 4)}
    (run / "metrics.jsonl").write_text(json.dumps({**base, "split": "train", "loss": train_nll}) + "\n"
                                       + json.dumps({**base, "split": "val", "loss": test_nll}) + "\n")
    (run / "samples.txt").write_text("".join(f"0\t{p}\t{s}\n" for p, s in sampler(data)(count)))
    smoothed = count.counts + count.alpha
    write_json(run / "analysis.json", {"train_nll": train_nll, "test_nll": test_nll,
                                       "probs": probs_table(smoothed / smoothed.sum(1, keepdim=True))})
    # learning: the same table as free logits, by AdamW on the same NLL. No weight decay: it would pull
    # the logits toward 0, a different smoothing than add-one.
    tcfg = TrainConfig(max_steps=budget.bigram_steps, batch_size=64, learning_rate=0.1, warmup_steps=0,
                       min_lr_frac=0.1, weight_decay=0.0, eval_interval=budget.bigram_eval, seed=seed, device="cpu",
                       threads=THREADS)
    torch.manual_seed(seed)
    model = build_model("bigram", mcfg)
    train(model, data.train, data.test, tcfg, out / "bigram_learned", sample_fn=sampler(data), progress=progress,
          resume=resume,
          run_config=config("bigram_learned", "bigram", mcfg, data, budget, seed))
    write_json(out / "bigram_learned" / "analysis.json",
               {"probs": probs_table(torch.softmax(model.logits_table.detach(), dim=1)),
                "train_nll": evaluate(model, data.train)[0], "test_nll": evaluate(model, data.test)[0]})


def run_deep_mlps(out: Path, data, budget: TourBudget, seed: int, progress, resume: bool = False) -> None:
    for name, (init, batchnorm, label) in DEEP_RUNS.items():
        if resume and finished(out / name):
            continue
        mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, init=init, batchnorm=batchnorm,
                           **DEEP_MODEL)
        # plain AdamW at a brisk learning rate, no clipping: nothing that hides the problem
        tcfg = TrainConfig(max_steps=budget.deep_steps, batch_size=32, learning_rate=1e-2, warmup_steps=0,
                           min_lr_frac=0.1, weight_decay=0.0, grad_clip=0.0, eval_interval=budget.eval_interval,
                           seed=seed, device="cpu", threads=THREADS)
        torch.manual_seed(seed)
        model = build_model("mlp", mcfg)
        recorder = DeepMLPRecorder(model, budget.record)
        try:
            # the recorder's history is not in the checkpoint: under --resume an unfinished run starts over
            train(model, data.train, data.test, tcfg, out / name, sample_fn=sampler(data), progress=progress,
                  on_eval=lambda m, s, rec=recorder: latest_layer_means(rec), force=resume,
                  run_config=config(name, "mlp", mcfg, data, budget, seed, label=label))
        finally:
            recorder.close()
        write_json(out / name / "analysis.json",
                   {"label": label, "init": init, "batchnorm": batchnorm,
                    "saturated_threshold": DeepMLPRecorder.SATURATED, "grad_log_range": DeepMLPRecorder.GRAD_LOG_RANGE,
                    "records": recorder.records, "update_ratio_log10": recorder.update_ratio})


def run_attention(out: Path, data, budget: TourBudget, seed: int, progress, resume: bool = False) -> None:
    tcfg = TrainConfig(max_steps=budget.lm_steps, eval_interval=budget.eval_interval, seed=seed, device="cpu",
                       threads=THREADS)
    # the spine's defaults for both models: one recipe
    for kind in ("mlp", "transformer"):
        mcfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size)
        torch.manual_seed(seed)
        train(build_model(kind, mcfg), data.train, data.test, tcfg, out / kind, sample_fn=sampler(data), resume=resume,
              progress=progress, run_config=config(kind, kind, mcfg, data, budget, seed))


def main(argv: list[str]) -> int:
    p = lab_parser("tour", "Part 3: counting -> learned bigram, stable deep MLP training, MLP -> transformer.",
                   BUDGETS, seed=3407)
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    with claim(args.out, resume=args.resume, force=args.force) as out:
        return run_lab(args, budget, out)


def run_lab(args, budget: TourBudget, out: Path) -> int:
    """The three stages, lab.json and the report, in --out (claimed by `main`)."""
    from nnlabs.labs.tour.report import report

    data = create_datasets(INPUT_FILE)
    progress = None if args.budget != "tiny" else False
    t0 = time.perf_counter()
    for stage in (run_bigrams, run_deep_mlps, run_attention):
        stage(out, data, budget, args.seed, progress, args.resume)
    write_json(out / "lab.json", {"budget": args.budget, "seed": args.seed, "input_file": INPUT_FILE,
                                  "wall_s": round(time.perf_counter() - t0, 1)})
    report(out)
    print(f"wrote {out / 'report.md'}, {out / 'tour.html'} and {out / 'figures'}/ "
          f"({time.perf_counter() - t0:.0f}s)")
    return 0
