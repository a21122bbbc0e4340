"""Part 6 — tool use: a learned CALL/NO_TOOL decision with a price on calls, real tools inside sampling,
and the dream state.

Every query ("7*8=", "312*48=", "velmor?") is trained as two branches side by side:
    direct   7*8=<NO_TOOL>56
    tool     7*8=<CALL_TOOL>calc(7*8)<RESULT>56<ANSWER>56
The model writes the call and closes it with <RESULT>; while sampling, the tool from the pack runs on the
parsed call and its output + <ANSWER> are spliced into the context (`tool_splice`, the spine's splice
hook); the model then copies the answer. The decision token is not trained by imitation but by its
expected reward with a price on calls (`CallPolicy`, ACT's ponder cost for one binary decision).

The dream state: perturb training queries (operands, keys), compare the model's no-tool answer with the
tool's, keep the queries that fool the policy most (the adversarial search), upweight the diverging ones
and train on them for another round.

    nnlabs lab tools --budget {tiny,quick,full} [--out runs/tools] [--seed 0]
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.labs import lab_parser
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import SequenceData, Vocab
from nnlabs.spine.errors import UserError
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import ModelConfig, Transformer
from nnlabs.spine.sample import generate
from nnlabs.spine.train import TrainConfig, train, write_json

# -----------------------------------------------------------------------------
# tokens and training sequences

CALL, NO, RESULT, ANSWER = "<CALL_TOOL>", "<NO_TOOL>", "<RESULT>", "<ANSWER>"
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz+-*^()=?"  # fixed: any tool output or error must encode
KINDS, FAMILIES = suite.KINDS, tuple(suite.FAMILIES)
MAX_OUT = 32  # characters of tool output spliced into the context


def make_vocab() -> Vocab:
    return Vocab(CHARS, specials=[CALL, NO, RESULT, ANSWER])


def branch_texts(row: dict) -> tuple[str, str]:
    q = row["query"]
    return q + NO + row["answer"], q + CALL + row["call"] + RESULT + row["output"] + ANSWER + row["answer"]


def encode_pairs(rows: list[dict], vocab: Vocab, block_size: int, teach_direct: bool = True) -> SequenceData:
    x = torch.zeros(len(rows), 2, block_size, dtype=torch.long)
    y = torch.full((len(rows), 2, block_size), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        for b, text in enumerate(branch_texts(row)):  # b = 0: direct branch, b = 1: tool branch
            ids = vocab.encode(text)
            if len(ids) + 1 > block_size:
                raise UserError(f"query {row['query']!r} needs {len(ids) + 1} positions but the block size is "
                                f"{block_size}; raise the block size")
            ix = torch.tensor(ids, dtype=torch.long)
            x[i, b, 1:1 + len(ids)] = ix
            y[i, b, :len(ids)] = ix
            y[i, b, len(ids)] = 0  # predict the end token
            # no imitation loss on the query, nor on the decision (CallPolicy trains it) ...
            y[i, b, :len(row["query"]) + 1] = -1
            if b == 1:  # ... nor on what the tool writes (the model never generates it)
                out = len(row["query"]) + 1 + len(row["call"]) + 1
                y[i, b, out:out + len(row["output"]) + 1] = -1
        if not teach_direct:  # dreamed queries teach when to call, not the answer from memory
            y[i, 0] = -1
    return SequenceData(x, y)


# -----------------------------------------------------------------------------
# the decision, trained with a price on calls


class CallPolicy(nn.Module):
    """The decision's loss, with a price c on every call (the binary cousin of ACT's ponder cost):

        π        = P(<CALL_TOOL>) / (P(<CALL_TOOL>) + P(<NO_TOOL>))        at the decision position
        p_branch = P(the model writes the branch's gold continuation) = exp(-Σ NLL over its tokens)
        A        = (p_tool − p_direct) − c          the advantage of calling: reward of calling − answering
        L_policy = −[A⁺·log π + A⁻·log(1 − π)]      A⁺ = max(A, 0), A⁻ = max(−A, 0)

    i.e. cross-entropy toward the branch with the higher expected reward, weighted by how much higher. Its
    minimiser is the same as that of the expected reward π·(p_tool − c) + (1 − π)·p_direct (call iff A > 0),
    but its gradient does not vanish once π saturates. p_direct, p_tool are detached: the decision learns
    which branch pays, it does not reshape the branches. A small term −log(P(CALL) + P(NO)) keeps the
    decision on those two tokens.
    """

    def __init__(self, call_id: int, no_id: int, call_cost: float):
        super().__init__()
        self.call_id, self.no_id, self.call_cost = call_id, no_id, call_cost
        self.aux_loss, self.stats = None, {}

    def forward(self, logits: torch.Tensor, x: torch.Tensor | None, y: torch.Tensor | None) -> None:
        """logits (2B, T, V) of the flattened pairs x, y (B, 2, T); x None = plain sequences (sampling)."""
        if x is None or y is None:
            self.aux_loss, self.stats = None, {}
            return
        B, _, T = x.shape
        logits, y = logits.view(B, 2, T, -1), y.view(B, 2, T)
        logp = F.log_softmax(logits, dim=-1)
        rows, t = torch.arange(B, device=x.device), torch.arange(T, device=x.device)
        decide = (x[:, 0] == self.no_id).long().argmax(1) - 1  # position whose next token is the decision
        lp_call, lp_no = logp[rows, 0, decide, self.call_id], logp[rows, 0, decide, self.no_id]

        # p_direct: every token after <NO_TOOL> up to and including the end token (read from x, not y,
        # so it is measured even where the direct answer is not taught)
        nxt = torch.roll(x[:, 0], -1, dims=1)  # the padding 0 after the last token is the end token
        length = (x[:, 0] != 0).sum(1)
        direct_mask = (t[None] > decide[:, None]) & (t[None] <= length[:, None])
        lp_direct = (logp[:, 0].gather(-1, nxt[..., None]).squeeze(-1) * direct_mask).sum(1)
        tool_mask = y[:, 1] >= 0
        lp_tool = (logp[:, 1].gather(-1, y[:, 1].clamp(min=0)[..., None]).squeeze(-1) * tool_mask).sum(1)
        p_direct, p_tool = lp_direct.detach().exp(), lp_tool.detach().exp()
        # a dreamed query (its direct answer is not taught) was answered by the tool itself: calling is right
        # by construction, so its advantage is the dream's comparison, A = (1 − P(no-tool answer = tool's)) − c
        dreamed = (y[:, 0] < 0).all(1)
        p_tool = torch.where(dreamed, torch.ones_like(p_tool), p_tool)

        advantage = (p_tool - p_direct) - self.call_cost
        log_pi, log_not_pi = F.logsigmoid(lp_call - lp_no), F.logsigmoid(lp_no - lp_call)
        policy = -(advantage.clamp(min=0) * log_pi + (-advantage).clamp(min=0) * log_not_pi)
        on_decision = -torch.logaddexp(lp_call, lp_no)
        self.aux_loss = (policy + on_decision).mean()
        self.stats = {"call_prob": log_pi.exp().mean().detach(), "p_direct": p_direct.mean(), "p_tool": p_tool.mean()}


class ToolUser(Transformer):
    """The spine's Transformer, reading (B, 2, T) pairs (direct branch, tool branch) when it trains."""

    def __init__(self, config: ModelConfig, vocab: Vocab, call_cost: float):
        super().__init__(config)
        self.policy = CallPolicy(vocab.stoi[CALL], vocab.stoi[NO], call_cost)

    def forward(self, idx, targets=None):
        pairs = idx if idx.dim() == 3 else None
        if pairs is not None:  # both branches of a query run as two rows of one batch
            idx = idx.flatten(0, 1)
            targets = targets.flatten(0, 1) if targets is not None else None
        x = self.run_blocks(self.drop(self.embed(idx)))
        logits = self.lm_head(self.ln_f(x))
        self.policy(logits, pairs, targets)  # the decision's price-aware loss (on training pairs only)
        return self.finish(logits, targets)


# -----------------------------------------------------------------------------
# tools inside generation


def tool_splice(vocab: Vocab, table: dict[str, str], max_calls: int = 2):
    """The hook `spine.sample.generate` calls after every sampled token. When the model closes a call
    with <RESULT>, parse the text since <CALL_TOOL>, run the pack's tool (bounded: the call ≤ 80
    characters, the calculator's grammar bounds length, depth, digits and exponents), and splice its output —
    or 'error' for a malformed or refused call — followed by <ANSWER>. Nothing is ever eval-ed."""
    call_id, result_id, answer_id = vocab.stoi[CALL], vocab.stoi[RESULT], vocab.stoi[ANSWER]

    def splice(tokens: list[int]) -> list[int] | None:
        if tokens[-1] != result_id:
            return None
        # the call is the text since the last <CALL_TOOL> (or since the prompt, which may end with one)
        start = max([i + 1 for i, t in enumerate(tokens) if t == call_id], default=0)
        try:
            if tokens.count(result_id) > max_calls:
                raise suite.ToolError(f"more than {max_calls} calls in one answer")
            out = suite.run_call(vocab.decode(tokens[start:-1]), table)[:MAX_OUT]
        except suite.ToolError:
            out = "error"
        return vocab.encode(out) + [answer_id]

    return splice


def read_trace(vocab: Vocab, tokens: list[int]) -> dict:
    """Split generated tokens into the decision, the call, the tool's output and the final answer."""
    s = vocab.itos
    text = [s[t] for t in tokens if t != 0]
    decision = "call" if text[:1] == [CALL] else "direct" if text[:1] == [NO] else "none"

    def between(a, b):
        i = text.index(a) + 1 if a in text else len(text)
        j = text.index(b, i) if b in text[i:] else len(text)
        return "".join(text[i:j])

    answer_from = ANSWER if ANSWER in text else NO
    return {"decision": decision, "call": between(CALL, RESULT) if decision == "call" else "",
            "output": between(RESULT, ANSWER) if decision == "call" and RESULT in text else None,
            "answer": between(answer_from, "\x00")}


# -----------------------------------------------------------------------------
# measuring: decisions, answers with and without tools, compute


def by_length(queries: list[str]) -> list[list[int]]:
    """Indices of the queries grouped by length: each group is one unpadded batch."""
    groups: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        groups.setdefault(len(q), []).append(i)
    return list(groups.values())


@torch.no_grad()
def call_probs(model: ToolUser, vocab: Vocab, queries: list[str]) -> list[float]:
    """π = P(CALL)/(P(CALL)+P(NO)) after each query; prompts of one length are batched."""
    model.eval()
    out = [0.0] * len(queries)
    for idxs in by_length(queries):
        x = torch.tensor([[0] + vocab.encode(queries[i]) for i in idxs])
        logp = F.log_softmax(model(x)[0][:, -1], dim=-1)
        pi = torch.sigmoid(logp[:, model.policy.call_id] - logp[:, model.policy.no_id])
        for i, p in zip(idxs, pi.tolist()):
            out[i] = p
    return out


def answer_all(model: ToolUser, vocab: Vocab, table: dict, queries: list[str], decision: str,
               batch: int = 256) -> list[dict]:
    """Greedy generation with the decision forced ('direct' or 'call'); the tool runs inside sampling."""
    token = vocab.stoi[NO if decision == "direct" else CALL]
    T = model.config.block_size
    out: list[dict] = [{} for _ in queries]
    for idxs in by_length(queries):
        for k in range(0, len(idxs), batch):
            chunk = idxs[k:k + batch]
            prompt = torch.tensor([[0] + vocab.encode(queries[i]) + [token] for i in chunk])
            gen = generate(model, prompt, T - prompt.size(1), top_k=1, block_size=T,
                           splice=tool_splice(vocab, table))
            for i, g in zip(chunk, gen):
                out[i] = {**read_trace(vocab, [token] + g), "positions": prompt.size(1) + len(g) - 1}
    return out


class MacMeter:
    """Forward MACs of one pass over a sequence of `n` positions — what a cached decoder spends on it."""

    def __init__(self, model):
        self.model, self.cache = model, {}

    @torch.no_grad()
    def __call__(self, n: int) -> int:
        n = min(n, self.model.config.block_size)
        if n not in self.cache:
            with count_macs(self.model) as c:
                self.model(torch.zeros(1, n, dtype=torch.long))
            self.cache[n] = c.macs
        return self.cache[n]


def evaluate_queries(model: ToolUser, vocab: Vocab, table: dict, rows: list[dict]) -> list[dict]:
    """Per query: π, the direct answer, the tool-path answer, their correctness and their compute.
    The learned policy takes the branch of its decision (π > 1/2) — with greedy decoding exactly what
    `generate` writes once it has sampled that decision token."""
    queries = [r["query"] for r in rows]
    pis = call_probs(model, vocab, queries)
    direct = answer_all(model, vocab, table, queries, "direct")
    tool = answer_all(model, vocab, table, queries, "call")
    macs = MacMeter(model)
    recs = []
    for r, pi, d, t in zip(rows, pis, direct, tool):
        cost = suite.COST[suite.tool_of(t["call"])] if t["call"].startswith(("calc(", "lookup(")) else \
            suite.COST[r["tool"]]
        recs.append({"query": r["query"], "kind": r["kind"], "family": r["family"], "gold": r["answer"],
                     "p_call": round(pi, 4), "direct_answer": d["answer"], "direct_ok": d["answer"] == r["answer"],
                     "direct_macs": macs(d["positions"]), "call": t["call"], "output": t["output"],
                     "tool_answer": t["answer"], "tool_ok": t["answer"] == r["answer"],
                     "tool_macs": macs(t["positions"]), "call_cost": cost})
    return recs


def mode_outcome(rec: dict, mode: str) -> tuple[bool, bool, int]:
    """(called, correct, compute in MACs incl. the declared call cost) under a policy mode."""
    called = mode == "always" or (mode == "learned" and rec["p_call"] > 0.5)
    if called:
        return True, rec["tool_ok"], rec["tool_macs"] + rec["call_cost"]
    return False, rec["direct_ok"], rec["direct_macs"]


def summarize(recs: list[dict], mode: str) -> dict:
    """Per group (all, each kind, each family): call rate, accuracy, compute per query, cost per correct.
        cost per correct answer = Σ_q (model MACs_q + [called_q]·declared call cost) / #correct"""
    out = {}
    for group in ("all",) + KINDS + FAMILIES:
        sel = [r for r in recs if group in ("all", r["kind"], r["family"])]
        if not sel:
            continue
        o = [mode_outcome(r, mode) for r in sel]
        correct, compute = sum(c for _, c, _ in o), sum(m for _, _, m in o)
        out[group] = {"n": len(sel), "call_rate": sum(c for c, _, _ in o) / len(sel), "accuracy": correct / len(sel),
                      "compute_per_query": compute / len(sel),
                      "cost_per_correct": compute / correct if correct else None}
    return out


def calibration(recs: list[dict], bins: int = 10) -> dict:
    """How well π predicts that the direct answer would be wrong (the event a call is for):
        ECE = Σ_b (n_b / N) · |mean π in bin b − fraction of direct answers wrong in bin b|,  Brier = mean (π − e)²"""
    table = []
    for b in range(bins):
        sel = [r for r in recs if min(int(r["p_call"] * bins), bins - 1) == b]
        if sel:
            table.append({"bin": b, "n": len(sel), "mean_p_call": sum(r["p_call"] for r in sel) / len(sel),
                          "direct_wrong": sum(not r["direct_ok"] for r in sel) / len(sel)})
    n = len(recs)
    ece = sum(t["n"] / n * abs(t["mean_p_call"] - t["direct_wrong"]) for t in table)
    brier = sum((r["p_call"] - (not r["direct_ok"])) ** 2 for r in recs) / n
    return {"ece": ece, "brier": brier, "bins": table}


def analysis(recs: list[dict]) -> dict:
    return {"modes": {m: summarize(recs, m) for m in ("never", "always", "learned")},
            "calibration": calibration(recs)}


# -----------------------------------------------------------------------------
# the dream state


def perturb(rng: random.Random, row: dict, table: dict, banned: dict) -> dict | None:
    """A nearby query answered by the tool: an operand gains, loses or changes a digit, a key changes a letter
    (to another entity of the table). None if it lands on an evaluation query."""
    if row["tool"] == "calc":
        a, op, b = suite.CALL_RE.fullmatch(row["call"]).group(2).partition(next(c for c in "+-*" if c in row["call"]))
        operands = [a, b]
        i = rng.randrange(2)
        s = operands[i]
        move = rng.choice(("grow", "shrink", "change"))
        if move == "grow" and len(s) < 4:  # one more digit
            s = s + str(rng.randrange(10)) if rng.random() < 0.5 else str(rng.randrange(1, 10)) + s
        elif move == "shrink" and len(s) > 1:  # one digit fewer
            s = s[1:].lstrip("0") or "0"
        else:  # change one digit
            j = rng.randrange(len(s))
            s = s[:j] + str(rng.randrange(1 if j == 0 and len(s) > 1 else 0, 10)) + s[j + 1:]
        operands[i] = s
        expr = f"{operands[0]}{op}{operands[1]}"
        if rng.random() < 0.3:
            expr = expr.replace(op, rng.choice([o for o in "+*" if o != op]) if op in "+*" else "+")
        query, call, out = expr + "=", f"calc({expr})", suite.calc(expr)
    else:
        key = row["call"][len("lookup("):-1]
        near = [key[:i] + c + key[i + 1:] for i in range(len(key)) for c in "abcdefghijklmnopqrstuvwxyz"
                if c != key[i] and key[:i] + c + key[i + 1:] in table]
        new = rng.choice(near) if near else rng.choice(list(table))
        query, call, out = new + "?", f"lookup({new})", table[new]
    if query in banned:
        return None
    return {"kind": "dream", "family": "dream", "tool": row["tool"], "query": query, "answer": out, "call": call,
            "output": out}


@torch.no_grad()
def judge(model, vocab, table, rows: list[dict]) -> list[dict]:
    """The dream's comparison: the model's no-tool answer vs the tool's, and how wrong the decision is.
        regret = π where they agree (a wasted call), 1 − π where they diverge (a missed call)"""
    pis = call_probs(model, vocab, [r["query"] for r in rows])
    direct = answer_all(model, vocab, table, [r["query"] for r in rows], "direct")
    out = []
    for r, pi, d in zip(rows, pis, direct):
        agree = d["answer"] == r["answer"]
        out.append({**r, "p_call": pi, "agree": agree, "regret": pi if agree else 1 - pi})
    return out


# -----------------------------------------------------------------------------
# the experiment


@dataclass
class Budget:
    n_layer: int
    n_embd: int
    n_head: int
    steps: int  # the base run: the branches and a first decision, at the moderate cost
    policy_steps: int  # each call cost continues the base run this many steps with its own price
    batch_size: int
    costs: tuple
    moderate: float  # the call cost the base run and the dream state use, and the explorable shows
    eval_per_family: int  # test queries per family (0 = all)
    dream_rounds: int
    dream_candidates: int
    dream_steps: int
    eval_interval: int
    learning_rate: float = 3e-3


BUDGETS = {
    "tiny": Budget(1, 32, 2, 40, 10, 32, (0.5,), 0.5, 4, 1, 16, 10, 1000),
    "quick": Budget(2, 64, 4, 1500, 150, 48, (0.02, 0.2, 0.5, 1.1), 0.5, 40, 3, 128, 150, 500),
    "full": Budget(3, 96, 4, 4000, 500, 64, (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.1), 0.5, 0, 5, 512, 500, 1000),
}
UPWEIGHT = 2  # a diverging dreamed query enters the next round's training set this many times


def load_suite(seed: int) -> tuple[list[dict], list[dict], list[dict], dict]:
    files = suite.build(seed)
    rows = {s: suite.parse_rows(files[f"{suite.NAME}/{s}.tsv"]) for s in ("train", "val", "test")}
    return rows["train"], rows["val"], rows["test"], suite.parse_table(files[f"{suite.NAME}/table.tsv"])


def per_family(rows: list[dict], n: int) -> list[dict]:
    if not n:
        return rows
    counts: dict[str, int] = {}
    out = []
    for r in rows:
        if counts.get(r["family"], 0) < n:
            counts[r["family"]] = counts.get(r["family"], 0) + 1
            out.append(r)
    return out


def block_size_for(rows: list[dict], vocab: Vocab) -> int:
    return max(len(vocab.encode(branch_texts(r)[1])) + 1 for r in rows) + 8  # slack for dreamed operands


def train_one(run_dir: Path, budget: Budget, cost: float, seed: int, vocab, block_size, train_data, val_rows,
              table, model: ToolUser | None = None, steps: int | None = None, extra: dict | None = None):
    cfg = ModelConfig(vocab_size=len(vocab), block_size=block_size, n_layer=budget.n_layer, n_head=budget.n_head,
                      n_embd=budget.n_embd)
    if model is None:
        torch.manual_seed(seed)
        model = ToolUser(cfg, vocab, cost)
    model.policy.call_cost = cost
    val_data = encode_pairs(val_rows, vocab, block_size)
    val_queries = [r["query"] for r in val_rows]

    def on_eval(m, step):
        pis = call_probs(m, vocab, val_queries)
        m.train()
        return {f"call_rate_{k}": sum(p > 0.5 for p, r in zip(pis, val_rows) if r["kind"] == k) /
                max(1, sum(r["kind"] == k for r in val_rows)) for k in KINDS}

    def sample_fn(m):
        probe = [r["query"] for r in val_rows[::max(1, len(val_rows) // 6)]][:6]
        out = []
        for q in probe:
            prompts = torch.tensor([[0] + vocab.encode(q)])
            g = generate(m, prompts, block_size - prompts.size(1), top_k=1, block_size=block_size,
                         splice=tool_splice(vocab, table))[0]
            out.append((q, q + vocab.decode(g)))
        return out

    # a continuation (another price, a dream round) restarts the schedule: gentler, so it adjusts, not upends
    lr = budget.learning_rate if steps is None else budget.learning_rate / 3
    tc = TrainConfig(max_steps=steps or budget.steps, batch_size=budget.batch_size, learning_rate=lr,
                     warmup_steps=min(100, (steps or budget.steps) // 10), eval_interval=budget.eval_interval,
                     eval_train_items=500, seed=seed, device="cpu", threads=1)
    train(model, train_data, val_data, tc, run_dir, on_eval=on_eval, sample_fn=sample_fn,
          run_config={"model": asdict(cfg), "call_cost": cost, "vocab": vocab.to_dict(), **(extra or {})})
    return model


def run_dream(out: Path, model: ToolUser, budget: Budget, seed: int, vocab, block_size, train_rows, val_rows,
              test_rows, table) -> dict:
    """Rounds of: perturb → judge (no-tool answer vs tool answer) → keep the worst-judged as the next
    round's seeds (adversarial search) → train on the dreams (diverging ones ×UPWEIGHT) → evaluate."""
    rng = random.Random(seed)
    banned = {r["query"]: True for r in val_rows + test_rows}
    distinct = list({r["query"]: r for r in train_rows}.values())
    seeds = rng.sample(distinct, min(budget.dream_candidates, len(distinct)))
    base = encode_pairs(train_rows, vocab, block_size)
    dreamed: list[SequenceData] = []
    recs = evaluate_queries(model, vocab, table, test_rows)
    rounds = [{"round": 0, **round_summary(recs)}]
    for k in range(1, budget.dream_rounds + 1):
        # the seeds themselves (mostly agreements: known facts) and two perturbations of each
        cands = seeds + [c for c in (perturb(rng, s, table, banned) for s in seeds for _ in range(2)) if c]
        judged = judge(model, vocab, table, list({c["query"]: c for c in cands}.values()))
        diverge = [j for j in judged if not j["agree"]]
        rows = judged + diverge * (UPWEIGHT - 1)  # upweight: agree → its p_direct discourages the call
        dreamed.append(encode_pairs(rows, vocab, block_size, teach_direct=False))
        judged.sort(key=lambda j: -j["regret"])
        half = max(1, budget.dream_candidates // 2)  # the queries that fooled the policy most, + fresh ones
        seeds = judged[:half] + rng.sample(distinct, min(budget.dream_candidates - half, len(distinct)))
        data = SequenceData(torch.cat([base.x] + [d.x for d in dreamed]), torch.cat([base.y] + [d.y for d in dreamed]))
        train_one(out / "dream" / f"round_{k}", budget, model.policy.call_cost, seed + k, vocab, block_size, data,
                  val_rows, table, model=model, steps=budget.dream_steps, extra={"dream_round": k})
        recs = evaluate_queries(model, vocab, table, test_rows)
        rounds.append({"round": k, "dreamed": len(judged), "diverge_rate": len(diverge) / max(1, len(judged)),
                       "mean_regret": sum(j["regret"] for j in judged) / max(1, len(judged)),
                       "examples": [{key: j[key] for key in ("query", "answer", "agree", "p_call")}
                                    for j in judged[:8]], **round_summary(recs)})
    return {"rounds": rounds, "recs": recs}


def round_summary(recs: list[dict]) -> dict:
    s = summarize(recs, "learned")
    return {"call_rate": {g: s[g]["call_rate"] for g in s}, "accuracy": {g: s[g]["accuracy"] for g in s}}


def main(argv: list[str]) -> int:
    p = lab_parser("tools", "Part 6: when is a tool call worth its cost?", BUDGETS, seed=0)
    p.add_argument("--costs", default=None, help="comma-separated call costs (default: the budget's)")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    if args.costs:
        try:
            budget = replace(budget, costs=tuple(float(c) for c in args.costs.split(",")))
        except ValueError:
            raise UserError(f"--costs {args.costs!r}: give comma-separated numbers, e.g. 0.02,0.2,0.5") from None
        if budget.moderate not in budget.costs:
            budget = replace(budget, moderate=min(budget.costs, key=lambda c: abs(c - 0.5)))
    out = Path(args.out)
    t0 = time.perf_counter()
    train_rows, val_rows, test_rows, table = load_suite(args.seed)
    val_rows, test_rows = per_family(val_rows, budget.eval_per_family), per_family(test_rows, budget.eval_per_family)
    vocab = make_vocab()
    block_size = block_size_for(train_rows + val_rows + test_rows, vocab)
    train_data = encode_pairs(train_rows, vocab, block_size)
    base = train_one(out / "base", budget, budget.moderate, args.seed, vocab, block_size, train_data, val_rows, table)
    moderate = None
    for cost in budget.costs:
        run = out / f"cost_{cost:g}"
        model = train_one(run, budget, cost, args.seed, vocab, block_size, train_data, val_rows, table,
                          model=copy.deepcopy(base), steps=budget.policy_steps, extra={"continues": "base"})
        recs = evaluate_queries(model, vocab, table, test_rows)
        write_json(run / "analysis.json", {"call_cost": cost, "budget": args.budget, **analysis(recs), "queries": recs})
        if cost == budget.moderate:
            moderate = model
        print(f"call cost {cost:g}: learned call rate "
              + ", ".join(f"{k} {summarize(recs, 'learned')[k]['call_rate']:.2f}" for k in KINDS))
    dream = run_dream(out, moderate, budget, args.seed, vocab, block_size, train_rows, val_rows, test_rows, table)
    write_json(out / "dream" / "analysis.json", {"call_cost": budget.moderate, "budget": args.budget,
                                                 "rounds": dream["rounds"], **analysis(dream["recs"]),
                                                 "queries": dream["recs"]})
    write_json(out / "experiment.json", {"budget": asdict(budget), "seed": args.seed,
                                         "wall_s": round(time.perf_counter() - t0, 1)})
    report(out)
    print(f"wrote {out / 'report.md'}, {out / 'figures'} and {out / 'tools.html'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


# -----------------------------------------------------------------------------
# figures, report, explorable (read only the run directories)


def load_runs(out: Path) -> tuple[list[dict], dict | None]:
    """The analysis.json of every call-cost run (sorted by cost) and of the dream run."""
    runs = []
    for p in sorted(out.glob("cost_*/analysis.json")):
        runs.append({**json.loads(p.read_text()), "run": p.parent.name})
    if not runs:
        raise UserError(f"{out} has no cost_*/analysis.json; run the lab first: nnlabs lab tools --out {out}")
    runs.sort(key=lambda r: r["call_cost"])
    dream_path = out / "dream" / "analysis.json"
    return runs, json.loads(dream_path.read_text()) if dream_path.exists() else None


def model_rows(runs: list[dict], dream: dict | None) -> list[tuple[str, dict]]:
    """(label, summary by group) for: never call, always call, learned at each cost, learned + dream."""
    mod = moderate_run(runs, dream)
    rows = [("never call", mod["modes"]["never"]), ("always call", mod["modes"]["always"])]
    rows += [(f"learned, c={r['call_cost']:g}", r["modes"]["learned"]) for r in runs]
    if dream:
        rows.append((f"learned + dream, c={dream['call_cost']:g}", dream["modes"]["learned"]))
    return rows


def moderate_run(runs: list[dict], dream: dict | None) -> dict:
    target = dream["call_cost"] if dream else 0.5
    return min(runs, key=lambda r: abs(r["call_cost"] - target))


def report(out: Path) -> None:
    from nnlabs.report.figures import new_figure, save

    out = Path(out)
    runs, dream = load_runs(out)
    mod = moderate_run(runs, dream)
    rows = model_rows(runs, dream)
    figs = out / "figures"

    # 1. call rate by query kind (left) and by family (right)
    fig, ax = new_figure(2, 1, width=6.2, height=3.8)
    width = 0.8 / len(KINDS)
    for j, kind in enumerate(KINDS):
        ax[0][0].bar([i + j * width for i in range(len(rows))], [s[kind]["call_rate"] for _, s in rows], width,
                     label=kind.replace("_", "-"))
    ax[0][0].set_xticks([i + width / 2 for i in range(len(rows))], [label for label, _ in rows], rotation=35,
                        ha="right")
    ax[0][0].set(ylabel="tool call rate (fraction of test queries)", ylim=(0, 1.05),
                 title="Who calls the tool, by query kind")
    ax[0][0].legend()
    fams = [f for f in FAMILIES if f in mod["modes"]["learned"]]
    pair = [(f"learned, c={mod['call_cost']:g}", mod["modes"]["learned"])]
    if dream:
        pair.append(("learned + dream", dream["modes"]["learned"]))
    width = 0.8 / len(pair)
    for j, (label, summ) in enumerate(pair):
        ax[0][1].bar([i + j * width for i in range(len(fams))], [summ[f]["call_rate"] for f in fams], width,
                     label=label)
    ax[0][1].set_xticks([i + width / 2 for i in range(len(fams))], fams, rotation=35, ha="right")
    ax[0][1].set(ylabel="tool call rate", ylim=(0, 1.05), title="By query family (first two: memorizable)")
    ax[0][1].legend()
    save(fig, figs / "call_rate_by_kind", source=str(out))

    # 2. the accuracy–cost frontier over call costs
    fig, ax = new_figure(2, 1, width=5.2, height=3.8)
    for k, group in enumerate(("all", "needs_tool")):
        a = ax[0][k]
        learned = [(r["modes"]["learned"][group], r["call_cost"]) for r in runs]
        a.plot([s["compute_per_query"] / 1e6 for s, _ in learned], [s["accuracy"] for s, _ in learned], "o-",
               color="C0", label="learned policy (label: call cost c)")
        for s, c in learned:
            a.annotate(f"c={c:g}", (s["compute_per_query"] / 1e6, s["accuracy"]), fontsize=7,
                       xytext=(4, -10), textcoords="offset points")
        for label, mode, style, color in (("never call", "never", "s", "C2"), ("always call", "always", "^", "C1")):
            s = mod["modes"][mode][group]
            a.plot(s["compute_per_query"] / 1e6, s["accuracy"], style, ms=8, color=color, label=label)
        if dream:
            s = dream["modes"]["learned"][group]
            a.plot(s["compute_per_query"] / 1e6, s["accuracy"], "*", ms=12, color="C3", label="learned + dream")
        a.set(xlabel="compute per query (M MACs: model + declared call cost)", ylabel="accuracy (exact answer)",
              ylim=(-0.03, 1.03), title=f"Accuracy vs cost: {'all queries' if group == 'all' else 'needs-tool'}")
        a.legend(loc="lower right")
    save(fig, figs / "frontier", source=str(out))

    # 3. the dream state, round by round
    if dream:
        fig, ax = new_figure(2, 1, width=5.2, height=3.6)
        rs = dream["rounds"]
        x = [r["round"] for r in rs]
        for group in ("memorizable", "needs_tool", "near_miss_key", "mid_arith"):
            ax[0][0].plot(x, [r["call_rate"].get(group, float("nan")) for r in rs], "o-", label=group)
            ax[0][1].plot(x, [r["accuracy"].get(group, float("nan")) for r in rs], "o-", label=group)
        ax[0][1].plot(x[1:], [r["diverge_rate"] for r in rs[1:]], "k--", label="dreams that diverge")
        ax[0][0].set(xlabel="dream round (0 = before)", ylabel="tool call rate (test)", ylim=(-0.03, 1.03),
                     title="Dream state: when the policy calls")
        ax[0][1].set(xlabel="dream round (0 = before)", ylabel="accuracy (test) / fraction", ylim=(-0.03, 1.03),
                     title="Dream state: what it gets right")
        for a in ax[0]:
            a.set_xticks(x)
            a.legend()
        save(fig, figs / "dream_rounds", source=str(out / "dream"))

    # 4. calibration: does π track how often the direct answer is wrong?
    fig, ax = new_figure(1, 1, width=4.6, height=4.0)
    for label, an in [(f"learned, c={mod['call_cost']:g}", mod)] + ([("learned + dream", dream)] if dream else []):
        b = [t for t in an["calibration"]["bins"] if t["n"] >= 3]  # a bin of one or two queries is noise
        ax[0][0].plot([t["mean_p_call"] for t in b], [t["direct_wrong"] for t in b], "o-",
                      label=f"{label} (ECE {an['calibration']['ece']:.2f})")
    ax[0][0].plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    ax[0][0].set(xlabel="P(CALL) (10 bins; bins with ≥ 3 queries)", ylabel="fraction of direct answers wrong",
                 title="Calibration of the call decision", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax[0][0].legend()
    save(fig, figs / "calibration", source=str(out))

    write_report(out, runs, dream, rows, mod)
    write_explorable(out, mod, dream)


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def write_report(out: Path, runs, dream, rows, mod) -> None:
    exp = json.loads((out / "experiment.json").read_text()) if (out / "experiment.json").exists() else {}
    lines = ["# Part 6 — tool use: when is a call worth its cost?", "",
             f"Budget `{mod.get('budget', '?')}`, seed {exp.get('seed', '?')}, wall time "
             f"{exp.get('wall_s', '?')} s. Test queries: {mod['modes']['learned']['all']['n']} "
             f"({mod['modes']['learned']['memorizable']['n']} memorizable, "
             f"{mod['modes']['learned']['needs_tool']['n']} needs-tool). Compute = model forward MACs over the "
             "whole sequence (query, decision, call, spliced output, answer) + the tool's declared cost "
             f"(calc {suite.COST['calc']:,}, lookup {suite.COST['lookup']:,} MAC-equivalents).", "",
             "## Call rate and accuracy by query kind", "",
             "| model | call rate memorizable | call rate needs-tool | acc. memorizable | acc. needs-tool "
             "| acc. all | compute / query (M MACs) | cost / correct answer (M MACs) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, s in rows:
        lines.append(f"| {label} | {pct(s['memorizable']['call_rate'])} | {pct(s['needs_tool']['call_rate'])} | "
                     f"{pct(s['memorizable']['accuracy'])} | {pct(s['needs_tool']['accuracy'])} | "
                     f"{pct(s['all']['accuracy'])} | {s['all']['compute_per_query'] / 1e6:.2f} | "
                     + ("–" if s["all"]["cost_per_correct"] is None else f"{s['all']['cost_per_correct'] / 1e6:.2f}")
                     + " |")
    best = dream["modes"]["learned"] if dream else mod["modes"]["learned"]
    learned = [(label, s) for label, s in rows if label.startswith("learned")]
    met = [label for label, s in learned
           if s["needs_tool"]["call_rate"] >= 0.9 and s["memorizable"]["call_rate"] <= 0.2]
    lines += ["", "## Targets", "",
              "- Call on ≥ 90% of needs-tool and ≤ 20% of memorizable queries: "
              + (f"**met** by {' and '.join(met)}" if met else "**not met** by any learned policy at this budget")
              + "; " + "; ".join(f"{label}: {pct(s['needs_tool']['call_rate'])} / {pct(s['memorizable']['call_rate'])}"
                                 for label, s in learned) + " (needs-tool / memorizable call rate).",
              f"- Needs-tool accuracy: {pct(best['needs_tool']['accuracy'])} with the learned policy"
              f"{' + dream' if dream else ''} at c={mod['call_cost']:g} vs "
              f"{pct(mod['modes']['never']['needs_tool']['accuracy'])} for the same model never calling "
              f"(always calling: {pct(mod['modes']['always']['needs_tool']['accuracy'])}; the gap to 100% is the "
              "model mis-writing the call or mis-copying the tool's output).", "",
              "## By query family (learned policy)", "",
              "| family | kind | call rate | accuracy | " + ("call rate after dream | accuracy after dream |"
                                                           if dream else ""),
              "|---|---|---|---|" + ("---|---|" if dream else "")]
    for f in FAMILIES:
        s = mod["modes"]["learned"].get(f)
        if s is None:
            continue
        kind = suite.FAMILIES[f].replace("_", "-")
        d = dream["modes"]["learned"][f] if dream else None
        extra = f" {pct(d['call_rate'])} | {pct(d['accuracy'])} |" if d else ""
        lines.append(f"| {f} | {kind} | {pct(s['call_rate'])} | {pct(s['accuracy'])} |{extra}")
    lines += ["", "## Calibration of the decision", "",
              "π = P(CALL) read as the probability that the direct answer would be wrong "
              "(see docs/tools.md). Lower is better.", "",
              "| model | ECE | Brier |", "|---|---|---|",
              f"| learned, c={mod['call_cost']:g} | {mod['calibration']['ece']:.3f} | "
              f"{mod['calibration']['brier']:.3f} |"]
    if dream:
        lines.append(f"| learned + dream | {dream['calibration']['ece']:.3f} | {dream['calibration']['brier']:.3f} |")
        lines += ["", "## The dream state, round by round", "",
                  "| round | dreamed queries | diverge (no-tool ≠ tool) | mean regret | call rate memorizable | "
                  "call rate needs-tool | call rate near-miss keys | acc. needs-tool |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in dream["rounds"]:
            lines.append(f"| {r['round']} | {r.get('dreamed', '–')} | {pct(r.get('diverge_rate'))} | "
                         + ("–" if "mean_regret" not in r else f"{r['mean_regret']:.2f}")
                         + f" | {pct(r['call_rate']['memorizable'])} | {pct(r['call_rate']['needs_tool'])} | "
                         f"{pct(r['call_rate'].get('near_miss_key'))} | {pct(r['accuracy']['needs_tool'])} |")
        last = dream["rounds"][-1].get("examples", [])
        if last:
            lines += ["", "The queries that fooled the policy most in the last round (adversarial search):", ""]
            lines += [f"- `{e['query']}` → {e['answer']} (no-tool answer {'agrees' if e['agree'] else 'diverges'}, "
                      f"P(CALL) = {e['p_call']:.2f})" for e in last[:6]]
    lines += ["", "## Honest notes", "",
              "- Numbers come from one seed on a toy model; differences of a few points between call costs are noise.",
              "- The learned policy's outcome on a query is the branch its decision picks (π > 1/2); with greedy "
              "decoding that is exactly what generation with the tool in the loop writes.",
              "- Mid-size arithmetic (two-digit operands) never appears in training: even when forced to call, the "
              f"model gets {pct(mod['modes']['always'].get('mid_arith', {}).get('accuracy'))} of them right, because "
              "it cannot write a call of a length it never saw; only the dream state's perturbations reach them.",
              "- Near-miss keys (one letter off a famous key) look familiar: before the dream state the policy "
              f"calls on {pct(mod['modes']['learned'].get('near_miss_key', {}).get('call_rate'))} of them.", "",
              "Figures: `figures/call_rate_by_kind`, `figures/frontier`, `figures/dream_rounds`, "
              "`figures/calibration`. Explorable: `tools.html`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


PATCHES = [("nnlabs.spine.data:encode_words", "nnlabs.labs.tools:encode_pairs"),
           ("nnlabs.spine.models:Transformer.forward", "nnlabs.labs.tools:ToolUser.forward")]


EXPLORABLE_BODY = """
<p class="note">A small transformer decides, for each query, whether to answer from memory
(<code>&lt;NO_TOOL&gt;</code>) or to call a tool (<code>&lt;CALL_TOOL&gt;</code>), which costs compute.
Everything below was precomputed from the lab's run directories; the page itself runs no model.</p>
<div class="controls"><label>model <select id="model"></select></label>
<label>query <select id="query"></select></label></div>
<div id="trace"></div>
<h2>All precomputed queries</h2>
<p class="note">Click a row to trace it. Cost = model MACs + the declared cost of a call, in M MACs.</p>
<table class="heat" id="all"></table>
<h2>Try the calculator</h2>
<p class="note">The same grammar as the pack's <code>calc</code> (digits, + - * ^ and parentheses), ported to JS:
it parses, never evaluates code.</p>
<div class="controls"><input id="expr" class="mono" size="40" value="12*(34+5)-2^10">
<span id="calc-out" class="mono"></span></div>
"""

EXPLORABLE_CSS = """
#trace { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; max-width: 720px; }
.row { display: flex; gap: 1em; margin: .25em 0; } .row b { min-width: 11em; }
.bar { height: 14px; background: #eee; width: 300px; position: relative; display: inline-block; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; background: #c0392b; }
.ok { color: #1e8449; } .bad { color: #c0392b; }
"""

EXPLORABLE_JS = """
const modelSel = document.getElementById('model'), querySel = document.getElementById('query');
for (const name of Object.keys(DATA.models)) modelSel.append(el('option', {value: name}, name));
function fillQueries() {
  clear(querySel);
  DATA.models[modelSel.value].forEach((r, i) => querySel.append(el('option', {value: i}, r.family + ': ' + r.query)));
  show();
}
function fmt(n) { return (n / 1e6).toFixed(2) + ' M MACs'; }
function row(label, ...value) { return el('div', {class: 'row'}, el('b', {}, label), el('span', {}, ...value)); }
function show() {
  const r = DATA.models[modelSel.value][+querySel.value || 0], t = clear(document.getElementById('trace'));
  const call = r.p_call > 0.5;
  const bar = el('span', {class: 'bar'}, el('span', {style: {width: (100 * r.p_call).toFixed(1) + '%'}}));
  t.append(row('query', el('code', {}, r.query)), row('kind', r.kind + ' (' + r.family + ')'),
           row('P(CALL_TOOL)', bar, ' ' + r.p_call.toFixed(3)),
           row('decision', call ? '<CALL_TOOL>: call the tool' : '<NO_TOOL>: answer from memory'));
  if (call) t.append(row('the call', el('code', {}, r.call)),
                     row('tool output', el('code', {}, r.output === null ? '(the call was never closed)' : r.output)));
  const answer = call ? r.tool_answer : r.direct_answer, ok = call ? r.tool_ok : r.direct_ok;
  t.append(row('answer', el('code', {}, answer), ' ', el('span', {class: ok ? 'ok' : 'bad'},
           ok ? '✓ correct' : '✗ wrong (gold ' + r.gold + ')')));
  const model = call ? r.tool_macs : r.direct_macs, tool = call ? r.call_cost : 0;
  t.append(row('cost', fmt(model) + ' model' + (call ? ' + ' + fmt(tool) + ' declared call cost' : '') +
               ' = ' + fmt(model + tool)));
  const other = call ? 'from memory it would say ' + r.direct_answer + (r.direct_ok ? ' (right)' : ' (wrong)')
                     : 'with the tool it would say ' + r.tool_answer + (r.tool_ok ? ' (right)' : ' (wrong)');
  t.append(row('road not taken', other));
}
function fillTable() {
  const tab = clear(document.getElementById('all'));
  const heads = ['family', 'query', 'P(CALL)', 'decision', 'answer', 'correct', 'cost'];
  tab.append(el('tr', {}, ...heads.map(h => el('th', {}, h))));
  DATA.models[modelSel.value].forEach((r, i) => {
    const call = r.p_call > 0.5, ok = call ? r.tool_ok : r.direct_ok;
    const cost = call ? r.tool_macs + r.call_cost : r.direct_macs;
    const tr = el('tr', {style: {cursor: 'pointer'}, onclick: () => { querySel.value = i; show(); }},
      el('td', {}, r.family), el('td', {class: 'mono'}, r.query), el('td', {}, r.p_call.toFixed(2)),
      el('td', {}, call ? 'call' : 'memory'), el('td', {class: 'mono'}, call ? r.tool_answer : r.direct_answer),
      el('td', {class: ok ? 'ok' : 'bad'}, ok ? '✓' : '✗'), el('td', {}, (cost / 1e6).toFixed(2)));
    tr.firstChild.style.textAlign = 'left';
    tab.append(tr);
  });
}
modelSel.onchange = () => { fillQueries(); fillTable(); }; querySel.onchange = show; fillQueries(); fillTable();

// calc: the pack's grammar. expr := term (('+'|'-') term)*; term := power ('*' power)*;
// power := unary ('^' power)?; unary := '-' unary | atom; atom := NUMBER | '(' expr ')'
function calc(text) {
  if (text.length > 64) throw new Error('expression is ' + text.length + ' characters long (limit 64)');
  const toks = [];
  for (let i = 0; i < text.length;) {
    const ch = text[i];
    if (!'0123456789+-*^() '.includes(ch)) throw new Error('character ' + JSON.stringify(ch) + ' at position ' + i +
      ' is outside the grammar (digits, + - * ^ ( ) and spaces only)');
    if (/[0-9]/.test(ch)) { let j = i; while (j < text.length && /[0-9]/.test(text[j])) j++;
      if (j - i > 12) throw new Error('number at position ' + i + ' has ' + (j - i) + ' digits (limit 12)');
      toks.push(text.slice(i, j)); i = j; } else { if (ch !== ' ') toks.push(ch); i++; }
  }
  let pos = 0, depth = 0;
  const LIMIT = 10n ** 30n, peek = () => toks[pos];
  const take = () => { if (pos >= toks.length) throw new Error('expression ends too early'); return toks[pos++]; };
  const bounded = v => { if ((v < 0n ? -v : v) >= LIMIT) throw new Error('a value exceeds 30 digits'); return v; };
  function expr() { let v = term();
    while (peek() === '+' || peek() === '-') v = bounded(take() === '+' ? v + term() : v - term()); return v; }
  function term() { let v = power(); while (peek() === '*') { take(); v = bounded(v * power()); } return v; }
  function power() { const b = unary(); if (peek() !== '^') return b; take(); const e = power();
    if (e < 0n || e > 64n) throw new Error('exponent ' + e + ' is outside 0..64');
    const d = (b < 0n ? -b : b).toString().length;
    if (b > 1n || b < -1n) { if (Number(e) * (d - 1) >= 30) throw new Error('a value exceeds 30 digits'); }
    return bounded(b ** e); }
  function unary() { if (++depth > 16) throw new Error('nesting deeper than 16');
    const v = peek() === '-' ? (take(), -unary()) : atom(); depth--; return v; }
  function atom() { const t = take(); if (/^[0-9]+$/.test(t)) return BigInt(t);
    if (t === '(') { const v = expr(); if (take() !== ')') throw new Error("expected ')'"); return v; }
    throw new Error('unexpected ' + JSON.stringify(t) + "; expected a number or '('"); }
  if (!toks.length) throw new Error('empty expression');
  const v = expr();
  if (pos < toks.length) throw new Error('unexpected ' + JSON.stringify(peek()) + ' after a complete expression');
  return v.toString();
}
const exprIn = document.getElementById('expr'), calcOut = document.getElementById('calc-out');
function runCalc() { try { calcOut.textContent = '= ' + calc(exprIn.value); calcOut.className = 'mono ok'; }
  catch (e) { calcOut.textContent = 'calc: ' + e.message; calcOut.className = 'mono bad'; } }
exprIn.oninput = runCalc; runCalc();
"""


def write_explorable(out: Path, mod: dict, dream: dict | None, per_fam: int = 6) -> Path:
    from nnlabs.report.explorable import write_html

    keys = ("query", "kind", "family", "gold", "p_call", "call", "output", "tool_answer", "tool_ok", "direct_answer",
            "direct_ok", "direct_macs", "tool_macs", "call_cost")
    models = {f"learned, call cost {mod['call_cost']:g}": mod}
    if dream:
        models[f"learned + dream state, call cost {dream['call_cost']:g}"] = dream
    data = {"models": {name: [{k: r[k] for k in keys} for r in per_family(an["queries"], per_fam)]
                       for name, an in models.items()}}
    return write_html(out / "tools.html", "Tool use: the call decision, query by query", data,
                      EXPLORABLE_BODY, EXPLORABLE_JS, EXPLORABLE_CSS)
