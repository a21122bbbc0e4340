"""Data: one item per line -> character vocabulary -> padded (x, y) tensors, with makemore's semantics.

makemore compatibility (so our losses compare with its numbers):
  words      = stripped, non-empty lines
  vocabulary = sorted set of characters; token 0 is the start/stop token '.'
  block_size = longest word + 1
  x = [0, w1, ..., wn, 0, 0...]   y = [w1, ..., wn, 0, -1, -1...]   (-1 is ignored by the loss)
  split      = torch.manual_seed(3407); randperm; the last min(1000, 10%) words are the test set
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from nnlabs.spine.errors import UserError

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
MAX_LINE = 512  # one short item per line; anything longer is almost surely the wrong file
CONTRACT_BYTES = 5 * 1024 * 1024  # the CPU contract: at most 5 MB of text per experiment


# -----------------------------------------------------------------------------
# finding and reading the input file


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nnlabs"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names_path() -> Path:
    """makemore's names.txt: from $NNLABS_DATA_DIR, else the cache, else downloaded once and checked."""
    candidates = [cache_dir() / "names.txt"]
    if os.environ.get("NNLABS_DATA_DIR"):
        candidates.insert(0, Path(os.environ["NNLABS_DATA_DIR"]) / "names.txt")
    for p in candidates:
        if p.exists():
            return p
    target = candidates[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    try:
        urllib.request.urlretrieve(NAMES_URL, tmp)
    except OSError as e:
        raise UserError(f"could not download names.txt from {NAMES_URL} ({e}); download it by hand and "
                        f"pass its path with -i, or set NNLABS_DATA_DIR to its folder") from None
    if sha256(tmp) != NAMES_SHA256:
        tmp.unlink()
        raise UserError(f"the downloaded names.txt does not match its sha256 {NAMES_SHA256}; "
                        "it was deleted: try again or pass a local copy with -i")
    os.replace(tmp, target)
    return target


def resolve_input(path: str | Path) -> Path:
    """A local path if it exists; the bare name 'names.txt' means makemore's data set (fetched on demand)."""
    p = Path(path)
    if p.exists():
        return p
    if p.name == "names.txt" and len(p.parts) == 1:
        return names_path()
    raise UserError(f"input file {path} does not exist; pass a text file with one item per line via -i")


def read_words(path: str | Path) -> list[str]:
    """Stripped non-empty lines of a UTF-8 text file, or one clear error saying what is wrong with it."""
    p = resolve_input(path)
    if p.is_dir():
        raise UserError(f"input file {p} is a folder; pass a text file with one item per line via -i")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read input file {p} ({e.strerror}); pass a readable text file via -i") from None
    if len(raw) > CONTRACT_BYTES:
        print(f"warning: {p} is {len(raw) / 1e6:.1f} MB, past the CPU contract's 5 MB per experiment: encoding "
              "it takes a while (progress below) and training on it will be slow", file=sys.stderr)
    if b"\x00" in raw:
        raise UserError(f"{p} looks binary (it contains NUL bytes); pass a UTF-8 text file, one item per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not valid UTF-8 (byte {e.start}); re-save it as UTF-8 text") from None
    words = [w.strip() for w in text.splitlines()]
    words = [w for w in words if w]
    if not words:
        raise UserError(f"{p} has no non-empty lines; pass a text file with one item per line")
    longest = max(words, key=len)
    if len(longest) > MAX_LINE:
        line = words.index(longest) + 1
        raise UserError(f"{p}: item {line} is {len(longest)} characters long (limit {MAX_LINE}); "
                        "nnlabs models one short item per line, e.g. a name")
    return words


def makemore_split(words: list[str], seed: int = 3407) -> tuple[list[str], list[str]]:
    """makemore's split: randperm under `seed`; the last min(1000, 10%) words are the test set."""
    test_size = min(1000, int(len(words) * 0.1))
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(words), generator=g).tolist()
    if test_size == 0:
        raise UserError(f"only {len(words)} items: need at least 10 to hold out a test set")
    return [words[i] for i in perm[:-test_size]], [words[i] for i in perm[-test_size:]]


# -----------------------------------------------------------------------------
# vocabulary and encoding


class Vocab:
    """Token 0 is start/stop ('.'); then the sorted characters; then any multi-character special tokens
    (e.g. '<CALL_TOOL>') that a lab adds, which encode() recognises as single tokens."""

    def __init__(self, chars, specials=()):
        self.chars = sorted(set(chars))
        self.specials = list(specials)
        self.itos = ["."] + self.chars + self.specials
        self.stoi = {s: i for i, s in enumerate(self.itos) if i > 0}
        self._split = re.compile("(" + "|".join(re.escape(s) for s in self.specials) + ")") if specials else None

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        pieces = self._split.split(text) if self._split else [text]
        out = []
        for piece in pieces:
            if piece in self.specials:
                out.append(self.stoi[piece])
                continue
            for ch in piece:
                if ch not in self.stoi:
                    raise UserError(f"character {ch!r} is not in the vocabulary of this model")
                out.append(self.stoi[ch])
        return out

    def decode(self, ids) -> str:
        return "".join(self.itos[i] for i in ids if i != 0)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "specials": self.specials}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(d["chars"], d.get("specials", ()))


# -----------------------------------------------------------------------------
# datasets: every item pre-encoded into two tensors, batches drawn by indexing (no DataLoader overhead)


@dataclass
class SequenceData:
    """x, y: (N, block_size) long tensors; y = -1 where no loss is taken."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        # per item: 1 + the last position that has a target. Columns past a batch's longest item are pure
        # padding: trimming them changes no loss and no gradient, and names are ~6 of 16 positions long.
        positions = torch.arange(1, self.y.shape[-1] + 1, device=self.y.device)  # sequence = last dim
        self.extent = ((self.y >= 0) * positions).flatten(1).amax(dim=1)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def block_size(self) -> int:
        return self.x.shape[-1]

    def to(self, device) -> SequenceData:
        return SequenceData(self.x.to(device), self.y.to(device))

    def batch(self, batch_size: int, generator: torch.Generator,
              pack: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of `batch_size` items, drawn with replacement like makemore's InfiniteDataLoader,
        cut after its longest item, or with `pack` laid end to end in fewer rows (see `pack`)."""
        ix = torch.randint(len(self), (batch_size,), generator=generator).to(self.x.device)
        if pack:
            return self.pack(ix)
        t = max(1, int(self.extent[ix].max()))
        return self.x[ix, ..., :t], self.y[ix, ..., :t]

    def packable(self) -> bool:
        """Packing needs (N, T) items that each start with the start token 0 (checked once, not per batch)."""
        return self.x.dim() == 2 and bool((self.x[:, 0] == 0).all())

    def pack(self, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `ix` laid end to end in rows of block_size (first fit, in draw order). Names fill ~7 of 16
        positions, so one-item rows are ~40 % padding; packed, the same items and targets need ~35 % fewer
        positions. Each item keeps its leading start token (0), which is how a packed model
        (`spine.models.item_layout`) restarts positions and keeps attention inside the item."""
        lengths = self.extent[ix].tolist()
        free, row_of, col_of = [], [], []
        for n in lengths:
            r = next((r for r, f in enumerate(free) if f >= n), len(free))
            if r == len(free):
                free.append(self.block_size)
            row_of.append(r)
            col_of.append(self.block_size - free[r])
            free[r] -= n
        n = torch.tensor(lengths, device=ix.device)
        offset = torch.arange(int(n.sum()), device=ix.device) - torch.repeat_interleave(n.cumsum(0) - n, n)
        item = torch.repeat_interleave(ix, n)
        row = torch.repeat_interleave(torch.tensor(row_of, device=ix.device), n)
        col = torch.repeat_interleave(torch.tensor(col_of, device=ix.device), n) + offset
        t = self.block_size - min(free)
        x = self.x.new_zeros(len(free), t)
        y = self.y.new_full((len(free), t), -1)
        x[row, col], y[row, col] = self.x[item, offset], self.y[item, offset]
        return x, y

    def batches(self, batch_size: int):
        """Every item once, in order (evaluation)."""
        for i in range(0, len(self), batch_size):
            yield self.x[i:i + batch_size], self.y[i:i + batch_size]


def encode_words(words: list[str], vocab: Vocab, block_size: int) -> SequenceData:
    x = torch.zeros(len(words), block_size, dtype=torch.long)
    y = torch.full((len(words), block_size), -1, dtype=torch.long)
    for i, w in enumerate(words):
        ids = vocab.encode(w)
        if len(ids) + 1 > block_size:
            raise UserError(f"item {w[:40]!r} needs {len(ids) + 1} positions but the block size is "
                            f"{block_size}; raise --block-size to at least {len(ids) + 1}")
        ix = torch.tensor(ids, dtype=torch.long)
        x[i, 1:1 + len(ids)] = ix
        y[i, :len(ids)] = ix
        y[i, len(ids)] = 0  # predict the end token
    return SequenceData(x, y)


ENCODE_CHUNK = 100_000  # items per vectorised pass: bounds the temporary index tensors


def encode_chars(words: list[str], vocab: Vocab, block_size: int, progress: bool = False) -> SequenceData:
    """encode_words for a vocabulary of single characters (no specials), a chunk of items at a time: the
    same x and y (tested), a 50 MB file in seconds instead of minutes, with a progress bar."""
    x = torch.zeros(len(words), block_size, dtype=torch.long)
    y = torch.full((len(words), block_size), -1, dtype=torch.long)
    chunks = range(0, len(words), ENCODE_CHUNK)
    for start in tqdm(chunks, desc="encoding", unit="chunk", disable=not progress or len(chunks) < 2):
        _encode_chunk(words[start:start + ENCODE_CHUNK], vocab, x[start:], y[start:])
    return SequenceData(x, y)


def _encode_chunk(words: list[str], vocab: Vocab, x: torch.Tensor, y: torch.Tensor) -> None:
    n = torch.tensor([len(w) for w in words], dtype=torch.long)  # [N] characters per item
    if len(words) and int(n.max()) + 1 > x.shape[1]:
        w = words[int(n.argmax())]
        raise UserError(f"item {w[:40]!r} needs {len(w) + 1} positions but the block size is "
                        f"{x.shape[1]}; raise --block-size to at least {len(w) + 1}")
    codes = torch.frombuffer(bytearray("".join(words).encode("utf-32-le")), dtype=torch.int32).long()  # [L]
    table = torch.tensor([ord(c) for c in vocab.chars], dtype=torch.long)  # sorted code points = token - 1
    ids = torch.searchsorted(table, codes).clamp(max=len(table) - 1)  # [L]
    unknown = table[ids] != codes
    if unknown.any():
        raise UserError(f"character {chr(int(codes[unknown][0]))!r} is not in the vocabulary of this model")
    ids += 1
    row = torch.repeat_interleave(torch.arange(len(words)), n)  # [L] item of each character
    col = torch.arange(len(codes)) - torch.repeat_interleave(n.cumsum(0) - n, n)  # [L] position inside it
    x[row, col + 1] = ids
    y[row, col] = ids
    y[torch.arange(len(words)), n] = 0  # predict the end token


@dataclass
class WordDatasets:
    vocab: Vocab
    block_size: int
    train_words: list[str]
    test_words: list[str]
    train: SequenceData
    test: SequenceData


def create_datasets(input_file: str | Path, block_size: int | None = None, seed: int = 3407,
                    words: list[str] | None = None, progress: bool = False) -> WordDatasets:
    """makemore's create_datasets: read (or take `words` already read from input_file), build the
    vocabulary from all words, split, encode."""
    words = read_words(input_file) if words is None else words
    vocab = Vocab("".join(words))
    block_size = check_block_size(words, block_size, input_file)
    train_words, test_words = makemore_split(words, seed)
    return WordDatasets(vocab, block_size, train_words, test_words, encode_chars(train_words, vocab, block_size,
                        progress), encode_chars(test_words, vocab, block_size, progress))


def check_block_size(words: list[str], block_size: int | None, input_file) -> int:
    """The longest item + 1 by default; a smaller --block-size is an error naming the need."""
    needed = max(len(w) for w in words) + 1
    if block_size is None:
        return needed
    if block_size < needed:
        raise UserError(f"{input_file}: the longest item needs block size {needed}, but --block-size is "
                        f"{block_size}; raise it or drop the flag")
    return block_size
