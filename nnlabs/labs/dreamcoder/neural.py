"""Part 7.5, the neural side: programming by example without a program.

The spine's transformer reads a task's examples and a new input as one line of characters and writes
the output — in-context induction:

    [1,2]>[2,3];[5]>[6];[]>[]|[7,0,4]>   →   [8,1,5].

One model is trained across the training tasks (fresh inputs drawn from each task's generator, the
task's own examples as context) and then asked about held-out tasks it has never seen. Its answers
are compared with the programs the wake phase found, on fresh inputs in three bands (routing.py).
"""

from __future__ import annotations

import random

import torch

from nnlabs.pack.list_programs import LIST_LEN, VALUES, run_sexpr
from nnlabs.spine.data import SequenceData, Vocab
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import ModelConfig, Transformer
from nnlabs.spine.sample import generate

# where fresh inputs are drawn from: like the examples, longer lists than any example, larger numbers
BANDS = {
    "like examples": {"length": LIST_LEN, "values": VALUES},
    "longer lists": {"length": (LIST_LEN[1] + 3, LIST_LEN[1] + 7), "values": VALUES},
    "larger numbers": {"length": (1, LIST_LEN[1]), "values": (VALUES[1] + 1, 99)},
}
VOCAB = Vocab("0123456789-,[]TF>;|")


def show(value) -> str:
    """A value as the model reads and writes it: [1,2], 7, T/F."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def prompt(examples: list[tuple], query) -> str:
    return ";".join(f"{show(i)}>{show(o)}" for i, o in examples) + f"|{show(query)}>"


def fresh_input(rng: random.Random, band: str, nonempty: bool = False) -> list[int]:
    lo, hi = BANDS[band]["length"]
    return [rng.randint(*BANDS[band]["values"]) for _ in range(rng.randint(max(lo, int(nonempty)), hi))]


def fresh_queries(task: dict, band: str, n: int, rng: random.Random) -> list[tuple[list[int], object]]:
    """n new (input, output) pairs from the task's generator: its reference program on fresh inputs
    (inputs on which the program is undefined, e.g. the head of an empty list, are redrawn)."""
    pairs = []
    for _ in range(50 * n):
        x = fresh_input(rng, band)
        try:
            pairs.append((x, run_sexpr(task["program"], x)))
        except IndexError:
            continue
        if len(pairs) == n:
            break
    return pairs


def encode(items: list[tuple[str, str]], block_size: int) -> SequenceData:
    """(prompt, answer) pairs as rows [0, prompt, answer] predicting [prompt.., answer, 0]: the loss is
    taken on the answer and its end token only — the model is taught to answer, not to write examples."""
    x = torch.zeros(len(items), block_size, dtype=torch.long)
    y = torch.full((len(items), block_size), -1, dtype=torch.long)
    for row, (p, a) in enumerate(items):
        ids = VOCAB.encode(p + a)
        x[row, 1:1 + len(ids)] = torch.tensor(ids)
        y[row, len(p):len(ids)] = torch.tensor(ids[len(p):])
        y[row, len(ids)] = 0
    return SequenceData(x, y)


def context_examples(task: dict, rng: random.Random, max_chars: int) -> list[tuple]:
    """The task's examples in a random order, as many as fit in max_chars (all of them, for the pack)."""
    examples = [(e["i"], e["o"]) for e in task["examples"]]
    rng.shuffle(examples)
    while examples and len(prompt(examples, [])) > max_chars:
        examples.pop()
    return examples


def training_items(tasks: list[dict], n: int, rng: random.Random, max_chars: int) -> list[tuple[str, str]]:
    """n (prompt, answer) items: a random training task, its examples as context, a fresh query
    drawn like its examples (the longer and larger bands are never trained on)."""
    items = []
    while len(items) < n:
        task = rng.choice(tasks)
        for x, y in fresh_queries(task, "like examples", 1, rng):
            items.append((prompt(context_examples(task, rng, max_chars), x), show(y)))
    return items


def build_model(block_size: int, n_layer: int, n_embd: int) -> Transformer:
    config = ModelConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=n_layer, n_head=4, n_embd=n_embd)
    return Transformer(config)


@torch.no_grad()
def answer(model: Transformer, prompts: list[str], max_answer: int) -> tuple[list[str], list[int]]:
    """Greedy answers and the forward MACs each one costs. Prompts of one length run as one batch;
    MACs are those of one forward pass over prompt + answer (what decoding with a KV cache costs)."""
    answers, macs = [""] * len(prompts), [0] * len(prompts)
    macs_at: dict[int, int] = {}  # sequence length -> forward MACs (they depend on the length only)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for rows in by_length.values():
        idx = torch.tensor([[0] + VOCAB.encode(prompts[i]) for i in rows])  # [R, 1 + len(prompt)]
        steps = min(max_answer, model.config.block_size - idx.size(1))
        for j, (i, ids) in enumerate(zip(rows, generate(model, idx, steps, greedy=True))):
            answers[i] = VOCAB.decode(ids)
            length = idx.size(1) + len(answers[i])
            if length not in macs_at:
                with count_macs(model) as counter:
                    model(torch.cat([idx[j], torch.tensor(ids[:len(answers[i])], dtype=torch.long)])[None])
                macs_at[length] = counter.macs
            macs[i] = macs_at[length]
    return answers, macs
