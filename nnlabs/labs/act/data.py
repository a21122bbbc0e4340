"""The algorithmic tasks as sequences: `question=answer`, the loss on the answer characters only."""

from __future__ import annotations

import torch

from nnlabs.pack import algorithmic
from nnlabs.spine.data import SequenceData, Vocab
from nnlabs.spine.errors import UserError

VOCAB = Vocab("0123456789+()=")


def encode(rows: list[dict], block_size: int) -> SequenceData:
    """x = [start, question, '=', answer[:-1]], y = answer at the positions that predict it, -1 elsewhere:
    the spine's ordinary LM loss becomes classification at the answer position(s)."""
    x = torch.zeros(len(rows), block_size, dtype=torch.long)  # [N, T]
    y = torch.full((len(rows), block_size), -1, dtype=torch.long)  # [N, T]
    for i, r in enumerate(rows):
        q, a = VOCAB.encode(r["input"] + "="), VOCAB.encode(r["answer"])
        seq = [0] + q + a
        if len(seq) - 1 > block_size:
            raise UserError(f"example {r['input']!r} needs block size {len(seq) - 1} (> {block_size})")
        x[i, :len(seq) - 1] = torch.tensor(seq[:-1])
        y[i, len(q):len(seq) - 1] = torch.tensor(a)
    return SequenceData(x, y)


def seq_len(row: dict) -> int:
    return len(row["input"]) + 1 + len(row["answer"])


def load_task(task: str, seed: int, limits: dict[str, int]) -> dict[str, list[dict]]:
    """The suite's splits for one task, each cut to the budget's size (the files are already shuffled)."""
    files = algorithmic.build(seed)
    return {split: algorithmic.parse_tsv(files[f"algorithmic/{task}/{split}.tsv"])[:limits[split]]
            for split in algorithmic.SPLITS}
