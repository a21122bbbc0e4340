"""What the tools lab measures per test query, and how it sums them up.

Every model is scored three ways from the same weights: never call (forced <NO_TOOL>), always call
(forced <CALL_TOOL>, the tool runs inside generation) and learned (the branch its decision picks, π > ½;
with greedy decoding exactly what generation writes once it has sampled that token). Definitions of
every metric: docs/tools.md.
"""

from __future__ import annotations

import numpy as np
import torch

from nnlabs.labs.tools.policy import ToolUser
from nnlabs.labs.tools.sampling import answer_all, call_probs
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import Vocab
from nnlabs.spine.macs import count_macs

KINDS, FAMILIES = suite.KINDS, tuple(suite.FAMILIES)
# never: forced <NO_TOOL>; always: forced <CALL_TOOL>; learned: π > ½; oracle: call exactly when the
# no-tool answer is wrong (the router that knows the answer, RouteLLM's "optimal")
MODES = ("never", "always", "learned", "oracle")


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
    called = {"never": False, "always": True, "learned": rec["p_call"] > 0.5, "oracle": not rec["direct_ok"]}[mode]
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
        called = [ok for c, ok, _ in outcomes if c]
        not_called = [ok for c, ok, _ in outcomes if not c]
        # cost per correct answer = Σ_q (model MACs_q + [called_q]·declared call cost) / #correct
        out[group] = {"n": len(sel), "call_rate": len(called) / len(sel),
                      "accuracy": correct / len(sel), "compute_per_query": compute / len(sel),
                      "cost_per_correct": compute / correct if correct else None,
                      # Toolformer's split: accuracy where the policy called, and where it did not
                      "accuracy_called": sum(called) / len(called) if called else None,
                      "accuracy_not_called": sum(not_called) / len(not_called) if not_called else None}
    return out


def calibration(recs: list[dict], bins: int = 10, resamples: int = 1000, seed: int = 0) -> dict:
    """How well π predicts that a call pays: the event e = 1 where the tool's answer is right and the no-tool
    answer wrong. Bins of equal width in π; the ECE's 95 % interval by resampling the queries."""
    pi = np.array([r["p_call"] for r in recs])  # [N]
    pays = np.array([r["tool_ok"] and not r["direct_ok"] for r in recs], dtype=float)  # [N]
    wrong = np.array([not r["direct_ok"] for r in recs], dtype=float)  # [N]
    bin_of = np.minimum((pi * bins).astype(int), bins - 1)  # [N]

    def ece(idx: np.ndarray) -> float:
        # ECE = Σ_b (n_b / N) · |mean π_b − mean e_b| = Σ_b |Σ_b π − Σ_b e| / N
        return float(np.abs(np.bincount(bin_of[idx], pi[idx], bins) - np.bincount(bin_of[idx], pays[idx], bins))
                     .sum() / len(idx))

    rng = np.random.default_rng(seed)
    boot = [ece(rng.integers(0, len(recs), len(recs))) for _ in range(resamples)]
    n = np.bincount(bin_of, minlength=bins)
    table = [{"bin": b, "n": int(n[b]), "mean_p_call": float(pi[bin_of == b].mean()),
              "call_pays": float(pays[bin_of == b].mean()), "direct_wrong": float(wrong[bin_of == b].mean())}
             for b in range(bins) if n[b]]
    # Brier = mean (π − e)²
    return {"event": "the tool's answer is right and the no-tool answer wrong", "ece": ece(np.arange(len(recs))),
            "ece_interval": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "brier": float(((pi - pays) ** 2).mean()), "bins": table}


def needed_call_rate(recs: list[dict]) -> float | None:
    """Of the queries where a call is needed (no-tool answer wrong, tool's right), the fraction the policy calls."""
    needed = [r for r in recs if r["tool_ok"] and not r["direct_ok"]]
    return sum(r["p_call"] > 0.5 for r in needed) / len(needed) if needed else None


def analysis(recs: list[dict]) -> dict:
    return {"modes": {m: summarize(recs, m) for m in MODES}, "calibration": calibration(recs),
            "needed_call_rate": needed_call_rate(recs)}


def oracle_curve(recs: list[dict]) -> list[tuple[float, float]]:
    """The best accuracy any router reaches at each call rate (RouteLLM's optimal router), as the corners of
    a piecewise-linear curve: first the calls that fix a wrong answer, then the harmless ones, then the harmful."""
    n = len(recs)
    gain = sum(r["tool_ok"] and not r["direct_ok"] for r in recs) / n
    loss = sum(r["direct_ok"] and not r["tool_ok"] for r in recs) / n
    never = sum(r["direct_ok"] for r in recs) / n
    return [(0.0, never), (gain, never + gain), (1 - loss, never + gain), (1.0, never + gain - loss)]


def area_fraction(curve: list[tuple[float, float]], oracle: list[tuple[float, float]]) -> float | None:
    """RouteLLM's APGR with the oracle as the ceiling: the area between a router's curve (call rate, accuracy)
    and never-call, over the oracle's: ∫ (acc(x) − acc_never) dx / ∫ (oracle(x) − acc_never) dx, x ∈ [0, 1]."""
    never = oracle[0][1]

    def area(points):
        # the trapezoid rule on the corners, which is exact for a piecewise-linear curve
        return sum((x1 - x0) * ((y0 + y1) / 2 - never) for (x0, y0), (x1, y1) in zip(points, points[1:]))

    ceiling = area(oracle)
    return area(curve) / ceiling if ceiling > 0 else None


def probe_rates(rows: list[dict], pis: list[float]) -> dict:
    """What one evaluation logs about the decision on the probe queries (`rows`, their π in `pis`): the call
    rate (π > ½) per kind and per family, and the mean π per family — the memorisation curve's points."""
    out = {}
    for key, groups in (("kind", KINDS), ("family", FAMILIES)):
        for g in groups:
            sel = [p for p, r in zip(pis, rows) if r[key] == g]
            if sel:
                out[f"call_rate_{g}"] = sum(p > 0.5 for p in sel) / len(sel)
                if key == "family":
                    out[f"p_call_{g}"] = sum(sel) / len(sel)
    return out


def round_summary(recs: list[dict]) -> dict:
    """The learned policy's call rate and accuracy by group: one row of the dream state's table."""
    s = summarize(recs, "learned")
    return {"call_rate": {g: s[g]["call_rate"] for g in s}, "accuracy": {g: s[g]["accuracy"] for g in s}}
