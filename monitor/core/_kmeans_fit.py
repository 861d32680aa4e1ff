"""Public k-means functions: validation at the edge, then the private numerics."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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
    check_sample_weight,
    underflow_message,
)
from monitor.core import _kmeans_numba
from monitor.core._checks import check_centers, check_labels
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB, chunk_rows, iter_slices
from monitor.core._distances import METRICS
from monitor.core._kmeans_lloyd import (
    Data,
    LloydResult,
    assign,
    assign_second,
    canonical,
    count_distinct_keys,
    count_distinct_rows,
    greedy_kmeans_plusplus,
    lloyd,
    prepare,
    random_init,
    relocate_empty,
    sampled_seeding,
    weighted_mean_var,
)
from monitor.errors import DegenerateDataWarning, InvalidInputError, InvalidValuesError
from monitor.records import KMeansFit

__all__ = [
    "assign_labels",
    "assign_two_nearest",
    "fit_kmeans",
    "kmeans_plusplus",
]

INITS = ("k-means++", "random")
KERNELS = ("auto", "numpy", "compiled")
FAST_HINT = "pip install 'kmeans-monitor[fast]'"
# The compiled kernel's per-thread blocks are (k, 256) distances and keys: up to this
# many clusters they stay within a few MiB; beyond it the numpy kernel runs.
MAX_COMPILED_CLUSTERS = 4096
# k-means++ seeds on a sample of max(SEED_MIN_ROWS, SEED_ROWS_PER_CLUSTER * k) rows by
# default (init_sample="auto"): docs/benchmarks.md shows the inertia after Lloyd.
SEED_MIN_ROWS = 16384
SEED_ROWS_PER_CLUSTER = 256
# On a sample, each seeding tries this many times scikit-learn's 2 + ln(k) candidates
# per centre, and the best of SAMPLE_SEEDINGS seedings (each polished by Lloyd on the
# sample) starts the fit: one seeding with 2 + ln(k) trials missed a separated blob in
# most seeds at 1M x 32, k = 64 (docs/benchmarks.md, issue 12).
SAMPLE_TRIALS_FACTOR = 4
SAMPLE_SEEDINGS = 2
# X is fitted around its mean when the expansion ||x||^2 - 2 x.c + ||c||^2 would lose
# more than this share of its spread (sum of variances) to rounding at X's precision:
# Unix times in float64, or values near 1e4 in float32, came out mislabelled
# (scikit-learn always centres; this copies X only where it matters).
OFFSET_LOSS = 1e-6


# ------------------------------------------------------------------ validation helpers


def check_weights(sample_weight: ArrayLike | None, n: int, dtype: Any) -> NDArray[Any]:
    if sample_weight is not None:
        w = np.asarray(sample_weight)
        if w.size and w.dtype.kind in "biuf" and w.shape in ((n,), ()) and not np.any(w):
            raise InvalidInputError(
                "sample_weight has only zero weights; at least one weight must be positive."
            )
    return check_sample_weight(sample_weight, n, dtype)


def check_enough_samples(X: NDArray[Any], n_clusters: int) -> None:
    if X.shape[0] < n_clusters:
        raise InvalidInputError(
            f"X has {X.shape[0]} sample(s), fewer than n_clusters={n_clusters}; "
            f"k-means needs at least as many samples as clusters."
        )


def check_nonzero_rows(X: NDArray[Any], name: str = "X") -> None:
    n_zero, first = 0, -1
    step = chunk_rows(X.shape[0], X.shape[1], DEFAULT_WORKING_MEMORY_MIB)
    for s in iter_slices(X.shape[0], step):
        zero = np.flatnonzero(~np.any(X[s] != 0, axis=1))
        if zero.size and first < 0:
            first = s.start + int(zero[0])
        n_zero += zero.size
    if n_zero:
        raise InvalidInputError(
            f"{name} has {n_zero} row(s) of zero norm (the first at row {first}); "
            f"the cosine metric needs non-zero rows."
        )


def resolve_n_init(n_init: Any, init: Any, owner: str) -> int:
    if isinstance(n_init, str):
        check_choice(n_init, "n_init", ("auto",), owner=owner)
        return 10 if isinstance(init, str) and init == "random" else 1
    return check_int(n_init, "n_init", low=1, owner=owner)


def resolve_kernel(kernel: Any, *, metric: str, k: int, owner: str) -> bool:
    """Whether the compiled kernel runs: ``kernel`` checked against what is installed.

    ``"auto"`` takes the compiled kernel when numba is installed and it applies (the
    Euclidean metric, ``k`` up to ``MAX_COMPILED_CLUSTERS``); ``"compiled"`` insists.
    """
    kernel = check_choice(kernel, "kernel", KERNELS, owner=owner)
    applies = metric == "euclidean" and k <= MAX_COMPILED_CLUSTERS
    if kernel == "compiled":
        if not _kmeans_numba.AVAILABLE:
            raise InvalidInputError(
                f"The 'kernel' parameter of {owner} is 'compiled', but numba is not "
                f"installed; install it with {FAST_HINT} or pass kernel='auto'."
            )
        if not applies:
            raise InvalidInputError(
                f"The 'kernel' parameter of {owner} is 'compiled', which runs the Euclidean "
                f"metric with at most {MAX_COMPILED_CLUSTERS} clusters; got metric="
                f"{metric!r} and {k} clusters."
            )
    return kernel != "numpy" and applies and _kmeans_numba.AVAILABLE


def assign_with(
    data: Data, centers: NDArray[Any], compiled: bool
) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """Labels and squared distances from the chosen kernel (compiled: Euclidean only)."""
    if compiled:
        return _kmeans_numba.fast_assign(data.X, data.xn, centers, data.n_threads)[:2]
    return assign(data, centers)


def lloyd_with(
    data: Data,
    centers: NDArray[Any],
    *,
    max_iter: int,
    tol: float,
    compiled: bool,
    init_labels: NDArray[np.int64] | None = None,
) -> LloydResult:
    """One Lloyd run on the chosen kernel; both end in the same kind of result."""
    if not compiled:
        return lloyd(data, centers, max_iter=max_iter, tol=tol, init_labels=init_labels)
    res = _kmeans_numba.fast_lloyd(
        data.X,
        data.w,
        data.xn,
        centers,
        max_iter=max_iter,
        tol=tol,
        n_threads=data.n_threads,
        relocate=partial(relocate_empty, data),
        init_labels=init_labels,
    )
    inertia = float(data.w.astype(np.float64) @ res.sq_distances.astype(np.float64))
    return LloydResult(
        res.centers, res.labels, res.sq_distances, inertia, res.n_iter, res.converged,
        res.n_relocated,
    )  # fmt: skip


# ------------------------------------------------------------------ public functions


def kmeans_plusplus(
    X: ArrayLike,
    n_clusters: int,
    *,
    sample_weight: ArrayLike | None = None,
    random_state: RandomStateLike = None,
    n_local_trials: int | None = None,
    n_threads: int = 1,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.intp]]:
    """Greedy k-means++ seeding with local trials (Arthur & Vassilvitskii, 2007).

    Each new centre is the best, by the weighted potential it leaves, of
    ``n_local_trials`` rows drawn with probability proportional to
    ``sample_weight * D(x)^2``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite data; float32 and float64 are kept, other types become float64.
    n_clusters : int
        Number of centres, in ``[1, n_samples]``.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights; rows of weight 0 are never chosen.
    random_state : int, numpy Generator or RandomState, optional
        Seed; the same seed and data give the same centres, whatever the row order.
    n_local_trials : int, optional
        Candidates per centre; default ``2 + int(log(n_clusters))``.
    n_threads : int
        Threads over chunks; the result does not depend on it (see ``assign_labels``).

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
        Rows of ``X``, in its dtype.
    indices : ndarray of shape (n_clusters,)
        Row index in ``X`` of each centre.
    """
    owner = "kmeans_plusplus"
    Xa = check_array(X)
    k = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    check_enough_samples(Xa, k)
    trials = (
        2 + int(math.log(k))
        if n_local_trials is None
        else check_int(n_local_trials, "n_local_trials", low=1, owner=owner)
    )
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    w = check_weights(sample_weight, Xa.shape[0], Xa.dtype)
    rng = check_random_state(random_state)
    data = prepare(
        Xa,
        w,
        cosine=False,
        k=k,
        working_memory_mib=DEFAULT_WORKING_MEMORY_MIB,
        n_threads=threads,
    )
    canon = canonical(data)
    _warn_if_degenerate(data, canon, k)
    return greedy_kmeans_plusplus(data, canon, k, rng, trials)


def assign_labels(
    X: ArrayLike,
    centers: ArrayLike,
    *,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
    kernel: str = "auto",
) -> tuple[NDArray[np.int64], NDArray[np.floating[Any]]]:
    """Nearest centre (Euclidean) of every row, chunk by chunk.

    Rows and centres far from the origin (raw epoch seconds, say) are assigned around
    the centres' mean, on a copy of X, so that their distances keep their digits.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    centers : array-like of shape (n_clusters, n_features)
    working_memory_mib : float
        Budget for the (chunk, n_clusters) distance blocks, per thread.
    n_threads : int
        Threads over chunks; the result does not depend on it. Give BLAS one thread
        when it is above 1 (``threadpoolctl`` or ``OPENBLAS_NUM_THREADS=1``), otherwise
        each chunk's product starts BLAS threads of its own and they oversubscribe.
    kernel : {"auto", "numpy", "compiled"}
        ``"auto"``: the compiled kernel when numba is installed (extra ``fast``), else
        numpy; ``"compiled"`` requires it. Both find the same nearest centres, up to
        ties within rounding (see docs/decisions.md, "A compiled k-means kernel").

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
        Index of the nearest centre; ties go to the lowest index.
    sq_distances : ndarray of shape (n_samples,)
        Squared Euclidean distance to that centre, in the dtype of ``X``, never negative
        (tiny negatives of ||x||^2 - 2 x.c + ||c||^2 are clipped to 0).
    """
    owner = "assign_labels"
    wm = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    Xa = check_array(X)
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    C = check_centers(centers, Xa.shape[1], dtype=Xa.dtype, owner=owner)
    Xa, C = around_centres(Xa, C, wm)
    compiled = resolve_kernel(kernel, metric="euclidean", k=C.shape[0], owner=owner)
    data = prepare(
        Xa,
        np.ones(0, dtype=Xa.dtype),
        cosine=False,
        k=C.shape[0],
        working_memory_mib=wm,
        n_threads=threads,
    )
    return assign_with(data, C, compiled)


def assign_two_nearest(
    X: ArrayLike,
    centers: ArrayLike,
    *,
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
    kernel: str = "auto",
) -> tuple[NDArray[np.int64], NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
    """``assign_labels`` plus the squared distance to the second-nearest centre.

    The same pass over ``X`` finds both, so a caller that also needs the distance to
    the nearest *other* centre (the simplified silhouette: ``silhouette_simplified(...,
    sq_second=...)``) does not pay a second pass with its own distance blocks.

    Parameters
    ----------
    X, centers, working_memory_mib, n_threads, kernel
        As in ``assign_labels``.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int64
    sq_distances : ndarray of shape (n_samples,)
        To the nearest centre, as ``assign_labels`` returns them.
    sq_second : ndarray of shape (n_samples,)
        To the nearest centre other than ``labels`` (the second smallest distance; equal
        to ``sq_distances`` on a tie), clipped at 0, in X's dtype; inf when there is one
        centre.
    """
    owner = "assign_two_nearest"
    wm = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    Xa = check_array(X)
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    C = check_centers(centers, Xa.shape[1], dtype=Xa.dtype, owner=owner)
    Xa, C = around_centres(Xa, C, wm)
    compiled = resolve_kernel(kernel, metric="euclidean", k=C.shape[0], owner=owner)
    data = prepare(
        Xa,
        np.ones(0, dtype=Xa.dtype),
        cosine=False,
        k=C.shape[0],
        working_memory_mib=wm,
        n_threads=threads,
    )
    if compiled:
        return _kmeans_numba.fast_assign(Xa, data.xn, C, threads, with_second=True)
    return assign_second(data, C)


def around_centres(
    X: NDArray[Any], C: NDArray[Any], working_memory_mib: float
) -> tuple[NDArray[Any], NDArray[Any]]:
    """X and the centres around the centres' mean when they are far from the origin
    (``far_from_origin`` with the centres' spread; with one centre, any but 0), as a fit
    and predict compute them around the fit's mean; else as they are, without a copy.
    Distances do not move under a translation: expanded around 0, raw rows far from it
    (epoch seconds) lost theirs to rounding. The pipeline's rows are scaled around 0."""
    mean = C.mean(axis=0, dtype=np.float64)
    if not far_from_origin(mean, C.var(axis=0, dtype=np.float64), X.dtype):
        return X, C
    return centred_rows(X, mean, working_memory_mib), (C - mean).astype(C.dtype)


def fit_kmeans(
    X: ArrayLike,
    n_clusters: int,
    *,
    init: str | ArrayLike = "k-means++",
    n_init: int | str = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    random_state: RandomStateLike = None,
    sample_weight: ArrayLike | None = None,
    metric: str = "euclidean",
    working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    n_threads: int = 1,
    kernel: str = "auto",
    init_sample: int | str = "auto",
    init_labels: ArrayLike | None = None,
) -> KMeansFit:
    """Fit k-means with Lloyd iterations and keep the restart of lowest inertia.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite data; float32 and float64 are kept, other types become float64.
    n_clusters : int
        Number of clusters, in ``[1, n_samples]``.
    init : {"k-means++", "random"} or array-like of shape (n_clusters, n_features)
        Seeding. An array is a warm start: one run from those centres (``n_init`` > 1
        then warns and is ignored, as in scikit-learn).
    n_init : int or "auto"
        Restarts; ``"auto"`` is 1 for k-means++ or an array and 10 for random.
    max_iter : int, most Lloyd iterations per restart
    tol : float
        Stop when the total squared centre shift is at most ``tol`` times the mean
        per-feature (weighted) variance of ``X``, as in scikit-learn, or when the labels
        stop changing (strict convergence).
    random_state : int (at least 0), numpy Generator or RandomState, optional
    sample_weight : array-like of shape (n_samples,) or a number for every row, optional
    metric : {"euclidean", "cosine"}
        ``"cosine"`` is spherical k-means on the L2-normalised rows: unit-norm centres,
        distances ``||x/|x| - c||^2 = 2 (1 - cos)``. Rows of zero norm are an error.
    working_memory_mib : float
        Budget for one chunk's temporaries, per thread.
    n_threads : int
        Threads over chunks, as in ``assign_labels`` (BLAS on one thread when above 1).
    kernel : {"auto", "numpy", "compiled"}
        See ``assign_labels``; the compiled kernel skips, with Hamerly's bounds, the
        distances that cannot change an assignment.
    init_sample : int or "auto"
        Seed on this many rows drawn by weight (``"auto"``: ``max(16384, 256 * k)``): of two
        greedy k-means++ with ``4 * (2 + ln k)`` trials, each Lloyd-polished on the sample,
        the lower sample inertia wins. A window no larger: one, whole, ``2 + ln k`` trials.
    init_labels : array-like of shape (n_samples,), optional
        With an array ``init``: each row's nearest centre under ``init``, from an
        earlier ``assign_labels``; it stands in for the first E-step.

    Returns
    -------
    KMeansFit
        ``centers`` (n_clusters, n_features) in X's dtype, ``labels`` (n_samples,) int64
        consistent with them, ``inertia`` (weighted sum of squared distances), ``n_iter``,
        ``converged``, ``n_relocated`` (empty clusters moved, in the kept restart),
        ``n_distinct_points`` (only when there are fewer distinct rows than clusters),
        ``offset`` (the mean X was fitted around when far from 0, ``OFFSET_LOSS``).
    """
    return validate_and_fit(
        X,
        n_clusters,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        random_state=random_state,
        sample_weight=sample_weight,
        metric=metric,
        working_memory_mib=working_memory_mib,
        n_threads=n_threads,
        owner="fit_kmeans",
        kernel=kernel,
        init_sample=init_sample,
        init_labels=init_labels,
    )


def validate_and_fit(
    X: ArrayLike,
    n_clusters: Any,
    *,
    init: Any,
    n_init: Any,
    max_iter: Any,
    tol: Any,
    random_state: Any,
    sample_weight: ArrayLike | None,
    metric: Any,
    working_memory_mib: Any,
    owner: str,
    n_threads: Any = 1,
    kernel: Any = "auto",
    init_sample: Any = "auto",
    init_labels: ArrayLike | None = None,
) -> KMeansFit:
    """``fit_kmeans`` with parameter errors naming ``owner`` (the function or estimator)."""
    Xa = check_array(X)
    k = check_int(n_clusters, "n_clusters", low=1, owner=owner)
    metric = check_choice(metric, "metric", METRICS, owner=owner)
    n_runs = resolve_n_init(n_init, init, owner)
    max_iter = check_int(max_iter, "max_iter", low=1, owner=owner)
    tol = check_float(tol, "tol", low=0.0, owner=owner)
    wm = check_float(
        working_memory_mib, "working_memory_mib", low=0.0, low_inclusive=False, owner=owner
    )
    threads = check_int(n_threads, "n_threads", low=1, owner=owner)
    init_centers: NDArray[Any] | None = None
    if isinstance(init, str):
        check_choice(init, "init", INITS, owner=owner)
    elif callable(init):
        raise InvalidInputError(
            f"The 'init' parameter of {owner} must be one of {INITS} or an array of shape "
            f"(n_clusters, n_features); a callable is not taken: pass the centres it returns."
        )
    else:
        init_centers = check_centers(
            init, Xa.shape[1], n_clusters=k, dtype=Xa.dtype, name="init", owner=owner
        )
        if metric == "cosine":
            check_nonzero_rows(init_centers, "init")
        if n_runs > 1 and not isinstance(n_init, str):
            warnings.warn(
                f"Explicit initial centres were passed: performing one run instead of "
                f"n_init={n_runs}.",
                UserWarning,
                stacklevel=2,
            )
        n_runs = 1
    check_enough_samples(Xa, k)
    w = check_weights(sample_weight, Xa.shape[0], Xa.dtype)
    rng = check_random_state(random_state)
    if metric == "cosine":
        check_nonzero_rows(Xa)
    run = _Run(
        max_iter=max_iter,
        tol=tol,
        compiled=resolve_kernel(kernel, metric=metric, k=k, owner=owner),
        sample_rows=_check_init_sample(init_sample, k, owner),
        init_labels=_check_init_labels(init_labels, init_centers, Xa.shape[0], k, owner),
    )
    data = prepare(Xa, w, cosine=metric == "cosine", k=k, working_memory_mib=wm, n_threads=threads)
    return _fit(data, k, init if init_centers is None else init_centers, n_runs, run, rng)


def _check_init_sample(init_sample: Any, k: int, owner: str) -> int:
    if isinstance(init_sample, str):
        check_choice(init_sample, "init_sample", ("auto",), owner=owner)
        return max(SEED_MIN_ROWS, SEED_ROWS_PER_CLUSTER * k)
    return check_int(init_sample, "init_sample", low=k, owner=owner)


def _check_init_labels(
    init_labels: ArrayLike | None, init_centers: NDArray[Any] | None, n: int, k: int, owner: str
) -> NDArray[np.int64] | None:
    if init_labels is None:
        return None
    if init_centers is None:
        raise InvalidInputError(
            f"The 'init_labels' parameter of {owner} needs an array 'init': they must be "
            f"the nearest centres under those initial centres."
        )
    return check_labels(init_labels, n, k, name="init_labels", owner=owner).astype(np.int64)


@dataclass(frozen=True)
class _Run:
    """How each Lloyd run of a fit goes."""

    max_iter: int
    tol: float  # relative to the data's variance, as given
    compiled: bool
    sample_rows: int
    init_labels: NDArray[np.int64] | None


# ------------------------------------------------------------------ private driver


def _warn_if_degenerate(data: Data, canon: Any, k: int) -> int | None:
    if count_distinct_keys(data, canon) >= k:
        return None
    n_distinct = count_distinct_rows(data, canon)
    if n_distinct >= k:  # a hash collision, not a degenerate window
        return None
    warnings.warn(
        f"X has {n_distinct} distinct row(s) with positive weight, fewer than "
        f"n_clusters={k}; {k - n_distinct} centre(s) repeat other centres and their "
        f"clusters stay empty.",
        DegenerateDataWarning,
        stacklevel=3,
    )
    return n_distinct


def _seed(
    data: Data,
    canon: Any,
    k: int,
    rng: np.random.Generator,
    sample_rows: int,
    polish: Callable[[Data, NDArray[Any]], LloydResult],
) -> NDArray[Any]:
    """k-means++ starting centres: on a sample when the window is larger, else whole."""
    trials = 2 + int(math.log(k))
    centers = sampled_seeding(
        data,
        canon,
        k,
        rng,
        n_local_trials=SAMPLE_TRIALS_FACTOR * trials,
        sample_rows=sample_rows,
        polish=polish,
        n_seedings=SAMPLE_SEEDINGS,
    )
    if centers is None:
        centers, _ = greedy_kmeans_plusplus(data, canon, k, rng, trials)
    return centers


def _fit(
    data: Data,
    k: int,
    init: Any,
    n_runs: int,
    run: _Run,
    rng: np.random.Generator,
) -> KMeansFit:
    mean, var = (
        _kmeans_numba.fast_mean_var(data.X, data.w, data.n_threads)
        if run.compiled
        else weighted_mean_var(data)
    )
    if not data.cosine:
        refuse_underflow(data.X, data.w, var)
    tol_abs = float(np.mean(var)) * run.tol
    # The value order (24 bytes a row and a sort) is for the seeding. A warm start only
    # needs it when its fit leaves a cluster without weight: k clusters holding weight
    # prove k distinct rows, since identical rows always share a cluster. It hashes the
    # rows as given: centred, their bytes would follow the mean's last bits, which follow
    # the summation order, and so would the seeding.
    raw = data
    canon = canonical(data) if isinstance(init, str) else None
    n_distinct = None if canon is None else _warn_if_degenerate(data, canon, k)
    offset = None
    if not data.cosine and far_from_origin(mean, var, data.X.dtype):
        offset = mean
        data = _centred(data, k, mean)
        if not isinstance(init, str):
            init = (init - mean).astype(data.X.dtype)
    polish = partial(lloyd_with, max_iter=run.max_iter, tol=tol_abs, compiled=run.compiled)
    best: LloydResult | None = None
    for _ in range(n_runs):
        if isinstance(init, str):
            assert canon is not None
            if init == "k-means++":
                centers = _seed(data, canon, k, rng, run.sample_rows, polish)
            else:
                centers, _ = random_init(data, canon, k, rng)
        else:
            centers = init.copy()
            if data.cosine:
                centers /= np.sqrt(np.einsum("ij,ij->i", centers, centers))[:, None]
        res = lloyd_with(
            data,
            centers,
            max_iter=run.max_iter,
            tol=tol_abs,
            compiled=run.compiled,
            init_labels=run.init_labels,
        )
        if best is None or res.inertia < best.inertia:
            best = res
    assert best is not None
    if canon is None and not (np.bincount(best.labels, weights=data.w, minlength=k) > 0).all():
        n_distinct = _warn_if_degenerate(raw, canonical(raw), k)
    centers = best.centers
    if offset is not None:
        centers = (centers.astype(np.float64) + offset).astype(centers.dtype)
    return KMeansFit(
        centers=centers,
        labels=best.labels,
        inertia=best.inertia,
        n_iter=best.n_iter,
        converged=best.converged,
        n_relocated=best.n_relocated,
        n_distinct_points=n_distinct,
        offset=offset,
    )


def far_from_origin(mean: NDArray[Any], var: NDArray[Any], dtype: Any) -> bool:
    """True when rows around ``mean`` are too far from the origin for their distances
    ``||x||^2 - 2 x.c + ||c||^2`` to keep ``OFFSET_LOSS`` of the spread in ``dtype``."""
    eps = float(np.finfo(dtype).eps)
    return eps * float(mean @ mean) > OFFSET_LOSS * float(var.sum())


def refuse_underflow(X: NDArray[Any], w: NDArray[Any], var: NDArray[Any]) -> None:
    """``InvalidValuesError`` when the rows of positive weight are too close together
    for their squared distances (``checks.underflow_message``); ``var``: their weighted
    column variances. Overflow is refused on the results (``float64_on_overflow``);
    underflow leaves no trace in them (an inertia of 0 is a fit like any other)."""
    spread = float(var.sum())
    if spread >= np.finfo(X.dtype).tiny:
        return  # the usual data: no pass
    message = underflow_message(X[w > 0], spread=spread)
    if message is not None:
        raise InvalidValuesError(f"X: {message}")


def offset_of(X: NDArray[Any], w: NDArray[Any], working_memory_mib: float) -> NDArray[Any] | None:
    """The weighted mean to fit X around when X is far from the origin, else None;
    rows too close together are refused (``refuse_underflow``)."""
    data = prepare(X, w, cosine=False, k=1, working_memory_mib=working_memory_mib)
    mean, var = weighted_mean_var(data)
    refuse_underflow(X, w, var)
    return mean if far_from_origin(mean, var, X.dtype) else None


def centred_rows(X: NDArray[Any], offset: NDArray[Any], working_memory_mib: float) -> NDArray[Any]:
    """``X - offset`` in X's dtype, chunk by chunk (no float64 copy of a float32 X)."""
    out = np.empty_like(X, order="C")
    for s in iter_slices(X.shape[0], chunk_rows(X.shape[0], X.shape[1], working_memory_mib)):
        np.subtract(X[s], offset, out=out[s], casting="unsafe")
    return out


def _centred(data: Data, k: int, mean: NDArray[Any]) -> Data:
    X = centred_rows(data.X, mean, data.working_memory_mib)
    return prepare(
        X,
        data.w,
        cosine=False,
        k=k,
        working_memory_mib=data.working_memory_mib,
        n_threads=data.n_threads,
    )
