"""Tools inside sampling: the model decides, the engine writes the call, the real tool answers.

Once a row ends with <CALL_TOOL> (sampled by the model, or forced into the prompt), `tool_splice` copies
the query span into the call (`12*34=` → `calc(12*34)`, `velmor?` → `lookup(velmor)`), runs the pack's tool
on it (parsed, never eval-ed) and splices the call, <RESULT>, the tool's output, <ANSWER>, the output
again as the answer, and the end of the row. nanochat's engine forces a tool's output tokens the same way;
we also force the call (so the tool path cannot fail on a call of a length never seen in training), the
answer (a model left to copy the output recomputed the sum from the query instead: docs/tools.md) and the
end (a full-budget model left to end the row wrote on after the answer: `13+31=` → `441`). What the
model decides is whether to call; once it calls, the answer is the tool's.

`generate_with_tools` decodes many rows at once although they differ in length (queries of different
lengths, tool outputs of different lengths): rows are right-padded, so every token keeps its position and
causal attention never looks at the padding after it; each row's next token is read at its own last position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnlabs.labs.tools.policy import ToolTokens, ToolUser
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import Vocab


def tool_splice(vocab: Vocab, table: dict[str, str], max_out: int = 32):
    """When the row ends with <CALL_TOOL>: the call copied from the query, <RESULT>, the tool's output (≤ max_out
    characters; 'error' for a refused call), <ANSWER>, the output again as the answer, and the end (token 0)."""
    tok = ToolTokens
    call_id, result_id, answer_id = vocab.stoi[tok.CALL], vocab.stoi[tok.RESULT], vocab.stoi[tok.ANSWER]
    specials = {vocab.stoi[t] for t in (tok.CALL, tok.NO, tok.RESULT, tok.ANSWER)}

    def splice(row: list[int]) -> list[int] | None:
        if row[-1] != call_id:
            return None
        # a call only as the decision, right after the query (row[0] is the start token): one per answer
        if any(t in specials for t in row[1:-1]):
            return [result_id] + vocab.encode("error") + [answer_id]
        query = vocab.decode(row[1:-1])
        call = f"{'calc' if query.endswith('=') else 'lookup'}({query[:-1]})"
        try:
            out = suite.run_call(call, table)[:max_out]
        except suite.ToolError:
            out = "error"
        # the tool's output is the answer, and the whole answer: the engine writes it and ends the row
        return vocab.encode(call) + [result_id] + vocab.encode(out) + [answer_id] + vocab.encode(out) + [0]

    return splice


@torch.no_grad()
def generate_with_tools(model: ToolUser, prompts: list[list[int]], splice: Callable[[list[int]], list[int] | None],
                        rows_per_batch: int = 128, stop_token: int = 0) -> list[list[int]]:
    """Greedy decoding of every prompt, `rows_per_batch` rows run together (1 = one row at a time); the splice
    hook may append tokens after each token (the prompt's last included). A row ends at `stop_token` or when it
    fills the block. Returns each row's tokens after its prompt."""
    model.eval()
    block = model.config.block_size
    rows = [list(p) + (splice(list(p)) or []) for p in prompts]
    # rows of similar length share a batch: less padding
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for first in range(0, len(rows), rows_per_batch):
        live = [i for i in order[first:first + rows_per_batch] if rows[i][-1] != stop_token and len(rows[i]) < block]
        while live:
            lengths = [len(rows[i]) for i in live]
            x = torch.tensor([rows[i] + [0] * (max(lengths) - len(rows[i])) for i in live])  # [n, W], right-padded
            logits = model(x)[0][torch.arange(len(live)), torch.tensor(lengths) - 1]  # [n, V] at each row's end
            for i, token in zip(live, logits.argmax(-1).tolist()):
                rows[i].append(token)
                if token != stop_token:
                    rows[i].extend(splice(rows[i]) or [])
            live = [i for i in live if rows[i][-1] != stop_token and len(rows[i]) < block]
    return [row[len(p):] for row, p in zip(rows, prompts)]


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


@torch.no_grad()
def call_probs(model: ToolUser, vocab: Vocab, queries: list[str]) -> list[float]:
    """π = P(CALL) / (P(CALL) + P(NO)) after each query, all queries right-padded into one batch."""
    model.eval()
    encoded = [[0] + vocab.encode(q) for q in queries]
    lengths = torch.tensor([len(e) for e in encoded])  # [n]
    x = torch.zeros(len(encoded), max(map(len, encoded), default=1), dtype=torch.long)  # [n, W]
    for j, e in enumerate(encoded):
        x[j, :len(e)] = torch.tensor(e)
    logp = F.log_softmax(model(x)[0][torch.arange(len(encoded)), lengths - 1], dim=-1)  # [n, V]
    return torch.sigmoid(logp[:, model.policy.call_id] - logp[:, model.policy.no_id]).tolist()


def answer_all(model: ToolUser, vocab: Vocab, table: dict, queries: list[str], decision: str,
               rows_per_batch: int = 128) -> list[dict]:
    """Greedy generation with the decision forced ('direct' or 'call'); the tool runs inside sampling."""
    token = vocab.stoi[ToolTokens.NO if decision == "direct" else ToolTokens.CALL]
    prompts = [[0] + vocab.encode(q) + [token] for q in queries]
    gen = generate_with_tools(model, prompts, tool_splice(vocab, table), rows_per_batch)
    return [{**read_trace(vocab, [token] + g), "positions": len(p) + len(g) - 1} for p, g in zip(prompts, gen)]
