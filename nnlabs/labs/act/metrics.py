"""What the ACT lab measures: per-example accuracy, passes and measured MACs, the confidence early-exit
baseline, and (5.5) which expert each pass of the shared block used. Definitions: docs/act.md."""

from __future__ import annotations

import math

import numpy as np
import torch

from nnlabs.labs.act.data import VOCAB, encode, seq_len
from nnlabs.labs.act.halting import RecurrentDepth, confident
from nnlabs.report.info import cond_entropy, permutation_null
from nnlabs.spine.macs import count_macs


@torch.no_grad()
def evaluate(model: RecurrentDepth, rows: list[dict], exit_threshold: float | None = None) -> list[dict]:
    """One record per example. Examples are run in groups of equal length, trimmed to that length (no
    padding), so the MACs counted for a group are exactly the work its examples needed; each example's
    `macs` is its group's measured total / group size. `exit_threshold` switches to the confidence
    early-exit baseline."""
    was_training = model.training
    model.eval()
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(seq_len(r), []).append(r)
    records = []
    for length in sorted(groups):
        group = groups[length]
        data = encode(group, length)
        answer = data.y >= 0  # [N, T]
        with count_macs(model) as macs:
            if exit_threshold is None:
                logits, _ = model(data.x, data.y)  # the targets tell PonderNet's halting where the answers are
                pred, steps = logits.argmax(-1), model.halting.steps
            else:
                pred, steps = early_exit(model, data.x, answer[0], exit_threshold)
        correct = ((pred == data.y) | ~answer).all(1)
        experts = experts_by_pass(model, steps) if exit_threshold is None else None
        for i, r in enumerate(group):
            records.append({**r, "correct": bool(correct[i]), "steps": steps[i].tolist(),
                            "steps_answer": int(steps[i][answer[i]][0]), "macs": macs.macs / len(group),
                            **({"experts": experts[i].tolist()} if experts is not None else {})})
    model.train(was_training)
    return records


def traced_examples(splits: dict[str, list[dict]], field: str, limit: int = 6) -> list[dict]:
    """The few examples whose halting an ACT run records pass by pass: the first example of each
    difficulty (`field`) over test and length generalisation, thinned to `limit`; the same for every model."""
    first: dict[int, dict] = {}
    for split in ("test", "lengthgen"):
        for r in splits[split]:
            first.setdefault(r[field], {**r, "split": split})
    picked = [first[k] for k in sorted(first)]
    return picked[::max(1, len(picked) // limit)][:limit]


@torch.no_grad()
def halting_trace(model: RecurrentDepth, examples: list[dict]) -> list[dict]:
    """ACT pass by pass, one example at a time: after each pass n, every position's cumulative halting
    probability sum_{i<=n} p_i (rounded to 3 decimals; 1 from its halting pass on, where p is the remainder
    R), with the passes each position took and the model's answer."""
    was_training = model.training
    model.eval()
    traces = []
    for r in examples:
        data = encode([r], seq_len(r))
        logits, _ = model(data.x, data.y)
        mass, per_pass = torch.zeros(data.x.numel()), []  # [T]
        for rows, p, _ in model.halting.passes:
            mass = mass.index_add(0, rows, p)
            per_pass.append(mass.double().round(decimals=3).tolist())
        answer = VOCAB.decode(logits[0, data.y[0] >= 0].argmax(-1).tolist())
        traces.append({**r, "steps": model.halting.steps[0].tolist(), "mass": per_pass, "output": answer,
                       "correct": answer == r["answer"]})
    model.train(was_training)
    return traces


class ConfidenceExit:
    """A halting rule for `RecurrentDepth.run_blocks`, at inference only: a whole example stops once its
    answer positions are confident (halting.confident). `read` is the LM head; its MACs are counted."""

    def __init__(self, read, answer_cols: torch.Tensor, threshold: float, max_steps: int):
        self.read, self.cols, self.threshold, self.max_steps = read, answer_cols, threshold, max_steps

    def __call__(self, s, n, rows):
        T = len(self.cols)
        if n == 0:  # pass 0 runs every position
            self.pred = torch.zeros(len(rows) // T, T, dtype=torch.long)  # [B, T]
        examples = rows.view(-1, T)[:, 0] // T  # [E] the live examples (all their positions run)
        logits = self.read(s.view(-1, T, s.size(1))[:, self.cols])  # [E, A, V]
        done = confident(logits, self.threshold) | (n == self.max_steps - 1)  # [E]
        self.pred[examples[done].unsqueeze(1), self.cols.nonzero().squeeze(1)] = logits[done].argmax(-1)
        halt = done.repeat_interleave(T)  # [R]
        return halt.to(s.dtype), halt

    def report(self, steps: torch.Tensor) -> None:
        self.steps = steps


@torch.no_grad()
def early_exit(model: RecurrentDepth, x: torch.Tensor, answer_cols: torch.Tensor, threshold: float):
    """The simplest adaptive baseline, on a fixed-depth model: its own loop with the confidence rule.
    Returns the predictions [B, T] (answer columns) and the passes [B, T] of every position."""
    rule = ConfidenceExit(lambda h: model.lm_head(model.ln_f(h)), answer_cols, threshold, model.act.max_steps)
    model.run_blocks(model.embed(x), rule=rule)
    return rule.pred, rule.steps


def experts_by_pass(model: RecurrentDepth, steps: torch.Tensor) -> torch.Tensor | None:
    """[B, T, max_steps]: the expert each position's router ranked first on each pass, -1 after it halted;
    None for a dense feed-forward. Pass n ran exactly the positions with steps > n, in flat order."""
    per_pass = [stats for _, stats in getattr(model.blocks[0].ffn, "per_call", []) if stats]
    if not per_pass or "chosen" not in per_pass[0]:
        return None
    B, T = steps.shape
    grid = torch.full((B * T, model.act.max_steps), -1, dtype=torch.long)
    for n, stats in enumerate(per_pass):
        grid[(steps.reshape(-1) > n).nonzero().squeeze(1), n] = stats["chosen"][:, 0].cpu()
    return grid.view(B, T, -1)


def summarize(records: list[dict]) -> dict:
    n = max(len(records), 1)
    return {"acc": sum(r["correct"] for r in records) / n,
            "macs_per_example": sum(r["macs"] for r in records) / n,
            "steps_answer": sum(r["steps_answer"] for r in records) / n,
            "steps_position": sum(sum(r["steps"]) / len(r["steps"]) for r in records) / n, "n": len(records)}


def by_bucket(examples: list[dict], field: str) -> dict[int, dict]:
    buckets: dict[int, list[dict]] = {}
    for r in examples:
        buckets.setdefault(r[field], []).append(r)
    return {k: summarize(v) for k, v in sorted(buckets.items())}


def pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def halting_correlation(analysis: dict, field: str, splits=("test",)) -> float | None:
    """Pearson r of an example's difficulty and the passes its answer position took."""
    ex = [r for split in splits for r in analysis["splits"][split]["examples"]]
    return pearson([r[field] for r in ex], [r["steps_answer"] for r in ex])


def pass_assignments(analysis: dict, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (position, pass) a MoE run ran: the expert its router ranked first, the pass, the character."""
    experts, passes, chars = [], [], []
    for r in analysis["splits"][split]["examples"]:
        text = "." + r["input"] + "=" + r["answer"]
        for t, per_pass in enumerate(r["experts"]):
            for n, e in enumerate(per_pass):
                if e >= 0:
                    experts.append(e), passes.append(n), chars.append(ord(text[t]))
    return tuple(np.array(v, dtype=np.int64) for v in (experts, passes, chars))


def routing_by_pass(analysis: dict, split: str = "test") -> dict:
    """5.5: how a MoE run's first-choice expert depends on the pass, from every (position, pass) it ran.
    Information in bits (docs/act.md): I(expert; pass), and I(expert; pass | character), what the pass
    tells about the expert beyond the character at that position (the MoE lab's routing followed characters)."""
    expert, step, char = pass_assignments(analysis, split)
    share = np.zeros((analysis["max_steps"], analysis["experts"]))
    np.add.at(share, (step, expert), 1)
    share /= np.maximum(share.sum(1, keepdims=True), 1)
    h_e, h_ec = cond_entropy(expert), cond_entropy(expert, char)
    return {"share": share.tolist(), "h_expert": h_e, "mi_pass": h_e - cond_entropy(expert, step),
            "mi_char": h_e - h_ec, "mi_pass_given_char": h_ec - cond_entropy(expert, char, step),
            "assignments": len(expert)}


def routing_by_pass_null(analysis: dict, split: str = "test", n_perm: int = 100) -> dict:
    """I(expert; pass | character) against its null, the passes shuffled within each character `n_perm` times:
    what the report's verdict reads (the figure needs only `routing_by_pass`, so the shuffles run once)."""
    expert, step, char = pass_assignments(analysis, split)
    return permutation_null(expert, step, char, n_perm, seed=0)
