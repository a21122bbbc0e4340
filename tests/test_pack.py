"""The pack as a whole: byte-identical under a seed, a manifest that describes it, verify that notices."""

from __future__ import annotations

import json

import pytest

from nnlabs import pack
from nnlabs.cli import main as cli


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "pack-v1"
    assert cli(["pack", "build", "--out", str(out), "--seed", "0"]) == 0
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(built):
    again = pack.build_files(0)
    on_disk = {p: (built / p).read_text(encoding="utf-8") for p in again}
    assert {p: f["text"] for p, f in again.items()} == on_disk
    other = pack.build_files(1)
    assert any(other[p]["text"] != again[p]["text"] for p in again)


def test_manifest_describes_every_file(built):
    m = json.loads((built / "MANIFEST.json").read_text())
    assert m["pack_version"] == pack.PACK_VERSION and m["seed"] == 0
    assert {e["dataset"] for e in m["files"].values()} == set(pack.DATASETS)
    for path, entry in m["files"].items():
        data = (built / path).read_bytes()
        assert entry["bytes"] == len(data) and entry["lines"] == data.count(b"\n")
        assert entry["generator_version"] >= 1 and entry["seed"] == 0
    per_dataset = {}
    for e in m["files"].values():
        per_dataset[e["dataset"]] = per_dataset.get(e["dataset"], 0) + e["bytes"]
    assert max(per_dataset.values()) <= pack.MAX_BYTES


def test_verify_passes_then_notices_a_changed_file(built, capsys):
    assert cli(["pack", "verify", "--out", str(built)]) == 0
    victim = sorted(p for p in built.rglob("*") if p.is_file() and p.name != "MANIFEST.json")[0]
    original = victim.read_bytes()
    victim.write_bytes(original + b"tampered\n")
    try:
        capsys.readouterr()
        assert cli(["pack", "verify", "--out", str(built)]) == 1
        assert "changed on disk" in capsys.readouterr().out
    finally:
        victim.write_bytes(original)


def test_verify_without_a_pack_is_a_clear_error(tmp_path, capsys):
    assert cli(["pack", "verify", "--out", str(tmp_path)]) == 2
    assert "build the pack first" in capsys.readouterr().err
