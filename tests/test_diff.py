"""`nnlabs diff <lab>` prints the whole patch a post quotes: short, and complete — every lab-defined
name that a printed piece uses is itself printed."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

from nnlabs.cli import lab_diff, resolve
from nnlabs.labs import LABS, Patch

MAX_DIFF_LINES = 120
# the MoE patch carries four balancing mechanisms, capacity, the grouped-matmul experts (issue 14) and the line
# start the loss-free bias leaves to the router (session 19)
LONGER = {"moe": 142}


def lab_defined(module, name: str) -> bool:
    """Is `name` a top-level definition of this lab module, or imported from another module of the labs?"""
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return node.level > 0 or (node.module or "").startswith("nnlabs.labs")
    return False


def used_names(ref: str) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(resolve(ref))))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("lab", list(LABS))
def test_diff_is_complete_and_short(lab):
    patches = importlib.import_module(f"nnlabs.labs.{lab}").PATCHES
    assert all(isinstance(p, Patch) for p in patches)
    printed = {p.lab.partition(":")[2].split(".")[0] for p in patches}
    missing = set()
    for patch in patches:
        module = importlib.import_module(patch.lab.partition(":")[0])
        if not module.__name__.startswith("nnlabs.labs."):
            continue  # a spine piece shown as a lab's patch (tour: the learned bigram) uses the spine freely
        missing |= {name for name in used_names(patch.lab) - printed if lab_defined(module, name)}
    assert not missing, f"nnlabs diff {lab} uses lab-defined names it does not print: {sorted(missing)}"
    assert len(lab_diff(lab).splitlines()) <= LONGER.get(lab, MAX_DIFF_LINES)


def test_diff_prints_spine_changes_as_diffs_and_additions_whole(monkeypatch):
    import nnlabs.labs.tour as tour

    monkeypatch.setattr(tour, "PATCHES", [
        Patch(lab="nnlabs.spine.models:Bigram", spine="nnlabs.spine.models:CountBigram", why="learned, not counted"),
        Patch(lab="nnlabs.report.tables:cell", why="a new piece"),
    ])
    text = lab_diff("tour")
    assert "# learned, not counted\n--- nnlabs.spine.models:CountBigram\n+++ nnlabs.spine.models:Bigram" in text
    assert "--- /dev/null\n+++ nnlabs.report.tables:cell" in text
    assert "+def cell(value) -> str:" in text
