"""Statistics across seeds: the numbers behind every verdict a lab report writes.

A lab's claim ("MoE helped", "ACT saved passes") is about the distribution of outcomes over seeds, so a
report gives each number as a mean with a 95 % interval, compares settings that share seeds pairwise,
and turns the interval into the verdict word, so the sentence can never say more than the runs show.

Why a t-interval (and not a normal or bootstrap one): sweeps have 2-5 seeds. With so few, the sample
standard deviation is itself a noisy estimate, and Student's t accounts for that: at n = 3 the 95 %
half-width is 4.30 standard errors, where the normal interval would claim 1.96 — less than half, and
far too confident. A percentile bootstrap cannot fix it either: 3 values have only 10 distinct
resamples, and its interval is narrower still (it covers the truth well under 95 % of the time at such
n). The t-interval assumes the seed-to-seed spread is roughly normal, which holds for averaged numbers
like a loss or an accuracy over hundreds of items; it does not hold for all-or-nothing outcomes (a
parity model that either learns the task or stays at chance): there, say how many seeds succeeded.

The t distribution is computed here (scipy is not a dependency): its CDF from the regularized
incomplete beta function, its quantile by bisection; tests check both against published tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from nnlabs.report.runs import Run, group_by_name

LEVEL = 0.95


# -----------------------------------------------------------------------------
# Student's t distribution


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method (Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        # d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)),  d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return f


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    # x^a (1-x)^b / B(a, b)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # the fraction converges fast for x < (a+1)/(a+b+2); otherwise use I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom: P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(df):
        return NormalDist().cdf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (e.g. t_quantile(0.975, 2) = 4.303), by bisection on t_cdf."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# -----------------------------------------------------------------------------
# intervals, paired comparisons, verdicts


@dataclass(frozen=True)
class Interval:
    """A mean over `n` seeds and its `level` confidence interval [low, high] (nan bounds when n = 1)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2.0

    def format(self, spec: str = ".3f") -> str:
        """'2.013 ± 0.021' for several seeds, '2.013 (1 seed)' for one: what a table cell shows."""
        if self.n < 2:
            return f"{self.mean:{spec}} (1 seed)"
        return f"{self.mean:{spec}} ± {self.half:{spec.replace('+', '')}}"

    def __str__(self) -> str:
        return self.format()


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and t-interval: mean ± t_{(1+level)/2, n-1} · s / sqrt(n), s the sample standard deviation."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, level)
    # s^2 = sum (x - mean)^2 / (n - 1)
    s = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile((1.0 + level) / 2.0, n - 1) * s / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


@dataclass(frozen=True)
class Paired:
    """A paired comparison a - b over the seeds both share: the mean difference with its interval,
    Student's paired t statistic and its two-sided p-value (nan for one shared seed)."""

    diff: Interval
    t: float
    p: float
    seeds: tuple[int, ...]


def paired(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> Paired:
    """Paired t-test of a - b, runs matched by seed ({seed: value} each; seeds in only one are left out).
    Pairing removes what the two settings share on a seed (data order, initialisation luck), so a
    difference can be clear even when each setting's own interval is wide."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError("paired needs at least one seed present in both settings")
    d = [float(a[s]) - float(b[s]) for s in seeds]
    diff = mean_ci(d, level)
    n = len(d)
    if n == 1:
        return Paired(diff, math.nan, math.nan, seeds)
    se = math.sqrt(sum((x - diff.mean) ** 2 for x in d) / (n - 1)) / math.sqrt(n)
    if se == 0.0:  # every seed moved by exactly the same amount
        t = 0.0 if diff.mean == 0.0 else math.copysign(math.inf, diff.mean)
        return Paired(diff, t, 1.0 if diff.mean == 0.0 else 0.0, seeds)
    # t = mean(d) / (s_d / sqrt(n)),  p = 2 P(T_{n-1} > |t|)
    t = diff.mean / se
    return Paired(diff, t, 2.0 * (1.0 - t_cdf(abs(t), n - 1)), seeds)


ONE_SEED = "one seed: no verdict"
# a verdict sentence needs this many seeds (docs/design.md, "Statistics"): with two, one lucky pair of runs
# can give an interval that excludes 0 (t_{0.975, 1} = 12.7 multiplies a spread of one difference)
MIN_SEEDS = 3


def no_verdict(n: int) -> str:
    """What a sentence says instead of a verdict when its difference rests on n < MIN_SEEDS seeds."""
    return ONE_SEED if n < 2 else f"{n} seeds: no verdict, it takes {MIN_SEEDS}"


def verdict(diff: Interval, higher_is_better: bool = True,
            words: tuple[str, str, str] = ("helped", "hurt", "within noise"), than: float = 0.0) -> str:
    """The verdict word for a difference (treatment - baseline): `words[0]` when the whole interval lies
    on the better side of 0, `words[1]` when it lies on the worse side, `words[2]` when it holds 0, and
    `no_verdict(n)` below MIN_SEEDS seeds. Pass a lab's own words, e.g. ("collapsed", "balanced", "unclear");
    `than` puts the line elsewhere, for a value against a target (e.g. MaxVio against 0.1)."""
    if diff.n < MIN_SEEDS:
        return no_verdict(diff.n)
    if diff.low > than or diff.high < than:
        return words[0] if (diff.low > than) == higher_is_better else words[1]
    return words[2]


def cell(values: Sequence[float], spec: str = ".3f", scale: float = 1.0) -> str:
    """A report's table cell over seeds: 'mean ± half-width' for several, the bare value for one (the
    report's header says it is one seed), '—' for none. `scale` e.g. 100 for a fraction shown in %."""
    xs = [float(v) * scale for v in values if v is not None]
    if not xs:
        return "—"
    ci = mean_ci(xs)
    return ci.format(spec) if ci.n > 1 else f"{ci.mean:{spec}}"


def seeds_sentence(seeds: Sequence[int]) -> str:
    """What a report's header says about its seeds, so a reader knows what a table cell is."""
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"One seed ({seeds[0]}): numbers are that run's, with no interval; a verdict says so."
    return (f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): numbers are means ± the half-width of a "
            f"{LEVEL:.0%} t-interval over seeds; paired comparisons match runs by seed; figures draw each seed "
            "faint and the mean over seeds on top.")


# -----------------------------------------------------------------------------
# from run directories


def seed_values(runs: list[Run], value: Callable[[Run], float]) -> dict[str, dict[int, float]]:
    """{run name: {seed: value(run)}} over finished runs: the input of `mean_ci` and `paired`."""
    return {name: {r.seed: float(value(r)) for r in rs if r.complete}
            for name, rs in group_by_name(runs).items() if any(r.complete for r in rs)}


def across_seeds(runs: list[Run], value: Callable[[Run], float], level: float = LEVEL) -> dict[str, Interval]:
    """{run name: mean and interval of value(run) over its seeds}, e.g. for a report table's cells."""
    return {name: mean_ci(list(vals.values()), level) for name, vals in seed_values(runs, value).items()}


# -----------------------------------------------------------------------------
# on a figure: every seed faint, the mean on top (`ax` is a matplotlib Axes; nothing here imports pyplot)

SEED_ALPHA = 0.3


def plot_seeds(ax, x: float, values: Sequence[float], *, color: str, label: str | None = None, marker: str = "o"):
    """Every seed's value as a faint point at `x`, their mean on top with its 95 % interval as an error
    bar (no bar for one seed). Returns the mean's Interval."""
    ci = mean_ci(values)
    ax.scatter([x] * len(values), values, s=14, color=color, alpha=SEED_ALPHA, marker=marker, linewidths=0)
    yerr = [[ci.mean - ci.low], [ci.high - ci.mean]] if ci.n > 1 else None
    ax.errorbar([x], [ci.mean], yerr=yerr, color=color, marker=marker, capsize=3, label=label)
    return ci


def plot_seed_curves(ax, curves: Sequence[tuple[Sequence[float], Sequence[float]]], *, color: str,
                     label: str | None = None, linestyle: str = "-", marker: str | None = None) -> None:
    """Every seed's curve (xs, ys) as a faint line, the mean over seeds at the x values all of them share
    on top (runs of one setting evaluate at the same steps, so that is every point). One seed: its line."""
    if len(curves) == 1:
        ax.plot(*curves[0], color=color, linewidth=1.6, linestyle=linestyle, marker=marker, label=label)
        return
    for xs, ys in curves:
        ax.plot(xs, ys, color=color, alpha=SEED_ALPHA, linewidth=0.8, linestyle=linestyle, marker=marker, ms=3)
    shared = sorted(set.intersection(*(set(xs) for xs, _ in curves))) if curves else []
    if shared:
        at = [dict(zip(xs, ys)) for xs, ys in curves]
        ax.plot(shared, [sum(a[x] for a in at) / len(at) for x in shared], color=color, linewidth=1.6,
                linestyle=linestyle, marker=marker, label=label)
