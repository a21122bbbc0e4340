"""Tools inside sampling: the model writes a call, the real tool answers, its output joins the context.

The spine's `generate(..., splice=fn)` calls `fn(row_tokens)` after every sampled token. `tool_splice`
is that fn: when the model closes a call with <RESULT>, the pack's tool runs on the parsed call (never
eval-ed) and its output + <ANSWER> are appended to the row; the model then writes the answer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nnlabs.labs.tools.policy import ToolTokens, ToolUser
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import Vocab
from nnlabs.spine.sample import generate


def tool_splice(vocab: Vocab, table: dict[str, str], max_calls: int = 2, max_out: int = 32):
    """On <RESULT>, run the call since the last <CALL_TOOL> (bounded by the pack: ≤ 80 characters, a grammar,
    never eval) and splice its output, or 'error' for a call the tool refuses, then <ANSWER>."""
    call_id, result_id, answer_id = (vocab.stoi[t] for t in (ToolTokens.CALL, ToolTokens.RESULT, ToolTokens.ANSWER))

    def splice(tokens: list[int]) -> list[int] | None:
        if tokens[-1] != result_id:
            return None
        # the call is the text since the last <CALL_TOOL> (or since the prompt, which may end with one)
        start = max([i + 1 for i, t in enumerate(tokens) if t == call_id], default=0)
        try:
            if tokens.count(result_id) > max_calls:
                raise suite.ToolError(f"more than {max_calls} calls in one answer")
            out = suite.run_call(vocab.decode(tokens[start:-1]), table)[:max_out]
        except suite.ToolError:
            out = "error"
        return vocab.encode(out) + [answer_id]

    return splice


def read_trace(vocab: Vocab, tokens: list[int]) -> dict:
    """Split generated tokens into the decision, the call, the tool's output and the final answer."""
    tok = ToolTokens
    text = [vocab.itos[t] for t in tokens if t != 0]
    decision = "call" if text[:1] == [tok.CALL] else "direct" if text[:1] == [tok.NO] else "none"

    def between(a, b):
        i = text.index(a) + 1 if a in text else len(text)
        j = text.index(b, i) if b in text[i:] else len(text)
        return "".join(text[i:j])

    answer_from = tok.ANSWER if tok.ANSWER in text else tok.NO
    return {"decision": decision, "call": between(tok.CALL, tok.RESULT) if decision == "call" else "",
            "output": between(tok.RESULT, tok.ANSWER) if decision == "call" and tok.RESULT in text else None,
            "answer": between(answer_from, "\x00")}


def by_length(queries: list[str]) -> list[list[int]]:
    """Indices of the queries grouped by length: each group is one unpadded batch."""
    groups: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(len(q), []).append(i)
    return list(groups.values())


@torch.no_grad()
def call_probs(model: ToolUser, vocab: Vocab, queries: list[str]) -> list[float]:
    """π = P(CALL) / (P(CALL) + P(NO)) after each query; prompts of one length are batched."""
    model.eval()
    out = [0.0] * len(queries)
    for idxs in by_length(queries):
        x = torch.tensor([[0] + vocab.encode(queries[i]) for i in idxs])  # [n, 1 + len(query)]
        logp = F.log_softmax(model(x)[0][:, -1], dim=-1)  # [n, V]
        pi = torch.sigmoid(logp[:, model.policy.call_id] - logp[:, model.policy.no_id])  # [n]
        for i, p in zip(idxs, pi.tolist()):
            out[i] = p
    return out


def answer_all(model: ToolUser, vocab: Vocab, table: dict, queries: list[str], decision: str,
               batch: int = 256) -> list[dict]:
    """Greedy generation with the decision forced ('direct' or 'call'); the tool runs inside sampling."""
    token = vocab.stoi[ToolTokens.NO if decision == "direct" else ToolTokens.CALL]
    block = model.config.block_size
    out: list[dict] = [{} for _ in queries]
    for idxs in by_length(queries):
        for k in range(0, len(idxs), batch):
            chunk = idxs[k:k + batch]
            prompt = torch.tensor([[0] + vocab.encode(queries[i]) + [token] for i in chunk])  # [n, P]
            gen = generate(model, prompt, block - prompt.size(1), top_k=1, block_size=block,
                           splice=tool_splice(vocab, table))
            for i, g in zip(chunk, gen):
                out[i] = {**read_trace(vocab, [token] + g), "positions": prompt.size(1) + len(g) - 1}
    return out
