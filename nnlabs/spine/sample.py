"""Sampling: temperature and top-k, and the fixed prompt set sampled at every evaluation. (The tools
lab decodes with its own batched, greedy `generate_with_tools`, which splices the tool's output in.)"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A few prefixes, sampled with a fixed seed at every evaluation, so a post can show the same
# generations sharpening over training. '' = from the start token.
NAMES_PROMPTS = ("", "", "", "a", "em", "jo", "k", "zy")
SAMPLE_SEED = 1234


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             generator: torch.Generator | None = None, block_size: int | None = None,
             stop_token: int | None = 0, greedy: bool = False) -> list[list[int]]:
    """Extend each row of idx (B, T) by up to max_new_tokens, sampling (or, `greedy`, taking the most likely
    token); a row stops at `stop_token`. Returns the generated tokens per row (prompt excluded)."""
    was_training = model.training
    model.eval()
    rows = [r.tolist() for r in idx]
    start = idx.size(1)
    done = [False] * len(rows)
    for _ in range(max_new_tokens):
        live = [i for i, d in enumerate(done) if not d]
        if not live:
            break
        # every live row has the same length: one token per step each
        x = torch.tensor([rows[i][-block_size:] if block_size else rows[i] for i in live], device=idx.device)
        logits = model(x)[0][:, -1, :]  # [live, V]
        if greedy:
            nxt = logits.argmax(-1).tolist()
        else:
            logits = logits / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).view(-1).tolist()
        for i, t in zip(live, nxt):
            rows[i].append(t)
            if stop_token is not None and t == stop_token:
                done[i] = True
    model.train(was_training)
    return [r[start:] for r in rows]


def sample_prompts(model, vocab, prompts=NAMES_PROMPTS, max_new_tokens: int = 20, seed: int = SAMPLE_SEED,
                   device="cpu", **kw) -> list[tuple[str, str]]:
    """The fixed prompt set: (prompt, completion) pairs, reproducible under `seed`."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    for p in prompts:
        idx = torch.tensor([[0] + vocab.encode(p)], dtype=torch.long, device=device)
        gen = generate(model, idx, max_new_tokens, generator=g, **kw)[0]
        out.append((p, p + vocab.decode(gen)))
    return out
