"""Part 5 — adaptive computation: one shared transformer block applied again and again, with a halting
unit that decides, per position, how many passes that position gets (Graves 2016, "Adaptive Computation
Time"; Banino et al. 2021, "PonderNet"). The question: can a model learn to spend more passes only
where they help, and does the compute it saves show up in the MACs actually run?

The patch on the spine (`nnlabs diff act`) is one method: `RecurrentDepth.run_blocks` replaces the
spine's loop over distinct blocks with a loop over passes of one block, on the positions still running.

    nnlabs lab act --budget {tiny,quick,full} [--out runs/act] [--seed 0]
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.labs import lab_parser
from nnlabs.labs.moe.layer import MoE, MoEConfig
from nnlabs.pack import algorithmic
from nnlabs.report.explorable import write_html
from nnlabs.report.figures import new_figure, plt, save
from nnlabs.report.info import cond_entropy
from nnlabs.spine.data import SequenceData, Vocab
from nnlabs.spine.errors import UserError
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import FeedForward, ModelConfig, Transformer
from nnlabs.spine.train import TrainConfig, train

PATCHES = [("nnlabs.spine.models:Block.forward", "nnlabs.labs.act:RecurrentDepth.step"),
           ("nnlabs.spine.models:Transformer.run_blocks", "nnlabs.labs.act:RecurrentDepth.run_blocks")]


# -----------------------------------------------------------------------------
# the mechanism: recurrent depth + a halting unit


@dataclass
class ActConfig:
    halting: str = "act"  # 'fixed' (always max_steps passes) | 'act' (Graves) | 'ponder' (PonderNet)
    max_steps: int = 8  # passes of the shared block: exactly this many when fixed, at most this many otherwise
    tau: float = 0.01  # ACT: weight of the ponder cost in the loss
    eps: float = 0.01  # halt once the halting mass reaches 1 - eps
    prior: float = 0.5  # PonderNet: lambda_p of the geometric prior over halting steps
    beta: float = 0.01  # PonderNet: weight of KL(p || geometric prior)
    window: int = 0  # attention sees the last `window` positions (itself included); 0 = the whole prefix
    halt_bias: float = -1.0  # initial halting logit: sigmoid(-1) = 0.27, so ~4 passes before training


class HaltingUnit(nn.Module):
    """h_n = sigmoid(w . s_n + b): the probability of halting after pass n, read from the new state.
    Its own module so the spine's LanguageModel.finish picks up its `aux_loss` and `stats`."""

    def __init__(self, n_embd: int, cfg: ActConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = nn.Linear(n_embd, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, cfg.halt_bias)
        self.aux_loss: torch.Tensor | None = None
        self.stats: dict = {}
        self.steps: torch.Tensor | None = None  # (B, T) passes each position took, from the last forward

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(s)).squeeze(-1)

    def report(self, steps: torch.Tensor, reg: torch.Tensor) -> None:
        """Loss term and stats of the last forward: tau * mean(rho) for ACT, beta * mean(KL) for PonderNet."""
        self.steps = steps.detach()
        self.stats = {"steps_mean": float(steps.float().mean()), "steps_max": int(steps.max())}
        self.aux_loss = None
        if self.cfg.halting == "act":
            self.aux_loss = self.cfg.tau * reg.mean()
            self.stats["ponder"] = float(reg.detach().mean())
        elif self.cfg.halting == "ponder":
            self.aux_loss = self.cfg.beta * reg.mean()
            self.stats["kl"] = float(reg.detach().mean())


class RunningAttention(nn.Module):
    """Causal attention for the queries of the running positions only.

    Halted positions still serve as keys/values: a later position may need what an early one computed.
    Their keys and values are the ones from the last pass they ran (kept in a cache), so halting freezes
    a position without hiding it, and without recomputing anything for it. For clarity the scores are
    computed for a dense (B, T) query grid and the halted rows thrown away; `count_macs` declares only
    the work the running queries need, sum over running (b, t) of 2 * (t + 1) * C, the same rule the
    spine's CausalSelfAttention uses when every position runs."""

    def __init__(self, n_head: int, window: int):
        super().__init__()
        self.n_head, self.window = n_head, window

    def forward(self, q, k, v, rows, T):
        BT, C = k.shape
        dense_q = torch.zeros_like(k).index_copy(0, rows, q)
        heads = [t.view(BT // T, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (dense_q, k, v)]
        if self.window:  # a band: query t sees keys t - window + 1 .. t
            offset = torch.arange(T, device=k.device)[:, None] - torch.arange(T, device=k.device)[None, :]
            y = F.scaled_dot_product_attention(*heads, attn_mask=(offset >= 0) & (offset < self.window))
        else:
            y = F.scaled_dot_product_attention(*heads, is_causal=True)
        return y.transpose(1, 2).reshape(BT, C)[rows]

    def count_macs(self, inputs, output) -> int:
        q, rows, T = inputs[0], inputs[3], inputs[4]
        keys = (rows % T) + 1  # position t attends to t + 1 keys, or `window` at most
        return int(2 * q.size(1) * (keys.clamp(max=self.window) if self.window else keys).sum())


class RecurrentDepth(Transformer):
    """The spine's Transformer with `n_layer = 1`: its single block is applied up to `max_steps` times
    (shared weights, a learned step embedding telling the block which pass it is on). `ffn_factory` is
    the spine's extension point, so the shared block's feed-forward can be Part 4's mixture of experts."""

    def __init__(self, config: ModelConfig, act: ActConfig, ffn_factory=FeedForward):
        assert config.n_layer == 1 and not config.packed, "recurrent depth shares one block on one-item rows"
        super().__init__(config, ffn_factory)
        self.act = act
        self.ffn_stats: list[dict] = []  # per pass, the shared feed-forward's `stats` (e.g. MoE routing)
        self.wse = nn.Embedding(act.max_steps, config.n_embd)  # step embedding e_n
        nn.init.normal_(self.wse.weight, 0.0, 0.02)
        self.attend = RunningAttention(config.n_head, act.window)
        self.halting = HaltingUnit(config.n_embd, act)

    def step(self, state, n, rows, kv, T):
        """One pass of the shared block on the running rows only: s <- Block(s + e_n). `state` and the
        key/value cache `kv` are flat (B*T, C); only `rows` are read, run and returned."""
        blk = self.blocks[0]
        x = state[rows] + self.wse.weight[n]
        q, k, v = blk.attn.qkv(blk.ln1(x)).chunk(3, dim=-1)
        kv = (kv[0].index_copy(0, rows, k), kv[1].index_copy(0, rows, v))  # halted rows keep their old k, v
        x = x + blk.drop(blk.attn.proj(self.attend(q, kv[0], kv[1], rows, T)))
        return x + blk.ffn(blk.ln2(x)), kv

    def run_blocks(self, x, mask=None):  # mask is for packed rows, which __init__ rules out
        B, T, C = x.shape
        cfg = self.act
        state = x.reshape(B * T, C)
        kv = (torch.zeros_like(state), torch.zeros_like(state))
        rows = torch.arange(B * T, device=x.device)  # positions still running
        out = torch.zeros_like(state)  # y = sum_n p_n s_n
        mass = state.new_zeros(B * T)  # sum_{i<n} p_i, the halting mass spent so far
        survive = state.new_ones(B * T)  # PonderNet: prod_{i<n} (1 - lambda_i)
        reg = state.new_zeros(B * T)  # per position: ACT ponder cost rho = N + R, or PonderNet's KL
        steps = torch.zeros(B * T, dtype=torch.long, device=x.device)
        ffn, ffn_aux, self.ffn_stats = self.blocks[0].ffn, [], []
        for n in range(cfg.max_steps):
            s, kv = self.step(state, n, rows, kv, T)
            if getattr(ffn, "aux_loss", None) is not None:  # a loss the feed-forward reports counts on every
                ffn_aux.append(ffn.aux_loss)  # pass, as it would in every layer of a deep stack
            if getattr(ffn, "stats", None):
                self.ffn_stats.append(ffn.stats)
            state = state.index_copy(0, rows, s)  # halted rows are not in `rows`: frozen, not computed
            steps = steps.index_add(0, rows, torch.ones_like(rows))
            if cfg.halting == "fixed":
                continue
            h, c, last = self.halting(s), mass[rows], n == cfg.max_steps - 1
            if cfg.halting == "act":
                # Graves: N = min{n : sum_{i<=n} h_i >= 1 - eps}; p_n = h_n for n < N; p_N = R = 1 - sum_{i<N} h_i
                p = h
            else:
                # PonderNet: p_n = lambda_n prod_{i<n} (1 - lambda_i), a distribution over halting steps
                p = h * survive[rows]
                survive = survive.index_copy(0, rows, survive[rows] * (1 - h))
            halt = (c + p >= 1 - cfg.eps) | last
            p = torch.where(halt, 1 - c, p)  # the remainder R goes to the halting step, so sum_n p_n = 1
            if cfg.halting == "act":  # ponder cost rho = N + R, added once, at the halting step
                reg = reg.index_add(0, rows, torch.where(halt, (n + 1) + p, torch.zeros_like(p)))
            else:  # KL(p || p_G), p_G(n) = lambda_p (1 - lambda_p)^(n-1), summed step by step
                log_prior = math.log(cfg.prior) + n * math.log(1 - cfg.prior)
                reg = reg.index_add(0, rows, p * (torch.log(p.clamp_min(1e-8)) - log_prior))
            out = out.index_add(0, rows, p.unsqueeze(-1) * s)
            mass = mass.index_copy(0, rows, c + p)
            rows = rows[~halt]
            if rows.numel() == 0:
                break
        self.halting.report(steps.view(B, T), reg)
        if ffn_aux:
            ffn.aux_loss = torch.stack(ffn_aux).sum()
        return (state if cfg.halting == "fixed" else out).view(B, T, C)


# -----------------------------------------------------------------------------
# data: `question=answer`, loss only on the answer characters


VOCAB = Vocab("0123456789+()=")


def encode(rows: list[dict], block_size: int) -> SequenceData:
    """x = [start, question, '=', answer[:-1]], y = answer at the positions that predict it, -1 elsewhere:
    the spine's ordinary LM loss becomes classification at the answer position(s)."""
    x = torch.zeros(len(rows), block_size, dtype=torch.long)
    y = torch.full((len(rows), block_size), -1, dtype=torch.long)
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


# -----------------------------------------------------------------------------
# evaluation: accuracy, passes per position and measured MACs, per example


@torch.no_grad()
def evaluate(model: RecurrentDepth, rows: list[dict], exit_threshold: float | None = None) -> list[dict]:
    """One record per example. Examples are run in groups of equal length, trimmed to that length (no
    padding), so the MACs counted for a group are exactly the work its examples needed; each example's
    `macs` is its group's measured total / group size. `exit_threshold` switches to the confidence
    early-exit baseline."""
    was_training = model.training
    model.eval()
    groups: dict[int, list[dict]] = {}
    for r in rows:
        groups.setdefault(seq_len(r), []).append(r)
    records = []
    for length in sorted(groups):
        group = groups[length]
        data = encode(group, length)
        answer = data.y >= 0
        with count_macs(model) as macs:
            if exit_threshold is None:
                logits, _ = model(data.x)
                pred, steps = logits.argmax(-1), model.halting.steps
            else:
                pred, steps = early_exit(model, data.x, answer[0], exit_threshold)
        correct = ((pred == data.y) | ~answer).all(1)
        experts = experts_by_pass(model, steps) if exit_threshold is None else None
        for i, r in enumerate(group):
            records.append({**r, "correct": bool(correct[i]), "steps": steps[i].tolist(),
                            "steps_answer": int(steps[i][answer[i]][0]), "macs": macs.macs / len(group),
                            **({"experts": experts[i].tolist()} if experts is not None else {})})
    model.train(was_training)
    return records


def experts_by_pass(model: RecurrentDepth, steps: torch.Tensor) -> torch.Tensor | None:
    """(B, T, max_steps): the expert each position's router ranked first on each pass, -1 after it halted;
    None for a dense feed-forward. Pass n ran exactly the positions with steps > n, in flat order."""
    if not model.ffn_stats or "chosen" not in model.ffn_stats[0]:
        return None
    B, T = steps.shape
    grid = torch.full((B * T, model.act.max_steps), -1, dtype=torch.long)
    for n, stats in enumerate(model.ffn_stats):
        grid[(steps.reshape(-1) > n).nonzero().squeeze(1), n] = stats["chosen"][:, 0].cpu()
    return grid.view(B, T, -1)


@torch.no_grad()
def early_exit(model: RecurrentDepth, x: torch.Tensor, answer_cols: torch.Tensor, threshold: float):
    """The simplest adaptive baseline, at inference only: run passes of a fixed-depth model and stop an
    example as soon as its least confident answer position has max softmax probability >= threshold.
    Reading the answer after every pass costs lm_head MACs, which are counted like everything else."""
    B, T = x.shape
    C = model.config.n_embd
    state = model.embed(x).reshape(B * T, C)
    kv = (torch.zeros_like(state), torch.zeros_like(state))
    live = torch.ones(B, dtype=torch.bool)
    pred = torch.zeros(B, T, dtype=torch.long)
    steps = torch.zeros(B, dtype=torch.long)
    for n in range(model.act.max_steps):
        ex = live.nonzero().squeeze(1)
        rows = (ex[:, None] * T + torch.arange(T)).reshape(-1)  # every position of the live examples
        s, kv = model.step(state, n, rows, kv, T)
        state = state.index_copy(0, rows, s)
        logits = model.lm_head(model.ln_f(state.view(B, T, C)[ex][:, answer_cols]))  # (E, A, V)
        confident = logits.softmax(-1).amax(-1).amin(-1) >= threshold
        done = confident | (n == model.act.max_steps - 1)
        pred[ex[done].unsqueeze(1), answer_cols.nonzero().squeeze(1)] = logits[done].argmax(-1)
        steps[ex] += 1
        live[ex[done]] = False
        if not live.any():
            break
    return pred, steps[:, None].expand(B, T)


def summarize(records: list[dict]) -> dict:
    n = max(len(records), 1)
    return {"acc": sum(r["correct"] for r in records) / n,
            "macs_per_example": sum(r["macs"] for r in records) / n,
            "steps_answer": sum(r["steps_answer"] for r in records) / n,
            "steps_position": sum(sum(r["steps"]) / len(r["steps"]) for r in records) / n, "n": len(records)}


# -----------------------------------------------------------------------------
# the experiment


MODELS = {  # name -> ActConfig fields (max_steps of adaptive models comes from the budget)
    "fixed1": {"halting": "fixed", "max_steps": 1}, "fixed2": {"halting": "fixed", "max_steps": 2},
    "fixed4": {"halting": "fixed", "max_steps": 4}, "fixed8": {"halting": "fixed", "max_steps": 8},
    "act_tau0.001": {"halting": "act", "tau": 0.001}, "act_tau0.01": {"halting": "act", "tau": 0.01},
    "act_tau0.1": {"halting": "act", "tau": 0.1}, "ponder": {"halting": "ponder"},
}
ALL = tuple(MODELS)
# 5.5: the shared block's feed-forward as a top-2 mixture of 4 experts (Part 4's MoE), upcycled from the
# deepest dense fixed model, then ACT on top: does expert choice follow the pass?
EXPERTS, TOP_K = 4, 2
MODELS.update({f"{name}_moe{EXPERTS}": {**MODELS[name], "experts": EXPERTS}
               for name in ("fixed2", "fixed8", "act_tau0.001")})
MOE = ("fixed8_moe4", "act_tau0.001_moe4")
CORE = ("fixed1", "fixed4", "act_tau0.01", "ponder")
BUDGETS = {  # iters: the first fixed model; grow: each deeper fixed model; finetune: each adaptive model
    "tiny": {"tasks": {"parity": ("fixed1", "fixed2", "act_tau0.01", "ponder", "fixed2_moe4", "act_tau0.001_moe4")},
             "iters": 12, "grow": 6,
             "finetune": 6, "batch": 16, "n_embd": 16, "max_steps": 2, "lr": 1e-3, "exit": (0.9,),
             "sizes": {"train": 200, "val": 32, "test": 48, "lengthgen": 32}},
    "quick": {"tasks": {"parity": ALL + MOE}, "iters": 300, "grow": 800, "finetune": 300, "batch": 64, "n_embd": 64,
              "max_steps": 8, "lr": 1e-3, "exit": (0.9, 0.99),
              "sizes": {"train": 6000, "val": 300, "test": 500, "lengthgen": 500}},
    "full": {"tasks": {t: ALL + (MOE if t == "parity" else ()) for t in algorithmic.TASKS},
             "iters": 300, "grow": 1000, "finetune": 500,
             "batch": 64, "n_embd": 64, "max_steps": 8, "lr": 1e-3, "exit": (0.9, 0.99),
             "sizes": {"train": 6000, "val": 500, "test": 1000, "lengthgen": 1000}},
}
# Attention sees only the previous position (and itself): information crosses one position per pass, so
# the passes a position needs grow with how far back its answer depends. One pass cannot see a whole
# parity string; eight can span the suite's training lengths.
WINDOW = 2


def build_model(budget: dict, name: str, block_size: int) -> RecurrentDepth:
    spec = {"max_steps": budget["max_steps"], "window": WINDOW, **MODELS[name]}
    experts = spec.pop("experts", 0)
    if spec["halting"] != "fixed":  # start by pondering to the cap (h ~ 0.05), learn to stop early later
        spec.update(halt_bias=-3.0, prior=0.2)
    config = ModelConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=1, n_head=4, n_embd=budget["n_embd"])
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
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    wse = model.wse.weight.detach().clone()
    n = min(len(wse), len(state["wse.weight"]))
    wse[:n] = state["wse.weight"][:n]
    state["wse.weight"] = wse
    upcycle = isinstance(model.blocks[0].ffn, MoE) and "blocks.0.ffn.up.weight" in state
    if upcycle:
        for k in [k for k in state if k.startswith("blocks.0.ffn.")]:
            v = state.pop(k)
            for i in range(model.blocks[0].ffn.moe.n_experts):
                state[k.replace("blocks.0.ffn.", f"blocks.0.ffn.experts.{i}.")] = v
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = ("halting.",) + (("blocks.0.ffn.router.", "blocks.0.ffn.balance_bias") if upcycle else ())
    assert not unexpected and all(k.startswith(fresh) for k in missing), (missing, unexpected)


def run_one(out: Path, task: str, name: str, splits: dict, budget: dict, args, exits=(), init_from=None) -> dict:
    """Train one model (from scratch, or from the run `init_from`), evaluate it, and write its run
    directory (+ one directory per early-exit threshold in `exits`, which reuse this model)."""
    block_size = max(seq_len(r) for rows in splits.values() for r in rows)
    torch.manual_seed(args.seed)
    model = build_model(budget, name, block_size)
    iters = budget["iters"]
    if init_from is not None:
        iters = budget["finetune"] if model.act.halting != "fixed" else budget["grow"]
        warm_start(model, out / init_from / "checkpoint.pt")
    val = encode(splits["val"], block_size)

    def on_eval(m, step):
        return {"val_acc": summarize(evaluate(m, splits["val"]))["acc"], **m.halting.stats}

    cfg = TrainConfig(max_steps=iters, batch_size=budget["batch"], learning_rate=budget["lr"],
                      warmup_steps=min(100, iters // 5), eval_interval=max(1, iters // 4),
                      eval_train_items=budget["sizes"]["val"], seed=args.seed, device="cpu",
                      threads=1)  # tiny matrices: one thread beats two fighting over a busy CPU
    run_config = {"lab": "act", "task": task, "model": name, "budget": args.budget, "seed": args.seed,
                  "init_from": init_from,
                  "model_config": asdict(model.config), "act": asdict(model.act)}
    t0 = time.perf_counter()
    train(model, encode(splits["train"], block_size), val, cfg, out / f"{task}-{name}", run_config=run_config,
          on_eval=on_eval, resume=args.resume)
    train_s = time.perf_counter() - t0
    results = [(name, model.act.halting, None)] + [(f"exit{t}", "exit", t) for t in exits]
    analyses = []
    for run_name, kind, threshold in results:
        run_dir = out / f"{task}-{run_name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        analysis = {"task": task, "model": run_name, "kind": kind, "max_steps": model.act.max_steps,
                    "experts": MODELS.get(run_name, {}).get("experts", 0),
                    "tau": model.act.tau if kind == "act" else None, "exit_threshold": threshold,
                    "train_s": round(train_s, 2), "splits": {}}
        for split in ("test", "lengthgen"):
            records = evaluate(model, splits[split], threshold)
            analysis["splits"][split] = {**summarize(records), "examples": records}
        if kind == "exit":
            (run_dir / "config.json").write_text(json.dumps({**run_config, "model": run_name, "derived_from":
                                                             f"{task}-{name}", "exit_threshold": threshold},
                                                            indent=2, sort_keys=True) + "\n")
        (run_dir / "analysis.json").write_text(json.dumps(analysis) + "\n")
        analyses.append(analysis)
    return analyses[0]


def main(argv: list[str]) -> int:
    p = lab_parser("act", __doc__.split("\n\n")[0], BUDGETS, seed=0)
    p.add_argument("--tasks", default="", help="comma-separated subset of the budget's tasks")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    args = p.parse_args(argv)
    budget = BUDGETS[args.budget]
    tasks = [t for t in args.tasks.split(",") if t] or list(budget["tasks"])
    for t in tasks:
        if t not in budget["tasks"]:
            raise UserError(f"--tasks: unknown task {t!r}; choose from {', '.join(budget['tasks'])}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for task in tasks:
        splits = load_task(task, args.seed, budget["sizes"])
        names = budget["tasks"][task]
        family = {n: MODELS[n].get("experts", 0) for n in names}  # dense (0) or MoE: one curriculum each
        deepest = {f: max((n for n in names if family[n] == f and MODELS[n]["halting"] == "fixed"),
                          key=lambda n: MODELS[n]["max_steps"]) for f in set(family.values())}
        if any(MODELS[n]["max_steps"] != budget["max_steps"] for n in deepest.values()):
            raise UserError(f"budget {args.budget}: the deepest fixed model must run max_steps passes")
        # A depth curriculum: the shallowest fixed model trains from scratch, each deeper one starts from the
        # previous (same block, more passes), the adaptive ones from the deepest. Trained from scratch,
        # 8 passes of a window-2 block stayed at chance on parity for 1200 steps; grown from 4 passes it
        # reached 100 % validation accuracy within 150. And from scratch the ponder cost makes every
        # position halt after one pass long before pondering pays (a position's extra passes only help
        # *later* positions), which we saw at every tau we tried.
        previous: dict[int, str] = {}
        for name in names:  # the confidence early-exit baseline reuses the deepest dense fixed model
            f, adaptive = family[name], MODELS[name]["halting"] != "fixed"
            # the MoE family's first model is upcycled from the deepest dense one (warm_start)
            init = deepest[f] if adaptive else previous.get(f, deepest[0] if f else None)
            exits = budget["exit"] if name == deepest[f] and not f else ()
            a = run_one(out, task, name, splits, budget, args, exits, init and f"{task}-{init}")
            if not adaptive:
                previous[f] = name
            print(f"{task:10s} {name:13s} test acc {a['splits']['test']['acc']:.3f}  "
                  f"lengthgen acc {a['splits']['lengthgen']['acc']:.3f}  "
                  f"MACs/example {a['splits']['test']['macs_per_example']:,.0f}  ({a['train_s']:.0f}s)")
    (out / "lab.json").write_text(json.dumps({"budget": args.budget, "seed": args.seed, "tasks": tasks,
                                              "wall_s": round(time.perf_counter() - t0, 1)}) + "\n")
    report(out)
    print(f"report: {out / 'report.md'}  explorable: {out / 'act.html'}")
    return 0


# -----------------------------------------------------------------------------
# report: figures, report.md and the explorable, from the run directories only


COLORS = {"fixed": "#7f7f7f", "act": "#1f77b4", "ponder": "#2ca02c", "exit": "#ff7f0e"}
LABEL_OFFSETS = {"fixed": ((5, -9), "left"), "act": ((-5, 3), "right"), "ponder": ((5, 5), "left"),
                 "exit": ((-5, -10), "right"), "moe": ((6, -3), "left")}


def load_runs(out: Path) -> dict[str, list[dict]]:
    """{task: [analysis, ...]} in a stable order: fixed by depth, then ACT by tau, PonderNet, early exit."""
    order = {"fixed": 0, "act": 1, "ponder": 2, "exit": 3}
    runs: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*/analysis.json")):
        a = json.loads(path.read_text())
        a["run"] = path.parent.name
        runs.setdefault(a["task"], []).append(a)
    for task in runs:
        runs[task].sort(key=lambda a: (a.get("experts", 0), order[a["kind"]],
                                       a["max_steps"] if a["kind"] == "fixed" else 0,
                                       a["tau"] or 0, a["exit_threshold"] or 0))
    return {t: runs[t] for t in algorithmic.TASKS if t in runs}


def by_bucket(examples: list[dict], field: str) -> dict[int, dict]:
    buckets: dict[int, list[dict]] = {}
    for r in examples:
        buckets.setdefault(r[field], []).append(r)
    return {k: summarize(v) for k, v in sorted(buckets.items())}


def pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def halting_correlation(a: dict, field: str, splits=("test",)) -> float | None:
    """Pearson r of an example's difficulty and the passes its answer position took."""
    ex = [r for split in splits for r in a["splits"][split]["examples"]]
    return pearson([r[field] for r in ex], [r["steps_answer"] for r in ex])


def fig_accuracy_vs_compute(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.6, height=3.8)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        labels: dict[tuple, list] = {}  # label anchor -> the models labelled there
        for a in rs:
            for split, marker, fill in (("test", "o", True), ("lengthgen", "s", False)):
                s = a["splits"][split]
                moe = {"edgecolors": "k", "linewidths": 1.2} if a.get("experts") else {}
                ax.scatter(s["macs_per_example"] / 1e6, 100 * s["acc"], marker=marker, s=36, color=COLORS[a["kind"]],
                           facecolors=COLORS[a["kind"]] if fill else "none", **moe)
            s = a["splits"]["test"]
            point = (s["macs_per_example"] / 1e6, 100 * s["acc"])
            width = max(b["splits"]["test"]["macs_per_example"] for b in rs) / 1e6
            near = next((p for p in labels if abs(p[0] - point[0]) < 0.04 * width and abs(p[1] - point[1]) < 4), None)
            labels.setdefault(near or point, []).append(a)  # points closer than a label's size share one label
        for (x, y), same in labels.items():
            # each kind labels its points on its own side, so neighbouring kinds do not write over each other
            (dx, dy), ha = LABEL_OFFSETS["moe" if same[0].get("experts") else same[0]["kind"]]
            ax.annotate(", ".join(a["model"].replace("act_tau", "τ=") for a in same), (x, y), fontsize=6,
                        xytext=(dx, dy), ha=ha, textcoords="offset points")
        ax.set_ylim(-2, 104)
        ax.axhline(50, color="#bbb", lw=0.8, ls="--")
        ax.text(ax.get_xlim()[1], 45, "chance (binary answers) ", fontsize=6, color="#888", ha="right")
        ax.set_title(f"{task}: accuracy vs measured compute")
        ax.set_xlabel("forward MACs per example, millions (measured)")
        ax.set_ylabel("exact-match accuracy (%)")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=k) for k, c in COLORS.items()]
    handles += [plt.Line2D([], [], color="k", marker="o", ls="", label="in-distribution test"),
                plt.Line2D([], [], color="k", marker="s", mfc="none", ls="", label="length-generalisation")]
    if any(a.get("experts") for rs in runs.values() for a in rs):
        handles.append(plt.Line2D([], [], color="#ccc", marker="o", mec="k", mew=1.2, ls="",
                                  label="MoE feed-forward (5.5)"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save(fig, out / "figures" / "accuracy_vs_compute", source=str(out))


def fig_halting_by_difficulty(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.2, height=3.4)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        field = algorithmic.FIELDS[task][0]
        adaptive = [a for a in dense(rs) if a["kind"] in ("act", "ponder", "exit")]  # the same models per task
        for i, a in enumerate(adaptive):
            ex = a["splits"]["test"]["examples"] + a["splits"]["lengthgen"]["examples"]
            b = by_bucket(ex, field)
            style = ("-", "--", ":", "-.")[i % 4]  # one colour per kind, one line style per setting
            ax.plot(list(b), [v["steps_answer"] for v in b.values()], style, marker=".", color=COLORS[a["kind"]],
                    label=a["model"])
        lo, hi = algorithmic.LENGTHS[task][0]
        ax.axvspan(lo, hi, color="#eee", zorder=0)
        ax.set_ylim(0.5, max(a["max_steps"] for a in rs) + 0.5)
        ax.set_title(f"{task}: passes at the answer position")
        ax.set_xlabel(f"difficulty: {field} (shaded = training range)")
        ax.set_ylabel("mean passes (halting step)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))  # one legend: beside a panel it hides the next
    save(fig, out / "figures" / "halting_by_difficulty", source=str(out))


def fig_tau_tradeoff(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.2, height=3.4)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        act = [a for a in dense(rs) if a["kind"] == "act"]
        for split, marker in (("test", "o-"), ("lengthgen", "s--")):
            ax.plot([a["splits"][split]["steps_position"] for a in act], [100 * a["splits"][split]["acc"] for a in act],
                    marker, color=COLORS["act"], label=split)
        for a in act:
            s = a["splits"]["test"]
            ax.annotate(f"τ={a['tau']:g}", (s["steps_position"], 100 * s["acc"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_title(f"{task}: the τ tradeoff (ACT)")
        ax.set_xlabel("mean passes per position (ponder cost N)")
        ax.set_ylabel("accuracy (%)")
        ax.legend()
    save(fig, out / "figures" / "tau_tradeoff", source=str(out))


def dense(rs: list[dict]) -> list[dict]:
    """The main comparison's runs; the MoE ones (5.5) get their own section."""
    return [a for a in rs if not a.get("experts")]


def best_adaptive(rs: list[dict]) -> dict | None:
    adaptive = [a for a in dense(rs) if a["kind"] in ("act", "ponder")]
    return max(adaptive, key=accuracy_then_cheapness) if adaptive else None


def accuracy_then_cheapness(a: dict) -> tuple[float, float]:
    return a["splits"]["test"]["acc"], -a["splits"]["test"]["macs_per_example"]


def example_picture(a: dict, per_bucket: int = 1, limit: int = 10) -> list[dict]:
    """A few examples, one per difficulty value, from both splits: characters and passes per position."""
    seen, picked = {}, []
    field = algorithmic.FIELDS[a["task"]][0]
    for split in ("test", "lengthgen"):
        for r in a["splits"][split]["examples"]:
            if seen.get(r[field], 0) < per_bucket:
                seen[r[field]] = seen.get(r[field], 0) + 1
                picked.append({"chars": "." + r["input"] + "=" + r["answer"][:-1], "steps": r["steps"],
                               "correct": r["correct"], "answer": r["answer"], "difficulty": r[field],
                               "split": split})
    picked.sort(key=lambda e: e["difficulty"])
    step = max(1, len(picked) // limit)
    return picked[::step][:limit]


def fig_per_example(runs, out: Path):
    fig, axes = new_figure(len(runs), 1, width=4.6, height=3.6)
    for ax, (task, rs) in zip(axes[0], runs.items()):
        a = best_adaptive(rs)
        if a is None:
            ax.set_axis_off()
            continue
        ex = example_picture(a)
        width = max(len(e["chars"]) for e in ex)
        grid = torch.full((len(ex), width), float("nan"))
        for i, e in enumerate(ex):
            grid[i, :len(e["steps"])] = torch.tensor(e["steps"], dtype=torch.float)
        im = ax.imshow(grid.numpy(), cmap="viridis", vmin=1, vmax=a["max_steps"], aspect="auto")
        for i, e in enumerate(ex):
            for j, ch in enumerate(e["chars"]):
                dark = grid[i, j] < (1 + a["max_steps"]) / 2
                ax.text(j, i, ch, ha="center", va="center", fontsize=7, color="w" if dark else "k")
            ax.text(width - 0.3, i, "✓" if e["correct"] else "✗", fontsize=8, va="center")
        ax.set_yticks(range(len(ex)), [f"{e['split'][:4]} {e['difficulty']}" for e in ex], fontsize=6)
        ax.set_xticks([])
        ax.grid(False)
        ax.set_title(f"{task}: passes per character ({a['model']})")
        fig.colorbar(im, ax=ax, label="passes taken")
    save(fig, out / "figures" / "per_example_compute", source=str(out))


def routing_by_pass(a: dict, split: str = "test") -> dict:
    """5.5: how a MoE run's first-choice expert depends on the pass, from every (position, pass) it ran.
    Information in bits (docs/act.md): I(expert; pass), and I(expert; pass | character), what the pass
    tells about the expert beyond the character at that position (the MoE lab's routing followed characters)."""
    experts, passes, chars = [], [], []
    for r in a["splits"][split]["examples"]:
        text = "." + r["input"] + "=" + r["answer"]
        for t, per_pass in enumerate(r["experts"]):
            for n, e in enumerate(per_pass):
                if e >= 0:
                    experts.append(e), passes.append(n), chars.append(ord(text[t]))
    e, n, c = (np.array(v, dtype=np.int64) for v in (experts, passes, chars))
    share = np.zeros((a["max_steps"], a["experts"]))
    np.add.at(share, (n, e), 1)
    share /= np.maximum(share.sum(1, keepdims=True), 1)
    h_e, h_ec = cond_entropy(e), cond_entropy(e, c)
    return {"share": share.tolist(), "h_expert": h_e, "mi_pass": h_e - cond_entropy(e, n), "mi_char": h_e - h_ec,
            "mi_pass_given_char": h_ec - cond_entropy(e, c, n), "assignments": len(e)}


def moe_runs(rs: list[dict]) -> list[dict]:
    """The 5.5 runs whose routing the report reads: the deepest fixed MoE model and the adaptive ones."""
    deepest = max(a["max_steps"] for a in rs)
    return [a for a in rs if a.get("experts") and (a["kind"] != "fixed" or a["max_steps"] == deepest)]


def moe_section(task: str, rs: list[dict]) -> list[str]:
    """5.5 in the report: each MoE run beside its dense twin, and what its routing depends on."""
    twins = {a["model"]: a for a in rs}
    lines = [f"## 5.5 — a mixture of experts inside the shared block ({task})", "",
             f"The block's feed-forward replaced by Part 4's top-{TOP_K} mixture of {EXPERTS} experts, each as "
             "large as the dense feed-forward (composed through the spine's `ffn_factory`; the balancing loss is "
             "counted on every pass), upcycled from the deepest dense fixed model (every expert a copy of its "
             "feed-forward, a fresh router), trained as a fixed-depth model and then with ACT. The question: does "
             "the expert a position is sent to change with the pass, i.e. does the shared block behave like "
             "different layers at different depths? Information in bits over every (position, pass) of the test "
             "set, about the expert the router ranked first.", "",
             "| model | test acc | dense twin | MACs / example | dense twin | passes / position | H(expert) | "
             "I(expert; pass) | I(expert; character) | I(expert; pass \\| character) |", "|---" * 10 + "|"]
    findings = []
    for a in moe_runs(rs):
        twin = twins.get(a["model"].removesuffix(f"_moe{a['experts']}"))
        r, t = routing_by_pass(a), a["splits"]["test"]
        tw = twin["splits"]["test"] if twin else None
        twin_acc, twin_macs = (f"{100 * tw['acc']:.1f}%", f"{tw['macs_per_example']:,.0f}") if tw else ("—", "—")
        lines.append(f"| {a['model']} | {100 * t['acc']:.1f}% | {twin_acc} | {t['macs_per_example']:,.0f} | "
                     f"{twin_macs} | {t['steps_position']:.2f} | {r['h_expert']:.2f} | {r['mi_pass']:.2f} | "
                     f"{r['mi_char']:.2f} | {r['mi_pass_given_char']:.2f} |")
        share = np.array(r["share"])
        top = [int(i) for i in share.argmax(1)]
        beyond = r["mi_pass_given_char"] / r["h_expert"] if r["h_expert"] > 0 else 0.0
        findings.append(f"{a['model']}: the most used expert per pass is {', '.join(f'E{i}' for i in top)}; the pass "
                        f"carries {r['mi_pass']:.2f} of the {r['h_expert']:.2f} bits of routing entropy, "
                        f"{r['mi_pass_given_char']:.2f} beyond the character ({100 * beyond:.0f}%): expert choice "
                        + ("**changes with the pass**." if beyond >= 0.1 else "**barely changes with the pass**."))
    findings.append("Caveat: in an adaptive run a later pass holds only the positions still running, so part of "
                    "its I(expert; pass) is *which* positions remain; the fixed-depth run, where every position "
                    "runs every pass, has no such selection.")
    return lines + [""] + findings + ["", "![routing by pass](figures/moe_routing_by_pass.png)", ""]


def fig_routing_by_pass(runs, out: Path):
    panels = [a for rs in runs.values() for a in moe_runs(rs)]
    if not panels:
        return
    fig, axes = new_figure(len(panels), 1, width=3.6, height=3.4)
    for ax, a in zip(axes[0], panels):
        r = routing_by_pass(a)
        share = np.array(r["share"])
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (n, e), v in np.ndenumerate(share):
            ax.text(e, n, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v > 0.6 else "k")
        ax.set_xticks(range(share.shape[1]), [f"E{i}" for i in range(share.shape[1])])
        ax.set_yticks(range(share.shape[0]), [str(i + 1) for i in range(share.shape[0])])
        ax.grid(False)
        ax.set_xlabel("expert (router's first choice)")
        ax.set_ylabel("pass")
        ax.set_title(f"{a['task']} {a['model']}\nI(expert; pass) = {r['mi_pass']:.2f} bits", fontsize=9)
    fig.colorbar(im, ax=axes[0][-1], label="share of the pass's positions")
    save(fig, out / "figures" / "moe_routing_by_pass", source=str(out))


def report(out: Path) -> None:
    out = Path(out)
    runs = load_runs(out)
    if not runs:
        raise UserError(f"no run directories with analysis.json under {out}; run `nnlabs lab act` first")
    fig_accuracy_vs_compute(runs, out)
    fig_halting_by_difficulty(runs, out)
    fig_tau_tradeoff(runs, out)
    fig_per_example(runs, out)
    fig_routing_by_pass(runs, out)
    write_report(runs, out)
    write_explorable(runs, out)


def write_report(runs, out: Path) -> None:
    lab = json.loads((out / "lab.json").read_text()) if (out / "lab.json").exists() else {}
    lines = ["# Part 5 — adaptive computation: passes of one shared block, with a halting unit", "",
             f"Budget `{lab.get('budget', '?')}`, seed {lab.get('seed', '?')}, wall time {lab.get('wall_s', '?')} s, "
             f"tasks: {', '.join(lab.get('tasks', runs))} (the `full` budget runs all four). "
             "Every number below is computed from the run directories beside this file. "
             "Compute = forward MACs per example, measured by `count_macs` on the rows actually run "
             "(halted positions are gathered out of the computation, so they cost nothing).", "",
             f"Every model is one transformer block (window of {WINDOW} positions) applied for several passes. "
             "Training is a depth curriculum: the shallowest fixed model trains from scratch, each deeper one "
             "starts from the previous, and ACT and PonderNet models start from the deepest fixed model and "
             "fine-tune with their halting unit (training steps below), so later models have seen more steps. "
             "The in-distribution test shares most inputs with train at these lengths "
             "(docs/datasheets/algorithmic.md); `lengthgen` is the generalisation test.", ""]
    for task, rs in runs.items():
        field = algorithmic.FIELDS[task][0]
        lo, hi = algorithmic.LENGTHS[task][0]
        lines += [f"## {task}", "", f"Training {field} {lo}–{hi}; the length-generalisation split is longer.", "",
                  "| model | training steps | test acc | lengthgen acc | MACs / example (test) | "
                  f"passes at answer (test) | r({field}, passes) test | r test ∪ lengthgen |",
                  "|---|---|---|---|---|---|---|---|"]
        for a in rs:
            cfg = json.loads((out / a["run"] / "config.json").read_text())
            a["train_steps"] = cfg.get("train", {}).get("max_steps")
            t, g = a["splits"]["test"], a["splits"]["lengthgen"]
            r_text = " | ".join("—" if r is None else f"{r:+.2f}" for r in
                                (halting_correlation(a, field, splits) if a["kind"] != "fixed" else None
                                 for splits in (("test",), ("test", "lengthgen"))))
            init = f" more, from {cfg['init_from']}" if cfg.get("init_from") else ""
            steps = f"none (uses {cfg['derived_from']})" if a["kind"] == "exit" else f"{a['train_steps']}{init}"
            lines.append(f"| {a['model']} | {steps} | {100 * t['acc']:.1f}% | {100 * g['acc']:.1f}% | "
                         f"{t['macs_per_example']:,.0f} | {t['steps_answer']:.2f} | {r_text} |")
        fixed1 = next((a for a in dense(rs) if a["kind"] == "fixed" and a["max_steps"] == 1), None)
        deepest = max((a for a in dense(rs) if a["kind"] == "fixed"), key=lambda a: a["max_steps"], default=None)
        best = best_adaptive(rs)
        lines.append("")
        if best and fixed1 and deepest:
            acc = {k: a["splits"]["test"]["acc"] for k, a in (("best", best), ("one", fixed1), ("deep", deepest))}
            lines.append(f"Most accurate adaptive model: **{best['model']}**, {100 * acc['best']:.1f}% on test "
                         f"(one pass: {100 * acc['one']:.1f}%, {deepest['model']}: {100 * acc['deep']:.1f}%).")
            deep_macs = deepest["splits"]["test"]["macs_per_example"]
            near = [a for a in dense(rs) if a["kind"] in ("act", "ponder", "exit")
                    and a["splits"]["test"]["acc"] >= acc["deep"] - 0.01]
            cheapest = min(near, key=lambda a: a["splits"]["test"]["macs_per_example"], default=None)
            saved = 1 - cheapest["splits"]["test"]["macs_per_example"] / deep_macs if cheapest else 0.0
            if cheapest and saved > 0.05:
                lines.append(f"The cheapest adaptive model within 1 point of {deepest['model']} is "
                             f"**{cheapest['model']}** ({100 * cheapest['splits']['test']['acc']:.1f}%) with "
                             f"{100 * saved:.0f}% less compute: adaptive depth helped.")
            else:
                lines.append(f"No adaptive model came within 1 point of {deepest['model']} with more than 5% less "
                             "compute: adaptive depth did not help here.")
        act = [a for a in dense(rs) if a["kind"] == "act"]
        if act:
            good = max(act, key=accuracy_then_cheapness)
            each = ", ".join(f"τ={a['tau']:g}: {100 * a['splits']['test']['acc']:.1f}% at "
                             f"{a['splits']['test']['steps_position']:.2f} passes/position" for a in act)
            lines.append(f"Among ACT settings, τ = {good['tau']:g} worked best (accuracy first, then compute; {each}).")
            collapsed = [a for a in act if a["splits"]["test"]["steps_position"] < 1.1]
            if collapsed:
                lines.append(f"Collapsed to a single pass everywhere (the ponder cost won before the task gave any "
                             f"signal): {', '.join(a['model'] for a in collapsed)}.")
        gen = max(rs, key=lambda a: a["splits"]["lengthgen"]["acc"])
        gen_acc = gen["splits"]["lengthgen"]["acc"]
        lines.append(f"Length generalisation: the best model on `lengthgen` reaches {100 * gen_acc:.1f}% "
                     f"({gen['model']}){' — near chance' if gen_acc < 0.6 else ''}. Longer inputs use position "
                     "embeddings that training never reached, and the longest need more passes than the cap.")
        for a in rs:
            if a["kind"] == "ponder" and a["splits"]["test"]["steps_position"] > 0.95 * a["max_steps"]:
                lines.append(f"{a['model']} kept (almost) every position at the cap of {a['max_steps']} passes: "
                             "its KL to the geometric prior did not move halting earlier within its fine-tune.")
        lines.append("")
        if best:
            b = by_bucket(best["splits"]["test"]["examples"], field)
            r = pearson(list(b), [v["steps_answer"] for v in b.values()])
            lines.append(f"{best['model']}: mean passes at the answer position by {field} on test: "
                         + ", ".join(f"{k}: {v['steps_answer']:.2f}" for k, v in b.items())
                         + ("" if r is None else f" (r of these means with {field}: {r:+.2f})") + ".")
            lines.append("")
        if best and fixed1:
            lines += ["Accuracy by difficulty (test ∪ lengthgen), best adaptive model vs one pass:", ""]
            ex_b = by_bucket(best["splits"]["test"]["examples"] + best["splits"]["lengthgen"]["examples"], field)
            ex_1 = by_bucket(fixed1["splits"]["test"]["examples"] + fixed1["splits"]["lengthgen"]["examples"], field)
            lines += [f"| {field} | " + " | ".join(str(k) for k in ex_b) + " |", "|---" * (len(ex_b) + 1) + "|",
                      f"| {best['model']} acc | " + " | ".join(f"{100 * v['acc']:.0f}" for v in ex_b.values()) + " |",
                      f"| {best['model']} passes | " + " | ".join(f"{v['steps_answer']:.1f}" for v in ex_b.values())
                      + " |",
                      "| fixed1 acc | " + " | ".join(f"{100 * ex_1[k]['acc']:.0f}" if k in ex_1 else "—" for k in ex_b)
                      + " |", ""]
    for task, rs in runs.items():
        if moe_runs(rs):
            lines += moe_section(task, rs)
    lines += ["## Figures", "", "![accuracy vs compute](figures/accuracy_vs_compute.png)", "",
              "![halting by difficulty](figures/halting_by_difficulty.png)", "", "![tau](figures/tau_tradeoff.png)",
              "", "![per example](figures/per_example_compute.png)", "",
              "Definitions of every metric: docs/act.md. Interactive version: act.html.", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


EXPLORABLE_BODY = """
<p class="note">Each model is one shared transformer block applied for several passes. Pick a task and a
difficulty: the table shows accuracy (test and length-generalisation examples together; "n" counts them)
and measured compute per example for every model; below, examples
with each character coloured by the number of passes that position took (darker = more).</p>
<div class="controls">
  <label>task <select id="task"></select></label>
  <label>difficulty <select id="bucket"></select></label>
  <label>model for examples <select id="model"></select></label>
</div>
<table class="heat" id="table"></table>
<h2>Passes per position</h2>
<p class="note">Label: split, difficulty, whether the answer was right. Pale = 1 pass, dark = the model's
maximum; hover a character for its count.</p>
<div id="examples" class="mono"></div>
"""

EXPLORABLE_JS = """
const $ = (id) => document.getElementById(id);
function fill(sel, values) { clear(sel); for (const v of values) sel.append(el('option', {value: v}, v)); }
function render() {
  const T = DATA.tasks[$('task').value], b = $('bucket').value;
  const maxMacs = Math.max(...T.models.map(m => (m.buckets[b] || {macs: 0}).macs));
  const table = clear($('table'));
  table.append(el('tr', {}, el('th', {}, 'model'), el('th', {}, 'accuracy'), el('th', {}, 'MACs / example'),
                  el('th', {}, 'passes at answer'), el('th', {}, 'n')));
  for (const m of T.models) {
    const s = m.buckets[b];
    if (!s) continue;
    const bar = (frac, color) => el('div', {style: {width: Math.round(160 * frac) + 'px', height: '10px',
                                                    background: color, display: 'inline-block'}});
    table.append(el('tr', {}, el('td', {}, m.name),
      el('td', {style: {textAlign: 'left'}}, bar(s.acc, '#1f77b4'), ' ' + (100 * s.acc).toFixed(1) + '%'),
      el('td', {style: {textAlign: 'left'}}, bar(s.macs / maxMacs, '#ff7f0e'),
         ' ' + Math.round(s.macs).toLocaleString()),
      el('td', {}, s.steps.toFixed(2)), el('td', {}, s.n)));
  }
  const box = clear($('examples'));
  const model = T.models.find(m => m.name === $('model').value);
  const shown = model.examples.filter(e => b === 'all' || String(e.difficulty) === b);
  if (!shown.length) box.append(el('p', {class: 'note'}, 'no stored example at this difficulty'));
  for (const e of shown) {
    const row = el('div', {style: {margin: '3px 0'}});
    row.append(el('span', {class: 'note', style: {display: 'inline-block', width: '9em'}},
                  `${e.split} ${e.difficulty} ${e.correct ? '✓' : '✗'}`));
    [...e.chars].forEach((ch, i) => {
      const t = (e.steps[i] - 1) / Math.max(1, model.max_steps - 1);
      const shade = `rgba(31,119,180,${0.1 + 0.85 * t})`;
      row.append(el('span', {title: e.steps[i] + ' passes', style: {background: shade,
        color: t > 0.5 ? 'white' : 'black', padding: '2px 4px', marginRight: '1px'}}, ch));
    });
    row.append(el('span', {class: 'note'}, '  answer ' + e.answer));
    box.append(row);
  }
}
function onTask() {
  const T = DATA.tasks[$('task').value];
  fill($('bucket'), ['all', ...T.buckets.map(String)]);
  fill($('model'), T.models.map(m => m.name));
  const adaptive = T.models.find(m => m.name === T.best);
  if (adaptive) $('model').value = adaptive.name;
  render();
}
fill($('task'), Object.keys(DATA.tasks));
$('task').onchange = onTask; $('bucket').onchange = render; $('model').onchange = render;
onTask();
"""


def write_explorable(runs, out: Path) -> None:
    tasks = {}
    for task, rs in runs.items():
        field = algorithmic.FIELDS[task][0]
        models = []
        for a in rs:
            ex = a["splits"]["test"]["examples"] + a["splits"]["lengthgen"]["examples"]
            buckets = {"all": summarize(ex), **{str(k): v for k, v in by_bucket(ex, field).items()}}
            models.append({"name": a["model"], "max_steps": a["max_steps"],
                           "buckets": {k: {"acc": v["acc"], "macs": v["macs_per_example"],
                                           "steps": v["steps_answer"], "n": v["n"]} for k, v in buckets.items()},
                           "examples": example_picture(a, per_bucket=3, limit=60)})
        best = best_adaptive(rs)
        values = {r[field] for s in rs[0]["splits"].values() for r in s["examples"]}
        tasks[task] = {"field": field, "buckets": sorted(values),
                       "models": models, "best": best["model"] if best else None}
    write_html(out / "act.html", "Adaptive computation: accuracy vs compute, passes per position",
               {"tasks": tasks}, EXPLORABLE_BODY, EXPLORABLE_JS)
