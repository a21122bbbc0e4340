"""Part 6's patch on the spine: two branches per query and a learned, priced decision between them.

Every query is trained as both of its answers, side by side in one (2, T) item:
    direct   7*8=<NO_TOOL>56
    tool     7*8=<CALL_TOOL>calc(7*8)<RESULT>56<ANSWER>56
The model learns to write both branches by imitation; the decision token between them is not imitated
but trained by `CallPolicy`, which compares how likely each branch is to end in the right answer and
charges a price c for every call (the binary cousin of ACT's ponder cost).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.spine.data import SequenceData, Vocab, encode_words
from nnlabs.spine.models import ModelConfig, Transformer

# fixed: any tool output or error message must encode
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz+-*^()=?"


# the four tokens the patch adds: the decision, and the two brackets around the tool's output
class ToolTokens:
    CALL, NO, RESULT, ANSWER = "<CALL_TOOL>", "<NO_TOOL>", "<RESULT>", "<ANSWER>"


def make_vocab() -> Vocab:
    return Vocab(CHARS, specials=[ToolTokens.CALL, ToolTokens.NO, ToolTokens.RESULT, ToolTokens.ANSWER])


def branch_texts(row: dict) -> tuple[str, str]:
    t, q = ToolTokens, row["query"]
    return q + t.NO + row["answer"], q + t.CALL + row["call"] + t.RESULT + row["output"] + t.ANSWER + row["answer"]


def encode_pairs(rows: list[dict], vocab: Vocab, block_size: int, teach_direct: bool = True) -> SequenceData:
    """Each query's two branches, encoded by the spine, as one [2, T] item: x, y [N, 2, T]."""
    branches = [encode_words(list(texts), vocab, block_size) for texts in zip(*map(branch_texts, rows))]
    x, y = torch.stack([b.x for b in branches], 1), torch.stack([b.y for b in branches], 1)  # [N, 2, T]
    # imitation only on what the model writes: the direct answer and each branch's end. Not the query, not the
    # decision (CallPolicy trains it), not what the engine writes on the tool branch (call, output, answer)
    written = torch.tensor([[len(row["answer"]), 0] for row in rows])  # [N, 2]
    y[torch.arange(block_size) < ((x != 0).sum(-1) - written)[..., None]] = -1
    if not teach_direct:
        # dreamed queries teach when to call, not the answer from memory
        y[:, 0] = -1
    return SequenceData(x, y)


class CallPolicy(nn.Module):
    """The decision's loss with a price c per call: cross-entropy toward the branch of higher expected reward,
    weighted by how much higher; the minimiser of π·(p_tool − c) + (1 − π)·p_direct, without its vanishing gradient."""

    def __init__(self, call_id: int, no_id: int, call_cost: float):
        super().__init__()
        self.call_id, self.no_id, self.call_cost = call_id, no_id, call_cost
        self.aux_loss, self.stats = None, {}

    def forward(self, logits: torch.Tensor, x: torch.Tensor | None, y: torch.Tensor | None) -> None:
        """logits [2B, T, V] of the flattened pairs x, y [B, 2, T]; x None = plain sequences (sampling)."""
        self.aux_loss, self.stats = None, {}
        if x is None or y is None:
            return
        B, _, T = x.shape
        logp = F.log_softmax(logits.view(B, 2, T, -1), dim=-1)  # [B, 2, T, V]
        y, rows, t = y.view(B, 2, T), torch.arange(B, device=x.device), torch.arange(T, device=x.device)
        decide = (x[:, 0] == self.no_id).long().argmax(1) - 1  # [B] the position that predicts the decision
        lp_call, lp_no = logp[rows, 0, decide, self.call_id], logp[rows, 0, decide, self.no_id]  # [B]
        # p_direct = exp(Σ log p of every token after <NO_TOOL>, the end token included), read from x so it is
        # measured where the direct answer is not taught; p_tool = exp(Σ log p of what the tool branch writes)
        nxt, length = torch.roll(x[:, 0], -1, dims=1), (x[:, 0] != 0).sum(1)  # [B, T], [B]
        direct_mask = (t[None] > decide[:, None]) & (t[None] <= length[:, None])  # [B, T]
        lp_direct = (logp[:, 0].gather(-1, nxt[..., None]).squeeze(-1) * direct_mask).sum(1)  # [B]
        lp_tool = (logp[:, 1].gather(-1, y[:, 1].clamp(min=0)[..., None]).squeeze(-1) * (y[:, 1] >= 0)).sum(1)
        # detached: the decision learns which branch pays, it does not reshape the branches
        p_direct, p_tool = lp_direct.detach().exp(), lp_tool.detach().exp()  # [B]
        # a dreamed query (direct answer not taught) was answered by the tool itself: p_tool := 1
        p_tool = torch.where((y[:, 0] < 0).all(1), torch.ones_like(p_tool), p_tool)
        # A = (p_tool − p_direct) − c;  π = P(CALL) / (P(CALL) + P(NO));  L = −[A⁺·log π + A⁻·log(1 − π)]
        advantage = (p_tool - p_direct) - self.call_cost
        log_pi, log_not_pi = F.logsigmoid(lp_call - lp_no), F.logsigmoid(lp_no - lp_call)
        policy = -(advantage.clamp(min=0) * log_pi + (-advantage).clamp(min=0) * log_not_pi)
        # + −log(P(CALL) + P(NO)): keeps the decision on those two tokens
        self.aux_loss = (policy - torch.logaddexp(lp_call, lp_no)).mean()
        self.stats = {"call_prob": log_pi.exp().mean().detach(), "p_direct": p_direct.mean(), "p_tool": p_tool.mean()}


class ToolUser(Transformer):
    """The spine's Transformer + the policy, reading [B, 2, T] pairs (direct, tool branch) when it trains."""

    def __init__(self, config: ModelConfig, vocab: Vocab, call_cost: float):
        super().__init__(config)
        self.policy = CallPolicy(vocab.stoi[ToolTokens.CALL], vocab.stoi[ToolTokens.NO], call_cost)

    def forward(self, idx, targets=None):
        # training pairs [B, 2, T] run as two rows each, [2B, T]; the policy prices the decision on them
        pairs = idx if idx.dim() == 3 else None
        if pairs is not None:
            idx, targets = idx.flatten(0, 1), targets.flatten(0, 1) if targets is not None else None
        logits = self.lm_head(self.ln_f(self.run_blocks(self.drop(self.embed(idx)))))
        self.policy(logits, pairs, targets)
        return self.finish(logits, targets)
