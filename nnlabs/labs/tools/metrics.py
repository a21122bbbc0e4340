"""What the tools lab measures per test query, and how it sums them up.

Every model is scored three ways from the same weights: never call (forced <NO_TOOL>), always call
(forced <CALL_TOOL>, the tool runs inside generation) and learned (the branch its decision picks, π > ½;
with greedy decoding exactly what generation writes once it has sampled that token). Definitions of
every metric: docs/tools.md.
"""

from __future__ import annotations

import torch

from nnlabs.labs.tools.policy import ToolUser
from nnlabs.labs.tools.sampling import answer_all, call_probs
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import Vocab
from nnlabs.spine.macs import count_macs

KINDS, FAMILIES = suite.KINDS, tuple(suite.FAMILIES)
MODES = ("never", "always", "learned")


class MacMeter:
    """Forward MACs of one pass over a sequence of `n` positions — what a cached decoder spends on it."""

    def __init__(self, model):
        self.model, self.cache = model, {}

    @torch.no_grad()
    def __call__(self, n: int) -> int:
        n = min(n, self.model.config.block_size)
        if n not in self.cache:
            with count_macs(self.model) as counter:
                self.model(torch.zeros(1, n, dtype=torch.long))
            self.cache[n] = counter.macs
        return self.cache[n]


def evaluate_queries(model: ToolUser, vocab: Vocab, table: dict, rows: list[dict]) -> list[dict]:
    """Per query: π, the direct answer, the tool-path answer, their correctness and their compute."""
    queries = [r["query"] for r in rows]
    pis = call_probs(model, vocab, queries)
    direct = answer_all(model, vocab, table, queries, "direct")
    tool = answer_all(model, vocab, table, queries, "call")
    macs = MacMeter(model)
    recs = []
    for r, pi, d, t in zip(rows, pis, direct, tool):
        # a well-formed call is charged its own tool's price; a malformed one the price of the right tool
        wrote_call = t["call"].startswith(("calc(", "lookup("))
        cost = suite.COST[suite.tool_of(t["call"]) if wrote_call else r["tool"]]
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
    """Per group (all, each kind, each family): call rate, accuracy, compute per query, cost per correct."""
    out = {}
    for group in ("all",) + KINDS + FAMILIES:
        sel = [r for r in recs if group in ("all", r["kind"], r["family"])]
        if not sel:
            continue
        outcomes = [mode_outcome(r, mode) for r in sel]
        correct, compute = sum(c for _, c, _ in outcomes), sum(m for _, _, m in outcomes)
        # cost per correct answer = Σ_q (model MACs_q + [called_q]·declared call cost) / #correct
        out[group] = {"n": len(sel), "call_rate": sum(c for c, _, _ in outcomes) / len(sel),
                      "accuracy": correct / len(sel), "compute_per_query": compute / len(sel),
                      "cost_per_correct": compute / correct if correct else None}
    return out


def calibration(recs: list[dict], bins: int = 10) -> dict:
    """How well π predicts that the direct answer would be wrong (the event a call is for)."""
    table = []
    for b in range(bins):
        sel = [r for r in recs if min(int(r["p_call"] * bins), bins - 1) == b]
        if sel:
            table.append({"bin": b, "n": len(sel), "mean_p_call": sum(r["p_call"] for r in sel) / len(sel),
                          "direct_wrong": sum(not r["direct_ok"] for r in sel) / len(sel)})
    n = len(recs)
    # ECE = Σ_b (n_b / N) · |mean π in bin b − fraction of direct answers wrong in bin b|
    ece = sum(t["n"] / n * abs(t["mean_p_call"] - t["direct_wrong"]) for t in table)
    # Brier = mean (π − e)², e = 1 where the direct answer is wrong
    brier = sum((r["p_call"] - (not r["direct_ok"])) ** 2 for r in recs) / n
    return {"ece": ece, "brier": brier, "bins": table}


def analysis(recs: list[dict]) -> dict:
    return {"modes": {m: summarize(recs, m) for m in MODES}, "calibration": calibration(recs)}


def round_summary(recs: list[dict]) -> dict:
    """The learned policy's call rate and accuracy by group: one row of the dream state's table."""
    s = summarize(recs, "learned")
    return {"call_rate": {g: s[g]["call_rate"] for g in s}, "accuracy": {g: s[g]["accuracy"] for g in s}}
