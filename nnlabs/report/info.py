"""Information measures shared by the labs' analyses, in bits, from paired integer labels.

Entropy H(X) = -sum_x p(x) log2 p(x); conditional entropy H(X | Y) = sum_y p(y) H(X | Y=y);
mutual information I(X; Y) = H(X) - H(X | Y); conditional mutual information
I(X; Y | Z) = H(X | Z) - H(X | Y, Z). All are plug-in estimates from counts.
"""

from __future__ import annotations

import numpy as np


def entropy_bits(counts) -> float:
    """H of the distribution whose (unnormalised) counts are given."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / max(counts.sum(), 1e-12)
    return float(-(p * np.log2(p)).sum()) + 0.0


def joint_key(*labels: np.ndarray) -> np.ndarray:
    """One integer label per sample for the tuple of labels (mixed radix)."""
    key = np.zeros(len(labels[0]), dtype=np.int64)
    for g in labels:
        key = key * (int(g.max()) + 1) + g
    return key


def cond_entropy(target: np.ndarray, *given: np.ndarray) -> float:
    """H(target | given...) in bits, from paired integer samples."""
    if not given:
        return entropy_bits(np.bincount(target))
    key = joint_key(*given)
    return sum((key == k).mean() * entropy_bits(np.bincount(target[key == k])) for k in np.unique(key))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) = H(a) - H(a | b)."""
    return cond_entropy(a) - cond_entropy(a, b)


def conditional_mutual_information(a: np.ndarray, b: np.ndarray, given: np.ndarray) -> float:
    """I(a; b | given) = H(a | given) - H(a | b, given)."""
    return cond_entropy(a, given) - cond_entropy(a, b, given)


def permutation_null(a: np.ndarray, b: np.ndarray, given: np.ndarray, n_perm: int, seed: int) -> dict:
    """I(a; b | given) against its null: b shuffled within each value of `given`, which keeps what `given`
    says about a and destroys what b adds beyond it (Part 4: expert, domain, character; Part 5: expert, pass,
    character). A plug-in estimate is biased upwards on finite samples; the null carries the same bias."""
    observed = float(conditional_mutual_information(a, b, given))
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(given == g) for g in np.unique(given)]
    null = []
    for _ in range(n_perm):
        shuffled = b.copy()
        for g in groups:
            shuffled[g] = rng.permutation(b[g])
        null.append(conditional_mutual_information(a, shuffled, given))
    null = np.array(null)
    return {"observed": observed, "null_mean": float(null.mean()), "null_q95": float(np.quantile(null, 0.95)),
            "p_value": float((1 + (null >= observed).sum()) / (1 + n_perm)), "n_perm": n_perm}
