"""Choosing the number of clusters: the elbow, the silhouette and the gap statistic.

Gap statistic as in Tibshirani, Walther & Hastie (2001), "Estimating the number of
clusters in a data set via the gap statistic", J. R. Statist. Soc. B 63(2): 411-423.

Cost of ``choose_k``: ``len(ks) * (n_init + B * ref_n_init)`` k-means++ restarts on n
points with the gap statistic; pass a sample of the window when n is large. A fit with
no within-cluster dispersion (k at least the number of distinct points) has its W
floored at 1e-12 of the total sum of squares, with a ``DegenerateDataWarning``, so that
the logs stay finite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import (
    RandomStateLike,
    check_array,
    check_choice,
    check_float,
    check_int,
    check_random_state,
)
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB
from monitor.core._kmeans_estimator import float64_on_overflow, overflow_error
from monitor.core.kmeans import fit_kmeans
from monitor.core.quality import silhouette_sampled
from monitor.errors import DegenerateDataWarning, InvalidInputError
from monitor.records import KMeansFit, KSelection

__all__ = ["CRITERIA", "REFERENCES", "choose_k"]

CRITERIA = ("elbow", "silhouette", "gap")
REFERENCES = ("box", "pca")

F64 = NDArray[np.float64]
_SEED_HIGH = 2**31 - 1


# --------------------------------------------------------------------------- rules


def _elbow(ks: NDArray[np.intp], inertia: F64) -> int:
    """The k whose point lies farthest below the chord of the inertia curve.

    The chord joins the first and last points. The vertical gap picks the same k as the
    perpendicular distance once both axes are scaled to [0, 1] (the scaling multiplies
    every perpendicular distance by one constant). When no point lies strictly below
    the chord (fewer than three ks, a straight or a concave curve), the smallest k.
    """
    if ks.shape[0] < 3:
        return int(ks[0])
    x = ks.astype(np.float64)
    chord = inertia[0] + (inertia[-1] - inertia[0]) * (x - x[0]) / (x[-1] - x[0])
    below = chord - inertia
    # Below the chord by more than rounding only; the relative scale keeps a straight
    # line from electing a k on noise in the last digits.
    tol = 1e-12 * max(abs(float(inertia[0])), abs(float(inertia[-1])), 1e-300)
    best = int(np.argmax(below))
    return int(ks[best]) if below[best] > tol else int(ks[0])


def _gap_choice(ks: NDArray[np.intp], gap: F64, s: F64) -> int:
    """Smallest k with Gap(k) >= Gap(k') - s_k', k' the next candidate; the largest k if none."""
    for i in range(ks.shape[0] - 1):
        if gap[i] >= gap[i + 1] - s[i + 1]:
            return int(ks[i])
    return int(ks[-1])


# --------------------------------------------------------------------------- helpers


def _reference_sampler(X: F64, reference: str) -> tuple[F64, F64, F64 | None, F64]:
    """Box bounds (low, high), rotation (or None) and mean for the reference draws.

    ``"box"``: the bounding box of the features (the paper's option a). ``"pca"``: the
    bounding box in the principal axes of the centred data, drawn there and rotated back
    (option b), so the reference follows the shape of the data.
    """
    mean = X.mean(axis=0)
    if reference == "box":
        return X.min(axis=0), X.max(axis=0), None, mean
    centred = X - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt.T
    return projected.min(axis=0), projected.max(axis=0), vt, mean


def _draw_reference(
    rng: np.random.Generator, n: int, low: F64, high: F64, vt: F64 | None, mean: F64
) -> F64:
    Z = rng.uniform(low, high, size=(n, low.shape[0]))
    if vt is None:
        return Z
    return Z @ vt + mean


def _log_w(value: float, floor: float) -> tuple[float, bool]:
    """log W, with W floored (and a flag) when a fit leaves no within-cluster dispersion."""
    if value > floor:
        return math.log(value), False
    return math.log(floor), True


def _check_ks(ks: Any, n: int) -> NDArray[np.intp]:
    msg = (
        f"The 'ks' parameter of choose_k must be a non-empty sequence of distinct ints "
        f"in [1, {n}]. Got {ks!r} instead."
    )
    try:
        values = [check_int(k, "ks", low=1, high=n, owner="choose_k") for k in ks]
    except (InvalidInputError, TypeError) as exc:
        raise InvalidInputError(msg) from exc
    if not values or len(set(values)) != len(values):
        raise InvalidInputError(msg)
    return np.array(sorted(values), dtype=np.intp)


def _check_criteria(criteria: Any) -> tuple[str, ...]:
    if isinstance(criteria, str) or not isinstance(criteria, Sequence) or not criteria:
        raise InvalidInputError(
            f"The 'criteria' parameter of choose_k must be a non-empty sequence of names "
            f"from {CRITERIA}. Got {criteria!r} instead."
        )
    return tuple(check_choice(c, "criteria", CRITERIA, owner="choose_k") for c in criteria)


@dataclass(frozen=True)
class _Fitter:
    """The k-means fit every candidate k and every reference set gets."""

    n_init: int
    max_iter: int
    working_memory_mib: float

    def __call__(self, data: F64, k: int, seed: int) -> KMeansFit:
        return fit_kmeans(
            data,
            k,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=seed,
            working_memory_mib=self.working_memory_mib,
        )


def _check_settings(
    n_init: Any,
    ref_n_init: Any,
    max_iter: Any,
    working_memory_mib: Any,
    sample_size: Any,
    n_refs: Any,
) -> tuple[_Fitter, _Fitter, int, int]:
    """The fits of the data and of the reference sets, the silhouette sample size and B."""
    owner = "choose_k"
    fit = _Fitter(
        n_init=check_int(n_init, "n_init", low=1, owner=owner),
        max_iter=check_int(max_iter, "max_iter", low=1, owner=owner),
        working_memory_mib=check_float(
            working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
        ),
    )
    ref_fit = replace(fit, n_init=check_int(ref_n_init, "ref_n_init", low=1, owner=owner))
    size = check_int(sample_size, "silhouette_sample_size", low=2, owner=owner)
    return fit, ref_fit, size, check_int(n_refs, "n_refs", low=1, owner=owner)


def _draw_seeds(
    random_state: RandomStateLike, n_ks: int, n_refs: int
) -> tuple[NDArray[np.int64], int, NDArray[np.int64]]:
    """Seeds of the fits, of the silhouette sample and of the reference sets.

    All are drawn up front in a fixed order, so that leaving a rule out does not change
    what the others see.
    """
    rng = check_random_state(random_state)
    fit_seeds = np.asarray(rng.integers(0, _SEED_HIGH, size=n_ks), dtype=np.int64)
    silhouette_seed = int(rng.integers(0, _SEED_HIGH))
    ref_seeds = np.asarray(rng.integers(0, _SEED_HIGH, size=n_refs), dtype=np.int64)
    return fit_seeds, silhouette_seed, ref_seeds


def _fit_each_k(
    X: F64,
    ks: NDArray[np.intp],
    fit: _Fitter,
    seeds: NDArray[np.int64],
    sample: tuple[int, int] | None,
    done: Callable[[], None],
) -> tuple[F64, F64]:
    """Inertia of each k's fit and, when ``sample`` (size, seed) is given, its silhouette.

    ``done()`` is called after each k.
    """
    inertia = np.empty(ks.shape[0], dtype=np.float64)
    silhouette = np.zeros(ks.shape[0], dtype=np.float64)
    for i, k in enumerate(ks):
        # Refused as KMeans.fit and the choose-k command refuse it: values beyond about
        # 1e154 gave inf inertias, NaN gaps and hundreds of numpy warnings.
        result = float64_on_overflow(
            X,
            partial(fit, k=int(k), seed=int(seeds[i])),
            lambda f: f.inertia,
            lambda rows, f: overflow_error(rows, None, f.offset),
        )
        inertia[i] = result.inertia
        if sample is not None and k >= 2:
            silhouette[i] = silhouette_sampled(
                X,
                result.labels,
                sample_size=sample[0],
                random_state=sample[1],
                n_clusters=int(k),
                working_memory_mib=fit.working_memory_mib,
            ).score
        done()
    return inertia, silhouette


def _gap_statistic(
    X: F64,
    ks: NDArray[np.intp],
    inertia: F64,
    fit: _Fitter,
    ref_seeds: NDArray[np.int64],
    reference: str,
    done: Callable[[], None],
) -> tuple[F64, F64]:
    """Gap(k) and s_k over the B = len(ref_seeds) reference sets (the same sets for every k).

    ``done()`` is called after each fit of a reference set.
    """
    n, m, n_refs = X.shape[0], ks.shape[0], ref_seeds.shape[0]
    total_ss = float(np.sum((X - X.mean(axis=0)) ** 2))
    floor = max(1e-12 * total_ss, np.finfo(np.float64).tiny)
    floored = False
    low, high, vt, mean = _reference_sampler(X, reference)
    log_ref = np.empty((n_refs, m), dtype=np.float64)
    for b in range(n_refs):
        ref_rng = np.random.default_rng(int(ref_seeds[b]))
        Z = _draw_reference(ref_rng, n, low, high, vt, mean)
        seeds = np.asarray(ref_rng.integers(0, _SEED_HIGH, size=m), dtype=np.int64)
        for i, k in enumerate(ks):
            log_ref[b, i], hit = _log_w(fit(Z, int(k), int(seeds[i])).inertia, floor)
            floored |= hit
            done()
    log_data = np.empty(m, dtype=np.float64)
    for i in range(m):
        log_data[i], hit = _log_w(float(inertia[i]), floor)
        floored |= hit
    if floored:
        warnings.warn(
            "Some k-means fits left no within-cluster dispersion (k at least the number of "
            "distinct points); their W was floored at 1e-12 of the total sum of squares "
            "for the gap statistic.",
            DegenerateDataWarning,
            stacklevel=3,
        )
    gap = log_ref.mean(axis=0) - log_data
    return gap, log_ref.std(axis=0) * math.sqrt(1.0 + 1.0 / n_refs)


def _best_silhouette(ks: NDArray[np.intp], silhouette: F64) -> int:
    """The k >= 2 of highest silhouette (the smallest on ties); ``ks[0]`` when none is >= 2."""
    multi = np.flatnonzero(ks >= 2)
    return int(ks[multi[np.argmax(silhouette[multi])]]) if multi.size else int(ks[0])


def _counter(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    """A ``done()`` that counts steps and tells ``progress(done, total)`` after each."""
    if progress is not None and not callable(progress):
        raise InvalidInputError(
            f"The 'progress' parameter of choose_k must be a callable or None. "
            f"Got {progress!r} instead."
        )
    count = 0

    def done() -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, total)

    return done


# --------------------------------------------------------------------------- public


def choose_k(
    X: ArrayLike,
    ks: Sequence[int],
    *,
    criteria: Sequence[str] = CRITERIA,
    n_refs: int = 10,
    reference: str = "box",
    n_init: int = 3,
    ref_n_init: int = 1,
    max_iter: int = 300,
    silhouette_sample_size: int = 10000,
    random_state: RandomStateLike = None,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    progress: Callable[[int, int], None] | None = None,
) -> KSelection:
    """Fit k-means for each candidate k and report what each rule would pick.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The data (scaled units).
    ks : sequence of int
        Distinct candidate k in ``[1, n]``; evaluated in increasing order. The gap rule
        compares each k with the next candidate, so consecutive ks follow the paper.
    criteria : sequence of {"elbow", "silhouette", "gap"}
        Rules to evaluate. The inertia of each k is always computed; a rule left out
        has its array filled with 0.0 and its ``best_*`` set to 0 (not a valid k).
    n_refs : int, default 10
        B, the number of uniform reference data sets of the gap statistic.
    reference : {"box", "pca"}
        Reference distribution of the gap statistic: uniform over the bounding box of
        the features (the paper's option a) or over the box aligned with the principal
        components (option b).
    n_init : int, default 3
        k-means++ restarts of each k's fit on the data, the lowest inertia kept (one
        lands in local minima that move the picks: ``docs/slis.md``).
    ref_n_init : int, default 1
        Restarts of each reference set's fit, B times as many (why one: ``docs/slis.md``).
    max_iter : int
        Passed to ``fit_kmeans`` for every fit (data and references alike).
    silhouette_sample_size : int
        Sample of the exact silhouette; one seeded sample shared by every k.
    random_state : int, Generator, RandomState or None
        Seeds every fit, the silhouette sample and the reference draws.
    working_memory_mib : float
        Budget passed to the fits and the silhouette.
    progress : callable(done, total) or None
        Called after each step: each k's fit (and silhouette), then each reference fit.

    Returns
    -------
    KSelection
        ``inertia[i]`` = W_k, the within-cluster sum of squared distances to the centroids
        (``sum_r D_r / (2 n_r)`` of the paper). ``best_elbow``: the k farthest below the
        chord of the inertia curve (see ``docs/slis.md``). ``silhouette[i]``: the exact
        sampled silhouette, 0.0 for k = 1; ``best_silhouette`` its argmax over k >= 2 (the
        smallest such k on ties; ``ks[0]`` when only k = 1 is a candidate).
        ``gap[i] = mean_b log W*_kb - log W_k`` over B uniform reference sets of n points
        (the same B sets for every k), ``gap_sk[i] = sd_k sqrt(1 + 1/B)`` with ``sd_k``
        the population standard deviation of ``log W*_kb`` over b; ``best_gap`` the
        smallest k with ``Gap(k) >= Gap(k+1) - s_(k+1)``, the largest candidate when none.

    Overflowing squared distances: ``InvalidValuesError`` as in ``KMeans.fit``. Cost, floor: above.
    """
    Xa = np.asarray(check_array(X, name="X"), dtype=np.float64)
    k_arr = _check_ks(ks, Xa.shape[0])
    chosen = _check_criteria(criteria)
    reference = check_choice(reference, "reference", REFERENCES, owner="choose_k")
    fit, ref_fit, sample_size, n_refs = _check_settings(
        n_init, ref_n_init, max_iter, working_memory_mib, silhouette_sample_size, n_refs
    )
    m = k_arr.shape[0]
    done = _counter(progress, m * (1 + (n_refs if "gap" in chosen else 0)))
    fit_seeds, silhouette_seed, ref_seeds = _draw_seeds(random_state, m, n_refs)
    sample = (sample_size, silhouette_seed) if "silhouette" in chosen else None
    inertia, silhouette = _fit_each_k(Xa, k_arr, fit, fit_seeds, sample, done)
    gap, gap_sk = np.zeros(m), np.zeros(m)
    if "gap" in chosen:
        gap, gap_sk = _gap_statistic(Xa, k_arr, inertia, ref_fit, ref_seeds, reference, done)
    return _selection(k_arr, chosen, inertia, silhouette, (gap, gap_sk))


def _selection(
    ks: NDArray[np.intp],
    chosen: tuple[str, ...],
    inertia: F64,
    silhouette: F64,
    gap: tuple[F64, F64],
) -> KSelection:
    """The curves, and each chosen rule's k (0 for a rule left out)."""
    return KSelection(
        ks=ks.astype(np.int64),
        inertia=inertia,
        silhouette=silhouette,
        gap=gap[0],
        gap_sk=gap[1],
        best_elbow=_elbow(ks, inertia) if "elbow" in chosen else 0,
        best_silhouette=_best_silhouette(ks, silhouette) if "silhouette" in chosen else 0,
        best_gap=_gap_choice(ks, *gap) if "gap" in chosen else 0,
    )
