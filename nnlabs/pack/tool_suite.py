"""The tool suite (Part 6, tool use): queries answered either from memory or by a tool.

Two tools, each a small pure function with a declared cost (what the series charges one call, in the
compute unit of every lab: MAC-equivalents):
  calc(expr)    integer arithmetic. The argument is PARSED by the recursive-descent grammar below —
                never eval/exec — and anything outside the grammar is rejected with a clear error.
  lookup(key)   a tiny table of invented entities (random syllable names -> random 3-digit codes),
                so no answer can leak from world knowledge.

Queries are labelled with their kind:
  memorizable  seen many times in training: one-digit sums/products (`7*8=`), the 20 "famous" keys
  needs_tool   exact computation or lookup: large operands (`4821+977=`, `312*48=`), rare keys (seen once
               in train), unseen keys, near-miss keys (one letter off a famous key), two-digit arithmetic
               (never in train: the grey zone between the two)
Each line stores kind, family, tool, query, gold answer, the tool call that answers it and its output.
Deterministic: only random.Random(seed), lists (never set order), integer arithmetic.
"""

from __future__ import annotations

import random
import re

NAME = "tool_suite"
VERSION = 1
HEADER = "kind\tfamily\ttool\tquery\tanswer\tcall\toutput"

# Every query family and its kind, in the order reports list them.
FAMILIES = {"small_arith": "memorizable", "famous_key": "memorizable", "large_arith": "needs_tool",
            "mid_arith": "needs_tool", "rare_key": "needs_tool", "unseen_key": "needs_tool",
            "near_miss_key": "needs_tool"}
KINDS = ("memorizable", "needs_tool")

# Declared cost of one call, in MAC-equivalents. An arithmetic call is charged like ~20 tokens of a
# 100k-MAC/token model, a table lookup half that: fixed prices, so the accounting never depends on a clock.
COST = {"calc": 2_000_000, "lookup": 1_000_000}


class ToolError(ValueError):
    """A call the tools refuse: outside the grammar, too large, or an unknown key. The message says why."""


# -----------------------------------------------------------------------------
# calc: a recursive-descent parser over a tiny integer grammar (no eval, ever)
#
#   expr   := term (('+' | '-') term)*
#   term   := power ('*' power)*
#   power  := unary ('^' power)?          right-associative: 2^3^2 = 2^9
#   unary  := '-' unary | atom
#   atom   := NUMBER | '(' expr ')'
#   NUMBER := 1 to MAX_DIGITS decimal digits
#
# Bounds (so any input finishes in microseconds): the text is at most MAX_LEN characters, nesting at
# most MAX_DEPTH, exponents at most MAX_EXP, every intermediate |value| below 10**MAX_RESULT_DIGITS.

DIGITS = "0123456789"  # ASCII only: str.isdigit() also accepts '²' and '١', which int() rejects or reads
CALC_CHARS = DIGITS + "+-*^() "
MAX_LEN, MAX_DIGITS, MAX_DEPTH, MAX_EXP, MAX_RESULT_DIGITS = 64, 12, 16, 64, 30


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_LEN:
        raise ToolError(f"calc: expression is {len(text)} characters long (limit {MAX_LEN})")
    tokens, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch not in CALC_CHARS:
            raise ToolError(f"calc: character {ch!r} at position {i} is outside the grammar "
                            "(digits, + - * ^ ( ) and spaces only)")
        if ch in DIGITS:
            j = i
            while j < len(text) and text[j] in DIGITS:
                j += 1
            if j - i > MAX_DIGITS:
                raise ToolError(f"calc: number at position {i} has {j - i} digits (limit {MAX_DIGITS})")
            tokens.append(text[i:j])
            i = j
        else:
            if ch != " ":
                tokens.append(ch)
            i += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ToolError("calc: expression ends too early")
        self.pos += 1
        return tok

    def bounded(self, value: int) -> int:
        if abs(value) >= 10 ** MAX_RESULT_DIGITS:
            raise ToolError(f"calc: a value exceeds {MAX_RESULT_DIGITS} digits")
        return value

    def expr(self) -> int:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = self.bounded(value + self.term() if self.take() == "+" else value - self.term())
        return value

    def term(self) -> int:
        value = self.power()
        while self.peek() == "*":
            self.take()
            value = self.bounded(value * self.power())
        return value

    def power(self) -> int:
        base = self.unary()
        if self.peek() != "^":
            return base
        self.take()
        exp = self.power()
        if exp < 0 or exp > MAX_EXP:
            raise ToolError(f"calc: exponent {exp} is outside 0..{MAX_EXP}")
        # |base| < 10**30 and exp <= 64 could still make a huge number: check the size before computing
        if base not in (-1, 0, 1) and exp * (len(str(abs(base))) - 1) >= MAX_RESULT_DIGITS:
            raise ToolError(f"calc: a value exceeds {MAX_RESULT_DIGITS} digits")
        return self.bounded(base ** exp)

    def unary(self) -> int:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ToolError(f"calc: nesting deeper than {MAX_DEPTH}")
        if self.peek() == "-":
            self.take()
            value = -self.unary()
        else:
            value = self.atom()
        self.depth -= 1
        return value

    def atom(self) -> int:
        tok = self.take()
        if tok[0] in DIGITS:
            return int(tok)
        if tok == "(":
            value = self.expr()
            if self.take() != ")":
                raise ToolError("calc: expected ')'")
            return value
        raise ToolError(f"calc: unexpected {tok!r}; expected a number or '('")


def calc(text: str) -> str:
    """Evaluate an integer expression of the grammar above; ToolError for anything else."""
    tokens = tokenize(text)
    if not tokens:
        raise ToolError("calc: empty expression")
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.peek() is not None:
        raise ToolError(f"calc: unexpected {parser.peek()!r} after a complete expression")
    return str(value)


# -----------------------------------------------------------------------------
# lookup: a table of invented entities

KEY_RE = re.compile(r"[a-z]{1,16}")


def lookup(key: str, table: dict[str, str]) -> str:
    if not KEY_RE.fullmatch(key):
        raise ToolError(f"lookup: key {key[:20]!r} must be 1-16 lowercase letters")
    if key not in table:
        raise ToolError(f"lookup: no entity named {key!r} in the table")
    return table[key]


CALL_RE = re.compile(r"(calc|lookup)\((.*)\)")
MAX_CALL = 80


def run_call(call: str, table: dict[str, str]) -> str:
    """Run one call written as text, e.g. 'calc(12*34)' or 'lookup(velmor)'; ToolError if malformed."""
    if len(call) > MAX_CALL:
        raise ToolError(f"call is {len(call)} characters long (limit {MAX_CALL})")
    m = CALL_RE.fullmatch(call)
    if m is None:
        raise ToolError(f"malformed call {call[:30]!r}: expected calc(...) or lookup(...)")
    return calc(m.group(2)) if m.group(1) == "calc" else lookup(m.group(2), table)


def tool_of(call: str) -> str:
    return call.split("(", 1)[0]


# -----------------------------------------------------------------------------
# the data set

CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def invent_names(rng: random.Random, n: int, taken: dict) -> list[str]:
    """n new names of 2-3 consonant-vowel syllables plus an optional final consonant."""
    out = []
    while len(out) < n:
        name = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.choice((2, 3))))
        name += rng.choice(("", "", "n", "r", "k", "s"))
        if name not in taken:
            taken[name] = True
            out.append(name)
    return out


def near_miss(rng: random.Random, name: str, taken: dict) -> str:
    """A new name one letter away from `name` (a consonant for a consonant, a vowel for a vowel)."""
    while True:
        i = rng.randrange(len(name))
        pool = VOWELS if name[i] in VOWELS else CONSONANTS
        cand = name[:i] + rng.choice([c for c in pool if c != name[i]]) + name[i + 1:]
        if cand not in taken:
            taken[cand] = True
            return cand


def arith_row(family: str, a: int, op: str, b: int) -> str:
    expr = f"{a}{op}{b}"
    out = calc(expr)
    return f"{FAMILIES[family]}\t{family}\tcalc\t{expr}=\t{out}\tcalc({expr})\t{out}"


def lookup_row(family: str, key: str, table: dict[str, str]) -> str:
    out = lookup(key, table)
    return f"{FAMILIES[family]}\t{family}\tlookup\t{key}?\t{out}\tlookup({key})\t{out}"


def large_arith(rng: random.Random) -> tuple[int, str, int]:
    op = rng.choice("+-*")
    if op == "*":
        return rng.randrange(100, 1000), op, rng.randrange(10, 1000)
    return rng.randrange(100, 10000), op, rng.randrange(100, 10000)


def mid_arith(rng: random.Random) -> tuple[int, str, int]:
    return rng.randrange(10, 100), rng.choice("+*"), rng.randrange(10, 100)


def build(seed: int, n_famous: int = 20, famous_repeats: int = 20, small_repeats: int = 8,
          n_large_train: int = 1200, n_rare: int = 600, n_eval: int = 150) -> dict[str, str]:
    """train.tsv (the training stream, memorizable facts repeated), val.tsv, test.tsv, table.tsv."""
    rng = random.Random(seed)
    taken: dict[str, bool] = {}
    famous = invent_names(rng, n_famous, taken)
    rare = invent_names(rng, n_rare, taken)
    unseen = invent_names(rng, 2 * n_eval, taken)  # val half, test half: never in train
    misses = [near_miss(rng, famous[i % n_famous], taken) for i in range(2 * n_famous)]
    # table-only entities that no split mentions: the long tail only the tool knows (the Part 6 lab's
    # dream state may wander onto them, never onto a val/test key)
    tail = invent_names(rng, n_eval, taken) + [near_miss(rng, famous[i % n_famous], taken)
                                               for i in range(2 * n_famous)]
    table = {k: str(rng.randrange(100, 1000)) for k in famous + rare + unseen + misses + tail}

    # arithmetic queries are unique across splits (the small facts are the point: seen many times)
    seen_arith: dict[tuple, bool] = {}

    def fresh(gen) -> tuple[int, str, int]:
        while True:
            q = gen(rng)
            if q not in seen_arith:
                seen_arith[q] = True
                return q

    small = [(a, op, b) for op in "+*" for a in range(10) for b in range(10)]
    train = [arith_row("small_arith", *q) for q in small for _ in range(small_repeats)]
    train += [lookup_row("famous_key", k, table) for k in famous
              for _ in range(famous_repeats)]
    train += [arith_row("large_arith", *fresh(large_arith)) for _ in range(n_large_train)]
    train += [lookup_row("rare_key", k, table) for k in rare]
    rng.shuffle(train)

    def eval_split(part: int) -> list[str]:
        """Each family of the test/val set; part 0 = val, 1 = test (disjoint unseen and near-miss keys)."""
        n = n_eval
        rows = [arith_row("small_arith", *q) for q in rng.sample(small, min(n, len(small)))]
        rows += [lookup_row("famous_key", k, table) for k in famous]
        rows += [arith_row("large_arith", *fresh(large_arith)) for _ in range(n)]
        rows += [arith_row("mid_arith", *fresh(mid_arith)) for _ in range(n // 2)]
        rows += [lookup_row("rare_key", k, table) for k in rng.sample(rare, n // 2)]
        rows += [lookup_row("unseen_key", k, table) for k in unseen[part * n:(part + 1) * n]]
        rows += [lookup_row("near_miss_key", k, table)
                 for k in misses[part * n_famous:(part + 1) * n_famous]]
        return rows

    val, test = eval_split(0), eval_split(1)
    tsv = lambda rows: HEADER + "\n" + "".join(r + "\n" for r in rows)  # noqa: E731
    return {f"{NAME}/train.tsv": tsv(train), f"{NAME}/val.tsv": tsv(val), f"{NAME}/test.tsv": tsv(test),
            f"{NAME}/table.tsv": "key\tvalue\n" + "".join(f"{k}\t{v}\n" for k, v in table.items())}


# -----------------------------------------------------------------------------
# reading it back (the lab uses these)


def parse_rows(text: str) -> list[dict[str, str]]:
    lines = text.splitlines()
    fields = HEADER.split("\t")
    if not lines or lines[0] != HEADER:
        raise ToolError(f"not a tool-suite file: the first line must be {HEADER!r}")
    return [dict(zip(fields, line.split("\t"))) for line in lines[1:] if line]


def parse_table(text: str) -> dict[str, str]:
    return dict(line.split("\t") for line in text.splitlines()[1:] if line)
