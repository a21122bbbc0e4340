"""The DSL: a typed lambda calculus over lists of ints, close to DreamCoder's list primitives.

Three things live here, each small:
  * types      — `int`, `bool`, `list(t)`, arrows `a -> b`, type variables; unification with an occurs
                 check, and Hindley–Milner style inference (polymorphic primitives are instantiated fresh).
  * programs   — `Prim` (a named primitive), `Invented` (a learned abstraction: a closed program with a
                 name), `Var` (a de Bruijn index: $0 is the nearest enclosing lambda), `Lam`, `App`.
                 They print and parse as s-expressions: `(lam (map (lam (+ $0 1)) $0))`.
  * evaluation — programs compile to Python closures; every application ticks a shared step counter,
                 lists and ints are bounded, recursion depth is capped, so a looping or exploding program
                 raises `EvalError` (counted as a failure), never hangs the run. Programs are parsed,
                 never `eval`-ed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

# -----------------------------------------------------------------------------
# types


@dataclass(frozen=True)
class TVar:
    id: int

    def __str__(self):
        return f"t{self.id}"


@dataclass(frozen=True)
class TCon:
    name: str
    args: tuple = ()

    def __str__(self):
        if self.name == "->":
            a, b = self.args
            return f"({a}) -> {b}" if a.__class__ is TCon and a.name == "->" else f"{a} -> {b}"
        return self.name if not self.args else f"{self.name}({', '.join(map(str, self.args))})"


INT, BOOL = TCon("int"), TCon("bool")


def tlist(t) -> TCon:
    return TCon("list", (t,))


def arrow(*ts):
    """arrow(a, b, c) = a -> (b -> c): every function is curried."""
    return ts[0] if len(ts) == 1 else TCon("->", (ts[0], arrow(*ts[1:])))


def is_arrow(t) -> bool:
    return t.__class__ is TCon and t.name == "->"


def arguments_and_return(t):
    """a -> b -> c  gives ([a, b], c)."""
    args = []
    while is_arrow(t):
        args.append(t.args[0])
        t = t.args[1]
    return args, t


def walk(t, sub: dict):
    while t.__class__ is TVar and t.id in sub:
        t = sub[t.id]
    return t


def resolve(t, sub: dict):
    """Apply the substitution all the way down (a part it leaves unchanged is returned as it was)."""
    t = walk(t, sub)
    if t.__class__ is TCon and t.args:
        args = tuple(resolve(a, sub) for a in t.args)
        return t if args == t.args else TCon(t.name, args)
    return t


def occurs(v: int, t, sub) -> bool:
    t = walk(t, sub)
    if t.__class__ is TVar:
        return t.id == v
    return any(occurs(v, a, sub) for a in t.args)


def unify(a, b, sub: dict) -> dict | None:
    """Most general unifier extending `sub` (a new dict), or None if a and b cannot be made equal."""
    a, b = walk(a, sub), walk(b, sub)
    if a == b:
        return sub
    if a.__class__ is TVar:
        if occurs(a.id, b, sub):
            return None
        return {**sub, a.id: b}
    if b.__class__ is TVar:
        return unify(b, a, sub)
    if a.name != b.name or len(a.args) != len(b.args):
        return None
    for x, y in zip(a.args, b.args):
        sub = unify(x, y, sub)
        if sub is None:
            return None
    return sub


def type_vars(t, acc=None) -> list[int]:
    acc = [] if acc is None else acc
    if t.__class__ is TVar:
        if t.id not in acc:
            acc.append(t.id)
    else:
        for a in t.args:
            type_vars(a, acc)
    return acc


def instantiate(t, next_id: int):
    """Replace a type scheme's variables by fresh ones numbered from next_id; return (type, next_id)."""
    fresh = {v: TVar(next_id + i) for i, v in enumerate(type_vars(t))}

    def go(u):
        if u.__class__ is TVar:
            return fresh[u.id]
        return TCon(u.name, tuple(go(a) for a in u.args)) if u.args else u

    return go(t), next_id + len(fresh)


def canonical(t):
    """Rename type variables to t0, t1, ... in order of appearance (for printing and comparing)."""
    return instantiate(t, 0)[0]


# -----------------------------------------------------------------------------
# programs


class Program:
    __slots__ = ()

    def __str__(self):
        return show(self)

    __repr__ = __str__


@dataclass(frozen=True, repr=False)
class Prim(Program):
    name: str
    tp: object = field(compare=False, hash=False)
    value: object = field(compare=False, hash=False)

    def __reduce__(self):  # pickle by name: primitive values are Python closures
        return (primitive, (self.name,))


@dataclass(frozen=True, repr=False)
class Invented(Program):
    """A learned abstraction: a closed program `body` used like a primitive under `name`."""
    name: str
    body: Program = field(compare=False, hash=False)
    tp: object = field(compare=False, hash=False, default=None)


@dataclass(frozen=True, repr=False)
class Var(Program):
    i: int


@dataclass(frozen=True, repr=False)
class Lam(Program):
    body: Program


@dataclass(frozen=True, repr=False)
class App(Program):
    f: Program
    x: Program


def spine(p: Program):
    """(f a b) = App(App(f, a), b)  gives (f, [a, b])."""
    args = []
    while p.__class__ is App:
        args.append(p.x)
        p = p.f
    return p, args[::-1]


def apply_all(f: Program, args) -> Program:
    for a in args:
        f = App(f, a)
    return f


def show(p: Program) -> str:
    if p.__class__ is Var:
        return f"${p.i}"
    if p.__class__ is Lam:
        return f"(lam {show(p.body)})"
    if p.__class__ is App:
        f, args = spine(p)
        return "(" + " ".join(show(a) for a in [f, *args]) + ")"
    return p.name


def size(p: Program) -> int:
    """Number of leaves (primitives, inventions, variables): the 'program length in library tokens'."""
    if p.__class__ is App:
        return size(p.f) + size(p.x)
    if p.__class__ is Lam:
        return size(p.body)
    return 1


def shift(p: Program, by: int, depth: int = 0) -> Program:
    """Add `by` to every variable free at `depth` (de Bruijn shifting)."""
    if p.__class__ is Var:
        return Var(p.i + by) if p.i >= depth else p
    if p.__class__ is Lam:
        return Lam(shift(p.body, by, depth + 1))
    if p.__class__ is App:
        return App(shift(p.f, by, depth), shift(p.x, by, depth))
    return p


def free_vars(p: Program, depth: int = 0) -> set:
    """Indices (relative to the outside of p) of variables free in p."""
    if p.__class__ is Var:
        return {p.i - depth} if p.i >= depth else set()
    if p.__class__ is Lam:
        return free_vars(p.body, depth + 1)
    if p.__class__ is App:
        return free_vars(p.f, depth) | free_vars(p.x, depth)
    return set()


# -----------------------------------------------------------------------------
# s-expressions: print above, parse here (bounded: untrusted text)

MAX_TOKENS, MAX_DEPTH = 4000, 100


class ParseError(ValueError):
    pass


def tokenize(text: str) -> list[str]:
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    if len(tokens) > MAX_TOKENS:
        raise ParseError(f"program has more than {MAX_TOKENS} tokens")
    return tokens


def symbols(program: str) -> list[str]:
    """The names a printed program is made of — primitives, abstractions, variables, `lam` — in order."""
    return program.replace("(", " ").replace(")", " ").split()


def library_calls(program: str, bodies: dict) -> list[str]:
    """The abstractions a printed program calls and, depth first, those their bodies call, each once in the
    order first met (`bodies`: name -> printed body): fn_11 = (map (lam (fn_3 $0))) means little to a
    reader without fn_3 = (+ (fn_0 1)) and fn_0 = (+ 1)."""
    calls: list[str] = []

    def visit(text: str) -> None:
        for name in symbols(text):
            if name in bodies and name not in calls:
                calls.append(name)
                visit(bodies[name])

    visit(program)
    return calls


def parse(text: str, library: dict | None = None) -> Program:
    """Parse an s-expression; `library` maps names of inventions to `Invented` (primitives are built in)."""
    tokens, pos = tokenize(text), 0

    def atom(tok):
        if tok.startswith("$") and tok[1:].isdigit():
            return Var(int(tok[1:]))
        if library and tok in library:
            return library[tok]
        if tok in PRIMITIVES:
            return PRIMITIVES[tok]
        raise ParseError(f"unknown symbol {tok!r}")

    def expr(depth):
        nonlocal pos
        if depth > MAX_DEPTH:
            raise ParseError("program nested too deeply")
        if pos >= len(tokens):
            raise ParseError("unexpected end of program")
        tok = tokens[pos]
        pos += 1
        if tok == ")":
            raise ParseError("unexpected ')'")
        if tok != "(":
            return atom(tok)
        if pos < len(tokens) and tokens[pos] in ("lam", "lambda"):
            pos += 1
            body = expr(depth + 1)
            close()
            return Lam(body)
        items = []
        while pos < len(tokens) and tokens[pos] != ")":
            items.append(expr(depth + 1))
        close()
        if not items:
            raise ParseError("empty application '()'")
        return apply_all(items[0], items[1:])

    def close():
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ParseError("missing ')'")
        pos += 1

    p = expr(0)
    if pos != len(tokens):
        raise ParseError("trailing tokens after the program")
    return p


# -----------------------------------------------------------------------------
# type inference


class TypeMismatch(TypeError):
    pass


def infer(p: Program, env: tuple = (), sub: dict | None = None, next_id: int = 1000):
    """Algorithm W over de Bruijn terms: returns (type, substitution, next_id). `env[i]` types $i."""
    sub = {} if sub is None else sub

    def go(p, env, sub, n):
        if p.__class__ is Var:
            if p.i >= len(env):
                raise TypeMismatch(f"unbound variable ${p.i}")
            return env[p.i], sub, n
        if p.__class__ is Lam:
            a = TVar(n)
            b, sub, n = go(p.body, (a, *env), sub, n + 1)
            return arrow(a, b), sub, n
        if p.__class__ is App:
            tf, sub, n = go(p.f, env, sub, n)
            tx, sub, n = go(p.x, env, sub, n)
            r = TVar(n)
            s2 = unify(tf, arrow(tx, r), sub)
            if s2 is None:
                raise TypeMismatch(f"cannot apply {show(p.f)} : {resolve(tf, sub)} to {show(p.x)} : {resolve(tx, sub)}")
            return r, s2, n + 1
        t, n = instantiate(p.tp, n)
        return t, sub, n

    t, sub, next_id = go(p, env, sub, next_id)
    return resolve(t, sub), sub, next_id


def typeof(p: Program):
    """The most general type of a closed program, variables renamed t0, t1, ... ; raises TypeMismatch."""
    return canonical(infer(p)[0])


def invent(name: str, body: Program) -> Invented:
    return Invented(name, body, typeof(body))


# -----------------------------------------------------------------------------
# evaluation under a budget


class EvalError(Exception):
    """The program failed on this input: an error, or it ran out of steps, time, list or int range."""


MAX_LIST, MAX_INT = 64, 10**6


class StepBudget:
    """One shared step counter: every application ticks it, and a list operation is charged the elements
    it touches (a map over 3,000 elements costs 3,000 steps, not one), so the step limit bounds the time
    whatever the input's size. The clock is read at least every 1024 steps (at `check_at`)."""
    __slots__ = ("steps", "limit", "deadline", "check_at")

    def __init__(self):
        self.steps, self.limit, self.deadline, self.check_at = 0, 0, 0.0, 0


# the one counter every evaluation shares; an instance, because setting a class's attribute also empties
# the interpreter's attribute cache for that class, and charge() sets this one ~10^5 times a second
BUDGET = StepBudget()


def tick():
    BUDGET.steps += 1
    if BUDGET.steps >= BUDGET.check_at:
        _check_budget()


def charge(n: int):
    """A list operation that touches n elements costs n steps."""
    BUDGET.steps += n
    if BUDGET.steps >= BUDGET.check_at:
        _check_budget()


def _check_budget():
    if BUDGET.steps > BUDGET.limit:
        raise EvalError("step budget exhausted")
    if time.perf_counter() > BUDGET.deadline:
        raise EvalError("time budget exhausted")
    BUDGET.check_at = min(BUDGET.limit + 1, (BUDGET.steps // 1024 + 1) * 1024)


def compile_program(p: Program):
    """Program -> Python function of the environment (a tuple, $0 first)."""
    if p.__class__ is Var:
        i = p.i
        return lambda env: env[i]
    if p.__class__ is Lam:
        return compile_lambda(compile_program(p.body))
    if p.__class__ is Prim:
        value = p.value
        return lambda env: value
    if p.__class__ is Invented:
        return compile_invented(p)
    head, args = spine(p)
    return compile_application(head, compile_program(head), [compile_program(a) for a in args])


def compile_lambda(body):
    """(lam body) from the compiled body."""
    return lambda env: lambda x: body((x, *env))


def compile_application(head: Program, fh, fargs: list):
    """(head a1 ... ak) from the compiled head and arguments: the enumerator builds each program's
    closure from its parts' closures, never recompiling a subterm."""
    if head.__class__ is Prim and head.name == "if" and len(fargs) == 3:
        c, t, e = fargs  # lazy: only the branch taken runs

        def run_if(env):
            tick()
            return t(env) if c(env) else e(env)

        return run_if

    def run_app(env):
        tick()
        v = fh(env)
        for a in fargs:
            v = v(a(env))
        return v

    return run_app


_INVENTED_CACHE: dict = {}


def compile_invented(p: Invented):
    key = (p.name, show(p.body))
    if key not in _INVENTED_CACHE:
        _INVENTED_CACHE[key] = compile_program(p.body)
    body = _INVENTED_CACHE[key]
    return lambda env: body(())  # closed: ignores the environment


def guarded(thunk, steps: int, seconds: float):
    """Run thunk() under a fresh step and time budget; any failure becomes EvalError."""
    BUDGET.steps, BUDGET.limit, BUDGET.deadline = 0, steps, time.perf_counter() + seconds
    BUDGET.check_at = min(steps + 1, 1024)
    try:
        return thunk()
    except EvalError:
        raise
    except (RecursionError, ArithmeticError, IndexError, TypeError, ValueError) as e:
        raise EvalError(type(e).__name__) from None


def run(fn, x, steps: int = 20_000, seconds: float = 0.05):
    """Apply a compiled closed program to one input under the budget."""
    return guarded(lambda: fn(())(x), steps, seconds)


def run_open(fn, env: tuple, steps: int = 2_000, seconds: float = 0.01):
    """Evaluate a compiled open term in an environment (for observational-equivalence probes)."""
    return guarded(lambda: fn(env), steps, seconds)


class Failed:
    """The value of a term that failed (EvalError) on one environment: equal only to itself."""

    def __repr__(self):
        return "FAILED"


FAILED = Failed()


def apply_rows(head: Program, fh, columns: list, envs: list, steps: int = 2_000, seconds: float = 0.01) -> tuple:
    """The values of (head a1 ... ak) in each environment envs[r], given each argument's value there
    (columns[i][r], FAILED where it failed): what compile_application's closure returns, without
    running the arguments again. Each row runs under its own step budget, like run_open (all rows
    under one clock of `seconds` per row)."""
    if head.__class__ is Prim and head.name == "if" and len(columns) == 3:
        # lazy: a failed branch that is not taken does not fail the `if`
        return tuple(FAILED if c is FAILED else t if c else e for c, t, e in zip(*columns))
    budget = BUDGET
    budget.limit, budget.deadline = steps, time.perf_counter() + seconds * len(envs)
    first = min(steps + 1, 1024)
    value = head.value if head.__class__ is Prim else None
    if value is not None and head.name in FIRST_ORDER:
        # no function argument, so no row runs long: every row under one budget, no per-row
        # bookkeeping; a row that fails (or all of them running out of steps) sends the whole call
        # down the per-row path, which decides row by row
        budget.steps, budget.check_at = 0, first
        try:
            if len(columns) == 1:
                return tuple(FAILED if a is FAILED else value(a) for a in columns[0])
            if len(columns) == 2:
                return tuple(FAILED if a is FAILED or b is FAILED else value(a)(b) for a, b in zip(*columns))
        except (EvalError, ArithmeticError, IndexError, TypeError, ValueError):
            pass
    out = []
    for env, args in zip(envs, zip(*columns) if columns else [()] * len(envs)):
        if FAILED in args:
            out.append(FAILED)
            continue
        # the application's own step (compile_application ticks once)
        budget.steps, budget.check_at = 1, first
        try:
            v = fh(env) if value is None else value
            for a in args:
                v = v(a)
            out.append(v)
        except (EvalError, RecursionError, ArithmeticError, IndexError, TypeError, ValueError):
            out.append(FAILED)
    return tuple(out)


def evaluate(p: Program, x, **budget):
    return run(compile_program(p), x, **budget)


# -----------------------------------------------------------------------------
# the primitives: curried Python functions with checks (lists are tuples, so values hash)


def _int(v):
    if not -MAX_INT <= v <= MAX_INT:
        raise EvalError("integer out of range")
    return v


def _list(xs):
    if len(xs) > MAX_LIST:
        raise EvalError("list too long")
    return xs


def _map(f):
    def over(xs):
        charge(len(xs))
        return tuple(map(f, xs))
    return over


def _filter(f):
    def over(xs):
        charge(len(xs))
        return tuple(filter(f, xs))
    return over


def _fold(xs):
    """fold xs init f = f x1 (f x2 (... (f xn init))): a right fold, as in DreamCoder."""
    def with_init(init):
        def with_f(f):
            # one step per element, charged up front (as map's and filter's are)
            charge(len(xs))
            acc = init
            for x in reversed(xs):
                acc = f(x)(acc)
            return acc
        return with_f
    return with_init


def _range(n):
    if n < 0 or n > MAX_LIST:
        raise EvalError("range out of bounds")
    charge(n)
    return tuple(range(n))


def _index(i):
    def get(xs):
        if not 0 <= i < len(xs):
            raise EvalError("index out of range")
        return xs[i]
    return get


def _car(xs):
    if not xs:
        raise EvalError("car of empty list")
    return xs[0]


def _cdr(xs):
    if not xs:
        raise EvalError("cdr of empty list")
    charge(len(xs))  # the rest is copied
    return xs[1:]


def _cons(x):
    def onto(xs):
        charge(len(xs))  # the list is copied
        return _list((x, *xs))
    return onto


def _mod(a):
    def by(b):
        if b == 0:
            raise EvalError("mod by zero")
        return a % b
    return by


def _fix(f):
    """fix f x = f (fix f) x: general recursion (not in the search grammar; the budget must stop it)."""
    def rec(x):
        tick()
        return f(rec)(x)
    return rec


def _if(c):
    return lambda t: lambda e: t if c else e  # only reached when `if` is partially applied


def _unfold(x):
    """unfold x stop f next = [] if stop x, else cons (f x) (unfold (next x) stop f next) — DreamCoder's."""
    def with_stop(stop):
        def with_f(f):
            def with_next(nxt):
                out, seed, seen = [], x, set()
                while not stop(seed):
                    # the functions are pure: a seed seen before comes round again and again, so the
                    # list would only end at MAX_LIST; fail now (most unfolds the search tries loop)
                    if seed in seen:
                        raise EvalError("unfold loops forever")
                    seen.add(seed)
                    tick()
                    out.append(f(seed))
                    _list(out)
                    seed = nxt(seed)
                return tuple(out)
            return with_next
        return with_f
    return with_stop


def _is_prime(n):
    charge(max(0, math.isqrt(abs(n))))
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _is_square(n):
    return n >= 0 and math.isqrt(n) ** 2 == n


t0, t1 = TVar(0), TVar(1)
_PRIMS = [
    ("map", arrow(arrow(t0, t1), tlist(t0), tlist(t1)), _map),
    ("filter", arrow(arrow(t0, BOOL), tlist(t0), tlist(t0)), _filter),
    ("fold", arrow(tlist(t0), t1, arrow(t0, t1, t1), t1), _fold),
    ("range", arrow(INT, tlist(INT)), _range),
    ("length", arrow(tlist(t0), INT), len),
    ("index", arrow(INT, tlist(t0), t0), _index),
    ("cons", arrow(t0, tlist(t0), tlist(t0)), _cons),
    ("car", arrow(tlist(t0), t0), _car),
    ("cdr", arrow(tlist(t0), tlist(t0)), _cdr),
    ("empty", tlist(t0), ()),
    ("empty?", arrow(tlist(t0), BOOL), lambda xs: len(xs) == 0),
    ("if", arrow(BOOL, t0, t0, t0), _if),
    ("+", arrow(INT, INT, INT), lambda a: lambda b: _int(a + b)),
    ("-", arrow(INT, INT, INT), lambda a: lambda b: _int(a - b)),
    ("*", arrow(INT, INT, INT), lambda a: lambda b: _int(a * b)),
    ("mod", arrow(INT, INT, INT), _mod),
    ("gt?", arrow(INT, INT, BOOL), lambda a: lambda b: a > b),
    ("eq?", arrow(INT, INT, BOOL), lambda a: lambda b: a == b),
    ("0", INT, 0),
    ("1", INT, 1),
    ("2", INT, 2),
    ("3", INT, 3),
    ("unfold", arrow(t0, arrow(t0, BOOL), arrow(t0, t1), arrow(t0, t0), tlist(t1)), _unfold),
    ("is-prime", arrow(INT, BOOL), _is_prime),
    ("is-square", arrow(INT, BOOL), _is_square),
    ("fix", arrow(arrow(arrow(t0, t1), t0, t1), t0, t1), _fix),
]
PRIMITIVES = {name: Prim(name, tp, value) for name, tp, value in _PRIMS}
# the primitives that take no function: a row of theirs never runs a program, only a few list steps (apply_rows)
FIRST_ORDER = frozenset(("range", "length", "index", "cons", "car", "cdr", "empty?", "+", "-", "*", "mod", "gt?",
                         "eq?", "is-prime", "is-square"))
# What the enumerator may build from (general recursion, `fix`, never). `lab`: the lab's base, with
# `filter` and small constants, so filters with a predicate shape are within a short search. `dreamcoder`:
# DreamCoder's own list primitives, no `filter` — filter, sum, max, ... must be discovered from fold.
BASES = {
    "lab": ("map", "filter", "fold", "range", "length", "index", "cons", "car", "cdr", "empty", "empty?", "if",
            "+", "-", "*", "mod", "gt?", "eq?", "0", "1", "2", "3"),
    "dreamcoder": ("map", "fold", "unfold", "range", "index", "length", "if", "+", "-", "empty", "cons", "car",
                   "cdr", "empty?", "0", "1", "*", "mod", "gt?", "eq?", "is-prime", "is-square"),
}


def base_grammar(base: str = "lab") -> tuple:
    """The base primitives, in a fixed order (the grammar's weights and the recognition model's outputs
    follow it)."""
    return tuple(PRIMITIVES[name] for name in BASES[base])


def primitive(name: str) -> Prim:
    return PRIMITIVES[name]


# -----------------------------------------------------------------------------
# task values: JSON lists <-> tuples, and type names in DreamCoder's task layout

TYPE_NAMES = {"int": INT, "bool": BOOL, "list-of-int": tlist(INT), "list-of-bool": tlist(BOOL)}


def parse_type_name(name: str):
    if name not in TYPE_NAMES:
        raise ValueError(f"unsupported task type {name!r} (supported: {', '.join(TYPE_NAMES)})")
    return TYPE_NAMES[name]


def to_value(v):
    return tuple(to_value(x) for x in v) if isinstance(v, list) else v


def to_json(v):
    return [to_json(x) for x in v] if isinstance(v, tuple) else v
