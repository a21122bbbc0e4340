"""Abstraction sleep: grow the library by compressing the solved programs.

Our compressor, in four readable steps per iteration:
  1. propose  — anti-unify pairs of subtrees that share a root (same head, same number of arguments):
                the most specific pattern covering both, where they differ becomes a hole #i.
                `(map (lam (+ $0 1)) $0)` and `(map (lam (+ $0 3)) $0)` give `(map (lam (+ $0 #0)) #1)`.
                At most `max_arity` holes; a hole may not capture a variable bound inside the pattern.
  2. score    — description length with Stitch's cost model (a primitive or variable costs 100, an
                application or lambda 1): utility(A) = cost(corpus) - cost(corpus rewritten with A)
                - cost(body of A).  That is the MDL gain: corpus + library gets shorter by exactly this.
                Candidates are ranked by an estimate over matching subtrees, the top few rescored exactly.
  3. accept   — the best candidate that DreamCoder would call nontrivial (see `nontrivial`) if its
                utility is positive; it becomes `fn_k = (lam (lam ... body))`,
                holes turned into the outer lambdas' variables.
  4. rewrite  — every program, top-down: a subtree that matches becomes `(fn_k arg0 arg1 ...)`.
Repeat while it helps (or up to `iterations`). Later abstractions can use earlier ones.

The second backend runs Stitch (Bowers et al. 2023, `stitch_core`) on the same programs; both return a
`Compression` so the lab and the benchmark treat them alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice

from nnlabs.labs.dreamcoder.dsl import (
    App,
    Invented,
    Lam,
    Program,
    TypeMismatch,
    Var,
    apply_all,
    free_vars,
    invent,
    parse,
    shift,
    show,
    spine,
    symbols,
)

# Stitch's defaults: prims/vars 100, app/lam 1
COST_LEAF, COST_NODE = 100, 1


@dataclass(frozen=True, repr=False)
class Hole(Program):
    i: int

    @property
    def name(self):
        return f"#{self.i}"


def cost(p: Program) -> int:
    if p.__class__ is App:
        return COST_NODE + cost(p.f) + cost(p.x)
    if p.__class__ is Lam:
        return COST_NODE + cost(p.body)
    return COST_LEAF


@dataclass
class Compression:
    # Invented, in the order learned
    abstractions: list
    # Programs, same order as the input
    rewritten: list
    seconds: float = 0.0
    # per abstraction: {"name", "body", "utility", "uses"}
    steps: list = field(default_factory=list)

    def ratio(self, original) -> float:
        """Stitch's compression ratio: corpus cost before / after (the library is not counted)."""
        return sum(cost(p) for p in original) / max(1, sum(cost(p) for p in self.rewritten))

    def mdl_ratio(self, original) -> float:
        """The same with the library's bodies counted: the MDL objective both compressors optimise."""
        lib = sum(cost(a.body) for a in self.abstractions)
        return sum(cost(p) for p in original) / max(1, sum(cost(p) for p in self.rewritten) + lib)


# -----------------------------------------------------------------------------
# patterns: anti-unification, matching, rewriting


def root_key(p: Program):
    """Subtrees can only share a pattern if they share this: (head, number of arguments) or 'lam'."""
    if p.__class__ is Lam:
        return ("lam",)
    head, args = spine(p)
    return (show(head) if head.__class__ is not App else "?", len(args))


def anti_unify(a: Program, b: Program, max_arity: int):
    """The most specific pattern matching both a and b (holes where they differ), or None."""
    holes: dict = {}

    def go(a, b, d):
        if a == b and not free_vars(a, d):
            # identical and closed within the pattern
            return a
        if a.__class__ is App and b.__class__ is App:
            f, x = go(a.f, b.f, d), go(a.x, b.x, d)
            return None if f is None or x is None else App(f, x)
        if a.__class__ is Lam and b.__class__ is Lam:
            body = go(a.body, b.body, d + 1)
            return None if body is None else Lam(body)
        if min(free_vars(a), default=d) < d or min(free_vars(b), default=d) < d:
            # the hole would capture a variable bound inside the pattern
            return None
        key = (show(shift(a, -d)), show(shift(b, -d)))
        if key not in holes:
            holes[key] = Hole(len(holes))
        return holes[key]

    pattern = go(a, b, 0)
    if pattern is None or len(holes) > max_arity or pattern.__class__ is Hole:
        return None
    return pattern, len(holes)


def match(pattern: Program, t: Program, d: int, binds: dict) -> bool:
    """Does t match the pattern? Fills binds[hole] with the argument (shifted out of the pattern)."""
    if pattern.__class__ is Hole:
        if min(free_vars(t), default=d) < d:
            return False
        arg = shift(t, -d)
        if pattern.i in binds:
            return binds[pattern.i] == arg
        binds[pattern.i] = arg
        return True
    if pattern.__class__ is App:
        return t.__class__ is App and match(pattern.f, t.f, d, binds) and match(pattern.x, t.x, d, binds)
    if pattern.__class__ is Lam:
        return t.__class__ is Lam and match(pattern.body, t.body, d + 1, binds)
    return pattern == t


def rewrite(t: Program, pattern: Program, arity: int, inv: Invented) -> Program:
    binds: dict = {}
    if match(pattern, t, 0, binds):
        return apply_all(inv, [rewrite(binds[i], pattern, arity, inv) for i in range(arity)])
    if t.__class__ is App:
        return App(rewrite(t.f, pattern, arity, inv), rewrite(t.x, pattern, arity, inv))
    if t.__class__ is Lam:
        return Lam(rewrite(t.body, pattern, arity, inv))
    return t


def to_body(pattern: Program, arity: int) -> Program:
    """Holes -> variables of `arity` new outer lambdas: #i at lambda depth d becomes $(d + arity-1-i)."""
    def go(p, d):
        if p.__class__ is Hole:
            return Var(d + arity - 1 - p.i)
        if p.__class__ is App:
            return App(go(p.f, d), go(p.x, d))
        if p.__class__ is Lam:
            return Lam(go(p.body, d + 1))
        return p

    body = go(pattern, 0)
    for _ in range(arity):
        body = Lam(body)
    return body


def subtrees(p: Program, d: int = 0):
    yield p
    if p.__class__ is App:
        yield from subtrees(p.f, d)
        yield from subtrees(p.x, d)
    elif p.__class__ is Lam:
        yield from subtrees(p.body, d + 1)


# -----------------------------------------------------------------------------
# our compressor


def propose(programs, max_arity: int, max_per_bucket: int = 60):
    """Candidate patterns with an estimated utility, best first."""
    counts: dict = {}
    for p in programs:
        for t in subtrees(p):
            if t.__class__ in (App, Lam) and cost(t) > COST_LEAF + 2:
                counts[t] = counts.get(t, 0) + 1
    buckets: dict = {}
    for t in counts:
        buckets.setdefault(root_key(t), []).append(t)
    scored = {}
    for ts in buckets.values():
        ts = sorted(ts, key=lambda t: -counts[t] * cost(t))[:max_per_bucket]
        patterns = {}
        for i, a in enumerate(ts):
            # b == a proposes the subtree itself (with its free variables as holes)
            for b in ts[i:]:
                r = anti_unify(a, b, max_arity)
                if r is not None:
                    patterns[r[0]] = r[1]
        for pat, arity in patterns.items():
            gain = 0
            for t in ts:
                binds: dict = {}
                if match(pat, t, 0, binds):
                    gain += counts[t] * (cost(t) - COST_LEAF - arity * COST_NODE - sum(cost(v) for v in binds.values()))
            body_cost = cost(to_body(pat, arity))
            scored[pat] = (gain - body_cost, arity)
    return sorted(scored.items(), key=lambda kv: (-kv[1][0], show(kv[0])))


def nontrivial(pattern: Program) -> bool:
    """DreamCoder's test of a candidate abstraction (`nontrivial` in its compression.ml): the pattern must
    hold two primitives (base or learned; a constant counts), or one primitive with a variable used twice.

    Refused: one head over parameters only — `(car #0)`, `(lam (map #0 $0))`, `(lam (map (lam (#0 $0))
    $0))` (map in an eta wrapper, kept as `fn_2` in session 8 before any rule). Such an abstraction adds
    nothing the grammar cannot build from its head, yet under Stitch's cost model it can pay (eta-reduction
    saves a lambda, an application and a variable per use). Allowed, and then kept only if it pays for its
    body in the MDL score like any other: `(lam (* $0 $0))` (square: a new function of one primitive),
    `(fold #0 0 (lam (lam (+ $1 $0))))` (sum), and `(fn_0 3 #0)` or `(+ 1 #0)`, a constant fixed into
    another abstraction or primitive."""
    primitives, variables, repeated = 0, set(), False
    stack = [(pattern, 0)]
    while stack:
        p, depth = stack.pop()
        if p.__class__ is App:
            stack += [(p.f, depth), (p.x, depth)]
        elif p.__class__ is Lam:
            stack.append((p.body, depth + 1))
        elif p.__class__ in (Hole, Var):
            # a parameter (#i), or a variable named by the lambda that binds it (its index minus the depth)
            key = ("#", p.i) if p.__class__ is Hole else ("$", p.i - depth)
            repeated |= key in variables
            variables.add(key)
        else:
            primitives += 1
    return primitives > 1 or (primitives == 1 and repeated)


def compress(programs, iterations: int = 5, max_arity: int = 3, start: int = 0, rescore: int = 12,
             only_nontrivial: bool = True) -> Compression:
    """Accept the best abstraction while it shortens corpus + library; rewrite; repeat. Without the
    nontriviality rule the objective is exactly Stitch's: what the lab records to compare the two searches."""
    t0 = time.perf_counter()
    programs, library, steps = list(programs), [], []
    for k in range(iterations):
        before = sum(cost(p) for p in programs)
        best = None
        # the rule checked only until `rescore` candidates pass it (propose returns hundreds)
        candidates = ((pat, score) for pat, score in propose(programs, max_arity)
                      if not only_nontrivial or nontrivial(pat))
        for pat, (estimate, arity) in islice(candidates, rescore):
            if estimate <= 0:
                break
            try:
                inv = invent(f"fn_{start + k}", to_body(pat, arity))
            except TypeMismatch:
                continue
            new = [rewrite(p, pat, arity, inv) for p in programs]
            utility = before - sum(cost(p) for p in new) - cost(inv.body)
            if best is None or utility > best[0]:
                best = (utility, inv, new)
        if best is None or best[0] <= 0:
            break
        utility, inv, programs = best
        library.append(inv)
        uses = [i for i, p in enumerate(programs) if inv.name in symbols(show(p))]
        steps.append({"name": inv.name, "body": show(inv.body), "utility": utility, "uses": uses})
    return Compression(library, programs, time.perf_counter() - t0, steps)


# -----------------------------------------------------------------------------
# the Stitch backend


def stitch_compress(programs, iterations: int = 5, max_arity: int = 3, start: int = 0,
                    library: dict | None = None) -> Compression:
    """Run stitch_core.compress on the same programs and read its abstractions back as Invented."""
    import stitch_core

    t0 = time.perf_counter()
    res = stitch_core.compress([show(p) for p in programs], iterations=iterations, max_arity=max_arity,
                               previous_abstractions=start, abstraction_prefix="fn_", silent=True)
    seconds = time.perf_counter() - t0
    lib = dict(library or {})
    abstractions, steps = [], []
    for a in res.abstractions:
        holes = {f"#{i}": Hole(i) for i in range(a.arity)}
        pattern = parse(a.body, {**lib, **holes})
        inv = invent(a.name, to_body(pattern, a.arity))
        lib[a.name] = inv
        abstractions.append(inv)
    rewritten = [parse(p, lib) for p in res.rewritten]
    for inv in abstractions:
        uses = [i for i, p in enumerate(rewritten) if inv.name in symbols(show(p))]
        steps.append({"name": inv.name, "body": show(inv.body), "utility": None, "uses": uses})
    return Compression(abstractions, rewritten, seconds, steps)
