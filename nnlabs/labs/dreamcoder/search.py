"""Search: enumerate well-typed programs in order of description length under a probabilistic grammar.

The grammar is DreamCoder's unigram grammar: one log-weight w_j per production (a primitive or a
learned abstraction) and one for "use a variable". At a hole of type τ only the productions whose
return type unifies with τ compete, so

    P(j | τ) = exp(w_j) / Σ_{k fits τ} exp(w_k),    description length  DL(program) = Σ_holes -log P(j | τ).

Variables share one weight (split evenly among the variables that fit). Programs are built top-down in
eta-long form (a hole of arrow type is always a `lam`), arguments left to right, threading the type
substitution, exactly like DreamCoder's enumerator. A hole's programs depend only on its (type, context)
up to renaming of type variables, so each such `Hole` is solved once, as dynamic programming over
description length: it keeps its programs sorted by cost and grows them one MIN_COST step at a time,
building the programs of cost in [lo, lo + MIN_COST) from its children's lists (a step never needs its
own hole beyond what it already holds: every choice costs at least MIN_COST). The request's programs
are read off its body hole step by step, so they come out in non-decreasing DL, and a search stops
building as soon as its programs cap is met: the last step's programs are valued one at a time, as the
search asks for them (`settle`), so a search that stops mid-step never runs the rest.

Each program is compiled once, from its parts' closures, and its values on the hole's probe
environments are computed from its arguments' values (one application per environment; a subterm is
never run again). Observational-equivalence pruning: at a hole whose context is concrete data, the
probe environments are the task's own inputs for the outermost variable and fixed values for lambda
variables; a program that behaves like a cheaper one there (same values, same type bindings) is
dropped, so `(+ $0 1)` and `(+ 1 $0)` never both spawn whole families of programs.

The compute unit is "programs tried": complete programs run on the task's examples.
"""

from __future__ import annotations

import gc
import heapq
import math
import multiprocessing as mp
import random
import sys
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import NamedTuple

from nnlabs.labs import worker_processes
from nnlabs.labs.dreamcoder.dsl import (
    BOOL,
    FAILED,
    INT,
    App,
    EvalError,
    Invented,
    Lam,
    Prim,
    Program,
    TCon,
    TVar,
    Var,
    apply_all,
    apply_rows,
    arguments_and_return,
    base_grammar,
    compile_application,
    compile_lambda,
    compile_program,
    instantiate,
    is_arrow,
    resolve,
    run,
    shift,
    show,
    spine,
    type_vars,
    unify,
    walk,
)

# never enumerate beyond this description length
MAX_DL = 40.0
# probe environments for observational equivalence
N_PROBES = 10
# nats: a floor per choice, so a forced choice (P = 1) cannot recurse forever; also a hole's step
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
    productions: tuple = field(default_factory=base_grammar)
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


def plausible(t) -> bool:
    """Argument types worth enumerating: no lists of lists, no huge (higher-order, polymorphic) types
    (more than MAX_TYPE_SIZE constructors and variables)."""
    size, stack = 0, [(t, 0)]
    while stack:
        u, lists = stack.pop()
        size += 1
        if size > MAX_TYPE_SIZE:
            return False
        if u.__class__ is TCon:
            lists += u.name == "list"
            if lists > 1:
                return False
            stack += [(a, lists) for a in u.args]
    return True


def fitting(g: Grammar, req, sub: dict, n: int) -> list[tuple]:
    """(j, production, argument types, substitution, next id) for every production whose return type
    unifies with `req` (whatever the weights). Those that would need lists of lists or huge types are
    dropped: no task here needs them, and they are a large dead end (polymorphic abstractions can
    otherwise build ever-deeper types)."""
    found = []
    for j, p in enumerate(g.productions):
        args, ret, n2 = instance(p.tp, n)
        s2 = unify(ret, req, sub)
        if s2 is not None and all(plausible(resolve(a, s2)) for a in args):
            found.append((j, p, args, s2, n2))
    return found


def candidates(g: Grammar, w, req, env: tuple, sub: dict, n: int, fits: list | None = None) -> list[Candidate]:
    """Every production (`fits`: fitting(g, req, sub, n), if already known) or variable that can fill
    a hole of type `req`, sorted by cost = -log P(head | req), normalised over exactly these."""
    fits = fitting(g, req, sub, n) if fits is None else fits
    found = [(w[j], p, args, s2, n2, j) for j, p, args, s2, n2 in fits]
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


_INSTANCES: dict = {}


def instance(tp, n: int):
    """A production's type instantiated with fresh variables from n, as (argument types, return type,
    next id): every hole asks for every production, so each (type, n) is built once."""
    found = _INSTANCES.get((id(tp), n))
    if found is None or found[0] is not tp:
        t, n2 = instantiate(tp, n)
        # the type itself is kept, so its id is never reused while the entry lives
        found = _INSTANCES[(id(tp), n)] = (tp, *arguments_and_return(t), n2)
    return found[1:]


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


def close_over(sub: dict, k: int, extra=()) -> tuple[tuple, int, list]:
    """What a result computed for a canonical key did to the key's type variables t0..t{k-1}: their
    bindings under `sub` (() when it bound none), with every other variable renumbered k, k+1, ...;
    how many such fresh variables they (and the `extra` types) mention; and the extra types renamed."""
    binds = [resolve(TVar(i), sub) for i in range(k)]
    extra = [resolve(t, sub) for t in extra]
    seen = []
    for t in binds + extra:
        type_vars(t, seen)
    ren = {v: TVar(k + i) for i, v in enumerate(v for v in seen if v >= k)}
    if ren:
        binds, extra = [rename_vars(t, ren) for t in binds], [rename_vars(t, ren) for t in extra]
    unbound = all(t.__class__ is TVar and t.id == i for i, t in enumerate(binds))
    return () if unbound else tuple(binds), len(ren), extra


def rename_vars(t, mapping: dict):
    if t.__class__ is TVar:
        return mapping.get(t.id, t)
    return TCon(t.name, tuple(rename_vars(a, mapping) for a in t.args)) if t.args else t


# -----------------------------------------------------------------------------
# enumeration


class OutOfBudget(Exception):
    pass


class Entry(NamedTuple):
    """A program for a hole, independent of any substitution: its cost -log P, the program, the
    bindings it made for the hole's type variables t0..t{k-1} (() if none) and how many fresh
    variables those mention (numbered k, k+1, ...), its closure (env -> value), and its values on the
    hole's probe environments (None where the context is not concrete data; for a lambda, a list of
    functions made on first use); and for a lambda, its body's entry."""
    cost: float
    program: Program
    binds: tuple
    fresh: int
    fn: object
    vals: tuple | list | None
    body: Entry | None


class Head(NamedTuple):
    """A candidate at a hole, closed over like an Entry: its cost, the head and its closure, its
    argument types in the order they are filled and that order (None: their own), its bindings and
    fresh variables."""
    cost: float
    head: Program
    fn: object
    arg_types: list
    order: list | None
    binds: tuple
    fresh: int


class Hole:
    """The programs for one canonical (type, context), sorted by cost, complete below `covers`."""

    def __init__(self, req, env: tuple, k: int, probes: list | None, prune: bool):
        self.req, self.env, self.k, self.probes, self.prune = req, env, k, probes, prune
        self.entries: list[Entry] = []
        self.costs: list[float] = []
        # signatures (bindings, values) of the programs kept
        self.seen: set = set()
        self.covers = 0.0
        # a heap of (bound, seq, head, partial program or None), see Enumerator.combine
        self.frontier: list | None = None
        # programs built for the last step but not yet kept or pruned, dearest first (see settle)
        self.pending: list = []
        # an arrow type's body hole, and the variables its t0, t1... stand for
        self.body = None


# the candidates' shapes per (type, number of type variables) for the grammar last searched
SHAPES: dict = {"grammar": None}


class Enumerator:
    """All programs of a type in order of description length, with pruning and a deadline."""

    def __init__(self, g: Grammar, w, probe_inputs=(), deadline: float = math.inf, seed: int = 0,
                 prune_equivalent: bool = True):
        self.g, self.w, self.deadline, self.prune_equivalent = g, w, deadline, prune_equivalent
        self.probe_inputs = list(probe_inputs)[:N_PROBES]
        # lambda variables range over the task's own numbers (where a filter's predicate changes value)
        self.ints = sorted({v for x in self.probe_inputs for v in flatten(x)} | {0, 1, 2, 3})
        self.rng = random.Random(seed)
        self.probe_cache: dict = {}
        # what identifies the grammar's productions (an abstraction by its body)
        self.grammar = tuple(show(p.body) if isinstance(p, Invented) else p.name for p in g.productions)
        self.holes: dict = {}
        self.links: dict = {}
        # a counter that breaks ties in heaps and sorts: the order programs were built in
        self.seq = 0

    def probes(self, env: tuple) -> list:
        """Probe environments for a concrete env: lambda variables random, the outermost = task input
        (each distinct environment once)."""
        if env not in self.probe_cache:
            envs = []
            for i in range(max(N_PROBES, min(16, len(self.ints)))):
                # an int lambda variable sweeps the task's numbers (so gt? $0 2 and gt? $0 3 differ)
                inner = tuple(self.ints[(i + 3 * j) % len(self.ints)] if t == INT else
                              random_value(t, self.rng, self.ints) for j, t in enumerate(env[:-1]))
                outer = self.probe_inputs[i % len(self.probe_inputs)] if self.probe_inputs else None
                envs.append((*inner, outer if self.probe_inputs else random_value(env[-1], self.rng, self.ints)))
            self.probe_cache[env] = list(dict.fromkeys(envs))
        return self.probe_cache[env]

    def hole(self, req, env: tuple) -> tuple[Hole, list]:
        """The Hole of (req, env) up to renaming, and the type variables its t0, t1, ... stand for."""
        link = self.links.get((req, env))
        if link is None:
            key, free = canonical_key(req, env)
            h = self.holes.get(key)
            if h is None:
                concrete = bool(env) and all(is_ground(t) and not is_arrow(t) for t in env)
                h = self.holes[key] = Hole(*key, len(free), self.probes(key[1]) if concrete else None,
                                           self.prune_equivalent and concrete and not is_arrow(req))
            link = self.links[(req, env)] = (h, free)
        return link

    def extend(self, h: Hole, budget: float, lazy: bool = False) -> None:
        """Make h hold every program cheaper than budget, one MIN_COST step at a time; `lazy`: leave
        the last step's programs pending, for the caller to settle one by one."""
        if h.pending:
            self.settle(h)
        while h.covers < budget:
            if time.perf_counter() > self.deadline:
                raise OutOfBudget
            self.fill(h, h.covers, h.covers + MIN_COST)
            h.covers += MIN_COST
            if not (lazy and h.covers >= budget):
                self.settle(h)

    def fill(self, h: Hole, lo: float, hi: float) -> None:
        """Append h's programs of cost in [lo, hi), cheapest first (a lambda's), or leave them pending
        for `settle` (an application's). Every child hole it reads is complete below hi - MIN_COST <= lo,
        so h itself is never asked for more than it holds."""
        if is_arrow(h.req):
            if h.body is None:
                a, b = h.req.args
                h.body = self.hole(b, (a, *h.env))
            body, free = h.body
            self.extend(body, hi)
            for e in body.entries[bisect_left(body.costs, lo):bisect_left(body.costs, hi)]:
                binds, fresh = close_over(bind(e, free, {}, h.k)[0], h.k)[:2] if e.binds else ((), 0)
                # its values (one function per probe) are made when a program first uses it
                vals = None if h.probes is None else []
                h.entries.append(Entry(e.cost, Lam(e.program), binds, fresh, compile_lambda(e.fn), vals, e))
                h.costs.append(e.cost)
            return
        if h.frontier is None:
            # every head, not started yet: it costs at least its own choice and MIN_COST per argument
            h.frontier = []
            for head in self.heads(h):
                self.seq += 1
                h.frontier.append((head.cost + len(head.arg_types) * MIN_COST, self.seq, head, None))
            heapq.heapify(h.frontier)
        found = []
        self.combine(h, hi, found)
        # (cost, seq) decides, seq is unique; the cheapest last, to be popped first
        found.sort(reverse=True)
        h.pending = found

    def settle(self, h: Hole, one: bool = False) -> None:
        """Keep h's pending programs as entries, cheapest first; where h prunes, only those that
        behave unlike every program kept before (computing a program's values is most of its cost).
        `one`: stop after the first kept, so a search that stops mid-step never values the rest."""
        probes, seen, entries, costs, pending = h.probes, h.seen, h.entries, h.costs, h.pending
        while pending:
            cost, _, head, binds, fresh, args = pending.pop()
            if head.order is not None:
                args = unorder(args, head.order)
            vals = None
            if probes is not None:
                vals = apply_rows(head.head, head.fn, [a.vals if a.body is None else lambda_rows(a, probes)
                                                       for a in args], probes)
                if h.prune:
                    n = len(seen)
                    seen.add((binds, vals))
                    if len(seen) == n:
                        continue
            fn = compile_application(head.head, head.fn, [a.fn for a in args]) if args else head.fn
            entries.append(Entry(cost, apply_all(head.head, [a.program for a in args]), binds, fresh, fn, vals, None))
            costs.append(cost)
            if one:
                return

    def heads(self, h: Hole) -> list[Head]:
        """The candidates at h, closed over. What they are does not depend on the weights or the
        context, so it is kept from task to task while the grammar stays the same (SHAPES)."""
        key = (h.req, h.k)
        if SHAPES["grammar"] != self.grammar:
            SHAPES.update(grammar=self.grammar, fits={}, shapes={})
        fits = SHAPES["fits"].get(key)
        if fits is None:
            fits = SHAPES["fits"][key] = fitting(self.g, h.req, {}, h.k)
        shapes, out = SHAPES["shapes"], []
        for c in candidates(self.g, self.w, h.req, h.env, {}, h.k, fits):
            shape = shapes.get((key, c.production)) if c.production != VAR else None
            if shape is None:
                order = argument_order(c.arg_types)
                shape = (compile_program(c.head), order, *close_over(c.sub, h.k, [c.arg_types[i] for i in order]))
                if c.production != VAR:
                    shapes[(key, c.production)] = shape
            fn, order, binds, fresh, args = shape
            # None: the arguments are filled in their own order
            order = None if order == sorted(order) else order
            out.append(Head(c.cost, c.head, fn, args, order, binds, fresh))
        return out

    def argument(self, h: Hole, head: Head, j: int, sub: dict) -> tuple[Hole, list]:
        """The hole of head's argument j (in fill order) under `sub`, and its variables."""
        t, env = head.arg_types[j], h.env
        if sub:
            t = resolve(t, sub)
            if h.probes is None and h.k:
                env = tuple(resolve(x, sub) for x in env)
        return self.hole(t, env)

    def push(self, h: Hole, head: Head, j: int, sub: dict, n: int, spent: float, args: list, link=None):
        """A partial program: head with arguments 0..j-1 (in fill order) chosen, argument j to come
        from its hole (`link`, if known), starting at that hole's cheapest program."""
        child, free = link or self.argument(h, head, j, sub)
        state = [j, sub, n, spent, args, child, free, 0]
        self.seq += 1
        heapq.heappush(h.frontier, (self.bound(head, state), self.seq, head, state))

    @staticmethod
    def bound(head: Head, state: list) -> float:
        """The least a partial program can still cost: its head and arguments so far, the next program
        of argument j's hole (or, not built yet, what that hole covers), MIN_COST per later argument."""
        j, _, _, spent, _, child, _, i = state
        nxt = child.costs[i] if i < len(child.costs) else child.covers
        return head.cost + spent + nxt + (len(head.arg_types) - 1 - j) * MIN_COST

    def combine(self, h: Hole, hi: float, found: list) -> None:
        """Every program of h cheaper than hi and not built before, taken from the frontier of its
        partial programs (one heap over all heads), cheapest bound first: lazy best-first search, so
        a step touches only the partial programs that yield something."""
        frontier, k = h.frontier, h.k
        while frontier and frontier[0][0] < hi:
            _, _, head, state = heapq.heappop(frontier)
            if not head.arg_types:
                self.seq += 1
                found.append((head.cost, self.seq, head, head.binds, head.fresh, []))
                continue
            if state is None:
                sub = {i: t for i, t in enumerate(head.binds) if not (t.__class__ is TVar and t.id == i)}
                self.push(h, head, 0, sub, head.fresh + k, 0.0, [])
                continue
            j, sub, n, spent, args, child, free, i = state
            last = len(head.arg_types) - 1
            # what argument j may cost: every later argument costs at least MIN_COST
            top = hi - head.cost - spent - (last - j) * MIN_COST
            if i == 0 and j == last and h.prune and self.idle(h, head, j, sub):
                # the function is never called: its cheapest program stands for all of them
                while not child.entries and child.covers < top:
                    self.extend(child, child.covers + MIN_COST)
                e = child.entries[0] if child.entries else None
                if e is not None and e.cost < top:
                    binds, fresh = close_over(bind(e, free, sub, n)[0], k)[:2] if k else ((), 0)
                    self.seq += 1
                    found.append((head.cost + spent + e.cost, self.seq, head, binds, fresh, [*args, e]))
                    continue
                self.seq += 1
                heapq.heappush(frontier, (self.bound(head, state), self.seq, head, state))
                continue
            self.extend(child, top)
            entries = child.entries
            # an argument that binds nothing leaves the next argument's hole, and the bindings of the
            # whole program, the same for all of them
            unbound = None if k else ((), 0)
            following = None
            while i < len(entries) and entries[i].cost < top:
                e = entries[i]
                i += 1
                if j < last:
                    if e.binds:
                        self.push(h, head, j + 1, *bind(e, free, sub, n), spent + e.cost, [*args, e])
                    else:
                        if following is None:
                            following = self.argument(h, head, j + 1, sub)
                        self.push(h, head, j + 1, sub, n, spent + e.cost, [*args, e], following)
                else:
                    if not e.binds:
                        if unbound is None:
                            unbound = close_over(sub, k)[:2]
                        binds, fresh = unbound
                    else:
                        binds, fresh = close_over(bind(e, free, sub, n)[0], k)[:2]
                    self.seq += 1
                    found.append((head.cost + spent + e.cost, self.seq, head, binds, fresh, [*args, e]))
            state[-1] = i
            self.seq += 1
            heapq.heappush(frontier, (self.bound(head, state), self.seq, head, state))

    @staticmethod
    def idle(h: Hole, head: Head, j: int, sub: dict) -> bool:
        """Is head's argument j a function that is never called, whichever it is? map, filter and
        fold call theirs only on the list's elements; a list whose element type the program leaves
        free (`empty`, `(cdr empty)`, ...) is empty or fails, whatever the inputs (parametricity). Then
        every such function gives the same values, and, when its type shares no variable with what
        the hole's type variables are bound to, the same bindings too."""
        if not (head.head.__class__ is Prim and head.head.name in ("map", "filter", "fold")):
            return False
        # the function's type a -> b: is a still free?
        if walk(head.arg_types[j].args[0], sub).__class__ is not TVar:
            return False
        t = resolve(head.arg_types[j], sub)
        bound = []
        for i in range(h.k):
            type_vars(resolve(TVar(i), sub), bound)
        return not set(type_vars(t)) & set(bound)

    def close(self) -> None:
        """Drop the partial programs: a hole's frontier can point back at the hole itself (cdr's
        argument is a list like its result), and without these cycles plain reference counting frees
        the whole enumerator."""
        for h in self.holes.values():
            h.frontier = None

    def programs(self, req, env: tuple, sub: dict, n: int, budget: float):
        """Yield (cost, program, substitution, next type-variable id) for every program of type req in
        context env cheaper than budget, cheapest first, its bindings renamed into `sub`."""
        h, free = self.hole(resolve(req, sub), tuple(resolve(t, sub) for t in env))
        self.extend(h, budget)
        for e in h.entries:
            if e.cost >= budget:
                return
            yield (e.cost, e.program, *bind(e, free, sub, n))

    def stream(self, request, max_dl: float = MAX_DL):
        """Yield (DL, program, entry of its body) for every program of type `request` cheaper than
        max_dl, in non-decreasing DL: the request's lambdas around each program of its body hole."""
        args, ret = arguments_and_return(request)
        h, _ = self.hole(ret, tuple(reversed(args)))
        done = 0
        while True:
            if done == len(h.entries):
                # the next step's programs are valued one at a time, as they are asked for
                if not h.pending:
                    if h.covers >= max_dl:
                        return
                    self.extend(h, h.covers + MIN_COST, lazy=True)
                self.settle(h, one=True)
                continue
            e = h.entries[done]
            done += 1
            if e.cost >= max_dl:
                return
            p = e.program
            for _ in args:
                p = Lam(p)
            yield e.cost, p, e


def lambda_rows(e: Entry, probes: list) -> list:
    """A lambda's values on its hole's probe environments (functions), made on first use."""
    if not e.vals:
        e.vals.extend(remembering(e.body, env) for env in probes)
    return e.vals


def remembering(body: Entry, env: tuple):
    """(lam body) in env as a function that remembers its values: every program that maps, filters or
    folds with it calls it on the same few numbers, so most calls are repeats, and a repeat is a plain
    dict lookup (no Python frame)."""
    return Remembered(body, env).__getitem__


class Remembered(dict):
    """The values of (lam body) in env by argument, each computed on first use (`__missing__`); for a
    lambda of two arguments (fold's), the function of the second. A failure is not remembered (it may
    be the caller's step budget running out)."""
    __slots__ = ("body", "env")

    def __init__(self, body: Entry, env: tuple):
        super().__init__()
        self.body, self.env = body, env

    def __missing__(self, x):
        body, env = self.body, (x, *self.env)
        v = self[x] = body.fn(env) if body.body is None else remembering(body.body, env)
        return v


def bind(e: Entry, free: list, sub: dict, n: int) -> tuple[dict, int]:
    """Rename an entry's bindings into `sub` (its t_i is free[i], its fresh variables n, n+1, ...)."""
    if not e.binds:
        return sub, n
    k = len(free)
    back = {i: TVar(v) for i, v in enumerate(free)} | {k + i: TVar(n + i) for i in range(e.fresh)}
    s2 = dict(sub)
    for i, t in enumerate(e.binds):
        if not (t.__class__ is TVar and t.id == i):
            s2[free[i]] = rename_vars(t, back)
    return s2, n + e.fresh


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
    for dl, p, _ in Enumerator(g, w, probe_inputs, deadline).stream(request, max_dl):
        yield dl, p


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
    or error (an exception in the search, e.g. one too deep for Python: counted and reported, never
    taken for "unsolved")."""
    task, g, w, budget = args
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    start = time.perf_counter()
    tried, result = 0, {"name": task.name, "solved": False, "program": None, "dl": None, "ended": "exhausted"}
    en = Enumerator(g, w, [x for x, _ in task.examples], deadline=start + budget.seconds)
    # The search allocates many long-lived objects (every hole's programs, closures and values) and
    # frees none of them until it ends: Python's cycle collector would rescan them all again and again
    # (it took half the search's time), so it is paused while the search runs.
    collecting = gc.isenabled()
    gc.disable()
    try:
        known = known_outputs(en, task)
        for dl, p, e in en.stream(task.request):
            tried += 1
            # a value computed on a probe that is one of the examples' inputs already answers that example
            if not (e.vals and any(e.vals[r] is not FAILED and e.vals[r] != y for r, y in known)) and check(p, task):
                result.update(solved=True, program=show(p), dl=round(dl, 4), ended="solved")
                break
            if tried >= budget.programs:
                result["ended"] = "programs"
                break
    except OutOfBudget:
        result["ended"] = "deadline"
    except Exception as e:  # noqa: BLE001 - any failure of the search is counted, not taken for "unsolved"
        result.update(ended="error", error=f"{type(e).__name__} after {tried} programs: {e}"[:200])
    finally:
        en.close()
        # freeing the enumerator is part of the search's time
        del en
        if collecting:
            gc.enable()
    seconds = time.perf_counter() - start
    result.update(tried=tried, seconds=round(seconds, 4))
    return result


def known_outputs(en: Enumerator, task: Task) -> list[tuple[int, object]]:
    """(probe row, wanted output) for each example whose input is a probe environment of the request's
    body (a one-argument request: the probes are the examples' own inputs)."""
    args, _ = arguments_and_return(task.request)
    if len(args) != 1:
        return []
    rows = {env: r for r, env in enumerate(en.probes((args[0],)))}
    return [(rows[(x,)], y) for x, y in task.examples if (x,) in rows]


def solve_tasks(tasks, g: Grammar, weights, budget: SearchBudget, processes: int = 0, on_done=None) -> list[dict]:
    """Solve tasks in parallel, one task per worker at a time (default: `worker_processes()`); weights[i]
    is task i's. The programs cap is the budget, so the number of workers never changes a result.
    `on_done(result, n_done, n_tasks)`, if given, hears of each search as it ends (in task order)."""
    jobs = [(t, g, w, budget) for t, w in zip(tasks, weights)]
    processes = processes or worker_processes()
    if processes == 1 or len(jobs) <= 1:
        return collect(map(solve_task, jobs), len(jobs), on_done)
    with mp.get_context("fork").Pool(processes) as pool:
        return collect(pool.imap(solve_task, jobs, chunksize=1), len(jobs), on_done)


def collect(results, n: int, on_done) -> list[dict]:
    out = []
    for r in results:
        out.append(r)
        if on_done:
            on_done(r, len(out), n)
    return out


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

