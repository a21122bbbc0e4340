"""Part 4 — Mixture of experts: sparse top-k expert FFNs on the domain mixture.

The patch (`nnlabs diff moe`): every transformer block's FeedForward becomes an `MoE` — a linear router
and E expert FFNs (each the spine's FeedForward). Each token goes to its top-k experts only (real sparse
dispatch: compute grows with k, not E), weighted by its gate. Keeping the router healthy is switchable:
the Switch load-balancing loss, the router z-loss, noisy top-k, and DeepSeek-V3's loss-free bias.

The experiment (`nnlabs lab moe --budget quick`) trains dense and MoE transformers on the pack's domain
mixture (names / arithmetic / Python one-liners) with the same data, steps and seed, and at every
evaluation routes a fixed per-domain probe set to see which experts get which domains and characters.
Definitions of every metric are in docs/moe.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nnlabs.labs import lab_parser
from nnlabs.spine.data import SequenceData, Vocab, encode_words
from nnlabs.spine.errors import UserError
from nnlabs.spine.models import FeedForward, ModelConfig, Transformer
from nnlabs.spine.sample import generate
from nnlabs.spine.train import TrainConfig, evaluate, train

PATCHES = [("nnlabs.spine.models:FeedForward", "nnlabs.labs.moe:MoE")]

# -----------------------------------------------------------------------------
# the mechanism


@dataclass
class MoEConfig:
    n_experts: int = 8
    top_k: int = 1  # 1 = Switch; k > 1 renormalises the k gates to sum to 1
    capacity_factor: float = 0.0  # 0 = unlimited; else each expert takes at most ceil(cf * k * N / E) tokens
    balance_alpha: float = 0.01  # Switch load-balancing loss weight (0 = off)
    z_alpha: float = 1e-3  # router z-loss weight (0 = off)
    noise_std: float = 0.0  # noisy top-k: Gaussian noise on the router logits while training (0 = off)
    bias_rate: float = 0.0  # DeepSeek-V3 loss-free balancing: bias update speed gamma (0 = off)


def switch_balance_loss(probs: torch.Tensor, chosen: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Switch Transformer: L = E * sum_i f_i * P_i, with f_i = the fraction of the N*k assignments that
    went to expert i (counts: no gradient) and P_i = mean over tokens of p_i(x) (differentiable).
    With f = P it is E * sum_i P_i^2 >= 1, equal to 1 exactly when routing is uniform (f_i = P_i = 1/E);
    its gradient E * f_i pushes down the router probability of the busiest experts hardest."""
    f = torch.bincount(chosen.reshape(-1), minlength=n_experts).to(probs.dtype) / chosen.numel()
    return n_experts * (f * probs.mean(0)).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE: L_z = mean_x (log sum_i exp(logit_i(x)))^2 — keeps router logits small, so the softmax
    stays in a numerically calm range and does not saturate."""
    return logits.logsumexp(-1).square().mean()


@torch.no_grad()
def update_balance_bias(bias: torch.Tensor, chosen: torch.Tensor, rate: float) -> None:
    """DeepSeek-V3 auxiliary-loss-free balancing: b_i <- b_i + gamma * sign(mean_load - load_i).
    The bias only steers which experts are *selected* (top-k of p + b); gates still use p, so no
    gradient ever fights the language-modelling loss."""
    load = torch.bincount(chosen.reshape(-1), minlength=bias.numel()).to(bias.dtype)
    bias += rate * torch.sign(load.mean() - load)


def capacity_mask(chosen: torch.Tensor, n_experts: int, capacity_factor: float) -> torch.Tensor:
    """(N, k) bool: which assignments fit their expert's capacity C = ceil(cf * k * N / E). Every token's
    first choice queues before any second choice, then in token order; the overflow is dropped (the
    token then passes through the block's residual connection unchanged)."""
    N, k = chosen.shape
    if not capacity_factor:
        return torch.ones_like(chosen, dtype=torch.bool)
    capacity = math.ceil(capacity_factor * k * N / n_experts)
    onehot = F.one_hot(chosen.t().reshape(-1), n_experts)  # rank-major: first choices first
    place = (onehot.cumsum(0) * onehot).sum(-1) - 1  # this assignment's place in its expert's queue
    return (place < capacity).view(k, N).t()


class MoE(nn.Module):
    """The block's feed-forward as a mixture of experts: a router picks top-k of E FeedForwards per token."""

    def __init__(self, config: ModelConfig, layer: int = 0, moe: MoEConfig | None = None):
        super().__init__()
        self.moe = moe = moe or MoEConfig()
        self.router = nn.Linear(config.n_embd, moe.n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(config, layer) for _ in range(moe.n_experts))
        self.register_buffer("balance_bias", torch.zeros(moe.n_experts))  # loss-free balancing
        self.aux_loss, self.stats = None, {}  # the spine adds aux_loss to the loss, stats to diagnostics

    def route(self, h: torch.Tensor):
        """h (N, C) -> probs (N, E); chosen experts, gates, kept-under-capacity: each (N, k)."""
        m = self.moe
        logits = self.router(h)
        aux = m.z_alpha * router_z_loss(logits) if m.z_alpha else None
        if m.noise_std and self.training:  # noisy top-k: H(x) = x W_g + eps, eps ~ N(0, sigma^2)
            logits = logits + m.noise_std * torch.randn_like(logits)
        probs = logits.softmax(-1)  # p_i(x) = exp(h_i) / sum_j exp(h_j)
        chosen = (probs + self.balance_bias).topk(m.top_k, dim=-1).indices  # the bias steers selection only
        gates = probs.gather(-1, chosen)
        if m.top_k > 1:
            gates = gates / gates.sum(-1, keepdim=True)  # g_i = p_i / sum_{j in top-k} p_j
        if m.balance_alpha:
            balance = m.balance_alpha * switch_balance_loss(probs, chosen, m.n_experts)
            aux = balance if aux is None else aux + balance
        if m.bias_rate and self.training:
            update_balance_bias(self.balance_bias, chosen, m.bias_rate)
        kept = capacity_mask(chosen, m.n_experts, m.capacity_factor)
        self.aux_loss = aux
        self.stats = {"probs": probs.detach(), "chosen": chosen, "kept": kept}
        return probs, chosen, gates, kept

    def forward(self, x):
        h = x.reshape(-1, x.size(-1))  # any leading dims: (B, T, C) in a block, (rows, C) inside ACT's loop
        _, chosen, gates, kept = self.route(h)
        # sparse dispatch: list the kept (token, expert, gate) assignments, group them by expert, and
        # run each expert on its own rows only — y(x) = sum_{i in top-k(x)} g_i(x) * FFN_i(x)
        keep = kept.reshape(-1)
        token = torch.arange(h.size(0), device=h.device).repeat_interleave(self.moe.top_k)[keep]
        expert, gate = chosen.reshape(-1)[keep], gates.reshape(-1)[keep]
        order = expert.argsort(stable=True)
        sizes = torch.bincount(expert, minlength=len(self.experts)).tolist()
        y = torch.zeros_like(h)
        for ffn, rows, g in zip(self.experts, token[order].split(sizes), gate[order].split(sizes)):
            if len(rows):
                y.index_add_(0, rows, g[:, None] * ffn(h[rows]))
        return y.view_as(x)


def dense_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The oracle sparse dispatch must equal: every expert on every token, then masked by the routing.
    Also the naive 'run every expert' implementation the benchmark times (compute grows with E)."""
    h = x.reshape(-1, x.size(-1))
    _, chosen, gates, kept = moe.route(h)
    weight = torch.zeros(h.size(0), len(moe.experts), dtype=h.dtype, device=h.device)
    weight = weight.scatter_add(1, chosen, gates * kept)  # zero for unchosen and dropped assignments
    every = torch.stack([ffn(h) for ffn in moe.experts], dim=1)  # (N, E, C)
    return (weight[..., None] * every).sum(1).view_as(x)


def wide_ffn(config: ModelConfig, layer: int, mult: int) -> FeedForward:
    """A dense FeedForward `mult` times wider (C -> 4*mult*C -> C): the same-total-parameters baseline."""
    ffn, width = FeedForward(config, layer), 4 * mult * config.n_embd
    ffn.up, ffn.down = nn.Linear(config.n_embd, width), nn.Linear(width, config.n_embd)
    return ffn


def build_model(config: ModelConfig, moe: MoEConfig | None = None, ffn_mult: int = 1) -> Transformer:
    if moe is not None:
        return Transformer(config, ffn_factory=lambda c, layer: MoE(c, layer, moe))
    return Transformer(config, ffn_factory=lambda c, layer: wide_ffn(c, layer, ffn_mult))


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(total, active per token): active leaves out the E - k experts a token does not visit."""
    total = sum(p.numel() for p in model.parameters())
    idle = sum((m.moe.n_experts - m.moe.top_k) * sum(p.numel() for p in m.experts[0].parameters())
               for m in moe_layers(model))
    return total, total - idle


# -----------------------------------------------------------------------------
# routing metrics (docs/moe.md defines each)

DOMAINS = ("names", "arith", "code")
CLASSES = ("start", "letter", "digit", "operator", "punct")


def char_class(ch: str) -> str:
    if ch == "":
        return "start"
    if ch.isalpha():
        return "letter"
    if ch.isdigit():
        return "digit"
    return "operator" if ch in "+-*=%<>" else "punct"


def entropy_bits(counts) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / max(counts.sum(), 1e-12)
    return float(-(p * np.log2(p)).sum()) + 0.0


def cond_entropy(target: np.ndarray, *given: np.ndarray) -> float:
    """H(target | given...) in bits, from paired integer samples."""
    if not given:
        return entropy_bits(np.bincount(target))
    key = np.zeros(len(target), dtype=np.int64)
    for g in given:
        key = key * (int(g.max()) + 1) + g
    return sum((key == k).mean() * entropy_bits(np.bincount(target[key == k])) for k in np.unique(key))


def routing_metrics(chosen, probs, kept, domain, cls, char, n_experts: int, prev_top1=None) -> dict:
    """Metrics of one layer's routing of the probe tokens. chosen/kept (N, k), probs (N, E) tensors;
    domain/cls/char (N,) int arrays; prev_top1 = the top-1 experts at the previous evaluation."""
    chosen, probs, kept = chosen.cpu(), probs.cpu().double(), kept.cpu()
    top1 = chosen[:, 0].numpy()
    load = np.bincount(chosen.reshape(-1).numpy(), minlength=n_experts) / chosen.numel()  # u_i
    de = np.zeros((len(DOMAINS), n_experts), dtype=np.int64)
    ce = np.zeros((len(CLASSES), n_experts), dtype=np.int64)
    np.add.at(de, (domain, top1), 1)
    np.add.at(ce, (cls, top1), 1)
    h_e = cond_entropy(top1)
    return {
        "domain_expert": de.tolist(), "class_expert": ce.tolist(), "utilisation": load.round(5).tolist(),
        "load_balance_ratio": float(load.max() * n_experts),  # max_i u_i / mean_i u_i
        "routing_entropy": float((-(probs * probs.clamp_min(1e-12).log2()).sum(-1)).mean()),  # mean_x H(p(x))
        "utilisation_entropy": entropy_bits(load),  # H(u), log2(E) when perfectly balanced
        "dropped_frac": float(1 - kept.double().mean()),
        "instability": None if prev_top1 is None else float((top1 != prev_top1).mean()),
        # how much each label tells about the top-1 expert, in bits (mutual information)
        "mi_domain": h_e - cond_entropy(top1, domain), "mi_char": h_e - cond_entropy(top1, char),
        "mi_domain_given_char": cond_entropy(top1, char) - cond_entropy(top1, char, domain),
        "mi_char_given_domain": cond_entropy(top1, domain) - cond_entropy(top1, char, domain),
        "top1": top1.tolist(),
    }


@torch.no_grad()
def route_texts(model, vocab: Vocab, texts: list[str], block_size: int) -> list[dict]:
    """Run texts through the model; per layer, the routing of every real position (start token + chars)."""
    data = encode_words(texts, vocab, block_size)
    was_training = model.training
    model.eval()
    model(data.x)
    model.train(was_training)
    real = (data.y >= 0).reshape(-1)
    return [{k: v[real] for k, v in m.stats.items()} for m in moe_layers(model)]


# -----------------------------------------------------------------------------
# the experiment

RUNS = {  # name -> MoEConfig, or None with a width multiplier for the dense baselines
    "dense": (None, 1),  # same active parameters as top-1
    "dense_x4": (None, 4),  # same total parameters as 4 experts
    "top1_e4": (MoEConfig(n_experts=4, top_k=1), 1),
    "top1_e8": (MoEConfig(n_experts=8, top_k=1), 1),
    "top2_e4": (MoEConfig(n_experts=4, top_k=2), 1),
    "top2_e8": (MoEConfig(n_experts=8, top_k=2), 1),
    "top1_e8_cap1": (MoEConfig(n_experts=8, top_k=1, capacity_factor=1.0), 1),
    "top1_e8_nobal": (MoEConfig(n_experts=8, top_k=1, balance_alpha=0.0, z_alpha=0.0), 1),
    "top1_e8_lossfree": (MoEConfig(n_experts=8, top_k=1, balance_alpha=0.0, bias_rate=1e-3), 1),
}
BUDGETS = {
    "tiny": dict(n_layer=2, n_embd=32, n_head=2, steps=16, eval_interval=8, batch=16, n_train=1200, n_val=32,
                 warmup=5),
    "quick": dict(n_layer=2, n_embd=64, n_head=4, steps=800, eval_interval=100, batch=32, n_train=24000,
                  n_val=300, warmup=100),
    "full": dict(n_layer=3, n_embd=64, n_head=4, steps=3000, eval_interval=200, batch=32, n_train=24000,
                 n_val=500, warmup=200),
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
    lines = lambda name: files[f"mixture/{name}.txt"].splitlines()  # noqa: E731
    train_lines = lines("train")[:n_train]
    val = {d: lines(f"val_{d}")[:n_val] for d in DOMAINS}
    probe = {d: lines(f"probe_{d}") for d in DOMAINS}
    everything = train_lines + [t for d in DOMAINS for t in val[d] + probe[d]]
    vocab, block_size = Vocab("".join(everything)), max(len(t) for t in everything) + 1
    return Mixture(vocab, block_size, encode_words(train_lines, vocab, block_size),
                   encode_words([t for d in DOMAINS for t in val[d]], vocab, block_size), val, probe)


class Analyst:
    """on_eval for one run: per-domain val loss, the probe set's routing per layer, coloured samples."""

    def __init__(self, vocab, block_size, val, probe, path: Path, seed: int, resume: bool = False):
        self.vocab, self.block_size, self.path, self.seed = vocab, block_size, path, seed
        self.val = {d: encode_words(v, vocab, block_size) for d, v in val.items()}
        self.texts = [t for d in DOMAINS for t in probe[d]]
        dom = [i for i, d in enumerate(DOMAINS) for _ in probe[d]]
        chars = [("",) + tuple(t) for t in self.texts]  # position 0 routes the start token
        self.domain = np.array([dom[i] for i, c in enumerate(chars) for _ in c])
        self.char = np.array([vocab.stoi[ch] if ch else 0 for c in chars for ch in c])
        self.cls = np.array([CLASSES.index(char_class(ch)) for c in chars for ch in c])
        self.shown = [t for d in DOMAINS for t in probe[d][:SHOW_PER_DOMAIN]]
        self.records, self.prev, self.samples = [], None, []
        if resume and path.exists():  # keep the evaluations before the checkpoint (later ones are redone)
            self.records = json.loads(path.read_text())["evals"]

    def __call__(self, model, step: int) -> dict:
        extra = {f"val_loss_{d}": evaluate(model, data)[0] for d, data in self.val.items()}
        layers = moe_layers(model)
        g = torch.Generator().manual_seed(self.seed)
        self.samples = []
        for p in dict.fromkeys(SAMPLE_PROMPTS):  # one batch per distinct prompt
            ids = torch.tensor([[0] + self.vocab.encode(p)] * SAMPLE_PROMPTS.count(p))
            outs = generate(model, ids, self.block_size - 1 - len(p), generator=g, block_size=self.block_size)
            self.samples += [(p, p + self.vocab.decode(o)) for o in outs]
        if not layers:
            return extra
        routed = route_texts(model, self.vocab, self.texts, self.block_size)
        metrics = [routing_metrics(r["chosen"], r["probs"], r["kept"], self.domain, self.cls, self.char,
                                   m.moe.n_experts, None if self.prev is None else self.prev[i])
                   for i, (r, m) in enumerate(zip(routed, layers))]
        self.prev = [m.pop("top1") for m in metrics]
        strings = []
        texts = self.shown + [s for _, s in self.samples]
        for i, r in enumerate(route_texts(model, self.vocab, texts, self.block_size)):
            top1, start = r["chosen"][:, 0].tolist(), 0
            for j, t in enumerate(texts):
                if i == 0:
                    strings.append({"text": t, "kind": "sample" if j >= len(self.shown) else "probe",
                                    "experts": []})
                strings[j]["experts"].append(top1[start + 1:start + 1 + len(t)])  # skip the start token
                start += len(t) + 1
        record = {"step": step, "layers": metrics, "strings": strings,
                  "balance_bias": [m.balance_bias.tolist() for m in layers]}
        self.records = [r for r in self.records if r["step"] < step] + [record]
        self.path.write_text(json.dumps({"evals": self.records}) + "\n")
        mean = lambda key: float(np.mean([m[key] for m in metrics]))  # noqa: E731
        extra.update({k: mean(k) for k in ("load_balance_ratio", "routing_entropy", "dropped_frac")})
        if metrics[0]["instability"] is not None:
            extra["instability"] = mean("instability")
        return extra

    def sample_fn(self, model):
        return self.samples


def run_one(name: str, out: Path, budget: str, seed: int, data: Mixture, resume: bool, threads: int) -> None:
    b = BUDGETS[budget]
    config = ModelConfig(vocab_size=len(data.vocab), block_size=data.block_size, n_layer=b["n_layer"],
                         n_head=b["n_head"], n_embd=b["n_embd"])
    moe, mult = RUNS[name]
    torch.manual_seed(seed)  # the same initial weights for every run's shared parts
    model = build_model(config, moe, mult)
    total, active = param_counts(model)
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    analyst = Analyst(data.vocab, data.block_size, data.val_lines, data.probe_lines, run_dir / "analysis.json",
                      seed, resume)
    cfg = TrainConfig(max_steps=b["steps"], batch_size=b["batch"], eval_interval=b["eval_interval"],
                      seed=seed, warmup_steps=b["warmup"], eval_train_items=500, device="cpu",
                      threads=threads)
    run_config = {"run": name, "budget": budget, "model": asdict(config), "moe": asdict(moe) if moe else None,
                  "ffn_mult": mult, "vocab": data.vocab.to_dict(), "params_total": total, "params_active": active}
    train(model, data.train, data.val, cfg, run_dir, run_config=run_config, resume=resume, on_eval=analyst,
          sample_fn=analyst.sample_fn)


def main(argv: list[str]) -> int:
    p = lab_parser("moe", "Part 4: sparse mixture-of-experts FFNs on the domain mixture — routing, collapse "
                   "and its cures, measured.", BUDGETS, seed=3407)
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of: {', '.join(RUNS)}")
    p.add_argument("--resume", action="store_true", help="continue each run from its checkpoint")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = PyTorch's default); these "
                   "models are small, and one thread is never much slower and far faster on a busy machine")
    a = p.parse_args(argv)
    names = [n for n in a.runs.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise UserError(f"--runs: unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    out = Path(a.out)
    b = BUDGETS[a.budget]
    data = load_mixture(b["n_train"], b["n_val"])
    for name in names:
        run_one(name, out, a.budget, a.seed, data, a.resume, a.threads)
    report(out)
    print(f"wrote {out / 'report.md'}, {out / 'figures'}/ and {out / 'moe.html'}")
    return 0


# -----------------------------------------------------------------------------
# report: figures, report.md and the explorable, from the run directories alone

SUMMARY_KEYS = ("load_balance_ratio", "utilisation_entropy", "routing_entropy", "dropped_frac", "mi_domain",
                "mi_char", "mi_domain_given_char", "mi_char_given_domain")


def load_runs(out: Path) -> dict[str, dict]:
    """{run name: {"config", "metrics", "analysis"}} for every finished-or-running run under `out`."""
    order = lambda d: (list(RUNS).index(d.name) if d.name in RUNS else len(RUNS), d.name)  # noqa: E731
    runs = {}
    for d in sorted((d for d in out.iterdir() if d.is_dir()), key=order) if out.is_dir() else []:
        if not ((d / "metrics.jsonl").exists() and (d / "config.json").exists()):
            continue
        text = (d / "metrics.jsonl").read_text()
        metrics = [json.loads(line) for line in text.splitlines() if line.strip()]
        analysis = d / "analysis.json"
        if metrics:
            runs[d.name] = {"config": json.loads((d / "config.json").read_text()), "metrics": metrics,
                            "analysis": json.loads(analysis.read_text()) if analysis.exists() else None}
    if not runs:
        raise UserError(f"{out} holds no MoE run directories; run `nnlabs lab moe --out {out}` first")
    return runs


def summarise(run: dict) -> dict:
    """The numbers the report quotes for one run: its last evaluation; routing metrics mean over layers."""
    val = [r for r in run["metrics"] if r["split"] == "val"]
    last, cfg = val[-1], run["config"]
    moe = cfg["moe"]
    s = {"label": f"top-{moe['top_k']} of {moe['n_experts']}" if moe else f"dense, {cfg['ffn_mult']}x wide",
         "params_total": cfg["params_total"], "params_active": cfg["params_active"], "macs": last["macs"],
         "ms_per_step": 1000 * last["wall_s"] / (last["step"] + 1), "val": last["loss"], "step": last["step"],
         **{d: last.get(f"val_loss_{d}") for d in DOMAINS}}
    if run["analysis"] and run["analysis"]["evals"]:
        evals = run["analysis"]["evals"]
        mean = lambda key, e=evals[-1]: float(np.mean([m[key] for m in e["layers"]]))  # noqa: E731
        s.update({k: mean(k) for k in SUMMARY_KEYS})
        later = [m["instability"] for e in evals[1:] for m in e["layers"]]
        s["instability"] = float(np.mean(later)) if later else float("nan")
        s["lbr_first"] = mean("load_balance_ratio", evals[0])
    return s


def _colour(name: str):
    import matplotlib.pyplot as plt

    return plt.get_cmap("tab10")(list(RUNS).index(name) % 10 if name in RUNS else 9)


def _fig_quality(runs, S, figs, source):
    from nnlabs.report.figures import new_figure, save

    fig, ax = new_figure(2, 1, width=5.2)
    for name, run in runs.items():
        for i, split in enumerate(("train", "val")):
            recs = [r for r in run["metrics"] if r["split"] == split]
            ax[0][i].plot([r["step"] for r in recs], [r["loss"] for r in recs], label=name, lw=1.2,
                          color=_colour(name))
    for i, split in enumerate(("train", "val")):
        ax[0][i].set(title=f"{split} loss", xlabel="step", ylabel="loss (nats/char)")
    ax[0][1].legend(ncol=2)
    save(fig, figs / "loss_curves", source)

    fig, ax = new_figure(1, 1, width=8)
    width = 0.8 / len(runs)
    for j, name in enumerate(runs):
        ax[0][0].bar(np.arange(3) + j * width, [S[name][d] for d in DOMAINS], width, label=name,
                     color=_colour(name))
    lows = [S[n][d] for n in runs for d in DOMAINS]
    ax[0][0].set_ylim(min(lows) - 0.1 * (max(lows) - min(lows) + 0.1), max(lows) + 0.05)
    ax[0][0].set_xticks(np.arange(3) + 0.4 - width / 2, DOMAINS)
    ax[0][0].set(title="Final validation loss per domain (y axis zoomed)", ylabel="loss (nats/char)")
    ax[0][0].legend(ncol=1, bbox_to_anchor=(1.01, 1), loc="upper left")
    save(fig, figs / "val_loss_by_domain", source)

    fig, ax = new_figure(1, 1, width=6)
    for j, (name, run) in enumerate(runs.items()):
        s = S[name]
        ax[0][0].scatter(s["macs"], s["val"], s=36, marker="o" if run["config"]["moe"] else "s",
                         color=_colour(name))
        ax[0][0].annotate(name, (s["macs"], s["val"]), fontsize=7, xytext=(5, -7 + 6 * (j % 2)),
                          textcoords="offset points")  # alternate offsets: neighbours' labels don't collide
    ax[0][0].set_xscale("log")
    ax[0][0].set(title="Validation loss vs active compute (squares: dense)",
                 ylabel="final val loss (nats/char)",
                 xlabel="forward MACs per token, active only (log scale)")
    save(fig, figs / "loss_vs_compute", source)


def _fig_heatmaps(run, figs, source, name):
    from nnlabs.report.figures import new_figure, save

    ev = run["analysis"]["evals"][-1]
    fig, ax = new_figure(3, len(ev["layers"]), width=4.2, height=2.4, gridspec_kw={"wspace": 0.45})
    titles = ("each expert's tokens, by domain", "each domain's tokens, by expert",
              "each char class, by expert")
    for li, m in enumerate(ev["layers"]):
        de, ce = np.array(m["domain_expert"], float), np.array(m["class_expert"], float)
        mats = (de / np.maximum(de.sum(0, keepdims=True), 1), de / np.maximum(de.sum(1, keepdims=True), 1),
                ce / np.maximum(ce.sum(1, keepdims=True), 1))
        for j, (mat, rows) in enumerate(zip(mats, (DOMAINS, DOMAINS, CLASSES))):
            a = ax[li][j]
            im = a.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            a.set_yticks(range(len(rows)), rows)
            a.set_xticks(range(mat.shape[1]))
            a.set(title=titles[j] if li == 0 else "", xlabel="expert" if li == len(ev["layers"]) - 1 else "")
            a.grid(False)
        ax[li][0].set_ylabel(f"layer {li}", fontsize=10)
    fig.colorbar(im, ax=[a for row in ax for a in row], shrink=0.7, label="fraction of probe tokens")
    fig.suptitle(f"Routing of the probe set (top-1 expert per token): {name}, step {ev['step']}")
    save(fig, figs / "routing_heatmaps", source)


def _fig_balance(runs, figs, source, moe_runs):
    from nnlabs.report.figures import new_figure, save

    shown = [n for n in ("top1_e8", "top1_e8_nobal", "top1_e8_lossfree") if n in moe_runs] or moe_runs[:1]
    fig, ax = new_figure(1 + len(shown), 1, width=3.8)
    for name in moe_runs:
        evals = runs[name]["analysis"]["evals"]
        ax[0][0].plot([e["step"] for e in evals], [np.mean([m["load_balance_ratio"] for m in e["layers"]])
                                                   for e in evals], label=name, lw=1.2, color=_colour(name))
    ax[0][0].set(title="Load-balance ratio", xlabel="step", ylabel="max / mean expert load (1 = even)")
    ax[0][0].legend()
    for j, name in enumerate(shown, start=1):
        evals = runs[name]["analysis"]["evals"]
        util = np.array([e["layers"][0]["utilisation"] for e in evals]).T
        ax[0][j].stackplot([e["step"] for e in evals], util, labels=[f"expert {i}" for i in range(len(util))])
        ax[0][j].set(title=f"{name}\nexpert utilisation, layer 0", xlabel="step", ylim=(0, 1),
                     ylabel="share of routing assignments")
    ax[0][-1].legend(fontsize=6, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Balance over training: Switch loss vs none vs loss-free bias", y=1.04)
    save(fig, figs / "balance_over_training", source)

    fig, ax = new_figure(2, 1, width=4.8)
    for name in moe_runs:
        evals, E = runs[name]["analysis"]["evals"], runs[name]["config"]["moe"]["n_experts"]
        for i, key in enumerate(("routing_entropy", "utilisation_entropy")):
            ax[0][i].plot([e["step"] for e in evals],
                          [np.mean([m[key] for m in e["layers"]]) / math.log2(E) for e in evals],
                          label=name, lw=1.2, color=_colour(name))
    ax[0][0].set(title="Per-token routing entropy H(p(x))", xlabel="step",
                 ylabel="fraction of log2 E (1 = uniform router)")
    ax[0][1].set(title="Entropy of expert utilisation H(u)", xlabel="step",
                 ylabel="fraction of log2 E (1 = perfectly even)")
    ax[0][1].legend()
    save(fig, figs / "routing_entropy", source)


EXPLORABLE_BODY = """<p class=note>How each MoE run's router sends the fixed probe set (names, arithmetic,
Python one-liners) to its experts, at every evaluation. Pick a run, a layer and a training step. Below the
heatmap: probe lines and the model's own samples at that step, each character coloured by the expert its
position was routed to (top-1; hover for the number).</p>
<div class=controls><label>run <select id=run></select></label><label>layer <select id=layer></select></label>
<label>step <input id=step type=range min=0 value=0> <span id=steplabel class=mono></span></label>
<label>rows <select id=group><option value=domain>domains</option><option value=class>character classes</option>
</select></label><label>normalise <select id=norm><option value=row>each row over experts (rows sum to 1)</option>
<option value=col>each expert over rows (columns sum to 1)</option></select></label></div>
<div id=heat></div><div id=legend class=controls></div><div id=strings class=mono></div>"""

EXPLORABLE_JS = r"""
const COLORS = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#b8a31f','#b07aa1','#9c755f'];
const $ = id => document.getElementById(id);
for (const name of Object.keys(DATA.runs)) $('run').append(el('option', {value: name}, name));
function setup() {
  const r = DATA.runs[$('run').value];
  clear($('layer'));
  r.domain_expert[0].forEach((_, i) => $('layer').append(el('option', {value: i}, String(i))));
  $('step').max = r.steps.length - 1; $('step').value = r.steps.length - 1; draw();
}
function cell(f) {
  const style = {background: `rgba(78,121,167,${f})`, color: f > 0.55 ? '#fff' : '#222'};
  return el('td', {style}, f.toFixed(2));
}
function draw() {
  const r = DATA.runs[$('run').value], s = +$('step').value, l = +$('layer').value;
  $('steplabel').textContent = 'step ' + r.steps[s] + ' (load-balance ratio ' + r.lbr[s][l] + ')';
  const byDomain = $('group').value === 'domain', byRow = $('norm').value === 'row';
  const m = (byDomain ? r.domain_expert : r.class_expert)[s][l], labels = byDomain ? DATA.domains : DATA.classes;
  const colSum = m[0].map((_, e) => m.reduce((a, row) => a + row[e], 0));
  const table = el('table', {class: 'heat'});
  const corner = (byDomain ? 'domain' : 'class') + ' \\ expert';
  table.append(el('tr', {}, el('th', {}, corner), ...m[0].map((_, e) => el('th', {}, 'E' + e))));
  m.forEach((row, d) => {
    const rowSum = row.reduce((a, b) => a + b, 0);
    table.append(el('tr', {}, el('th', {}, labels[d]),
      ...row.map((v, e) => cell(byRow ? v / Math.max(rowSum, 1) : v / Math.max(colSum[e], 1)))));
  });
  clear($('heat')).append(table);
  clear($('legend')).append(...m[0].map((_, e) =>
    el('span', {style: {background: COLORS[e % 8], color: '#fff', padding: '1px 6px'}}, 'expert ' + e)));
  const box = clear($('strings'));
  for (const item of r.strings[s]) {
    const line = el('div', {style: {margin: '3px 0'}}, el('span', {class: 'note'}, item.kind + ': '));
    [...item.text].forEach((ch, i) => {
      const e = item.experts[l][i];
      line.append(el('span', {title: 'expert ' + e, style: {background: COLORS[e % 8], color: '#fff',
                                                               padding: '0 1px', whiteSpace: 'pre'}}, ch));
    });
    box.append(line);
  }
}
$('run').onchange = setup; $('layer').onchange = draw; $('step').oninput = draw;
$('norm').onchange = draw; $('group').onchange = draw;
if (DATA.runs.top1_e8) $('run').value = 'top1_e8';  // the main run, when there is one
if ($('run').options.length) setup();
"""


def _explorable(runs, out: Path, moe_runs):
    from nnlabs.report.explorable import write_html

    data = {"domains": DOMAINS, "classes": CLASSES, "runs": {}}
    for name in moe_runs:
        evals = runs[name]["analysis"]["evals"]
        data["runs"][name] = {
            "experts": runs[name]["config"]["moe"]["n_experts"], "steps": [e["step"] for e in evals],
            "domain_expert": [[m["domain_expert"] for m in e["layers"]] for e in evals],
            "class_expert": [[m["class_expert"] for m in e["layers"]] for e in evals],
            "lbr": [[round(m["load_balance_ratio"], 3) for m in e["layers"]] for e in evals],
            "strings": [e["strings"] for e in evals]}
    write_html(out / "moe.html", "Part 4 — where does each token go? A routing explorer", data,
               EXPLORABLE_BODY, EXPLORABLE_JS)


def _table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: v if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else f"{v:.3f}"  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]) + "\n"


def _findings(S: dict, main: str | None, moe_runs: list[str]) -> list[str]:
    """The report's sentences, every number computed from the runs."""
    md = []
    if "dense" in S:
        d = S["dense"]
        for n in ("top1_e4", "top1_e8", "top2_e4", "top2_e8", "dense_x4"):
            if n in S:
                r = {k: S[n][k] / d[k] for k in ("macs", "params_total", "ms_per_step")}
                md.append(f"- {n} vs dense: val loss {S[n]['val'] - d['val']:+.3f} nats/char at "
                          f"{r['macs']:.2f}x the MACs/token, {r['params_total']:.1f}x the parameters and "
                          f"{r['ms_per_step']:.2f}x the time per step.")
    if not moe_runs:
        return md
    md += ["\n## Routing health (probe set, last evaluation, mean over layers)\n",
           _table(["run", "load-balance ratio, first eval → last", "H(utilisation), bits",
                   "routing entropy, bits", "dropped", "instability, mean over evals"],
                  [[n, f"{S[n]['lbr_first']:.2f} → {S[n]['load_balance_ratio']:.2f}",
                    S[n]["utilisation_entropy"], S[n]["routing_entropy"], S[n]["dropped_frac"],
                    S[n]["instability"]] for n in moe_runs])]
    if "top1_e8_nobal" in S and "top1_e8" in S:
        nb, sw = S["top1_e8_nobal"], S["top1_e8"]
        collapsed = nb["load_balance_ratio"] > 1.5 * sw["load_balance_ratio"]
        verdict = ("collapsed towards a few experts" if collapsed
                   else "**did not clearly collapse** at this scale")
        md.append(f"- Without any balancing (top1_e8_nobal), routing {verdict}: load-balance ratio "
                  f"{nb['load_balance_ratio']:.2f} vs {sw['load_balance_ratio']:.2f} with the Switch loss "
                  f"(8 = all tokens on one expert, 1 = even); utilisation entropy "
                  f"{nb['utilisation_entropy']:.2f} vs {sw['utilisation_entropy']:.2f} bits (max 3); "
                  f"val loss {nb['val']:.3f} vs {sw['val']:.3f}.")
    if "top1_e8_lossfree" in S and "top1_e8" in S:
        lf, sw = S["top1_e8_lossfree"], S["top1_e8"]
        md.append(f"- Loss-free bias balancing (DeepSeek-V3, no auxiliary loss): load-balance ratio "
                  f"{lf['load_balance_ratio']:.2f}, val loss {lf['val']:.3f} (Switch loss: "
                  f"{sw['load_balance_ratio']:.2f}, {sw['val']:.3f}).")
    if "top1_e8_cap1" in S:
        c = S["top1_e8_cap1"]
        md.append(f"- Capacity factor 1.0 (top1_e8_cap1) dropped {100 * c['dropped_frac']:.1f}% of the probe "
                  f"assignments at the last evaluation (they skip the FFN and ride the residual); val loss "
                  f"{c['val']:.3f}, MACs/token {c['macs']:,.0f}.")
    s = S[main]
    tokens = s["mi_char_given_domain"] > s["mi_domain_given_char"]
    md += ["\n## Does routing follow domains or tokens?\n",
           f"Mutual information between {main}'s top-1 expert and what each probe token is (bits, mean over "
           "layers):\n",
           _table(["I(expert; domain)", "I(expert; character)", "I(expert; domain given character)",
                   "I(expert; character given domain)"],
                  [[s["mi_domain"], s["mi_char"], s["mi_domain_given_char"], s["mi_char_given_domain"]]]),
           f"\nThe character alone carries {s['mi_char']:.2f} bits about the expert; knowing the domain as "
           f"well adds {s['mi_domain_given_char']:.2f} bits, while knowing the character on top of the "
           f"domain adds {s['mi_char_given_domain']:.2f}. At this scale routing follows **"
           + ("tokens** (which character is being processed) more than domains" if tokens
              else "domains** more than the character being processed")
           + ". Heatmaps per layer: figures/routing_heatmaps.png; per character: moe.html.\n"]
    return md


GAP = """
## The honest gap

- Toy scale: two to four layers, a few hundred thousand parameters, minutes of CPU, one seed per run (no
  error bars). MoE's quality gains in the literature come at scales where expert capacity, not data, is the
  bottleneck; here the differences between runs are small and partly noise.
- Padding positions after each line's end are routed too and count in the balancing losses during training
  (the spine's padded batches; the FFN does not see the mask); the probe analysis uses real positions only.
- Dispatch is a Python loop over experts on one device: no expert parallelism, no all-to-all, no grouped
  GEMM — the communication costs that dominate real MoE systems are absent; step times are from a shared
  machine.
"""


def report(out: Path) -> None:
    """figures/, report.md and moe.html under `out`, from the run directories alone."""
    out = Path(out)
    runs = load_runs(out)
    figs = out / "figures"
    moe_runs = [n for n, r in runs.items() if r["config"]["moe"] and r["analysis"] and r["analysis"]["evals"]]
    main = "top1_e8" if "top1_e8" in moe_runs else (moe_runs[0] if moe_runs else None)
    S = {n: summarise(r) for n, r in runs.items()}
    _fig_quality(runs, S, figs, str(out))
    if moe_runs:
        _fig_heatmaps(runs[main], figs, str(out / main), main)
        _fig_balance(runs, figs, str(out), moe_runs)
        _explorable(runs, out, moe_runs)
    first = next(iter(runs.values()))["config"]
    mc, tc = first["model"], first["train"]
    md = [f"# Part 4 — Mixture of experts on the domain mixture ({first['budget']} budget)\n",
          f"Every run is a {mc['n_layer']}-layer transformer of width {mc['n_embd']} ({mc['n_head']} heads, "
          f"block size {mc['block_size']}) trained for {tc['max_steps']} steps of batch {tc['batch_size']} "
          f"with seed {tc['seed']} on the same names / arithmetic / Python mixture; only the feed-forward "
          "differs. MACs are forward multiply-accumulates per token position, counted from the rows each "
          "Linear actually ran; time is training time per step (evaluation excluded) on the machine that "
          "ran it.\n",
          "## Quality and compute (last evaluation)\n",
          _table(["run", "FFN", "params", "active params", "MACs/token", "ms/step", "val loss", *DOMAINS],
                 [[n, s["label"], s["params_total"], s["params_active"], int(s["macs"]), s["ms_per_step"],
                   s["val"], *(s[d] for d in DOMAINS)] for n, s in S.items()]),
          *_findings(S, main, moe_runs), GAP,
          "Figures: " + ", ".join(f"figures/{p.name}" for p in sorted(figs.glob("*.png")))
          + ("; explorable: moe.html" if moe_runs else "") + ".\n"]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
