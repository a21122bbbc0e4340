"""`nnlabs lab tools`: the runs behind Part 6 — a base run, one continuation per call price, the dream state.

    nnlabs lab tools --budget {tiny,quick,full} [--out runs/tools] [--seed 0] [--costs 0.02,0.2,0.5]

One base run at the moderate price trains both branches and a first decision; each price continues it
for `policy_steps` with its own price (the LM is shared, the decision moves); the dream state continues
the moderate model. Every run directory holds the run's config.json (the shared schema), metrics.jsonl,
checkpoint.pt, samples.txt and — for the scored runs — analysis.json with every test query's record.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from nnlabs.labs import lab_parser, run_config
from nnlabs.labs.tools.metrics import KINDS, analysis, evaluate_queries, probe_rates, round_summary, summarize
from nnlabs.labs.tools.policy import ToolUser, branch_texts, encode_pairs, make_vocab
from nnlabs.labs.tools.sampling import answer_all, call_probs, generate_with_tools, tool_splice
from nnlabs.pack import tool_suite as suite
from nnlabs.spine.data import SequenceData, Vocab
from nnlabs.spine.errors import UserError
from nnlabs.spine.models import ModelConfig
from nnlabs.spine.rundir import claim
from nnlabs.spine.train import TrainConfig, train, write_json


@dataclass(frozen=True, kw_only=True)
class ToolsBudget:
    name: str
    n_layer: int
    n_embd: int
    n_head: int
    # the base run: both branches and a first decision, at the moderate price
    steps: int
    # each call price continues the base run this many steps with its own price
    policy_steps: int
    batch_size: int
    # the price sweep: from "always worth it" to "never worth it" (a call can add at most 1), on a log scale
    costs: tuple[float, ...]
    # the price the base run and the dream state use, and the explorable shows
    moderate: float
    # test queries per family (0 = all)
    eval_per_family: int
    dream_rounds: int
    dream_candidates: int
    dream_steps: int
    # every evaluation logs the val call rate per family: the points of the memorisation curve
    eval_interval: int
    learning_rate: float = 3e-3


BUDGETS = {budget.name: budget for budget in (
    ToolsBudget(name="tiny", n_layer=1, n_embd=32, n_head=2, steps=40, policy_steps=10, batch_size=32, costs=(0.5,),
                moderate=0.5, eval_per_family=4, dream_rounds=1, dream_candidates=16, dream_steps=10,
                eval_interval=1000),
    ToolsBudget(name="quick", n_layer=2, n_embd=64, n_head=4, steps=1500, policy_steps=150, batch_size=48,
                costs=(0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 2.0), moderate=0.5, eval_per_family=40,
                dream_rounds=3, dream_candidates=128, dream_steps=150, eval_interval=100),
    ToolsBudget(name="full", n_layer=3, n_embd=96, n_head=4, steps=3600, policy_steps=400, batch_size=64,
                costs=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), moderate=0.5, eval_per_family=0,
                dream_rounds=4, dream_candidates=512, dream_steps=400, eval_interval=240),
)}
# a diverging dreamed query enters the next round's training set this many times
UPWEIGHT = 2


def load_suite(seed: int) -> tuple[list[dict], list[dict], list[dict], dict]:
    files = suite.build(seed)
    rows = {s: suite.parse_rows(files[f"{suite.NAME}/{s}.tsv"]) for s in ("train", "val", "test")}
    return rows["train"], rows["val"], rows["test"], suite.parse_table(files[f"{suite.NAME}/table.tsv"])


def per_family(rows: list[dict], n: int) -> list[dict]:
    """The first n rows of each family (all of them for n = 0)."""
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
    # + 8: slack for dreamed operands
    return max(len(vocab.encode(branch_texts(r)[1])) + 1 for r in rows) + 8


@dataclass(frozen=True)
class Setting:
    """What every run of one experiment shares."""

    budget: ToolsBudget
    seed: int
    vocab: Vocab
    block_size: int
    val_rows: list[dict]
    table: dict[str, str]
    resume: bool = False  # --resume: every run continues from its checkpoint (a finished one just reloads)
    force: bool = False  # --force: every run starts over, the dream rounds nested in dream/ included


def train_one(run_dir: Path, setting: Setting, cost: float, train_data: SequenceData, seed: int,
              model: ToolUser | None = None, steps: int | None = None, **lab_config) -> ToolUser:
    """Train a new model (model None) or continue one for `steps` at price `cost`."""
    budget, vocab, block_size, val_rows = setting.budget, setting.vocab, setting.block_size, setting.val_rows
    cfg = ModelConfig(vocab_size=len(vocab), block_size=block_size, n_layer=budget.n_layer, n_head=budget.n_head,
                      n_embd=budget.n_embd)
    if model is None:
        torch.manual_seed(seed)
        model = ToolUser(cfg, vocab, cost)
    model.policy.call_cost = cost
    val_data = encode_pairs(val_rows, vocab, block_size)
    val_queries = [r["query"] for r in val_rows]

    def on_eval(m, step):
        # π on every val query in one batched forward pass, no generation: the call rate by kind and family
        # at each evaluation (the report's memorisation curve)
        pis = call_probs(m, vocab, val_queries)
        m.train()
        return probe_rates(val_rows, pis)

    def sample_fn(m):
        # a few val queries, generated with the tool in the loop (the model takes the decision)
        probe = [r["query"] for r in val_rows[::max(1, len(val_rows) // 6)]][:6]
        gen = generate_with_tools(m, [[0] + vocab.encode(q) for q in probe], tool_splice(vocab, setting.table))
        return [(q, q + vocab.decode(g)) for q, g in zip(probe, gen)]

    # a continuation (another price, a dream round) restarts the schedule: gentler, so it adjusts, not upends
    lr = budget.learning_rate if steps is None else budget.learning_rate / 3
    tc = TrainConfig(max_steps=steps or budget.steps, batch_size=budget.batch_size, learning_rate=lr,
                     warmup_steps=min(100, (steps or budget.steps) // 10), eval_interval=budget.eval_interval,
                     eval_train_items=500, seed=seed, device="cpu", threads=1)
    config = run_config(lab="tools", run=run_dir.name, budget=budget.name, seed=setting.seed, model=asdict(cfg),
                        call_cost=cost, vocab=vocab.to_dict(), **lab_config)
    train(model, train_data, val_data, tc, run_dir, on_eval=on_eval, sample_fn=sample_fn, run_config=config,
          resume=setting.resume, force=setting.force)
    return model


# -----------------------------------------------------------------------------
# the dream state: perturb training queries, compare the no-tool answer with the tool's, train on the
# queries that fool the policy most


def perturb(rng: random.Random, row: dict, table: dict, banned: dict) -> dict | None:
    """A nearby query answered by the tool: an operand gains, loses or changes a digit, a key changes a letter
    (to another entity of the table). None if it lands on an evaluation query."""
    if row["tool"] == "calc":
        a, op, b = suite.CALL_RE.fullmatch(row["call"]).group(2).partition(next(c for c in "+-*" if c in row["call"]))
        operands = [a, b]
        i = rng.randrange(2)
        s = operands[i]
        move = rng.choice(("grow", "shrink", "change"))
        if move == "grow" and len(s) < 4:
            s = s + str(rng.randrange(10)) if rng.random() < 0.5 else str(rng.randrange(1, 10)) + s
        elif move == "shrink" and len(s) > 1:
            s = s[1:].lstrip("0") or "0"
        else:
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
    """The dream's comparison: the model's no-tool answer vs the tool's, and how wrong the decision is."""
    pis = call_probs(model, vocab, [r["query"] for r in rows])
    direct = answer_all(model, vocab, table, [r["query"] for r in rows], "direct")
    out = []
    for r, pi, d in zip(rows, pis, direct):
        agree = d["answer"] == r["answer"]
        # regret = π where they agree (a wasted call), 1 − π where they diverge (a missed call)
        out.append({**r, "p_call": pi, "agree": agree, "regret": pi if agree else 1 - pi})
    return out


def run_dream(out: Path, model: ToolUser, setting: Setting, train_rows, test_rows) -> dict:
    """Rounds of: perturb → judge (no-tool answer vs tool answer) → keep the worst-judged as the next
    round's seeds (adversarial search) → train on the dreams (diverging ones ×UPWEIGHT) → evaluate."""
    budget, vocab, table, seed = setting.budget, setting.vocab, setting.table, setting.seed
    rng = random.Random(seed)
    banned = {r["query"]: True for r in setting.val_rows + test_rows}
    distinct = list({r["query"]: r for r in train_rows}.values())
    seeds = rng.sample(distinct, min(budget.dream_candidates, len(distinct)))
    base = encode_pairs(train_rows, vocab, setting.block_size)
    dreamed: list[SequenceData] = []
    recs = evaluate_queries(model, vocab, table, test_rows)
    rounds = [{"round": 0, **round_summary(recs)}]
    for k in range(1, budget.dream_rounds + 1):
        # the seeds themselves (mostly agreements: known facts) and two perturbations of each
        cands = seeds + [c for c in (perturb(rng, s, table, banned) for s in seeds for _ in range(2)) if c]
        judged = judge(model, vocab, table, list({c["query"]: c for c in cands}.values()))
        diverge = [j for j in judged if not j["agree"]]
        # upweight the diverging ones; an agreeing one discourages the call through its p_direct
        rows = judged + diverge * (UPWEIGHT - 1)
        dreamed.append(encode_pairs(rows, vocab, setting.block_size, teach_direct=False))
        judged.sort(key=lambda j: -j["regret"])
        # the queries that fooled the policy most, and fresh ones
        half = max(1, budget.dream_candidates // 2)
        seeds = judged[:half] + rng.sample(distinct, min(budget.dream_candidates - half, len(distinct)))
        data = SequenceData(torch.cat([base.x] + [d.x for d in dreamed]), torch.cat([base.y] + [d.y for d in dreamed]))
        train_one(out / "dream" / f"round_{k}", setting, model.policy.call_cost, data, seed + k, model=model,
                  steps=budget.dream_steps, dream_round=k)
        recs = evaluate_queries(model, vocab, table, test_rows)
        rounds.append({"round": k, "dreamed": len(judged), "diverge_rate": len(diverge) / max(1, len(judged)),
                       "mean_regret": sum(j["regret"] for j in judged) / max(1, len(judged)),
                       "examples": [{key: j[key] for key in ("query", "answer", "agree", "p_call")}
                                    for j in judged[:8]], **round_summary(recs)})
    return {"rounds": rounds, "recs": recs}


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
    with claim(args.out, resume=args.resume, force=args.force) as out:
        return run_lab(args, budget, out)


def run_lab(args, budget: ToolsBudget, out: Path) -> int:
    """The base model, one continuation per price, the dream state, then the report, in --out (claimed by
    `main`)."""
    from nnlabs.labs.tools.report import report

    t0 = time.perf_counter()
    train_rows, val_rows, test_rows, table = load_suite(args.seed)
    val_rows, test_rows = per_family(val_rows, budget.eval_per_family), per_family(test_rows, budget.eval_per_family)
    vocab = make_vocab()
    block_size = block_size_for(train_rows + val_rows + test_rows, vocab)
    setting = Setting(budget, args.seed, vocab, block_size, val_rows, table, args.resume, args.force)
    train_data = encode_pairs(train_rows, vocab, block_size)
    base = train_one(out / "base", setting, budget.moderate, train_data, args.seed)
    moderate = None
    for cost in budget.costs:
        run = out / f"cost_{cost:g}"
        model = train_one(run, setting, cost, train_data, args.seed, model=copy.deepcopy(base),
                          steps=budget.policy_steps, continues="base")
        recs = evaluate_queries(model, vocab, table, test_rows)
        write_json(run / "analysis.json", {"call_cost": cost, "budget": args.budget, **analysis(recs), "queries": recs})
        if cost == budget.moderate:
            moderate = model
        print(f"call cost {cost:g}: learned call rate "
              + ", ".join(f"{k} {summarize(recs, 'learned')[k]['call_rate']:.2f}" for k in KINDS))
    dream = run_dream(out, moderate, setting, train_rows, test_rows)
    # the dream state as one run directory of its own (its rounds are the runs inside it)
    write_json(out / "dream" / "config.json",
               run_config(lab="tools", run="dream", budget=budget.name, seed=args.seed, model=asdict(moderate.config),
                          call_cost=budget.moderate, continues=f"cost_{budget.moderate:g}",
                          dream_rounds=budget.dream_rounds))
    write_json(out / "dream" / "analysis.json", {"call_cost": budget.moderate, "budget": args.budget,
                                                 "rounds": dream["rounds"], **analysis(dream["recs"]),
                                                 "queries": dream["recs"]})
    write_json(out / "experiment.json", {"budget": asdict(budget), "seed": args.seed,
                                         "wall_s": round(time.perf_counter() - t0, 1)})
    report(out)
    print(f"wrote {out / 'report.md'}, {out / 'figures'} and {out / 'tools.html'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0
