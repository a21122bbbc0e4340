"""The spine's performance, measured side by side in one run (issue 2, "Performance").

  (a) steps/s and tokens/s of nnlabs' transformer training step (`nnlabs.spine.train.train`) at
      makemore's exact transformer config and batch, against a makemore-equivalent baseline written
      here after makemore's design: manual masked attention over a registered tril buffer, NewGELU
      written out, a DataLoader with RandomSampler(replacement=True) and 0 workers that encodes each
      word on access, AdamW(betas=(0.9, 0.99), eps=1e-8) on every parameter. Rounds alternate between
      the two so that load from other processes hits both alike; the median of the per-round ratios
      is reported, for our trainer with one item per row and with packed rows (its default).
  (b) `nnlabs train --type transformer` recipes: test loss against training wall time. The default
      recipe: time to test loss <= 2.00 (target 60 s), and the same with one item per row
      (`--no-packed`) beside it. The five-minute recipe (a wider model, `FIVE_MINUTE` below): time to
      <= 1.92 (target 5 min). `--quick` stops each recipe at its target.
  (c) peak RSS of those training runs (subprocesses; resource.getrusage(RUSAGE_CHILDREN).ru_maxrss).
  (d) steps/s with packed rows vs one item per row, at the five-minute recipe's model.

    python benchmarks/bench_spine.py [--quick] [--rounds 3] [--steps 200] [--recipes default,five-minute]
    (recipes: default, default-unpacked, five-minute; all three by default)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from nnlabs.spine.data import create_datasets
from nnlabs.spine.models import ModelConfig, Transformer
from nnlabs.spine.train import TrainConfig, train

MAKEMORE = dict(n_layer=4, n_head=4, n_embd=64, batch_size=32, learning_rate=5e-4, weight_decay=0.01)
FIVE_MINUTE = ["--n-embd", "96", "--dropout", "0.1", "-l", "3e-3", "--max-steps", "10000"]

# -----------------------------------------------------------------------------
# the baseline: makemore's design, in our words


class WordsDataset(Dataset):
    """Encodes one word per __getitem__, as makemore's CharDataset does."""

    def __init__(self, words, chars, block_size):
        self.words, self.block_size = words, block_size
        self.stoi = {ch: i + 1 for i, ch in enumerate(chars)}

    def __len__(self):
        return len(self.words)

    def __getitem__(self, i):
        ix = torch.tensor([self.stoi[c] for c in self.words[i]], dtype=torch.long)
        x = torch.zeros(self.block_size, dtype=torch.long)
        y = torch.zeros(self.block_size, dtype=torch.long)
        x[1:1 + len(ix)] = ix
        y[:len(ix)] = ix
        y[len(ix) + 1:] = -1
        return x, y


class NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class MaskedSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class BaselineBlock(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = MaskedSelfAttention(n_embd, n_head, block_size)
        self.c_fc, self.c_proj, self.act = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd), NewGELU()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(self.act(self.c_fc(self.ln_2(x))))


class BaselineTransformer(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([BaselineBlock(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1), dtype=torch.long).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)


def baseline_steps_per_s(data, steps: int, seed: int) -> tuple[float, float, float]:
    torch.manual_seed(seed)
    model = BaselineTransformer(len(data.vocab), data.block_size, MAKEMORE["n_layer"], MAKEMORE["n_head"],
                                MAKEMORE["n_embd"])
    opt = torch.optim.AdamW(model.parameters(), lr=MAKEMORE["learning_rate"], weight_decay=MAKEMORE["weight_decay"],
                            betas=(0.9, 0.99), eps=1e-8)
    ds = WordsDataset(data.train_words, data.vocab.chars, data.block_size)
    loader = iter(DataLoader(ds, batch_size=MAKEMORE["batch_size"], num_workers=0, pin_memory=False,
                             sampler=RandomSampler(ds, replacement=True, num_samples=10**10)))
    tokens = 0
    for step in range(steps + 1):
        if step == 1:  # step 0 pays one-time costs, as the first step of our trainer does
            t0, c0 = time.perf_counter(), time.process_time()
        x, y = next(loader)
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += int((y >= 0).sum()) if step else 0
    dt = time.perf_counter() - t0
    return steps / dt, tokens / dt, steps / (time.process_time() - c0)


def ours_steps_per_s(data, steps: int, seed: int, work: Path, n_embd: int = MAKEMORE["n_embd"],
                     batch_size: int = MAKEMORE["batch_size"], dropout: float = 0.0,
                     packed: bool = False) -> tuple[float, float, float]:
    """Our trainer, as `nnlabs train` runs it, at makemore's hyperparameters (constant lr, no clipping)
    unless told otherwise. wall_s in the metrics excludes evaluation, so the last record times steps
    1..steps. The CPU time is of the whole call (two evaluations and checkpoints included: it slightly
    favours the baseline)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, n_layer=MAKEMORE["n_layer"],
                      n_head=MAKEMORE["n_head"], n_embd=n_embd, dropout=dropout, packed=packed)
    tcfg = TrainConfig(max_steps=steps + 1, batch_size=batch_size, learning_rate=MAKEMORE["learning_rate"],
                       weight_decay=MAKEMORE["weight_decay"], warmup_steps=0, min_lr_frac=1.0, grad_clip=0.0,
                       eval_interval=10**9, eval_train_items=1, seed=seed, device="cpu")
    c0 = time.process_time()
    records = train(Transformer(cfg), data.train, data.test, tcfg, work, progress=False)
    cpu = time.process_time() - c0
    first, last = records[0], records[-1]
    dt = last["wall_s"] - first["wall_s"]
    return steps / dt, (last["tokens"] - first["tokens"]) / dt, (steps + 1) / cpu


def alternate(rounds: int, contenders: dict) -> dict[str, list[tuple[float, float, float]]]:
    """Each contender (name -> fn(round) -> (steps/s, tokens/s, steps/CPU-s)) once per round, back to back,
    so that load from other processes and the machine's drift hit all of them alike."""
    results: dict[str, list] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, fn in contenders.items():
            results[name].append(fn(r))
        print(f"    round {r + 1}: " + "   ".join(f"{name} {v[-1][0]:6.1f}" for name, v in results.items())
              + " steps/s")
    return results


def paired_ratio(ours: list, base: list, i: int = 0) -> float:
    """Median over rounds of ours / base measured in the same round: it cancels the drift between rounds
    (this VM's speed moves by +-15 % over minutes)."""
    return statistics.median(o[i] / b[i] for o, b in zip(ours, base))


def bench_step(data, steps: int, rounds: int) -> None:
    print(f"(a) training step at makemore's transformer config: {MAKEMORE}, block size {data.block_size}, "
          f"{torch.get_num_threads()} torch threads, {steps} timed steps x {rounds} alternating rounds")
    with tempfile.TemporaryDirectory() as tmp:
        runs = alternate(rounds, {
            "makemore-style baseline": lambda r: baseline_steps_per_s(data, steps, seed=r),
            "nnlabs, one item per row": lambda r: ours_steps_per_s(data, steps, seed=r, work=Path(tmp) / f"r{r}"),
            "nnlabs, packed rows (default)": lambda r: ours_steps_per_s(data, steps, seed=r,
                                                                        work=Path(tmp) / f"p{r}", packed=True)})
    print("    (median round; steps per CPU-second = steps / process CPU time: robust to other load when threads = 1)")
    for name, v in runs.items():
        s, t, c = (statistics.median(x[i] for x in v) for i in range(3))
        print(f"    {name:30s} {s:7.1f} steps/s {t:9.0f} tokens/s {c:7.1f} steps/CPU-s")
    base = runs.pop("makemore-style baseline")
    for name, v in runs.items():
        print(f"    ratio {name} / baseline: {paired_ratio(v, base):.2f}x steps/s, {paired_ratio(v, base, 2):.2f}x "
              "steps/CPU-s (median of per-round ratios; target >= 1.5x)")


def bench_packing(data, steps: int, rounds: int) -> None:
    """(d) what packing buys: the five-minute recipe's model, steps/s with one item per row vs packed
    rows (the same 64 items, loss and gradients per step: tests/test_spine.py)."""
    print(f"\n(d) packed rows vs one item per row: n_embd 96, dropout 0.1, batch 64 items, {steps} timed steps x "
          f"{rounds} alternating rounds")
    with tempfile.TemporaryDirectory() as tmp:
        runs = alternate(rounds, {
            f"{'packed' if packed else 'one item per row'}": (
                lambda r, packed=packed: ours_steps_per_s(data, steps, seed=r, work=Path(tmp) / f"p{r}{packed}",
                                                          n_embd=96, batch_size=64, dropout=0.1, packed=packed))
            for packed in (False, True)})
    print(f"    ratio packed / one item per row: {paired_ratio(runs['packed'], runs['one item per row']):.2f}x "
          "steps/s (median of per-round ratios)")


# (b)'s two recipes. One cosine schedule cannot be both: the default decays within a minute, while at 60 s
# the five-minute recipe's wider model is still at a high learning rate and far above 2.00 (its curve shows).
RECIPES = {
    "default": {"flags": [], "target": (2.00, 60)},
    "default-unpacked": {"flags": ["--no-packed"], "target": (2.00, 60)},
    "five-minute": {"flags": FIVE_MINUTE, "target": (1.92, 300)},
}


def bench_recipe(name: str, quick: bool, eval_interval: int, threads: int) -> None:
    """(b) and (c): a recipe as `nnlabs train` runs it, in a child process."""
    flags, (target, limit) = RECIPES[name]["flags"], RECIPES[name]["target"]
    d, m = TrainConfig(), ModelConfig()
    print(f"\n(b) {name} recipe `nnlabs train --type transformer {' '.join(flags)}`"
          + (f" on top of the defaults: n_layer {m.n_layer}, n_head {m.n_head}, n_embd {m.n_embd}, dropout "
             f"{m.dropout}, packed rows; batch {d.batch_size}, lr {d.learning_rate}, warmup {d.warmup_steps}, "
             f"cosine to {d.min_lr_frac}x over {d.max_steps} steps, wd {d.weight_decay}, clip {d.grad_clip}"
             if not flags else "")
          + f"; test loss every {eval_interval} steps" + (f" (--quick: stop at <= {target:.2f})" * quick))
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.jsonl"
        cmd = [sys.executable, "-m", "nnlabs", "train", "-o", tmp, "--type", "transformer",
               "--eval-interval", str(eval_interval), *flags] + (["--threads", str(threads)] if threads else [])
        env = {**os.environ, "CI": "true"}
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen: list[dict] = []
        while child.poll() is None:
            time.sleep(0.5)
            seen = _val_records(metrics)
            if quick and seen and seen[-1]["loss"] <= target:
                child.terminate()
        child.wait()
        seen = _val_records(metrics)
        total = time.perf_counter() - t0
        if child.returncode not in (0, -15):
            print(child.stdout.read())
            raise SystemExit(f"nnlabs train failed with exit code {child.returncode}")
    print("    time-to-loss curve (training wall time excludes evaluation):")
    print("      step    wall_s   test loss")
    for r in seen:
        print(f"    {r['step']:6d}  {r['wall_s']:8.1f}   {r['loss']:.4f}")
    hit = next((r for r in seen if r["loss"] <= target), None)
    when = f"{hit['wall_s']:.1f} s (step {hit['step']})" if hit else "not reached"
    print(f"    time to test loss <= {target:.2f}: {when} (target <= {limit} s); "
          f"final {seen[-1]['loss']:.4f} at {seen[-1]['wall_s']:.1f} s")
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB, max over children
    print(f"(c) peak RSS of the training runs so far: {rss_mb:.0f} MB (target <= 400 MB); process wall {total:.0f} s")


def _val_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line being written right now
            continue
        if r.get("split") == "val":
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="(b): stop the recipe once test loss <= 2.00")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="(a): timed steps per round")
    p.add_argument("--eval-interval", type=int, default=100, help="(b): steps between test evaluations")
    p.add_argument("--skip-recipe", action="store_true", help="only (a) and (d)")
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"(b): comma-separated, from {', '.join(RECIPES)}")
    p.add_argument("--threads", type=int, default=0, help="torch threads for (a) and (b); 0 = PyTorch's default. "
                   "On a shared machine use 1: two spinning OpenMP threads collapse when other jobs hold the cores")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(other processes slow both sides of (a) alike, but inflate (b)'s wall times)")
    recipes = [] if a.skip_recipe else a.recipes.split(",")
    for name in recipes:  # before minutes of (a), not after
        if name not in RECIPES:
            p.error(f"--recipes: unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    data = create_datasets("names.txt")
    bench_step(data, a.steps, a.rounds)
    for name in recipes:
        bench_recipe(name, a.quick, a.eval_interval, a.threads)
    bench_packing(data, a.steps, a.rounds)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
