"""The toy benchmark pack: deterministic, versioned data sets, each built to make one lab's phenomenon
visible at toy scale.

Each data set is a module here exposing NAME, VERSION and build(seed) -> {relative path: file text}:
a pure function of the seed (and size knobs with defaults), so the same seed gives the same bytes on
any machine. `nnlabs pack build` writes them with a MANIFEST.json (sha256, size, line count, generator
version and seed of every file); `nnlabs pack verify` rebuilds in memory and compares.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
from pathlib import Path

from nnlabs.spine.errors import UserError

PACK_VERSION = 1
DATASETS = ("mixture", "algorithmic", "tool_suite", "list_programs")
MAX_BYTES = 5 * 1024 * 1024  # the CPU contract: at most 5 MB of text per data set
DEFAULT_SEED = 0


def dataset(name: str):
    if name not in DATASETS:
        raise UserError(f"unknown data set {name!r}; the pack has: {', '.join(DATASETS)}")
    return importlib.import_module(f"nnlabs.pack.{name}")


def build_files(seed: int = DEFAULT_SEED, names=DATASETS) -> dict[str, dict]:
    """Every file of the pack in memory: {path: {"text", "dataset", "version"}}; checks the size limit."""
    files = {}
    for name in names:
        module = dataset(name)
        built = module.build(seed)
        size = sum(len(t.encode("utf-8")) for t in built.values())
        if size > MAX_BYTES:
            raise AssertionError(f"data set {name} is {size:,} bytes, over the {MAX_BYTES:,}-byte limit")
        for path, text in built.items():
            files[path] = {"text": text, "dataset": name, "version": module.VERSION}
    return files


def file_entry(text: str, dataset_name: str, version: int, seed: int) -> dict:
    data = text.encode("utf-8")
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "lines": text.count("\n"),
            "dataset": dataset_name, "generator_version": version, "seed": seed}


def manifest(files: dict[str, dict], seed: int) -> dict:
    return {"pack_version": PACK_VERSION, "seed": seed,
            "files": {p: file_entry(f["text"], f["dataset"], f["version"], seed) for p, f in sorted(files.items())}}


def build(out: str | Path, seed: int = DEFAULT_SEED) -> dict:
    out = Path(out)
    files = build_files(seed)
    for path, f in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f["text"].encode("utf-8"))  # bytes: no platform newline translation
    m = manifest(files, seed)
    (out / "MANIFEST.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    return m


def verify(out: str | Path) -> list[str]:
    """Problems found (empty = the pack on disk is exactly what its seed rebuilds to)."""
    out = Path(out)
    mpath = out / "MANIFEST.json"
    if not mpath.exists():
        raise UserError(f"{mpath} not found; build the pack first with: nnlabs pack build --out {out}")
    try:
        recorded = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{mpath} is not valid JSON ({e}); rebuild the pack with nnlabs pack build") from None
    seed = recorded.get("seed") if isinstance(recorded, dict) else None
    entries = recorded.get("files") if isinstance(recorded, dict) else None
    if not (isinstance(seed, int) and not isinstance(seed, bool) and isinstance(entries, dict)
            and all(isinstance(e, dict) for e in entries.values())):
        raise UserError(f"{mpath} is not a pack manifest (an object with an integer seed and a files object of "
                        "entries); rebuild the pack with nnlabs pack build")
    rebuilt = manifest(build_files(seed), seed)["files"]
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p != mpath}
    problems = [f"{path}: on disk but not in the pack (an extra file)" for path in sorted(on_disk - set(entries)
                                                                                           - set(rebuilt))]
    for path in sorted(set(entries) | set(rebuilt)):
        if path not in rebuilt:
            problems.append(f"{path}: in the manifest but no generator makes it any more")
        elif path not in entries or entries[path] != rebuilt[path]:
            problems.append(f"{path}: the generator now makes different bytes than the manifest records")
        elif not (out / path).exists():
            problems.append(f"{path}: missing on disk")
        elif (out / path).is_dir() or hashlib.sha256((out / path).read_bytes()).hexdigest() != entries[path]["sha256"]:
            problems.append(f"{path}: changed on disk (sha256 differs from the manifest)")
    return problems


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="nnlabs pack", description="Build or verify the toy benchmark pack.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write every data set and MANIFEST.json")
    b.add_argument("--out", default=f"pack-v{PACK_VERSION}")
    b.add_argument("--seed", type=int, default=DEFAULT_SEED)
    v = sub.add_parser("verify", help="rebuild from the manifest's seed and compare checksums")
    v.add_argument("--out", default=f"pack-v{PACK_VERSION}")
    args = p.parse_args(argv)
    if args.command == "build":
        m = build(args.out, args.seed)
        total = sum(f["bytes"] for f in m["files"].values())
        print(f"wrote {len(m['files'])} files ({total:,} bytes) and MANIFEST.json to {args.out} (seed {args.seed})")
        return 0
    problems = verify(args.out)
    for line in problems:
        print(line)
    print(f"{args.out}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
