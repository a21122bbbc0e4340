"""The training loop: AdamW with warmup + cosine decay, evaluation on a fixed cadence, metrics.jsonl,
the fixed prompt set sampled at every evaluation, atomic checkpoints and exact resume.

A run directory holds config.json, metrics.jsonl, samples.txt and checkpoint.pt. A killed run
restarted with resume=True continues from its last checkpoint (at most one eval interval lost) on the
same trajectory it would have followed uninterrupted: the model, optimizer and both RNG states are
in the checkpoint, and metric lines written after it are dropped. The run directory is locked while a
run writes to it and is never overwritten unasked (`nnlabs.spine.rundir`); checkpoints hold tensors and
plain data only and load with weights_only=True, so loading one never runs code.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from tqdm import tqdm

from nnlabs.spine import rundir
from nnlabs.spine.data import SequenceData
from nnlabs.spine.errors import UserError
from nnlabs.spine.macs import count_macs


@dataclass
class TrainConfig:
    max_steps: int = 3500
    batch_size: int = 64
    learning_rate: float = 3e-3
    min_lr_frac: float = 0.05  # cosine decays to this fraction of learning_rate
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0  # 0 = off
    eval_interval: int = 500
    eval_train_items: int = 1000  # train loss is measured on a fixed subset of this many items
    seed: int = 3407
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = leave PyTorch's default

    def check(self) -> None:
        """One sentence naming the flag for a value that would crash, hang or silently mean something else."""
        for name in ("max_steps", "batch_size", "eval_interval", "eval_train_items"):
            if getattr(self, name) < 1:
                raise UserError(f"--{flag(name)} must be a positive integer, not {getattr(self, name)}")
        for name in ("warmup_steps", "threads"):
            if getattr(self, name) < 0:
                raise UserError(f"--{flag(name)} must be 0 or more, not {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UserError(f"--learning-rate must be a positive number, not {self.learning_rate}")
        for name in ("weight_decay", "grad_clip"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise UserError(f"--{flag(name)} must be a number >= 0, not {getattr(self, name)}")
        if not 0 <= self.min_lr_frac <= 1:
            raise UserError(f"--min-lr-frac must be between 0 and 1, not {self.min_lr_frac}")
        pick_device(self.device)

    def lr_at(self, step: int) -> float:
        """Linear warmup, then cosine from learning_rate down to min_lr_frac * learning_rate."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps))
        floor = self.min_lr_frac * self.learning_rate
        return floor + 0.5 * (self.learning_rate - floor) * (1 + math.cos(math.pi * progress))


def flag(field: str) -> str:
    """The command-line flag of a config field: flags map 1:1 onto fields."""
    return field.replace("_", "-")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu or cuda (cuda:N for the N-th GPU)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                            f"numbered from 0; use --device cuda or auto")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name} was asked for but MPS is not available here; use --device cpu or auto")
    elif device.type not in ("cpu", "mps"):
        raise UserError(f"--device {name} is not supported; use auto, cpu, cuda or mps")
    return device


def load_checkpoint(path: Path) -> dict:
    """Tensors and plain data only (weights_only=True): a checkpoint from anyone can never run code when
    loaded. Loaded to the CPU (RNG states must live there; load_state_dict moves the rest to the model)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; train into its folder first") from None
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise UserError(f"{path} holds objects other than tensors and plain data (loading it could run "
                            "code), so it was not loaded; use only checkpoints that nnlabs wrote") from None
        raise UserError(f"{path} is damaged or not a checkpoint ({e}); delete it, or pass --force to start "
                        "over") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as e:
        raise UserError(f"{path} is damaged or not a checkpoint ({type(e).__name__}: {str(e)[:80]}); "
                        "delete it, or pass --force to start over") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path} is not an nnlabs checkpoint (no model in it); delete it, or pass --force to "
                        "start over")
    return state


def atomic_save(obj, path: Path) -> None:
    """Write to a temp file, flush to disk, then rename: a crash never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@torch.no_grad()
def evaluate_parts(model, parts: dict[str, SequenceData], batch_size: int = 100) -> tuple[float, float, dict]:
    """One pass over a data set made of parts (a mixture's domains): the token-weighted mean NLL over
    every item of every part, forward MACs per token position, and each part's own mean NLL. Small
    batches: at n_embd 128 the activations of 500-item batches were a run's peak memory (+70 MB)."""
    was_training = model.training
    model.eval()
    total, count, positions, per_part = 0.0, 0, 0, {}
    with count_macs(model) as macs:
        for name, data in parts.items():
            part_total, part_count = 0.0, 0
            for x, y in data.batches(batch_size):
                model(x, y)
                n = int((y >= 0).sum())
                nll = float(model.diagnostics["nll"]) * n
                total, part_total, count, part_count = total + nll, part_total + nll, count + n, part_count + n
                positions += x.numel()
            per_part[name] = part_total / max(part_count, 1)
    model.train(was_training)
    return total / max(count, 1), macs.per_token(positions), per_part


def evaluate(model, data: SequenceData, batch_size: int = 100) -> tuple[float, float]:
    """Token-weighted mean NLL over every item of `data`, and forward MACs per token position."""
    return evaluate_parts(model, {"": data}, batch_size)[:2]


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def train(model, train_data: SequenceData, val_data: SequenceData, cfg: TrainConfig, work_dir: str | Path, *,
          run_config: dict | None = None, resume: bool = False, force: bool = False,
          on_eval: Callable[[object, int], dict] | None = None,
          sample_fn: Callable[[object], list[tuple[str, str]]] | None = None,
          evaluate_val: Callable[[object], tuple[float, float]] | None = None,
          progress: bool | None = None) -> list[dict]:
    """Train `model` and return its eval records. `on_eval(model, step)` may add lab metrics to each
    eval record; `sample_fn(model)` returns (prompt, sample) pairs written to samples.txt.
    `evaluate_val(model) -> (loss, MACs per position)` replaces the validation pass, for a lab that
    measures more in it (per part, with hooks) and would otherwise read the same lines twice; it runs
    just before `on_eval`.
    `resume` continues from work_dir's checkpoint if it has one (else starts); `force` starts over in a
    directory that holds a run. Without either, such a directory is refused, never overwritten."""
    cfg.check()
    with rundir.locked(work_dir) as work_dir:
        if force and not resume:
            rundir.start_over(work_dir)
        elif not resume:
            rundir.refuse_overwrite(work_dir, resume=False, force=False)
        threads_before = torch.get_num_threads()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        try:
            return _train(model, train_data, val_data, cfg, work_dir, run_config, resume, on_eval, sample_fn,
                          evaluate_val, progress)
        finally:
            torch.set_num_threads(threads_before)  # a run's thread count must not leak into the caller


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two groups: weight decay on weight matrices only, not on biases (whatever their shape: a
    mixture's E expert biases are one [E, out] tensor) or norms."""
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    plain = [p.dim() < 2 or name.endswith("bias") for name, p in params]
    return [{"params": [p for (_, p), no in zip(params, plain) if not no], "weight_decay": weight_decay},
            {"params": [p for (_, p), no in zip(params, plain) if no], "weight_decay": 0.0}]


def _train(model, train_data, val_data, cfg, work_dir, run_config, resume, on_eval, sample_fn, evaluate_val,
           progress):
    device = pick_device(cfg.device)
    model.to(device)
    train_data, val_data = train_data.to(device), val_data.to(device)
    train_eval = SequenceData(train_data.x[:cfg.eval_train_items], train_data.y[:cfg.eval_train_items])

    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate, betas=(0.9, 0.99),
                                  fused=True)  # one kernel for all tensors, not ~10 ops per tensor

    ckpt_path, metrics_path = work_dir / "checkpoint.pt", work_dir / "metrics.jsonl"
    torch.manual_seed(cfg.seed)  # dropout and any other global randomness
    gen = torch.Generator().manual_seed(cfg.seed)  # batch order
    start, tokens, wall, records = 0, 0, 0.0, []
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["batch_rng"])
            torch.set_rng_state(state["torch_rng"])
            start, tokens, wall = state["step"] + 1, state["tokens"], state["wall_s"]
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise UserError(f"{ckpt_path} does not fit this run's model ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0][:100]}); resume with the flags it was trained "
                            "with, or pass --force without --resume to start over") from None
        records = [r for r in _read_records(metrics_path) if r["step"] <= state["step"]]
    for name in ("metrics.jsonl", "samples.txt"):
        if not resume or start == 0:
            (work_dir / name).write_text("")
    if resume and start:
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records))
        _truncate_samples(work_dir / "samples.txt", state["step"])
    write_json(work_dir / "config.json", {"train": asdict(cfg), **(run_config or {})})

    show = progress if progress is not None else os.environ.get("CI", "").lower() not in ("1", "true")
    # in a log file (a sweep's log.txt) every redraw is kept: one every 30 s, not ten a second
    bar = tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, disable=not show,
               desc=work_dir.name, dynamic_ncols=True, leave=False, mininterval=0.1 if sys.stderr.isatty() else 30)
    packed = getattr(getattr(model, "config", None), "packed", False)  # the model keeps items apart in a row
    if packed and not train_data.packable():
        raise UserError("packed rows need (N, T) items that each start with token 0; this data set has other "
                        "rows: train with --no-packed")
    model.train()
    t0 = time.perf_counter() - wall
    new_tokens = 0
    for step in bar:
        lr = cfg.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = train_data.batch(cfg.batch_size, gen, pack=packed)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        new_tokens += (y >= 0).sum()  # a tensor: no host sync per step on a GPU

        if step % cfg.eval_interval == 0 or step == cfg.max_steps - 1:
            wall = time.perf_counter() - t0
            tokens, new_tokens = tokens + int(new_tokens), 0
            train_loss, _ = evaluate(model, train_eval)
            val_loss, macs = evaluate_val(model) if evaluate_val else evaluate(model, val_data)
            base = {"step": step, "tokens": tokens, "macs": macs, "wall_s": round(wall, 3), "lr": lr}
            extra = on_eval(model, step) if on_eval else {}
            new = [{**base, "split": "train", "loss": train_loss}, {**base, "split": "val", "loss": val_loss, **extra}]
            with open(metrics_path, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new)
            records += new
            if sample_fn is not None:
                with open(work_dir / "samples.txt", "a") as f:
                    f.writelines(f"{step}\t{p}\t{s}\n" for p, s in sample_fn(model))
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "tokens": tokens, "wall_s": wall, "batch_rng": gen.get_state(),
                         "torch_rng": torch.get_rng_state(), "run_config": run_config}, ckpt_path)
            t0 = time.perf_counter() - wall  # evaluation time is not training time
    bar.close()
    return records


def _read_records(path: Path) -> list[dict]:
    return rundir.read_jsonl(path) if path.exists() else []


def _truncate_samples(path: Path, last_step: int) -> None:
    if path.exists():
        # a line cut short by a crash may lack its step: it is dropped with the lines after the checkpoint
        lines = path.read_text().splitlines(keepends=True)
        steps = [line.split("\t", 1)[0] for line in lines]
        keep = [line for line, s in zip(lines, steps) if s.isdecimal() and line.endswith("\n") and int(s) <= last_step]
        path.write_text("".join(keep))


def config_from_dict(cls, d: dict):
    """Rebuild a dataclass config from its asdict() form, ignoring unknown keys from older versions."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
