"""Part 5 — adaptive computation: one shared transformer block applied pass after pass, a halting unit
deciding per position how many passes it gets; accuracy against measured compute.

The experiment: fixed depth, ACT at three ponder-cost weights, PonderNet and the confidence early
exit on the pack's algorithmic tasks, trained by a depth curriculum; 5.5 puts Part 4's MoE inside the
shared block. Each run directory gets config.json, metrics.jsonl, checkpoint.pt and analysis.json."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nnlabs.labs import lab_parser, run_config, worker_processes
from nnlabs.labs.act.data import VOCAB, encode, load_task, seq_len
from nnlabs.labs.act.halting import ActConfig, RecurrentDepth
from nnlabs.labs.act.looped import LoopedDepth
from nnlabs.labs.act.metrics import evaluate, halting_trace, summarize, traced_examples
from nnlabs.labs.act.report import report
from nnlabs.labs.act.router import RoutedDepth
from nnlabs.labs.moe.layer import MoE, MoEConfig
from nnlabs.pack import algorithmic
from nnlabs.spine.errors import UserError
from nnlabs.spine.models import ModelConfig
from nnlabs.spine.rundir import claim
from nnlabs.spine.train import TrainConfig, load_checkpoint, train

MODELS = {  # name -> ActConfig fields (max_steps of adaptive models comes from the budget)
    "fixed1": {"halting": "fixed", "max_steps": 1}, "fixed2": {"halting": "fixed", "max_steps": 2},
    "fixed4": {"halting": "fixed", "max_steps": 4}, "fixed8": {"halting": "fixed", "max_steps": 8},
    "act_tau0.001": {"halting": "act", "tau": 0.001}, "act_tau0.01": {"halting": "act", "tau": 0.01},
    "act_tau0.1": {"halting": "act", "tau": 0.1},
    # PonderNet with lambda_p of its geometric prior swept: the prior's mean is 1 / lambda_p passes (before the cap);
    # beta = 1: at 0.01 the expected loss put all of p on the last passes within the fine-tune (docs/act.md)
    **{f"ponder_lp{lp}": {"halting": "ponder", "prior": lp, "beta": 1.0} for lp in (0.2, 0.4, 0.5, 0.6)},
    # depth experts (router.py): a router sends each example down a path of 2, 4 or 8 passes, at price tau
    "router_tau0.1": {"halting": "router", "tau": 0.1},
}
ALL = tuple(MODELS)
# 5.5: the shared block's feed-forward as a top-2 mixture of 4 experts (Part 4's MoE), upcycled from the
# deepest dense fixed model, then ACT on top: does expert choice follow the pass?
EXPERTS, TOP_K = 4, 2
MODELS.update({f"{name}_moe{EXPERTS}": {**MODELS[name], "experts": EXPERTS}
               for name in ("fixed2", "fixed8", "act_tau0.001")})
MOE = ("fixed8_moe4", "act_tau0.001_moe4")
# Thinking longer than in training (looped.py): the position-free model, trained from scratch with the
# horizon rule (position t halts after t + 1 passes), then from it ACT learning its own halting, and the
# same block gated to update only once the start token's information reaches a position (wavefront; from
# scratch it sat on parity's 0.693 plateau for all 4 000 steps on some seeds, docs/act.md); at evaluation
# all may run up to T passes, where every other model stops at its training cap
MODELS.update({"loop_horizon": {"halting": "horizon", "looped": True},
               "loop_act": {"halting": "act", "tau": 0.01, "looped": True, "from": "loop_horizon"},
               "loop_wave": {"halting": "wavefront", "looped": True, "from": "loop_horizon"}})
LOOPED = ("loop_horizon", "loop_act", "loop_wave")
# The quick budget (make labs, <= 25 minutes for all five labs): addition's depth curriculum and ACT at tau 0.01;
# parity's too, with ACT at tau 0.1, one PonderNet, the depth router and the gated looped model. At full only:
# ACT at tau 0.001 (it ran all 8 passes at quick on both tasks), 5.5's MoE, the lambda_p sweep, addition's
# PonderNet and depth router (session 10 moved them there: make labs took 25.5 minutes)
ADDITION = ("fixed1", "fixed2", "fixed4", "fixed8", "act_tau0.01")
PARITY = tuple(n for n in ALL if n not in ("act_tau0.001", "ponder_lp0.4", "ponder_lp0.5", "ponder_lp0.6")) + (
    "loop_horizon", "loop_wave")
# the full budget's other tasks: every model but the lambda_p sweep, which PonderNet's bar reads on parity only
OTHER = tuple(n for n in ALL if not n.startswith("ponder_") or n == "ponder_lp0.2")
# Parity, parens, sortedness: attention sees only the previous position (and itself), so information crosses
# one position per pass and the passes a position needs grow with how far back its answer depends. One pass
# cannot see a whole parity string; eight can span the suite's training lengths. Addition sees the whole
# prefix: its answer digit i needs operand digits i and i - 1 (pack v2 writes the sum least-significant
# digit first), up to 2n + 2i positions back, which a window of two would make a matter of reach.
WINDOW = {"parity": 2, "addition": 0, "parens": 2, "sortedness": 2}


@dataclass(frozen=True, kw_only=True)
class ActBudget:
    tasks: dict[str, tuple[str, ...]]  # task -> the models run on it, in curriculum order
    iters: int  # training steps of the first (shallowest) fixed model
    grow: int  # training steps of each deeper fixed model, from the previous one
    finetune: int  # training steps of each adaptive model, from the deepest fixed one
    batch: int
    n_embd: int
    max_steps: int  # the pass cap (and the deepest fixed model's depth)
    lr: float
    exit: tuple[float, ...]  # confidence thresholds of the early-exit baseline
    sizes: dict[str, int]  # examples per split
    loop_iters: int = 0  # training steps of the looped (position-free) model, from scratch
    loop_finetune: int = 0  # training steps of each looped model started from it


BUDGETS = {
    "tiny": ActBudget(tasks={"parity": ("fixed1", "fixed2", "act_tau0.01", "ponder_lp0.2", "router_tau0.1",
                                        "fixed2_moe4", "act_tau0.001_moe4") + LOOPED},
                      iters=12, grow=6, finetune=6, batch=16, n_embd=16, max_steps=2, lr=1e-3, exit=(0.9,),
                      sizes={"train": 200, "val": 32, "test": 48, "lengthgen": 32}, loop_iters=12,
                      loop_finetune=6),
    "quick": ActBudget(tasks={"parity": PARITY, "addition": ADDITION}, iters=300, grow=800,
                       finetune=300, batch=64, n_embd=64, max_steps=8, lr=1e-3, exit=(0.9, 0.99),
                       sizes={"train": 6000, "val": 300, "test": 500, "lengthgen": 500}, loop_iters=3000,
                       loop_finetune=1000),
    "full": ActBudget(tasks={t: ALL + MOE + LOOPED if t == "parity" else OTHER for t in algorithmic.TASKS},
                      iters=300, grow=1000, finetune=500, batch=64, n_embd=64, max_steps=8, lr=1e-3,
                      exit=(0.9, 0.99), sizes={"train": 6000, "val": 500, "test": 1000, "lengthgen": 1000},
                      loop_iters=4000, loop_finetune=2000),
}


# rows of the position table: fixed, so that a seed's initial weights do not depend on the longest row of
# the data (pack v3's longer parity lengthgen moved every draw after the table's and with them the results)
POSITIONS = 32


def build_model(budget: ActBudget, name: str, block_size: int, task: str = "parity") -> RecurrentDepth:
    spec = {"max_steps": budget.max_steps, "window": WINDOW[task], **MODELS[name]}
    experts, looped = spec.pop("experts", 0), spec.pop("looped", False)
    spec.pop("from", None)
    if spec["halting"] != "fixed":
        # start by pondering to the cap (h ~ 0.05), learn to stop early later
        spec["halt_bias"] = -3.0
    config = ModelConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=1, n_head=4, n_embd=budget.n_embd)
    if looped:
        return LoopedDepth(config, ActConfig(**spec))
    if spec["halting"] == "router":
        return RoutedDepth(config, ActConfig(**spec))
    if not experts:
        return RecurrentDepth(config, ActConfig(**spec))
    moe = MoEConfig(n_experts=experts, top_k=TOP_K)
    return RecurrentDepth(config, ActConfig(**spec), lambda c, layer: MoE(c, layer, moe))


def warm_start(model: RecurrentDepth, checkpoint: Path) -> None:
    """Start from a trained model of the same lab: the same block, more passes (extra step embeddings
    keep their fresh init), a fresh halting unit (bias -3: every position starts at the cap), or a
    mixture of experts upcycled from a dense feed-forward (Komatsuzaki et al. 2023, "Sparse upcycling"):
    every expert a copy of it, the router fresh. Top-2 gates are renormalised to sum to 1, so two
    identical experts compute exactly the dense layer: the upcycled model starts where the dense one
    ended, and the experts drift apart as the router sends them different tokens."""
    # the halting unit always starts fresh: a fixed-depth checkpoint carries an untrained one (bias -1, ~4
    # passes) that would override the adaptive model's start at the cap (bias -3)
    state = {k: v for k, v in load_checkpoint(checkpoint)["model"].items() if not k.startswith("halting.")}
    wse = model.wse.weight.detach().clone()
    n = min(len(wse), len(state["wse.weight"]))
    wse[:n] = state["wse.weight"][:n]
    state["wse.weight"] = wse
    upcycle = isinstance(model.blocks[0].ffn, MoE) and "blocks.0.ffn.router.weight" not in state
    if upcycle:  # every expert a copy of the dense FFN; the experts' weights are stored [E, in, out]
        n = model.blocks[0].ffn.moe.n_experts
        for k in [k for k in state if k.startswith("blocks.0.ffn.")]:
            v = state.pop(k)
            v = v.t() if v.dim() == 2 else v  # nn.Linear's weight is [out, in]
            state[k] = v.expand(n, *v.shape).clone()
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = ("halting.",) + (("blocks.0.ffn.router.", "blocks.0.ffn.balance_bias") if upcycle else ())
    assert not unexpected and all(k.startswith(fresh) for k in missing), (missing, unexpected)


def run_one(out: Path, task: str, name: str, splits: dict, budget: ActBudget, args, exits=(),
            init_from=None) -> dict:
    """Train one model (from scratch, or from the run `init_from`), evaluate it, and write its run
    directory (+ one directory per early-exit threshold in `exits`, which reuse this model)."""
    block_size = max(seq_len(r) for rows in splits.values() for r in rows)
    if block_size > POSITIONS:
        raise UserError(f"{task}: rows of {block_size} characters do not fit the model's {POSITIONS} positions")
    torch.manual_seed(args.seed)
    model = build_model(budget, name, POSITIONS, task)
    looped = isinstance(model, LoopedDepth)
    iters = budget.loop_iters if looped else budget.iters
    if init_from is not None:
        if looped:
            iters = budget.loop_finetune
        elif model.act.halting == "fixed":
            iters = budget.grow
        else:
            iters = budget.finetune
        warm_start(model, out / init_from / "checkpoint.pt")
    val = encode(splits["val"], block_size)

    def on_eval(m, step):
        return {"val_acc": summarize(evaluate(m, splits["val"]))["acc"], **m.halting.stats}

    # tiny matrices: one thread beats two fighting over a busy CPU
    cfg = TrainConfig(max_steps=iters, batch_size=budget.batch, learning_rate=budget.lr,
                      warmup_steps=min(100, iters // 5), eval_interval=max(1, iters // 4),
                      eval_train_items=budget.sizes["val"], seed=args.seed, device="cpu", threads=1)
    moe = getattr(model.blocks[0].ffn, "moe", None)
    settings = {"task": task, "variant": name, "init_from": init_from, "act": asdict(model.act),
                "moe": asdict(moe) if moe else None}
    t0 = time.perf_counter()
    train(model, encode(splits["train"], block_size), val, cfg, out / f"{task}-{name}",
          run_config=run_config(lab="act", run=f"{task}-{name}", budget=args.budget, seed=args.seed,
                                model=asdict(model.config), **settings),
          on_eval=on_eval, resume=args.resume, force=args.force)
    train_s = time.perf_counter() - t0
    results = [(name, model.act.halting, None)] + [(f"exit{t}", "exit", t) for t in exits]
    analyses = []
    for run_name, kind, threshold in results:
        run_dir = out / f"{task}-{run_name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        analysis = {"task": task, "model": run_name, "kind": kind, "max_steps": model.act.max_steps,
                    "experts": MODELS.get(run_name, {}).get("experts", 0),
                    "looped": MODELS.get(run_name, {}).get("looped", False),
                    "tau": model.act.tau if kind in ("act", "router") else None, "exit_threshold": threshold,
                    "train_s": round(train_s, 2), "splits": {}}
        for split in ("test", "lengthgen"):
            records = evaluate(model, splits[split], threshold)
            analysis["splits"][split] = {**summarize(records), "examples": records}
        if analysis["looped"]:  # the same model held to its training cap: what the extra passes bought
            model.capped = True
            records = evaluate(model, splits["lengthgen"])
            analysis["splits"]["lengthgen_capped"] = {**summarize(records), "examples": records}
            model.capped = False
        if kind == "act":
            field = algorithmic.FIELDS[task][0]
            analysis["trace"] = halting_trace(model, traced_examples(splits, field))
        if kind == "exit":
            config = run_config(lab="act", run=f"{task}-{run_name}", budget=args.budget, seed=args.seed,
                                model=asdict(model.config), **{**settings, "variant": run_name},
                                derived_from=f"{task}-{name}", exit_threshold=threshold)
            (run_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (run_dir / "analysis.json").write_text(json.dumps(analysis) + "\n")
        analyses.append(analysis)
    return analyses[0]


def main(argv: list[str]) -> int:
    p = lab_parser("act", __doc__.split("\n\n")[0], BUDGETS, seed=0)
    p.add_argument("--tasks", default="", help="comma-separated subset of the budget's tasks")
    p.add_argument("--models", default="", help="comma-separated subset of the budget's models (keep the fixed "
                   "models the others start from)")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    tasks = [t for t in args.tasks.split(",") if t] or list(budget.tasks)
    for t in tasks:
        if t not in budget.tasks:
            raise UserError(f"--tasks: unknown task {t!r}; choose from {', '.join(budget.tasks)}")
    with claim(args.out, resume=args.resume, force=args.force) as out:
        return run_lab(args, budget, tasks, out)


def run_lab(args, budget: ActBudget, tasks: list[str], out: Path) -> int:
    """Every task's curriculum, then lab.json and the report, in --out (claimed by `main`). The tasks'
    curricula share nothing, so they run side by side, one process per task, as many at a time as the lab
    was given cores (`worker_processes`: one under the sweep, which runs labs side by side itself); each
    run is seeded on its own, so the numbers are those of one task after another."""
    t0 = time.perf_counter()
    processes = min(len(tasks), worker_processes())
    if processes > 1:
        # spawn, not fork: the parent has run torch, and a forked OpenMP runtime can hang
        with mp.get_context("spawn").Pool(processes) as pool:
            pool.starmap(run_task, [(args, budget, task, out) for task in tasks], chunksize=1)
            # let the workers exit on their own (the pool's exit kills them, leaking their progress bars' locks)
            pool.close()
            pool.join()
    else:
        for task in tasks:
            run_task(args, budget, task, out)
    (out / "lab.json").write_text(json.dumps({"budget": args.budget, "seed": args.seed, "tasks": tasks,
                                              "wall_s": round(time.perf_counter() - t0, 1)}) + "\n")
    report(out)
    print(f"report: {out / 'report.md'}  explorable: {out / 'act.html'}")
    return 0


def run_task(args, budget: ActBudget, task: str, out: Path) -> None:
    """One task's models in curriculum order."""
    splits = load_task(task, args.seed, budget.sizes)
    chosen = [n for n in budget.tasks[task] if not args.models or n in args.models.split(",")]
    names = [n for n in chosen if not MODELS[n].get("looped")]
    family = {n: MODELS[n].get("experts", 0) for n in names}  # dense (0) or MoE: one curriculum each
    deepest = {f: max((n for n in names if family[n] == f and MODELS[n]["halting"] == "fixed"),
                      key=lambda n: MODELS[n]["max_steps"]) for f in set(family.values())}
    # the looped family's own curriculum: the horizon model from scratch, ACT from it (MODELS' "from")
    order = names + [n for n in chosen if MODELS[n].get("looped")]
    if any(MODELS[n]["max_steps"] != budget.max_steps for n in deepest.values()):
        raise UserError(f"budget {args.budget}: the deepest fixed model must run max_steps passes")
    # A depth curriculum (docs/act.md): the shallowest fixed model trains from scratch, each deeper one
    # starts from the previous (same block, more passes), the adaptive ones from the deepest.
    previous: dict[int, str] = {}
    for name in order:
        if MODELS[name].get("looped"):
            init, exits = MODELS[name].get("from"), ()
        else:
            f, adaptive = family[name], MODELS[name]["halting"] != "fixed"
            # the MoE family's first model is upcycled from the deepest dense one (warm_start)
            init = deepest[f] if adaptive else previous.get(f, deepest[0] if f else None)
            # the confidence early-exit baseline reuses the deepest dense fixed model
            exits = budget.exit if name == deepest[f] and not f else ()
            if not adaptive:
                previous[f] = name
        a = run_one(out, task, name, splits, budget, args, exits, init and f"{task}-{init}")
        print(f"{task:10s} {name:13s} test acc {a['splits']['test']['acc']:.3f}  "
              f"lengthgen acc {a['splits']['lengthgen']['acc']:.3f}  "
              f"MACs/example {a['splits']['test']['macs_per_example']:,.0f}  ({a['train_s']:.0f}s)", flush=True)
