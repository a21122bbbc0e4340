"""Search: enumerate well-typed programs in order of description length under a probabilistic grammar.

The grammar is DreamCoder's unigram grammar: one log-weight w_j per production (a primitive or a
learned abstraction) and one for "use a variable". At a hole of type τ only the productions whose
return type unifies with τ compete, so

    P(j | τ) = exp(w_j) / Σ_{k fits τ} exp(w_k),    description length  DL(program) = Σ_holes -log P(j | τ).

Variables share one weight (split evenly among the variables that fit). Programs are built top-down in
eta-long form (a hole of arrow type is always a `lam`), arguments left to right, threading the type
substitution, exactly like DreamCoder's enumerator. Iterative deepening over DL bands [lo, lo+1.5):
each band is collected, sorted, and tried, so programs come out in non-decreasing DL.

Observational-equivalence pruning: a subterm whose type and free variables are concrete is run on a few
probe environments (the task's own inputs for the outermost variable, fixed random values for lambda
variables); a subterm that behaves like an earlier one at the same hole is dropped, so `(+ $0 1)` and
`(+ 1 $0)` never both spawn whole families of programs.

The compute unit is "programs tried": complete programs run on the task's examples.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import random
import sys
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from nnlabs.labs.dreamcoder.dsl import (
    BASE_GRAMMAR,
    BOOL,
    INT,
    App,
    EvalError,
    Lam,
    Program,
    TCon,
    TVar,
    Var,
    apply_all,
    arguments_and_return,
    compile_program,
    instantiate,
    is_arrow,
    resolve,
    run,
    run_open,
    shift,
    show,
    spine,
    type_vars,
    unify,
)

# nats per iterative-deepening band
BAND = 1.5
# never enumerate beyond this description length
MAX_DL = 40.0
# probe environments for observational equivalence
N_PROBES = 10
# nats: a floor per choice, so a forced choice (P = 1) cannot recurse forever
MIN_COST = 0.25
# type constructors + variables in an argument type, e.g. (int -> int) -> list(int) is 7
MAX_TYPE_SIZE = 9
# the production index that stands for "a variable"
VAR = -1


@dataclass
class Task:
    name: str
    # the task's type, e.g. list(int) -> int
    request: object
    # [(input, output)] with lists as tuples
    examples: list
    # hidden reference program, if known (never used by search)
    program: str | None = None
    level: int = 0


@dataclass
class Grammar:
    """Productions + log-weights (the last weight is the variable's)."""
    productions: tuple = BASE_GRAMMAR
    log_weights: list = field(default_factory=list)

    def __post_init__(self):
        if not self.log_weights:
            self.log_weights = [0.0] * (len(self.productions) + 1)

    @property
    def size(self) -> int:
        return len(self.productions) + 1


# -----------------------------------------------------------------------------
# the candidates at one hole: the heart of both enumeration and likelihood


class Candidate(NamedTuple):
    """A production that can fill a hole: its cost -log P(head | hole), the head (a primitive, an
    abstraction or a variable), the types of the arguments it still needs, the type substitution that
    made it fit with the next fresh type-variable id, and its index in the grammar (VAR for variables)."""
    cost: float
    head: Program
    arg_types: list
    sub: dict
    next_id: int
    production: int


class Expansion(NamedTuple):
    """A complete program for a hole (or, for `Enumerator.arguments`, a list of programs for a list of
    holes), with its cost and the substitution and next type-variable id after building it."""
    cost: float
    program: object
    sub: dict
    next_id: int


class Closed(NamedTuple):
    """A memoised result for a canonical (type, context) key, independent of any substitution: the
    bindings it made for the key's type variables t0..t{k-1} and how many fresh ones it introduced."""
    cost: float
    item: object
    binds: list
    fresh: int


class Memo(NamedTuple):
    """A hole's programs, computed once for every cost below `covers` (sorted by cost)."""
    covers: float
    entries: list[Closed]


class Head(NamedTuple):
    """A candidate without its cost and substitution, as the candidate memo stores it."""
    head: Program
    arg_types: list
    production: int


def list_depth(t) -> int:
    if t.__class__ is TVar:
        return 0
    inner = max((list_depth(a) for a in t.args), default=0)
    return inner + 1 if t.name == "list" else inner


def type_size(t) -> int:
    return 1 if t.__class__ is TVar else 1 + sum(type_size(a) for a in t.args)


def plausible(t) -> bool:
    """Argument types worth enumerating: no lists of lists, no huge (higher-order, polymorphic) types."""
    return list_depth(t) <= 1 and type_size(t) <= MAX_TYPE_SIZE


def candidates(g: Grammar, w, req, env: tuple, sub: dict, n: int) -> list[Candidate]:
    """Every production that can fill a hole of type `req`, sorted by cost = -log P(head | req),
    normalised over exactly these candidates. Candidates that would need lists of lists or huge types
    are dropped: no task here needs them, and they are a large dead end (polymorphic abstractions can
    otherwise build ever-deeper types)."""
    found = []
    for j, p in enumerate(g.productions):
        t, n2 = instantiate(p.tp, n)
        args, ret = arguments_and_return(t)
        s2 = unify(ret, req, sub)
        if s2 is not None and all(plausible(resolve(a, s2)) for a in args):
            found.append((w[j], p, args, s2, n2, j))
    var_hits = []
    for i, t in enumerate(env):
        args, ret = arguments_and_return(resolve(t, sub))
        s2 = unify(ret, req, sub)
        if s2 is not None:
            var_hits.append((Var(i), args, s2))
    weights = [c[0] for c in found] + ([w[VAR]] if var_hits else [])
    if not weights:
        return []
    top = max(weights)
    log_z = top + math.log(sum(math.exp(x - top) for x in weights))
    out = [Candidate(max(MIN_COST, log_z - c[0]), *c[1:]) for c in found]
    if var_hits:
        each = max(MIN_COST, log_z - w[VAR] + math.log(len(var_hits)))
        out += [Candidate(each, v, args, s2, n, VAR) for v, args, s2 in var_hits]
    out.sort(key=lambda c: c.cost)
    return out


def canonical_key(req, env: tuple):
    """(req, env) with its type variables renamed t0..t{k-1} in order of appearance; and the
    original variable ids, so results computed for the key can be renamed back."""
    free = []
    for t in (req, *env):
        type_vars(t, free)
    if not free:
        return (req, env), free
    canon = {v: TVar(i) for i, v in enumerate(free)}
    return (rename_vars(req, canon), tuple(rename_vars(t, canon) for t in env)), free


def close_over(cost: float, item, sub: dict, k: int) -> Closed:
    """A result computed for a canonical key: the bindings it made for t0..t{k-1} and the number of
    fresh type variables it introduced (renumbered k, k+1, ...), so it no longer needs `sub`."""
    binds = [resolve(TVar(i), sub) for i in range(k)]
    extra = []
    for t in binds + (item.arg_types if isinstance(item, Head) else []):
        type_vars(t, extra)
    ren = {v: TVar(k + i) for i, v in enumerate(v for v in extra if v >= k)}
    if isinstance(item, Head):
        item = item._replace(arg_types=[rename_vars(resolve(a, sub), ren) for a in item.arg_types])
    return Closed(cost, item, [rename_vars(t, ren) for t in binds], len(ren))


def replay(entries: list[Closed], free: list, sub: dict, n: int, budget: float):
    """Yield an Expansion (its `program` a Program or a Head) for each cached entry cheaper than
    budget, renamed into `sub`."""
    k = len(free)
    for cost, item, binds, m in entries:
        if cost >= budget:
            return
        if k == 0 and m == 0:
            yield Expansion(cost, item, sub, n)
            continue
        back = {i: TVar(v) for i, v in enumerate(free)} | {k + i: TVar(n + i) for i in range(m)}
        s2 = dict(sub)
        for i, t in enumerate(binds):
            if t != TVar(i):
                s2[free[i]] = rename_vars(t, back)
        # a candidate's argument types mention the renamed variables
        if isinstance(item, Head):
            item = item._replace(arg_types=[rename_vars(a, back) for a in item.arg_types])
        yield Expansion(cost, item, s2, n + m)


def rename_vars(t, mapping: dict):
    if t.__class__ is TVar:
        return mapping.get(t.id, t)
    return TCon(t.name, tuple(rename_vars(a, mapping) for a in t.args)) if t.args else t


# -----------------------------------------------------------------------------
# enumeration


class OutOfBudget(Exception):
    pass


class Enumerator:
    """Depth-first enumeration of all programs with DL < upper, with pruning and a deadline."""

    def __init__(self, g: Grammar, w, probe_inputs=(), deadline: float = math.inf, seed: int = 0,
                 prune_equivalent: bool = True):
        self.g, self.w, self.deadline, self.prune_equivalent = g, w, deadline, prune_equivalent
        self.probe_inputs = list(probe_inputs)[:N_PROBES]
        # lambda variables range over the task's own numbers (where a filter's predicate changes value)
        self.ints = sorted({v for x in self.probe_inputs for v in flatten(x)} | {0, 1, 2, 3})
        self.rng = random.Random(seed)
        self.probe_cache: dict = {}
        self.cache: dict = {}
        self.memo: dict = {}
        self.nodes = 0

    def probes(self, env: tuple):
        """Probe environments for a concrete env: lambda variables random, the outermost = task input."""
        if env not in self.probe_cache:
            envs = []
            for i in range(max(N_PROBES, min(16, len(self.ints)))):
                # an int lambda variable sweeps the task's numbers (so gt? $0 2 and gt? $0 3 differ)
                inner = tuple(self.ints[(i + 3 * j) % len(self.ints)] if t == INT else
                              random_value(t, self.rng, self.ints) for j, t in enumerate(env[:-1]))
                outer = self.probe_inputs[i % len(self.probe_inputs)] if self.probe_inputs else None
                envs.append((*inner, outer if self.probe_inputs else random_value(env[-1], self.rng)))
            self.probe_cache[env] = envs
        return self.probe_cache[env]

    def signature(self, p: Program, env: tuple):
        fn, out = compile_program(p), []
        for e in self.probes(env):
            try:
                out.append(run_open(fn, e))
            except EvalError:
                out.append("error")
        return tuple(out)

    def programs(self, req, env: tuple, sub: dict, n: int, budget: float):
        """Yield an Expansion for every program of type req with cost < budget.
        A hole has the same answer wherever its (type, context) recurs up to renaming of type
        variables, so its programs are computed once (sorted by cost, on a MIN_COST grid of budgets)
        and replayed with the type variables renamed back: enumeration as dynamic programming."""
        self.nodes += 1
        if self.nodes & 255 == 0 and time.perf_counter() > self.deadline:
            raise OutOfBudget
        req = resolve(req, sub)
        key, free = canonical_key(req, tuple(resolve(t, sub) for t in env))
        memo = self.memo.get(key)
        if memo is None or memo.covers < budget:
            # The grid step must not exceed the cheapest choice: a child hole gets the rounded budget
            # minus at least MIN_COST, which then rounds to strictly less than the parent's. With a
            # coarser grid a choice of cost MIN_COST (a production the recognition model makes nearly
            # certain, e.g. cdr at a list hole) rounded back up to the same budget and the same hole,
            # recursing until Python's stack ran out.
            grid = math.ceil(budget / MIN_COST) * MIN_COST
            found = [close_over(c, p, s2, len(free)) for c, p, s2, _ in
                     self.expand(key[0], key[1], {}, len(free), grid)]
            memo = Memo(grid, self.prune(sorted(found, key=lambda f: f.cost), *key))
            self.memo[key] = memo
        yield from replay(memo.entries, free, sub, n, budget)

    def expand(self, req, env: tuple, sub: dict, n: int, budget: float):
        """One step of top-down expansion: a lambda for an arrow type, else each candidate head
        followed by all ways of filling its arguments."""
        if is_arrow(req):
            a, b = req.args
            for cost, body, s2, n2 in self.programs(b, (a, *env), sub, n, budget):
                yield Expansion(cost, Lam(body), s2, n2)
            return
        for cost, head, arg_types, s2, n2, _ in self.candidates(req, env, sub, n, budget):
            order = argument_order(arg_types)
            for acost, args, s3, n3 in self.arguments([arg_types[i] for i in order], env, s2, n2, budget - cost):
                yield Expansion(cost + acost, apply_all(head, unorder(args, order)), s3, n3)

    def prune(self, found, req, env):
        """Observational equivalence, for holes whose type and context are concrete data: walking the
        programs cheapest first, keep one per behaviour on the probe environments."""
        concrete = env and is_ground(req) and not is_arrow(req) and all(is_ground(t) and not is_arrow(t) for t in env)
        if not (self.prune_equivalent and concrete):
            return found
        seen, kept = set(), []
        for f in found:
            sig = self.signature(f.item, env)
            if sig not in seen:
                seen.add(sig)
                kept.append(f)
        return kept

    def candidates(self, req, env, sub, n, budget):
        """candidates() cheaper than `budget`, memoised up to renaming of type variables."""
        key, free = canonical_key(req, env)
        if key not in self.cache:
            found = [close_over(c.cost, Head(c.head, c.arg_types, c.production), c.sub, len(free))
                     for c in candidates(self.g, self.w, key[0], key[1], {}, len(free))]
            self.cache[key] = found
        for cost, (head, args, j), s2, n2 in replay(self.cache[key], free, sub, n, budget):
            yield Candidate(cost, head, [resolve(a, s2) for a in args], s2, n2, j)

    def arguments(self, types, env, sub, n, budget):
        """Every way to fill the holes `types` left to right, as Expansions whose `program` is the list."""
        if not types:
            yield Expansion(0.0, [], sub, n)
            return
        for c1, p1, s1, n1 in self.programs(types[0], env, sub, n, budget):
            for c2, rest, s2, n2 in self.arguments(types[1:], env, s1, n1, budget - c1):
                yield Expansion(c1 + c2, [p1, *rest], s2, n2)


def argument_order(arg_types) -> list[int]:
    """Fill data arguments before function arguments: `(map f xs)` enumerates xs first, so by the time
    the lambda f is built its argument type is known (and its body can be pruned by behaviour)."""
    return sorted(range(len(arg_types)), key=lambda i: is_arrow(arg_types[i]))


def unorder(args, order) -> list:
    out = [None] * len(args)
    for a, i in zip(args, order):
        out[i] = a
    return out


def is_ground(t) -> bool:
    return t.__class__ is TCon and all(is_ground(a) for a in t.args)


def flatten(x):
    if isinstance(x, tuple):
        for v in x:
            yield from flatten(v)
    elif isinstance(x, int) and not isinstance(x, bool):
        yield x


def random_value(t, rng: random.Random, ints):
    if t == INT:
        return rng.choice(ints)
    if t == BOOL:
        return rng.random() < 0.5
    if t.__class__ is TCon and t.name == "list":
        return tuple(random_value(t.args[0], rng, ints) for _ in range(rng.randint(0, 5)))
    return 0


def enumerate_programs(g: Grammar, w, request, probe_inputs=(), deadline=math.inf, max_dl=MAX_DL):
    """Yield (DL, program) for every program of type `request`, in non-decreasing DL."""
    en = Enumerator(g, w, probe_inputs, deadline)
    lower = 0.0
    while lower < max_dl:
        band = [(c, show(p), p) for c, p, _, _ in en.programs(request, (), {}, 0, lower + BAND) if c >= lower]
        band.sort(key=lambda b: (b[0], b[1]))
        for c, _, p in band:
            yield c, p
        lower += BAND


# -----------------------------------------------------------------------------
# solving a task under a budget


@dataclass(frozen=True, kw_only=True)
class SearchBudget:
    """What one task's search may spend: programs tried (the budget) and wall-clock seconds (a
    safety net set well above it, so results don't depend on the machine's speed)."""
    programs: int = 20_000
    seconds: float = 5.0


def check(p: Program, task: Task) -> bool:
    fn = compile_program(p)
    for x, y in task.examples:
        try:
            if run(fn, x) != y:
                return False
        except EvalError:
            return False
    return True


def solve_task(args) -> dict:
    """Enumerate for one task until a program fits every example or the budget runs out. `ended` says
    why the search stopped: solved, programs (the cap), deadline, exhausted (nothing left below MAX_DL)
    or error (a search too deep for Python: counted and reported, never taken for "unsolved")."""
    task, g, w, budget = args
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    start = time.perf_counter()
    tried, result = 0, {"name": task.name, "solved": False, "program": None, "dl": None, "ended": "exhausted"}
    try:
        for dl, p in enumerate_programs(g, w, task.request, [x for x, _ in task.examples],
                                        deadline=start + budget.seconds):
            tried += 1
            if check(p, task):
                result.update(solved=True, program=show(p), dl=round(dl, 4), ended="solved")
                break
            if tried >= budget.programs:
                result["ended"] = "programs"
                break
    except OutOfBudget:
        result["ended"] = "deadline"
    except RecursionError as e:
        result.update(ended="error", error=f"RecursionError after {tried} programs: {e}"[:200])
    seconds = time.perf_counter() - start
    result.update(tried=tried, seconds=round(seconds, 4))
    return result


def solve_tasks(tasks, g: Grammar, weights, budget: SearchBudget, processes: int = 0) -> list[dict]:
    """Solve tasks in parallel over all cores (one task per worker at a time); weights[i] is task i's."""
    jobs = [(t, g, w, budget) for t, w in zip(tasks, weights)]
    processes = processes or mp.cpu_count()
    if processes == 1 or len(jobs) <= 1:
        return [solve_task(j) for j in jobs]
    with mp.get_context("fork").Pool(processes) as pool:
        return pool.map(solve_task, jobs, chunksize=1)


# -----------------------------------------------------------------------------
# likelihood summaries (for fitting weights and training the recognition model) and sampling


def eta_expand(p: Program) -> Program:
    """A function-typed program that is not a lambda (e.g. `(fn_1 1)` after rewriting) becomes
    `(lam ((fn_1 1) $0))`, the eta-long form the enumerator would have built."""
    return p if p.__class__ is Lam else Lam(App(shift(p, 1), Var(0)))


class Choice(NamedTuple):
    """One node of a program's derivation: the production chosen, every production that could have
    been (the normaliser), and the extra cost of picking one variable among several (log #variables)."""
    chosen: int
    possible: list
    extra: float


def summary(g: Grammar, p: Program, request) -> list[Choice] | None:
    """The choices that build p, or None if p cannot be built.
    log P(p) = Σ_nodes [w_chosen - logsumexp_{k in candidates} w_k] - extra."""
    out = []

    def go(p, req, env, sub, n):
        req = resolve(req, sub)
        if is_arrow(req):
            p = eta_expand(p)
            a, b = req.args
            return go(p.body, b, (a, *env), sub, n)
        head, args = spine(p)
        cands = candidates(g, g.log_weights, req, env, sub, n)
        js = sorted({c.production for c in cands})
        for _, h, arg_types, s2, n2, j in cands:
            if h == head and len(arg_types) == len(args):
                n_vars = sum(1 for c in cands if c.production == VAR)
                out.append(Choice(j, js, math.log(n_vars) if j == VAR else 0.0))
                for i in argument_order(arg_types):
                    r = go(args[i], arg_types[i], env, s2, n2)
                    if r is None:
                        return None
                    s2, n2 = r
                return s2, n2
        return None

    return out if go(p, request, (), {}, 0) is not None else None


def log_prior(w, summ) -> float:
    total = 0.0
    for j, js, extra in summ:
        top = max(w[k] for k in js)
        total += w[j] - top - math.log(sum(math.exp(w[k] - top) for k in js)) - extra
    return total


def fit_unigram(g: Grammar, summaries, strength: float = 5.0) -> list:
    """DreamCoder's closed-form estimate: θ_j ≈ (uses_j) / (times j was possible), shrunk to the
    mean rate r̄ with `strength` pseudo-observations:  w_j = log((a_j + s·r̄) / (p_j + s))."""
    uses, possible = [0.0] * g.size, [0.0] * g.size
    for summ in summaries:
        for j, js, _ in summ:
            uses[j] += 1
            for k in js:
                possible[k] += 1
    rate = sum(uses) / max(1.0, sum(possible))
    return [math.log((a + strength * rate) / (b + strength)) if sum(possible) else 0.0
            for a, b in zip(uses, possible)]


def sample_program(g: Grammar, w, request, rng: random.Random, max_depth: int = 6) -> Program | None:
    """Draw a program from the grammar (for dreams); None if it grew too deep."""

    def go(req, env, sub, n, depth):
        req = resolve(req, sub)
        if is_arrow(req):
            a, b = req.args
            r = go(b, (a, *env), sub, n, depth)
            return None if r is None else (Lam(r[0]), r[1], r[2])
        if depth > max_depth:
            return None
        cands = candidates(g, w, req, env, sub, n)
        if not cands:
            return None
        cost, head, arg_types, s2, n2, _ = rng.choices(cands, weights=[math.exp(-c.cost) for c in cands])[0]
        order, args = argument_order(arg_types), []
        for i in order:
            r = go(arg_types[i], env, s2, n2, depth + 1)
            if r is None:
                return None
            a, s2, n2 = r
            args.append(a)
        return apply_all(head, unorder(args, order)), s2, n2

    r = go(request, (), {}, 0, 0)
    return None if r is None else r[0]

