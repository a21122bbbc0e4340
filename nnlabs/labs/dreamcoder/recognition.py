"""The recognition model: read a task's examples, output that task's grammar weights.

    x_e   = [mean embed(input tokens), mean embed(output tokens), their difference]   per example e
    h     = mean_e ReLU(W1 x_e)                                                           the task
    Δw    = MLP(h)                             one number per production (+ one for the variable)
    w     = w_unigram + Δw,  Δw = 2 tanh(MLP(h) / 2)     the task's grammar weights

Δw is bounded to ±2 nats (at most a 7x re-weighting of any production) and L2-penalised: with a dozen
replays the model otherwise memorises them and starves held-out tasks of the productions they need —
the unigram grammar is the prior, the network only nudges it.

(A bag of tokens per side, not a sequence model: cheap enough to train every cycle on two cores, and
it sees what matters here — outputs shorter than inputs (filter), a single number (fold/length),
values shifted or scaled (map).) Trained, as in DreamCoder, to maximise log P(program | w(task)) for
  * replays — the training tasks solved so far, with their (rewritten) programs, and
  * dreams  — programs sampled from the current grammar and run on real inputs to make new tasks,
where log P comes from the program's likelihood summary (search.summary): at every node,
    log P(choice) = w_chosen - logsumexp_{k in candidates} w_k .
"""

from __future__ import annotations

import random

import torch
import torch.nn as nn

from nnlabs.labs.dreamcoder.dsl import EvalError, compile_program, run
from nnlabs.labs.dreamcoder.search import VAR, Grammar, Task, sample_program, summary

LO, HI = -20, 40
PAD, TRUE, FALSE = range(HI - LO + 1, HI - LO + 4)
VOCAB = HI - LO + 4
MAX_EXAMPLES, MAX_LEN = 10, 16


def value_tokens(v) -> list[int]:
    if isinstance(v, bool):
        return [TRUE if v else FALSE]
    if isinstance(v, int):
        return [min(HI, max(LO, v)) - LO]
    return [t for x in v for t in value_tokens(x)]


def encode(task: Task) -> torch.Tensor:
    """[2, MAX_EXAMPLES, MAX_LEN] token ids (inputs, outputs), PAD-filled."""
    out = torch.full((2, MAX_EXAMPLES, MAX_LEN), PAD, dtype=torch.long)
    for e, (x, y) in enumerate(task.examples[:MAX_EXAMPLES]):
        for side, v in enumerate((x, y)):
            toks = value_tokens(v)[:MAX_LEN]
            out[side, e, : len(toks)] = torch.tensor(toks, dtype=torch.long)
    return out


class RecognitionModel(nn.Module):
    def __init__(self, n_outputs: int, d: int = 32, h: int = 64):
        super().__init__()
        self.d, self.h, self.n_outputs = d, h, n_outputs
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.example = nn.Sequential(nn.Linear(3 * d, h), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, n_outputs))
        # start at Δw = 0: the unigram grammar
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, 2, E, L] -> Δw [B, n_outputs], each in (-2, 2)."""
        real = (tokens != PAD).float().unsqueeze(-1)                          # [B, 2, E, L, 1]
        mean = (self.embed(tokens) * real).sum(3) / real.sum(3).clamp(min=1)  # [B, 2, E, d]
        x = torch.cat([mean[:, 0], mean[:, 1], mean[:, 1] - mean[:, 0]], -1)  # [B, E, 3d]
        present = ((tokens[:, 0] != PAD).any(-1) | (tokens[:, 1] != PAD).any(-1)).float().unsqueeze(-1)
        h = (self.example(x) * present).sum(1) / present.sum(1).clamp(min=1)
        return 2 * torch.tanh(self.head(h) / 2)

    def macs_per_task(self, n_examples: int = MAX_EXAMPLES) -> int:
        """Multiply-accumulates to read one task, from the shapes used: the per-example layer on every
        example slot, then the two-layer head once (embedding lookups and means are not MACs)."""
        return n_examples * 3 * self.d * self.h + self.h * self.h + self.h * self.n_outputs


def summary_tensors(summ, n_outputs: int):
    """One program's likelihood summary as tensors: chosen column, candidate mask, extra cost per node."""
    col = lambda j: n_outputs - 1 if j == VAR else j  # noqa: E731
    chosen = torch.tensor([col(j) for j, _, _ in summ], dtype=torch.long)
    mask = torch.zeros(len(summ), n_outputs, dtype=torch.bool)
    for i, (_, js, _) in enumerate(summ):
        mask[i, [col(k) for k in js]] = True
    return chosen, mask, torch.tensor([x for _, _, x in summ], dtype=torch.float32)


def log_likelihood(w: torch.Tensor, items) -> torch.Tensor:
    """log P(program_i | w_i) = Σ_nodes w_chosen - logsumexp(w over candidates) - extra, per program."""
    prog = torch.cat([torch.full((len(c),), i, dtype=torch.long) for i, (c, _, _) in enumerate(items)])
    chosen = torch.cat([c for c, _, _ in items])
    mask = torch.cat([m for _, m, _ in items])
    extra = torch.cat([x for _, _, x in items])
    wn = w[prog]                                                           # [nodes, P]
    node = wn.gather(1, chosen[:, None])[:, 0] - torch.logsumexp(wn.masked_fill(~mask, -1e9), 1) - extra
    return torch.zeros(len(items)).index_add(0, prog, node)


def make_dreams(g: Grammar, tasks: list[Task], n: int, rng: random.Random) -> list[tuple[Task, list]]:
    """Sample programs from the grammar, run them on real inputs, keep non-constant ones as tasks."""
    dreams, tries = [], 0
    while len(dreams) < n and tries < 40 * n:
        tries += 1
        base = rng.choice(tasks)
        p = sample_program(g, g.log_weights, base.request, rng)
        if p is None:
            continue
        fn, outs = compile_program(p), []
        try:
            outs = [run(fn, x, steps=2000) for x, _ in base.examples]
        except EvalError:
            continue
        if len({repr(o) for o in outs}) < 2:
            continue
        summ = summary(g, p, base.request)
        if summ:
            examples = [(x, y) for (x, _), y in zip(base.examples, outs)]
            dreams.append((Task(f"dream{len(dreams)}", base.request, examples), summ))
    return dreams


def train_recognition(g: Grammar, replays: list[tuple[Task, list]], dreams: list[tuple[Task, list]],
                      steps: int, seed: int, batch: int = 32, lr: float = 3e-3, l2: float = 0.5):
    """Fit Δw on replays and dreams (half of each batch from each, when both exist), minimising
    -log P(program | w_unigram + Δw) + l2 * mean(Δw²). Returns the model and the mean -log P per
    program (nats) over the last 20 steps."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = RecognitionModel(g.size)
    if not replays and not dreams:
        return model, None
    base = torch.tensor(g.log_weights, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    pools = [[(encode(t), summary_tensors(s, g.size)) for t, s in pool] for pool in (replays, dreams) if pool]
    losses = []
    for _ in range(steps):
        items = [rng.choice(pools[i % len(pools)]) for i in range(batch)]
        delta = model(torch.stack([tok for tok, _ in items]))
        nll = -log_likelihood(base + delta, [s for _, s in items]).mean()
        loss = nll + l2 * (delta ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(nll.item())
    return model, round(sum(losses[-20:]) / len(losses[-20:]), 4)


@torch.no_grad()
def predict(model: RecognitionModel, g: Grammar, tasks: list[Task]) -> list[list[float]]:
    base = torch.tensor(g.log_weights, dtype=torch.float32)
    if not tasks:
        return []
    w = base + model(torch.stack([encode(t) for t in tasks]))
    return [row.tolist() for row in w]
