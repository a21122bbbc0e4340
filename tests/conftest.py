"""Shared test fixtures: the shared names.txt, a tiny corpus, and headless-Chromium rendering."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests never download: they read the shared copy of names.txt (CI puts shared/ beside the clone).
if "NNLABS_DATA_DIR" not in os.environ and (SHARED_DATA / "names.txt").exists():
    os.environ["NNLABS_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture
def one_thread():
    """Tiny models train as fast on one thread, and far faster when the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def names_path() -> Path:
    p = Path(os.environ.get("NNLABS_DATA_DIR", SHARED_DATA)) / "names.txt"
    if not p.exists():
        pytest.skip("names.txt not available (set NNLABS_DATA_DIR)")
    return p


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    p = tmp_path / "tiny.txt"
    p.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper",
                            "evelyn", "abigail", "emily", "ella", "elizabeth", "camila", "luna"] * 4) + "\n")
    return p


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def render_html(tmp_path):
    """Render an HTML file in headless Chromium; return (dom_after_js, screenshot_path)."""
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (make test installs it via .ci/run)")

    def render(path: Path, width: int = 1100, height: int = 900) -> tuple[str, Path]:
        flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}", f"--window-size={width},{height}",
                 "--virtual-time-budget=3000"]
        url = Path(path).resolve().as_uri()
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / (Path(path).stem + ".png")
        subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, timeout=120)
        return dom, shot

    return render
