"""The MoE lab's experiment: dense and MoE transformers on the pack's domain mixture (names / arithmetic /
Python one-liners) with the same data, steps and seed; only the feed-forward differs. At every
evaluation a fixed per-domain probe set is routed through the model to see which experts get which
domains and characters.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from nnlabs.labs import lab_parser, run_config
from nnlabs.labs.moe.layer import MoEConfig, moe_transformer
from nnlabs.labs.moe.metrics import (
    CLASSES,
    DOMAINS,
    char_class,
    max_violation,
    moe_layers,
    param_counts,
    real_load,
    route_texts,
    router_choices,
    routing_metrics,
    same_expert_rate,
    shared_chars,
)
from nnlabs.report.info import permutation_null
from nnlabs.spine.data import SequenceData, Vocab, encode_words
from nnlabs.spine.errors import UserError
from nnlabs.spine.models import FeedForward, ModelConfig, Transformer
from nnlabs.spine.rundir import claim
from nnlabs.spine.sample import generate
from nnlabs.spine.train import TrainConfig, evaluate_parts, train


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run of the lab: its feed-forward and, for the collapse runs, how its router starts and learns."""

    moe: MoEConfig | None = None  # None: a dense baseline
    ffn_mult: int = 1  # the dense FFN's width, in multiples of 4C
    router_std: float | None = None  # the router's initial weight std (None: the spine's 0.02)
    learning_rate: float | None = None  # None: the trainer's default


def unbalanced(**moe) -> MoEConfig:
    """Top-1 of 8 with no balancing at all, plus whatever `moe` switches on."""
    return MoEConfig(**{"n_experts": 8, "top_k": 1, "balance_alpha": 0.0, "z_alpha": 0.0, **moe})


# The collapse setting (docs/moe.md records the searches that found it, 3 seeds per candidate): a router
# initialised at std 3 (its softmax saturated from the start) with a per-expert bias, at a learning rate of
# 2e-2; without balancing, the bias of the experts that win early grows for every token and routing drifts
# onto few experts. The runs below it are the same setting with one cure each.
COLLAPSE = {"router_std": 3.0, "learning_rate": 2e-2}


def collapse_setting(**moe) -> RunSpec:
    return RunSpec(moe=unbalanced(router_bias=True, **moe), **COLLAPSE)
RUNS = {
    "dense": RunSpec(),  # same active parameters as top-1
    "dense_x4": RunSpec(ffn_mult=4),  # same total parameters as 4 experts
    "top1_e4": RunSpec(moe=MoEConfig(n_experts=4, top_k=1)),
    "top1_e8": RunSpec(moe=MoEConfig(n_experts=8, top_k=1)),
    "top2_e4": RunSpec(moe=MoEConfig(n_experts=4, top_k=2)),
    "top2_e8": RunSpec(moe=MoEConfig(n_experts=8, top_k=2)),
    # the capacity sweep (Switch Table 1): top1_e8 is capacity factor 0 = unlimited
    "top1_e8_cap1": RunSpec(moe=MoEConfig(n_experts=8, top_k=1, capacity_factor=1.0)),
    "top1_e8_cap1.25": RunSpec(moe=MoEConfig(n_experts=8, top_k=1, capacity_factor=1.25)),
    "top1_e8_cap2": RunSpec(moe=MoEConfig(n_experts=8, top_k=1, capacity_factor=2.0)),
    "top1_e8_nobal": RunSpec(moe=unbalanced()),
    "top1_e8_lossfree": RunSpec(moe=unbalanced(bias_rate=1e-3)),
    "top1_e8_lossfree_sign": RunSpec(moe=unbalanced(bias_rate=1e-3, bias_sign=True)),
    # a 10x faster rate, to compare: with whole characters moving between experts at once it overshoots
    "top1_e8_lossfree_fast": RunSpec(moe=unbalanced(bias_rate=1e-2)),
    # loss-free where each token takes two experts, as in the paper's models (several experts per token): a
    # block of tokens that ranks the experts alike can be split between its first and second choices
    "top2_e8_lossfree": RunSpec(moe=unbalanced(top_k=2, bias_rate=1e-3)),
    # the same, but the line start picks its experts by probability alone: position 0 has one hidden state in
    # every line (8 % of the real tokens here, 1 in 4,096 in the paper's sequences), a block the bias can only
    # move whole — so it chases it from expert to expert (the report counts the start's switches)
    "top2_e8_lossfree_nostart": RunSpec(moe=unbalanced(top_k=2, bias_rate=1e-3, bias_skips_start=True)),
    "collapse_none": collapse_setting(),
    "collapse_switch": collapse_setting(balance_alpha=0.01),
    "collapse_zloss": collapse_setting(z_alpha=1e-3),
    "collapse_noise": collapse_setting(noise_std=1.0),
    "collapse_lossfree": collapse_setting(bias_rate=1e-3),
    "collapse_lossfree_sign": collapse_setting(bias_rate=1e-3, bias_sign=True),
}


@dataclass(frozen=True, kw_only=True)
class MoEBudget:
    """How much compute one run spends: the model's size, the steps, and how much of the mixture it sees."""

    n_layer: int
    n_embd: int
    n_head: int
    steps: int
    eval_interval: int
    batch: int
    n_train: int  # training lines
    n_val: int  # validation lines per domain
    warmup: int
    runs: tuple[str, ...] = tuple(RUNS)  # which of RUNS this budget trains


# The quick budget (one `make labs` on a laptop) keeps one run per question the post asks: dense vs sparse
# at equal active and equal total parameters, top-1 vs top-2, a capacity limit, no balancing vs Switch vs
# loss-free (top-1 and top-2), and collapse with and without a cure. Expert-count scans and the other cures:
# full only.
QUICK_RUNS = ("dense", "dense_x4", "top1_e8", "top2_e8", "top1_e8_cap1", "top1_e8_nobal", "top1_e8_lossfree",
              "top2_e8_lossfree", "top2_e8_lossfree_nostart", "collapse_none", "collapse_switch",
              "collapse_lossfree")
# The full budget trains the rest too but for the 10x faster loss-free rate: measured on 3 seeds (docs/moe.md:
# no more even than u = 1e-3, and it overshoots at quick), it stays a --runs choice, and full fits 45 CPU-minutes.
FULL_RUNS = tuple(name for name in RUNS if name != "top1_e8_lossfree_fast")


BUDGETS = {
    "tiny": MoEBudget(n_layer=2, n_embd=32, n_head=2, steps=16, eval_interval=8, batch=16, n_train=1200,
                      n_val=32, warmup=5),
    "quick": MoEBudget(n_layer=2, n_embd=64, n_head=4, steps=800, eval_interval=100, batch=32, n_train=24000,
                       n_val=300, warmup=100, runs=QUICK_RUNS),
    "full": MoEBudget(n_layer=3, n_embd=64, n_head=4, steps=2000, eval_interval=250, batch=32, n_train=24000,
                      n_val=500, warmup=200, runs=FULL_RUNS),
}
SAMPLE_PROMPTS = ("", "", "", "", "", "", "ma", "4", "x = ")
SHOW_PER_DOMAIN = 3  # probe lines per domain shown coloured by expert in the explorable


@dataclass
class Mixture:
    """The pack's domain mixture, encoded once for every run: train, val (all domains), per-domain lines."""

    vocab: Vocab
    block_size: int
    train: SequenceData
    val: SequenceData
    val_lines: dict[str, list[str]]
    probe_lines: dict[str, list[str]]


def load_mixture(n_train: int, n_val: int) -> Mixture:
    from nnlabs.pack import DEFAULT_SEED, mixture

    files = mixture.build(DEFAULT_SEED)

    def lines(name: str) -> list[str]:
        return files[f"mixture/{name}.txt"].splitlines()

    train_lines = lines("train")[:n_train]
    val = {d: lines(f"val_{d}")[:n_val] for d in DOMAINS}
    probe = {d: lines(f"probe_{d}") for d in DOMAINS}
    everything = train_lines + [t for d in DOMAINS for t in val[d] + probe[d]]
    vocab, block_size = Vocab("".join(everything)), max(len(t) for t in everything) + 1
    return Mixture(vocab, block_size, encode_words(train_lines, vocab, block_size),
                   encode_words([t for d in DOMAINS for t in val[d]], vocab, block_size), val, probe)


def wide_ffn(config: ModelConfig, layer: int, mult: int) -> FeedForward:
    """A dense FeedForward `mult` times wider (C -> 4*mult*C -> C): the same-total-parameters baseline."""
    ffn, width = FeedForward(config, layer), 4 * mult * config.n_embd
    ffn.up, ffn.down = nn.Linear(config.n_embd, width), nn.Linear(width, config.n_embd)
    return ffn


def build_model(config: ModelConfig, moe: MoEConfig | None = None, ffn_mult: int = 1) -> Transformer:
    if moe is not None and moe.bias_skips_start and config.packed:
        # the layer and the start metrics read position 0 of each row as the line start: one line per row
        raise UserError("bias_skips_start needs one line per row (packed=False): packed rows start lines mid-row")
    if moe is not None:
        return moe_transformer(config, moe)
    return Transformer(config, ffn_factory=lambda c, layer: wide_ffn(c, layer, ffn_mult))


class ProbeEvaluator:
    """The `on_eval` callback of one run, with its validation pass (`val_pass`, the spine's `evaluate_val`):
    per-domain val loss, the probe set's routing per layer, samples coloured by expert, MaxVio per training
    batch (a forward hook) and over the validation set, and at the last evaluation, on the run the report
    reads them from (`controls`), the specialisation controls. Evaluations go to `analysis.partial.json`
    while training; `finish` renames it to `analysis.json`, whose presence marks a finished run."""

    def __init__(self, data: Mixture, run_dir: Path, seed: int, model, final_step: int, resume: bool = False,
                 controls: bool = True):
        self.vocab, self.block_size, self.seed, self.final_step = data.vocab, data.block_size, seed, final_step
        self.controls = controls
        self.partial, self.final = run_dir / "analysis.partial.json", run_dir / "analysis.json"
        self.val = {d: encode_words(v, self.vocab, self.block_size) for d, v in data.val_lines.items()}
        probe = data.probe_lines
        self.texts = [t for d in DOMAINS for t in probe[d]]
        dom = [i for i, d in enumerate(DOMAINS) for _ in probe[d]]
        # position 0 routes the start token
        chars = [("",) + tuple(t) for t in self.texts]
        self.domain = np.array([dom[i] for i, c in enumerate(chars) for _ in c])
        self.char = np.array([self.vocab.stoi[ch] if ch else 0 for c in chars for ch in c])
        self.cls = np.array([CLASSES.index(char_class(ch)) for c in chars for ch in c])
        shared = shared_chars(probe)
        self.shared = np.array([ch in shared for c in chars for ch in c])
        # consecutive positions inside one line: position p and p + 1
        self.pairs = np.flatnonzero(np.concatenate([[True] * (len(c) - 1) + [False] for c in chars]))
        self.shown = [t for d in DOMAINS for t in probe[d][:SHOW_PER_DOMAIN]]
        self.records, self.prev, self.samples, self.batch_vio = [], None, [], []
        # the line start: every row's position 0, one hidden state in every line; its share of the real val tokens
        self.start_share = len(data.val.y) / int((data.val.y >= 0).sum())
        self.start_prev, self.start_switched = None, []  # its experts per layer at the last training step
        self.val_losses, self.maxvio_global = {}, []  # set by val_pass, read by the on_eval call after it
        self.layers = moe_layers(model)  # the model's MoE layers, found once (the hook runs every training step)
        model.register_forward_hook(self.record_batch)
        # on resume keep the evaluations before the checkpoint (later ones are redone)
        for path in (self.partial, self.final) if resume else ():
            if path.exists():
                self.records = json.loads(path.read_text())["evals"]
                break

    def record_batch(self, model, args, output) -> None:
        """After each training forward: MaxVio of that batch's real tokens, mean over layers; and per layer,
        whether the line start (row 0's position 0, the same in every row) took other experts than the step before."""
        if model.training and self.layers:
            vio = [max_violation(real_load(m)) for m in self.layers if m.target_mask is not None]
            self.batch_vio += [float(np.mean(vio))] if vio else []
            start = [sorted(m.stats["chosen"][0].tolist()) for m in self.layers]
            if self.start_prev is not None:
                self.start_switched.append([a != b for a, b in zip(start, self.start_prev)])
            self.start_prev = start

    @torch.no_grad()
    def removal(self, model, base: dict[str, float]) -> list[list[dict]]:
        """Per layer and expert: each domain's val loss change from `base` when that expert is removed (its
        tokens go to their next choice: a bias of -inf keeps it from being selected)."""
        changes = []
        for m in self.layers:
            changes.append([])
            for e in range(m.moe.n_experts):
                kept_bias = m.balance_bias[e].item()
                m.balance_bias[e] = -math.inf
                losses = evaluate_parts(model, self.val)[2]
                changes[-1].append({d: losses[d] - base[d] for d in self.val})
                m.balance_bias[e] = kept_bias
        return changes

    @torch.no_grad()
    def val_pass(self, model) -> tuple[float, float]:
        """The run's validation pass (the spine's `evaluate_val`), domain by domain: returns the loss over
        every val line and the MACs per position for the spine's record, and keeps for this evaluation's
        own record each domain's loss and, per layer, MaxVio_global: the load over every real val token
        (a forward hook counts each batch's choices at its target positions)."""
        loads = [np.zeros(m.moe.n_experts, dtype=np.int64) for m in self.layers]

        def count(module, args, output):
            for load, m in zip(loads, self.layers):
                load += real_load(m)

        hook = model.register_forward_hook(count)
        loss, macs, self.val_losses = evaluate_parts(model, self.val)
        hook.remove()
        self.maxvio_global = [max_violation(load) for load in loads]
        return loss, macs

    def __call__(self, model, step: int) -> dict:
        layers = self.layers
        # val_pass has just run, at this step
        val_losses, maxvio_global = self.val_losses, self.maxvio_global
        extra = {f"val_loss_{d}": loss for d, loss in val_losses.items()}
        g = torch.Generator().manual_seed(self.seed)
        self.samples = []
        # one batch per distinct prompt
        for p in dict.fromkeys(SAMPLE_PROMPTS):
            ids = torch.tensor([[0] + self.vocab.encode(p)] * SAMPLE_PROMPTS.count(p))
            outs = generate(model, ids, self.block_size - 1 - len(p), generator=g, block_size=self.block_size)
            self.samples += [(p, p + self.vocab.decode(o)) for o in outs]
        if not layers:
            return extra
        routed = route_texts(model, self.vocab, self.texts, self.block_size)
        metrics = [routing_metrics(r["chosen"], r["probs"], r["kept"], self.domain, self.cls, self.char,
                                   m.moe.n_experts, None if self.prev is None else self.prev[i])
                   for i, (r, m) in enumerate(zip(routed, layers))]
        top1 = [np.array(m.pop("top1")) for m in metrics]
        for m, t, layer in zip(metrics, top1, layers):
            # the control for token identity: the characters two domains share, split by domain
            shared = np.zeros((len(DOMAINS), layer.moe.n_experts), dtype=np.int64)
            np.add.at(shared, (self.domain[self.shared], t[self.shared]), 1)
            m["shared_domain_expert"] = shared.tolist()
            m["same_expert"] = same_expert_rate(t, self.pairs, np.bincount(t, minlength=layer.moe.n_experts))
            if step >= self.final_step and self.controls:
                m["domain_given_char_null"] = permutation_null(t, self.domain, self.char, 200, self.seed)
        self.prev = top1
        for m, vio in zip(metrics, maxvio_global):
            m["maxvio_global"] = vio
        vio_batch = float(np.mean(self.batch_vio)) if self.batch_vio else None
        self.batch_vio = []
        # the share of training steps since the last evaluation at which the line start switched experts
        for m, switched in zip(metrics, np.mean(self.start_switched, axis=0).tolist() if self.start_switched else []):
            m["start_switch_rate"] = switched
        self.start_switched = []
        strings = []
        texts = self.shown + [s for _, s in self.samples]
        for i, r in enumerate(route_texts(model, self.vocab, texts, self.block_size)):
            top1, choices, start = r["chosen"][:, 0].tolist(), router_choices(r["probs"], layers[i]), 0
            for j, t in enumerate(texts):
                if i == 0:
                    strings.append({"text": t, "kind": "sample" if j >= len(self.shown) else "probe",
                                    "experts": [], "choices": []})
                # skip the start token
                strings[j]["experts"].append(top1[start + 1:start + 1 + len(t)])
                strings[j]["choices"].append(choices[start + 1:start + 1 + len(t)])
                start += len(t) + 1
        record = {"step": step, "layers": metrics, "strings": strings, "maxvio_batch": vio_batch,
                  "start_share": self.start_share,
                  "balance_bias": [m.balance_bias.tolist() for m in layers]}
        if step >= self.final_step and self.controls:
            record["removal"] = self.removal(model, val_losses)
        self.records = [r for r in self.records if r["step"] < step] + [record]
        self.partial.write_text(json.dumps({"evals": self.records}) + "\n")
        extra.update({k: float(np.mean([m[k] for m in metrics]))
                      for k in ("load_balance_ratio", "routing_entropy", "dropped_frac", "maxvio_global")})
        if vio_batch is not None:
            extra["maxvio_batch"] = vio_batch
        if metrics[0]["instability"] is not None:
            extra["instability"] = float(np.mean([m["instability"] for m in metrics]))
        return extra

    def sample_fn(self, model):
        return self.samples

    def finish(self) -> None:
        self.final.write_text(json.dumps({"evals": self.records}) + "\n")
        self.partial.unlink(missing_ok=True)


def control_run(moe_runs: list[str]) -> str | None:
    """Of these MoE runs, the one whose specialisation controls the report reads: top1_e8, else the first.
    Only it computes them (a 200-fold permutation null and every expert removed in turn: 11 s of a quick
    run whose training takes 34 s)."""
    return "top1_e8" if "top1_e8" in moe_runs else (moe_runs[0] if moe_runs else None)


def run_one(name: str, out: Path, budget: str, seed: int, data: Mixture, resume: bool, threads: int,
            controls: bool = True) -> None:
    b, spec = BUDGETS[budget], RUNS[name]
    config = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, n_layer=b.n_layer,
                         n_head=b.n_head, n_embd=b.n_embd)
    # the same initial weights for every run's shared parts
    torch.manual_seed(seed)
    model = build_model(config, spec.moe, spec.ffn_mult)
    for layer in moe_layers(model) if spec.router_std is not None else ():
        nn.init.normal_(layer.router.weight, 0.0, spec.router_std)
    total, active = param_counts(model)
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    evaluator = ProbeEvaluator(data, run_dir, seed, model, b.steps - 1, resume, controls)
    cfg = TrainConfig(max_steps=b.steps, batch_size=b.batch, eval_interval=b.eval_interval, seed=seed,
                      warmup_steps=b.warmup, eval_train_items=500, device="cpu", threads=threads,
                      **({"learning_rate": spec.learning_rate} if spec.learning_rate else {}))
    config_json = run_config(lab="moe", run=name, budget=budget, seed=seed, model=asdict(config),
                             moe=asdict(spec.moe) if spec.moe else None, ffn_mult=spec.ffn_mult,
                             router_std=spec.router_std, vocab=data.vocab.to_dict(), params_total=total,
                             params_active=active)
    train(model, data.train, data.val, cfg, run_dir, run_config=config_json, resume=resume, on_eval=evaluator,
          sample_fn=evaluator.sample_fn, evaluate_val=evaluator.val_pass)
    evaluator.finish()


def main(argv: list[str]) -> int:
    from nnlabs.labs.moe.report import report

    p = lab_parser("moe", "Part 4: sparse mixture-of-experts FFNs on the domain mixture — routing, collapse "
                   "and its cures, measured.", BUDGETS, seed=3407)
    p.add_argument("--runs", default="", help=f"comma-separated subset of: {', '.join(RUNS)} (default: the "
                   f"budget's; quick trains {len(QUICK_RUNS)} of the {len(RUNS)}, full {len(FULL_RUNS)})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = PyTorch's default); these "
                   "models are small, and one thread is never much slower and far faster on a busy machine")
    a = p.parse_args(argv)
    b = BUDGETS[a.budget]
    names = [n for n in a.runs.split(",") if n] or list(b.runs)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise UserError(f"--runs: unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    with claim(a.out, resume=a.resume, force=a.force) as out:
        data = load_mixture(b.n_train, b.n_val)
        main_run = control_run([n for n in names if RUNS[n].moe])
        for name in names:
            run_one(name, out, a.budget, a.seed, data, a.resume, a.threads, controls=name == main_run)
        report(out)
    print(f"wrote {out / 'report.md'}, {out / 'figures'}/ and {out / 'moe.html'}")
    return 0
