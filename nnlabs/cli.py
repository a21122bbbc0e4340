"""One entry point: nnlabs train | sample | pack | lab | sweep | diff | report.

`nnlabs train` keeps makemore's flags where they overlap (-i, -o, --type, --n-layer, --resume,
--sample-only, ...); every other flag maps 1:1 onto a field of ModelConfig or TrainConfig.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import inspect
import json
import sys
from pathlib import Path

import torch

from nnlabs.labs import LABS, Patch
from nnlabs.spine.errors import UserError

# makemore's short flags for the fields they share
SHORT = {"batch_size": "-b", "learning_rate": "-l", "weight_decay": "-w"}


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One flag per dataclass field: --field-name, typed and defaulted from the field."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flags = [f"--{f.name.replace('_', '-')}"] + ([SHORT[f.name]] if f.name in SHORT else [])
        if f.type in (bool, "bool"):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), f.type)
            parser.add_argument(*flags, type=kind, default=f.default, metavar=f.name.upper(),
                                help=f"default: {f.default}")


def fields_from(args: argparse.Namespace, cls):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


# -----------------------------------------------------------------------------
# nnlabs train / sample


def train_parser() -> argparse.ArgumentParser:
    from nnlabs.spine.models import MODELS, ModelConfig
    from nnlabs.spine.train import TrainConfig

    p = argparse.ArgumentParser(prog="nnlabs train", description="Train a character-level language model "
                                "on a file with one item per line (makemore-compatible flags).")
    p.add_argument("-i", "--input-file", default="names.txt",
                   help="one item per line; 'names.txt' = makemore's names (downloaded and checksummed once)")
    p.add_argument("-o", "--work-dir", default="out", help="run directory (config, metrics, checkpoint, samples)")
    p.add_argument("--type", default="transformer", choices=sorted(MODELS))
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--sample-only", action="store_true", help="only sample from the run directory's model")
    p.add_argument("-n", "--num-workers", type=int, default=0, help="accepted for makemore compatibility; "
                   "unused (batches are drawn from pre-encoded tensors)")
    p.add_argument("--top-k", type=int, default=-1, help="sample from the top k tokens only (-1: all)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--num-samples", type=int, default=20)
    add_dataclass_flags(p, ModelConfig, skip=("vocab_size", "block_size", "packed"))
    p.add_argument("--packed", action=argparse.BooleanOptionalAction, default=None,
                   help="lay each batch's items end to end in rows: the same loss and gradients from fewer "
                   "positions (docs/design.md). Default: on for the transformer, off for the others")
    p.add_argument("--block-size", type=int, default=None, help="default: longest item + 1")
    add_dataclass_flags(p, TrainConfig)
    return p


def load_run(work_dir: Path):
    """Rebuild the model of a run directory from its config.json and checkpoint.pt."""
    from nnlabs.spine.data import Vocab
    from nnlabs.spine.models import ModelConfig, build_model
    from nnlabs.spine.train import config_from_dict

    cfg_path, ckpt_path = work_dir / "config.json", work_dir / "checkpoint.pt"
    if not cfg_path.exists() or not ckpt_path.exists():
        raise UserError(f"{work_dir} has no config.json/checkpoint.pt; "
                        f"train into it first with: nnlabs train -o {work_dir}")
    run = json.loads(cfg_path.read_text())
    model = build_model(run["type"], config_from_dict(ModelConfig, run["model"]))
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=False)["model"])
    return model, Vocab.from_dict(run["vocab"]), run


def cmd_train(argv: list[str]) -> int:
    from nnlabs.spine.data import create_datasets
    from nnlabs.spine.models import PACKABLE, ModelConfig, build_model
    from nnlabs.spine.sample import NAMES_PROMPTS, sample_prompts
    from nnlabs.spine.train import TrainConfig, train

    args = train_parser().parse_args(argv)
    work_dir = Path(args.work_dir)
    if args.sample_only:
        return print_samples(work_dir, args.num_samples, args.top_k, args.temperature)
    saved = json.loads((work_dir / "config.json").read_text()) if args.resume and (
        work_dir / "config.json").exists() else None
    if saved and (saved.get("type") != args.type or saved.get("input_file") != args.input_file):
        raise UserError(f"--resume: {work_dir} holds a {saved.get('type')} run on {saved.get('input_file')}; "
                        "pass the same --type and -i, or a new -o")
    data = create_datasets(args.input_file, args.block_size)
    if args.packed is None:  # a resumed run keeps its layout (runs from before packing have none: unpacked)
        args.packed = saved["model"].get("packed", False) if saved else args.type in PACKABLE
    mcfg = fields_from(argparse.Namespace(**{**vars(args), "vocab_size": len(data.vocab),
                                             "block_size": data.block_size}), ModelConfig)
    tcfg = fields_from(args, TrainConfig)
    if tcfg.max_steps < 1 or tcfg.eval_interval < 1 or tcfg.batch_size < 1:
        raise UserError("--max-steps, --eval-interval and --batch-size must be positive integers")
    torch.manual_seed(tcfg.seed)  # model initialisation
    model = build_model(args.type, mcfg)
    print(f"{args.type}: {sum(p.numel() for p in model.parameters()):,} parameters, vocab {len(data.vocab)}, "
          f"block size {data.block_size}, {len(data.train_words)} train / {len(data.test_words)} test items")
    prompts = [p for p in NAMES_PROMPTS if all(c in data.vocab.stoi for c in p)]
    top_k = args.top_k if args.top_k > 0 else None
    records = train(model, data.train, data.test, tcfg, work_dir, resume=args.resume,
                    run_config={"type": args.type, "input_file": args.input_file, "model": dataclasses.asdict(mcfg),
                                "vocab": data.vocab.to_dict()},
                    sample_fn=lambda m: sample_prompts(m, data.vocab, prompts, data.block_size,
                                                       device=next(m.parameters()).device, top_k=top_k,
                                                       block_size=data.block_size))
    val = [r for r in records if r["split"] == "val"]
    if val:
        best = min(val, key=lambda r: r["loss"])
        print(f"final val loss {val[-1]['loss']:.4f} (best {best['loss']:.4f} at step {best['step']}); "
              f"{val[-1]['macs']:,.0f} MACs/token; {val[-1]['wall_s']:.1f}s training; run in {work_dir}")
    return 0


def print_samples(work_dir: Path, num: int, top_k: int, temperature: float) -> int:
    from nnlabs.spine.sample import generate

    model, vocab, run = load_run(work_dir)
    block = run["model"]["block_size"]
    g = torch.Generator().manual_seed(run["train"]["seed"])
    out = generate(model, torch.zeros(num, 1, dtype=torch.long), block, temperature, top_k if top_k > 0 else None,
                   generator=g, block_size=block)
    for ids in out:
        print(vocab.decode(ids))
    return 0


def cmd_sample(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="nnlabs sample", description="Sample from a trained run directory.")
    p.add_argument("-o", "--work-dir", default="out")
    p.add_argument("-n", "--num-samples", type=int, default=20)
    p.add_argument("--top-k", type=int, default=-1)
    p.add_argument("--temperature", type=float, default=1.0)
    a = p.parse_args(argv)
    return print_samples(Path(a.work_dir), a.num_samples, a.top_k, a.temperature)


# -----------------------------------------------------------------------------
# nnlabs lab / diff / pack / report


def lab_module(name: str):
    if name not in LABS:
        raise UserError(f"unknown lab {name!r}; choose one of: {', '.join(LABS)}")
    return importlib.import_module(f"nnlabs.labs.{name}")


def cmd_lab(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        raise UserError(f"usage: nnlabs lab <name> [flags]; labs: {', '.join(LABS)}")
    if any(a == "--seeds" or a.startswith("--seeds=") for a in argv):  # several seeds: a sweep
        return cmd_sweep(argv)
    return lab_module(argv[0]).main(argv[1:])


def resolve(ref: str):
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def source_lines(ref: str) -> list[str]:
    return inspect.getsource(resolve(ref)).splitlines(keepends=True)


def patch_text(patch: Patch) -> str:
    """A modified spine piece as a unified diff against the spine; a new piece printed whole."""
    before = source_lines(patch.spine) if patch.spine else []
    diff = difflib.unified_diff(before, source_lines(patch.lab), fromfile=patch.spine or "/dev/null",
                                tofile=patch.lab)
    return (f"# {patch.why}\n" if patch.why else "") + "".join(diff)


def lab_diff(name: str) -> str:
    """The lab's whole patch against the spine, computed from the live source of both sides."""
    return "\n".join(patch_text(patch) for patch in lab_module(name).PATCHES)


def cmd_diff(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="nnlabs diff", description="Print a lab's patch against the spine.")
    p.add_argument("lab", choices=LABS)
    print(lab_diff(p.parse_args(argv).lab) or "(this lab does not patch the spine)")
    return 0


def cmd_pack(argv: list[str]) -> int:
    from nnlabs import pack

    return pack.main(argv)


def cmd_report(argv: list[str]) -> int:
    from nnlabs.report.site import build_site

    p = argparse.ArgumentParser(prog="nnlabs report", description="Regenerate every lab's figures, report and "
                                "explorable from its run directories, then the site (runs/site/) showing them.")
    p.add_argument("--runs", default="runs", help="the folder holding one sub-folder per lab")
    p.add_argument("--site-only", action="store_true", help="only rebuild runs/site/ from what the labs wrote")
    a = p.parse_args(argv)
    if not Path(a.runs).is_dir():
        raise UserError(f"{a.runs} does not exist; run make labs, or nnlabs lab <name> --out {a.runs}/<name>, first")
    for lab in LABS:
        if (Path(a.runs) / lab).is_dir() and not a.site_only:
            lab_module(lab).report(Path(a.runs) / lab)
    print(f"wrote {build_site(a.runs)}")
    return 0


def cmd_sweep(argv: list[str]) -> int:
    from nnlabs import sweep

    return sweep.main(argv)


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "lab": cmd_lab, "diff": cmd_diff, "pack": cmd_pack,
            "report": cmd_report, "sweep": cmd_sweep}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: nnlabs {train,sample,lab,sweep,diff,pack,report} ...  (nnlabs <command> -h for its flags)",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    try:
        return COMMANDS[argv[0]](argv[1:])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last checkpoint is intact; continue with --resume", file=sys.stderr)
        return 130
