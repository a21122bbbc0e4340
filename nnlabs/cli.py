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
import math
import os
import shlex
import sys
from pathlib import Path

import torch

from nnlabs.labs import LABS, Patch, lab_module
from nnlabs.spine import rundir
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

# makemore's MLP inits (ModelConfig.init); any other value would silently mean 'naive'
INITS = ("naive", "scaled", "torch")
# flags that say where a run computes, not what: they may differ from the recorded ones on --resume
PLACE_FLAGS = ("device", "threads")
MISSING = object()


def train_parser() -> argparse.ArgumentParser:
    from nnlabs.spine.models import MODELS, ModelConfig
    from nnlabs.spine.train import TrainConfig

    p = argparse.ArgumentParser(prog="nnlabs train", description="Train a character-level language model "
                                "on a file with one item per line (makemore-compatible flags).")
    p.add_argument("-i", "--input-file", default="names.txt",
                   help="one item per line; 'names.txt' = makemore's names (downloaded and checksummed once)")
    p.add_argument("-o", "--work-dir", default="out", help="run directory (config, metrics, checkpoint, samples)")
    p.add_argument("--type", default="transformer", choices=sorted(MODELS))
    p.add_argument("--resume", action="store_true", help="continue the run in -o from its checkpoint, with the "
                   "flags recorded in its config.json")
    p.add_argument("--force", action="store_true", help="start over in an -o that holds a run (its run files are "
                   "deleted); with --resume, continue with flags that differ from the recorded ones")
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


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The fields the user set on the command line: argparse fills only unset names with defaults, so
    names pre-set to a sentinel and still holding it were not given."""
    names = vars(parser.parse_args([]))
    parsed = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(names, MISSING)))
    return {name for name, value in vars(parsed).items() if value is not MISSING}


def check_sample_flags(top_k: int, temperature: float, num_samples: int) -> None:
    if top_k == 0 or top_k < -1:
        raise UserError(f"--top-k must be -1 (every token) or a positive number of tokens, not {top_k}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise UserError(f"--temperature must be a positive number, not {temperature}")
    if num_samples < 1:
        raise UserError(f"--num-samples must be a positive integer, not {num_samples}")


def check_model_flags(args: argparse.Namespace) -> None:
    for name in ("n_layer", "n_head", "n_embd", "n_embd2"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, not {getattr(args, name)}")
    if args.mlp_layers < 0 or args.num_workers < 0:
        raise UserError("--mlp-layers and --num-workers must be 0 or more")
    if args.type == "transformer" and args.n_embd % args.n_head:
        raise UserError(f"--n-embd {args.n_embd} must be a multiple of --n-head {args.n_head} "
                        "(each head gets n_embd / n_head channels)")
    if not 0 <= args.dropout < 1:
        raise UserError(f"--dropout is a probability below 1, not {args.dropout}")
    if args.init not in INITS:
        raise UserError(f"--init must be one of {', '.join(INITS)}, not {args.init!r}")
    if args.block_size is not None and args.block_size < 1:
        raise UserError(f"--block-size must be a positive integer, not {args.block_size}")


def resume_flags(args: argparse.Namespace, given: set[str], saved: dict, work_dir: Path) -> None:
    """--resume: every flag the user did not give takes the run's recorded value, so the run continues as
    it was trained; a given flag that differs from the recorded value is refused, naming it, unless --force."""
    try:
        recorded = {"type": saved["type"], "input_file": saved["input_file"], **saved["model"], **saved["train"]}
    except (KeyError, TypeError):
        raise UserError(f"{work_dir / 'config.json'} is not the config of an nnlabs train run (a lab's run? "
                        "continue it with nnlabs lab <name> --resume); pass --force without --resume to start "
                        "over") from None
    differ = []
    for name, value in recorded.items():
        if name == "vocab_size" or not hasattr(args, name):
            continue
        if name not in given:
            setattr(args, name, value)
        elif getattr(args, name) != value and name not in PLACE_FLAGS:
            differ.append(f"--{name.replace('_', '-')} {getattr(args, name)} (the run has {value})")
    if differ and not args.force:
        raise UserError(f"--resume: {'; '.join(differ)} differs from what {work_dir} was trained with: drop the "
                        "flag to continue as recorded, or add --force to continue with the new value")


def estimate_bytes(kind: str, mcfg, batch_size: int, n_items: int, longest: int) -> dict[str, int]:
    """A training run's peak memory by what drives it (the flag to lower): the activations of one training
    step kept for the backward pass; the encoded items and one evaluation batch (evaluation runs whole
    rows of block_size); the weights with their gradients and AdamW's two moments. An estimate within a
    small factor: enough to refuse a run that would swap, be killed or never finish."""
    from nnlabs.spine.models import build_model

    with torch.device("meta"):  # shapes only: no memory, no compute
        params = sum(p.numel() for p in build_model(kind, mcfg).parameters())
    T, C, V = mcfg.block_size, mcfg.n_embd, mcfg.vocab_size

    def floats_per_position(span: int) -> int:  # activations at one position when attention spans `span`
        return {"transformer": mcfg.n_layer * (16 * C + 2 * mcfg.n_head * span) + 2 * V + (span if mcfg.packed else 0),
                "mlp": T * C + 3 * mcfg.n_embd2 * mcfg.mlp_layers + 2 * V}.get(kind, 2 * V)

    # a training batch is cut after its longest item; packed rows let attention span up to a whole row
    span = min(T, batch_size * (longest + 1)) if mcfg.packed else longest + 1
    return {"--batch-size": 2 * 4 * batch_size * (longest + 1) * floats_per_position(span),  # float32 + grads
            "--block-size": 2 * 8 * n_items * T + 4 * min(100, n_items) * T * floats_per_position(T),
            "--n-embd/--n-layer": 4 * 4 * params}


def memory_limit(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(0.9 * torch.cuda.get_device_properties(device).total_memory), "90 % of the GPU's memory"
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2, "half of this machine's memory"


def load_run(work_dir: Path):
    """Rebuild the model of a run directory from its config.json and checkpoint.pt."""
    from nnlabs.spine.data import Vocab
    from nnlabs.spine.models import ModelConfig, build_model
    from nnlabs.spine.train import config_from_dict, load_checkpoint

    cfg_path, ckpt_path = work_dir / "config.json", work_dir / "checkpoint.pt"
    if not cfg_path.exists() or not ckpt_path.exists():
        raise UserError(f"{work_dir} has no config.json/checkpoint.pt; "
                        f"train into it first with: nnlabs train -o {work_dir}")
    run = rundir.read_json(cfg_path)
    try:
        model = build_model(run["type"], config_from_dict(ModelConfig, run["model"]))
        vocab, seed = Vocab.from_dict(run["vocab"]), run["train"]["seed"]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{cfg_path} is not the config of an nnlabs train run; sample a lab's runs through its "
                        "report, or train into a new folder with nnlabs train -o") from None
    try:
        model.load_state_dict(load_checkpoint(ckpt_path)["model"])
    except RuntimeError:
        raise UserError(f"{ckpt_path} does not match the model in {cfg_path}; the run folder was altered: "
                        "train it again with --force") from None
    return model, vocab, {**run, "seed": seed}


def cmd_train(argv: list[str]) -> int:
    from nnlabs.spine.data import check_block_size, create_datasets, read_words
    from nnlabs.spine.models import PACKABLE, ModelConfig, build_model
    from nnlabs.spine.sample import NAMES_PROMPTS, sample_prompts
    from nnlabs.spine.train import TrainConfig, pick_device, train

    parser = train_parser()
    args, given = parser.parse_args(argv), given_flags(parser, argv)
    work_dir = Path(args.work_dir)
    check_sample_flags(args.top_k, args.temperature, args.num_samples)
    if args.sample_only:
        return print_samples(work_dir, args.num_samples, args.top_k, args.temperature)
    with rundir.locked(work_dir):
        rundir.refuse_overwrite(work_dir, resume=args.resume, force=args.force)
        saved = None
        if args.resume:
            if not (work_dir / "checkpoint.pt").exists():
                raise UserError(f"--resume: {work_dir} has no checkpoint.pt to continue from; drop --resume "
                                "(with --force) to start the run over")
            saved = rundir.read_json(work_dir / "config.json")
            resume_flags(args, given, saved, work_dir)
        check_model_flags(args)
        tcfg = fields_from(args, TrainConfig)
        tcfg.check()
        quiet = os.environ.get("CI", "").lower() in ("1", "true")
        words = read_words(args.input_file)
        block_size = check_block_size(words, args.block_size, args.input_file)
        if args.packed is None:  # a resumed run keeps its layout (runs from before packing have none: unpacked)
            args.packed = False if saved else args.type in PACKABLE
        mcfg = fields_from(argparse.Namespace(**{**vars(args), "vocab_size": len(set("".join(words))) + 1,
                                                 "block_size": block_size}), ModelConfig)
        need = estimate_bytes(args.type, mcfg, tcfg.batch_size, len(words), max(len(w) for w in words))
        limit, what = memory_limit(pick_device(tcfg.device))
        if sum(need.values()) > limit:
            culprit = max(need, key=need.get)
            raise UserError(f"this run would need about {sum(need.values()) / 1e9:,.1f} GB of memory (estimated), "
                            f"over the {limit / 1e9:.1f} GB limit ({what}): lower {culprit}")
        data = create_datasets(args.input_file, block_size, words=words, progress=not quiet)
        if saved and saved.get("vocab") != data.vocab.to_dict():
            raise UserError(f"--resume: {args.input_file} has other characters than when {work_dir} was trained; "
                            "resume with the same input file, or pass --force without --resume to start over")
        torch.manual_seed(tcfg.seed)  # model initialisation
        model = build_model(args.type, mcfg)
        print(f"{args.type}: {sum(p.numel() for p in model.parameters()):,} parameters, vocab {len(data.vocab)}, "
              f"block size {data.block_size}, {len(data.train_words)} train / {len(data.test_words)} test items")
        prompts = [p for p in NAMES_PROMPTS if all(c in data.vocab.stoi for c in p)]
        top_k = args.top_k if args.top_k > 0 else None
        try:
            records = train(model, data.train, data.test, tcfg, work_dir, resume=args.resume, force=args.force,
                            run_config={"type": args.type, "input_file": args.input_file,
                                        "model": dataclasses.asdict(mcfg), "vocab": data.vocab.to_dict()},
                            sample_fn=lambda m: sample_prompts(m, data.vocab, prompts, data.block_size,
                                                               device=next(m.parameters()).device, top_k=top_k,
                                                               block_size=data.block_size))
        except (MemoryError, torch.OutOfMemoryError):  # the estimate above is rough; never a traceback
            raise UserError("the run ran out of memory (past the estimate); lower --batch-size, --block-size "
                            "or the model size, and continue with --resume") from None
    val = [r for r in records if r["split"] == "val"]
    if val:
        best = min(val, key=lambda r: r["loss"])
        print(f"final val loss {val[-1]['loss']:.4f} (best {best['loss']:.4f} at step {best['step']}); "
              f"{val[-1]['macs']:,.0f} MACs/token; {val[-1]['wall_s']:.1f}s training; run in {work_dir}")
    return 0


def print_samples(work_dir: Path, num: int, top_k: int, temperature: float) -> int:
    from nnlabs.spine.sample import generate

    check_sample_flags(top_k, temperature, num)
    model, vocab, run = load_run(work_dir)
    block = run["model"]["block_size"]
    g = torch.Generator().manual_seed(run["seed"])
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
    failed = [lab for lab in LABS if (Path(a.runs) / lab).is_dir() and not a.site_only
              and not report_lab(lab, Path(a.runs) / lab)]
    print(f"wrote {build_site(a.runs)}")
    return 1 if failed else 0


def report_lab(lab: str, lab_dir: Path) -> bool:
    """One lab's report. An interrupted lab's report.md says so, naming its unfinished runs and the command
    that continues them; a lab whose report cannot be built is one error line, and the others go on."""
    stopped = rundir.interrupted(lab_dir)
    resume = " and ".join(command or f"nnlabs lab {lab} --out {shlex.quote(str(d))} --resume (and the flags it "
                          "was started with)" for d, command in stopped.items())
    try:
        lab_module(lab).report(lab_dir)
    except UserError as e:
        print(f"error: {lab}: {e}" + (f" (the lab was interrupted: continue with {resume})" if stopped else ""),
              file=sys.stderr)
        return False
    running = [f"{d} is in use by {owner}" for d in stopped if (owner := rundir.in_use(d))]
    if running:
        print(f"warning: {lab} is still running ({'; '.join(running)}): its report is partial", file=sys.stderr)
    elif stopped:
        names = ", ".join(name for d in stopped for name in rundir.unfinished(d))
        runs = f"unfinished runs: {names}" if names else "its later runs never started"
        note = (f"> **Incomplete:** `nnlabs lab {lab}` was interrupted ({runs}): this report is partial "
                f"until it finishes. Continue with `{resume}`, then run `nnlabs report` "
                "again.\n\n")
        report_md = lab_dir / "report.md"
        if report_md.exists():
            report_md.write_text(note + report_md.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"warning: {lab} was interrupted ({runs}); continue with {resume}", file=sys.stderr)
    return True


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
        print(f"\ninterrupted: {after_interrupt(argv)}", file=sys.stderr)
        return 130


def after_interrupt(argv: list[str]) -> str:
    """What to run after Ctrl-C: training commands continue from their checkpoints with --resume."""
    if argv[0] not in ("train", "lab") or "--sample-only" in argv:
        return "run the command again to redo it"
    return f"the last checkpoint is intact; continue with: {rundir.resume_command(argv)}"
