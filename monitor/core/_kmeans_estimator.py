"""KMeans and MiniBatchKMeans with the scikit-learn estimator API, without importing it.

get_params/set_params/clone-ability are implemented here from the ``__init__``
signature; scikit-learn is imported only inside ``__sklearn_tags__``, which only
scikit-learn calls. The numeric core therefore runs without scikit-learn installed,
and the estimators still pass ``sklearn.utils.estimator_checks`` (see
docs/decisions.md, "KMeans estimator without a scikit-learn base class").
``set_output`` gives ``transform`` a pandas or polars DataFrame; those libraries too
are imported only when such an output is made (docs/decisions.md, "set_output").
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any, Self, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.checks import (
    Mismatch,
    Problem,
    brief,
    check_array,
    check_choice,
    check_float,
    check_int,
    check_random_state,
    find_overflow,
    is_int,
)
from monitor.core._checks import check_centers
from monitor.core._chunking import DEFAULT_WORKING_MEMORY_MIB, iter_slices
from monitor.core._kmeans_fit import (
    INITS,
    METRICS,
    assign_with,
    centred_rows,
    check_enough_samples,
    check_nonzero_rows,
    check_weights,
    offset_of,
    resolve_kernel,
    resolve_n_init,
    validate_and_fit,
)
from monitor.core._kmeans_lloyd import (
    Blocks,
    assign,
    canonical,
    greedy_kmeans_plusplus,
    minibatch_step,
    prepare,
    random_init,
)
from monitor.errors import InvalidInputError, InvalidValuesError

__all__ = ["KMeans", "MiniBatchKMeans", "NotFittedError"]

_T = TypeVar("_T")

SKLEARN_HINT = "pip install 'kmeans-monitor[sklearn]'"

# set_output(transform=...): scikit-learn's containers ("default": the numpy array).
TRANSFORM_OUTPUTS = ("default", "pandas", "polars")


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (same bases as scikit-learn's)."""

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # The scikit-learn-flavoured subclass is made at run time and cannot be found
        # by name when unpickling: travel as this class.
        return (NotFittedError, self.args)


class _InvalidInputTypeError(InvalidInputError, TypeError):
    """Input of a type that cannot become numbers (scikit-learn expects a TypeError)."""


@functools.cache
def _also_sklearns(base: type[Exception]) -> type[NotFittedError]:
    """Our NotFittedError that is also scikit-learn's (one class per base, made once)."""
    return type("NotFittedError", (NotFittedError, base), {"__module__": __name__})


def _not_fitted(est: object) -> NotFittedError:
    msg = (
        f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with "
        f"appropriate arguments before using this estimator."
    )
    # Also be scikit-learn's NotFittedError when it is installed, so that its code (and
    # check_estimator) catches ours. Imported here, on the error path only: fitting and
    # predicting never import scikit-learn.
    try:
        from sklearn.exceptions import NotFittedError as sklearn_not_fitted
    except ImportError:
        return NotFittedError(msg)
    return _also_sklearns(sklearn_not_fitted)(msg)


def _require_sklearn() -> Any:
    try:
        import sklearn.utils as sk_utils
    except ImportError as exc:  # pragma: no cover - exercised with sklearn hidden
        raise ImportError(
            f"scikit-learn is needed for this (estimator tags); install it with {SKLEARN_HINT}"
        ) from exc
    return sk_utils


def _frame_hint(name: str) -> str:
    return (
        f"set_output(transform={name!r}) needs {name}, which is not installed: pip install {name}"
    )


def _as_pandas(out: NDArray[Any], X: Any, columns: NDArray[np.object_]) -> Any:
    """``out`` as a pandas DataFrame, with the index of X where X is one."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(_frame_hint("pandas")) from exc
    index = X.index if isinstance(X, pd.DataFrame) else None
    # ``out`` is a fresh array of ours: the frame may keep it without a copy.
    return pd.DataFrame(out, index=index, columns=columns, copy=False)


def _as_polars(out: NDArray[Any], columns: NDArray[np.object_]) -> Any:
    """``out`` as a polars DataFrame (polars has no index to carry over)."""
    try:
        import polars as pl
    except ImportError as exc:
        raise ImportError(_frame_hint("polars")) from exc
    return pl.DataFrame(out, schema=columns.tolist(), orient="row")


def _feature_names(X: Any) -> NDArray[np.object_] | None:
    """The column names of a DataFrame when they are all strings (scikit-learn's feature
    names), else None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    if names.ndim != 1 or not all(isinstance(n, str) for n in names):
        return None
    return names


def _check_X(X: Any, *, name: str = "X") -> NDArray[np.floating[Any]]:
    """``check_array`` with the error shapes scikit-learn's estimator checks look for."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        return check_array(X, name=name)  # raises: dense data only
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise InvalidInputError(
            f"Complex data not supported: {name} has complex values; only real numbers are."
        )
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            _refuse_missing(arr, name)
            raise _InvalidInputTypeError(f"{name} cannot be read as numbers: {exc}") from exc
        except ValueError as exc:
            raise InvalidInputError(f"{name} cannot be read as numbers: {exc}") from exc
    if arr.ndim == 1:
        raise InvalidInputError(
            f"Expected a 2-D array for {name}, got a 1-D array of shape {arr.shape}. "
            f"Reshape your data with X.reshape(-1, 1) for a single feature or "
            f"X.reshape(1, -1) for a single sample."
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    return check_array(arr, name=name)


def _is_pandas_na(value: object) -> bool:
    """Whether ``value`` is pandas' missing value, ``pd.NA`` (pandas is not imported)."""
    kind = type(value)
    return kind.__name__ == "NAType" and kind.__module__.startswith("pandas")


def _refuse_missing(arr: NDArray[Any], name: str) -> None:
    """InvalidInputError when an object array holds ``pd.NA``, as a nullable pandas frame
    gives: it is a missing value, not a value that is no number (scikit-learn: "Input X
    contains NaN")."""
    missing = np.frompyfunc(_is_pandas_na, 1, 1)(arr).astype(bool)
    if missing.any():
        first = np.argwhere(missing)[0]
        at = f"row {first[0]}, column {first[1]}" if arr.ndim == 2 else f"index {first[0]}"
        raise InvalidInputError(
            f"{name} contains missing values (pd.NA), which k-means cannot use: "
            f"{int(missing.sum())} value(s), the first at {at}; drop or fill them first."
        )


def float64_on_overflow(
    Xa: NDArray[np.floating[Any]],
    compute: Callable[[NDArray[np.floating[Any]]], _T],
    values: Callable[[_T], Any],
    refuse: Callable[[NDArray[np.floating[Any]], _T], InvalidInputError],
) -> _T:
    """``compute(Xa)``, done again on a float64 copy when float32 rows gave squared
    distances beyond float32 (inf, or NaN from inf - inf: values beyond about
    1e19 / sqrt(n_features)), which ``values`` of the result show; float64 rows whose
    results are still not finite (values beyond about 1e154) raise ``refuse(rows, result)``.

    The input holds no inf or NaN (``check_array``), so only the arithmetic makes them:
    checked on the results, the usual data pays nothing for it. numpy's overflow
    warnings are silenced by a warnings filter, not ``np.errstate``, which does not
    reach the worker threads: a finite result needs none, and the refusal says it all.
    """
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        out = compute(Xa)
        if Xa.dtype == np.float32 and not np.isfinite(values(out)).all():
            Xa = Xa.astype(np.float64)
            out = compute(Xa)
    if np.isfinite(values(out)).all():
        return out
    raise refuse(Xa, out)


def overflow_error(
    Xa: NDArray[np.floating[Any]], names: Any, offset: NDArray[Any] | None
) -> InvalidValuesError:
    """The refusal of rows whose squared distances overflow, in the words of choose-k and
    of a run (``overflow_message``), judged around the fit's ``offset`` as computed."""
    features = [f"column {j}" for j in range(Xa.shape[1])] if names is None else list(names)
    centre = None if offset is None else (lambda rows: rows - offset)
    found = find_overflow(Xa, centre)
    if found is not None and found.rows:
        message = found.message(features, "squared distances")
    else:
        # Within a factor of 4 of the largest float a distance between two rows
        # overflows where no squared norm does, and the sum of squares that each fit,
        # or their weights, can overflow the inertia.
        message = (
            "squared distances or their weighted sum overflow the largest float; the data "
            "or the weights are probably in the wrong unit or corrupt"
        )
    return InvalidValuesError(f"X: {message}")


class _KMeansBase:
    """What KMeans and MiniBatchKMeans share: parameters, tags, predict and transform."""

    _estimator_type = "clusterer"
    cluster_centers_: NDArray[np.floating[Any]]
    n_features_in_: int
    metric: str
    working_memory_mib: float

    # -------------------------------------------------------------- parameters

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _KMeansBase:
        """Set constructor parameters; validated at ``fit``, never here."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise InvalidInputError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        shown = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name, p.default)
            if value is p.default or (
                isinstance(value, str | int | float | type(None))
                and type(value) is type(p.default)
                and value == p.default
            ):
                continue
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self) -> Any:
        """Estimator tags for scikit-learn (imports it: only scikit-learn calls this)."""
        sk = _require_sklearn()
        return sk.Tags(
            estimator_type="clusterer",
            target_tags=sk.TargetTags(required=False),
            transformer_tags=sk.TransformerTags(preserves_dtype=["float64", "float32"]),
            input_tags=sk.InputTags(sparse=False, allow_nan=False),
            requires_fit=True,
            non_deterministic=False,
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    # -------------------------------------------------------------- checks

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise _not_fitted(self)

    def _remember_names(self, X: Any) -> None:
        """``feature_names_in_`` from a fit on a DataFrame (scikit-learn's convention)."""
        names = _feature_names(X)
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_names(self, X: Any) -> None:
        """A DataFrame's columns must be those of the fit, in order (a reordered frame gave
        the wrong labels); a mix of named and unnamed input is warned about, as in
        scikit-learn."""
        fitted = getattr(self, "feature_names_in_", None)
        names = _feature_names(X)
        owner = type(self).__name__
        if fitted is None and names is not None:
            warnings.warn(
                f"X has feature names, but {owner} was fitted without feature names",
                UserWarning,
                stacklevel=3,
            )
        elif fitted is not None and names is None:
            warnings.warn(
                f"X does not have valid feature names, but {owner} was fitted with feature names",
                UserWarning,
                stacklevel=3,
            )
        elif fitted is not None and names is not None and list(names) != list(fitted):
            raise InvalidInputError(
                f"The feature names should match those that were passed during fit: got "
                f"{brief(list(names))}, fitted on {brief(list(fitted))}."
            )

    def _check_test_X(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        self._check_fitted()
        self._check_names(X)
        Xa = _check_X(X)
        if Xa.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"X has {Xa.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if self.metric == "cosine":
            check_nonzero_rows(Xa)
        return Xa

    def _wm(self) -> float:
        return check_float(
            self.working_memory_mib,
            "working_memory_mib",
            low=0.0,
            low_inclusive=False,
            owner=type(self).__name__,
        )

    def _threads(self) -> int:
        return 1

    def _compiled(self) -> bool:
        return False

    def _data_for(self, Xa: NDArray[np.floating[Any]]) -> Any:
        return prepare(
            Xa,
            np.ones(0, dtype=Xa.dtype),
            cosine=self.metric == "cosine",
            k=self.cluster_centers_.shape[0],
            working_memory_mib=self._wm(),
            n_threads=self._threads(),
        )

    def _offset(self) -> NDArray[Any] | None:
        """The mean the fit centred X around (``KMeansFit.offset``), if it did."""
        return None

    def _rows_and_centres(
        self, Xa: NDArray[np.floating[Any]], *, centred: bool = False
    ) -> tuple[Any, NDArray[Any]]:
        """X's rows and the centres as distances are computed on them: around the fit's
        offset when it had one, so that predict keeps the fit's precision (``centred``:
        X is already around it)."""
        C = self.cluster_centers_
        offset = self._offset()
        if offset is not None:
            if not centred:
                Xa = centred_rows(Xa, offset, self._wm())
            C = C.astype(np.float64) - offset
        return self._data_for(Xa), C.astype(Xa.dtype, copy=False)

    def _labels_sq(
        self, Xa: NDArray[np.floating[Any]], *, centred: bool = False
    ) -> tuple[NDArray[np.int64], NDArray[np.floating[Any]]]:
        def assign(
            rows: NDArray[np.floating[Any]],
        ) -> tuple[NDArray[np.int64], NDArray[np.floating[Any]]]:
            return assign_with(*self._rows_and_centres(rows, centred=centred), self._compiled())

        offset = None if centred else self._offset()
        return float64_on_overflow(
            Xa, assign, lambda labels_sq: labels_sq[1], self._refusal(offset)
        )

    def _refusal(
        self, offset: NDArray[Any] | None
    ) -> Callable[[NDArray[np.floating[Any]], Any], InvalidInputError]:
        """``float64_on_overflow``'s refusal of rows around ``offset``, their columns
        named as the fit's."""
        names = getattr(self, "feature_names_in_", None)
        return lambda rows, _: overflow_error(rows, names, offset)

    # -------------------------------------------------------------- scikit-learn API

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """Index of the nearest centre of each row of X."""
        return self._labels_sq(self._check_test_X(X))[0]

    def set_output(self, *, transform: str | None = None) -> Self:
        """Choose what ``transform`` and ``fit_transform`` return (scikit-learn's API).

        ``"default"``: a numpy array; ``"pandas"``: a pandas DataFrame with the columns of
        ``get_feature_names_out`` and, for a DataFrame X, X's index; ``"polars"``: a
        polars DataFrame with those columns; None: unchanged. The library is imported when
        a frame is made, not here. scikit-learn's global ``set_config(transform_output=)``
        is not read (docs/decisions.md, "set_output"): set it on the estimator or the
        Pipeline.
        """
        if transform is None:
            return self
        owner = f"{type(self).__name__}.set_output"
        check_choice(transform, "transform", TRANSFORM_OUTPUTS, owner=owner)
        # The attribute scikit-learn's clone() copies, so a clone keeps the choice.
        self._sklearn_output_config = {"transform": transform}
        return self

    def _output(self, out: NDArray[np.floating[Any]], X: Any) -> Any:
        """``out`` in the container ``set_output`` chose."""
        config = getattr(self, "_sklearn_output_config", {})
        kind = config.get("transform", "default")
        owner = f"{type(self).__name__}.set_output"
        check_choice(kind, "transform", TRANSFORM_OUTPUTS, owner=owner)
        if kind == "default":
            return out
        columns = self.get_feature_names_out()
        return _as_pandas(out, X, columns) if kind == "pandas" else _as_polars(out, columns)

    def transform(self, X: ArrayLike) -> Any:
        """Distance of each row to each centre, shape (n_samples, n_clusters).

        For the cosine metric: the Euclidean distance between the normalised row and the
        unit-norm centre, sqrt(2 (1 - cos)). A numpy array, or the DataFrame that
        ``set_output`` asks for.
        """
        Xa = self._check_test_X(X)
        # The distances fit in float32 where their squares did not.
        refuse = self._refusal(self._offset())
        out = float64_on_overflow(Xa, self._distances, lambda d: d, refuse)
        out = out.astype(Xa.dtype, copy=False)
        return self._output(out, X)

    def _distances(self, Xa: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        data, C = self._rows_and_centres(Xa)
        blocks = Blocks(data, C)
        out = np.empty((Xa.shape[0], C.shape[0]), dtype=Xa.dtype)

        def distances(s: slice) -> None:
            out[s] = np.sqrt(blocks.to_sq_dist(s, blocks.block(s)))

        blocks.map(distances)
        return out

    def fit_predict(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> NDArray[np.int64]:
        """Fit, then return the labels of the training rows."""
        return self.fit(X, sample_weight=sample_weight).labels_  # type: ignore[attr-defined]

    def fit_transform(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> Any:
        """Fit, then return the distances of the training rows to the centres (in the
        container ``set_output`` chose, as ``transform``)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)  # type: ignore[attr-defined]

    def score(self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None) -> float:
        """Negative (weighted) inertia of X under the fitted centres."""
        Xa = self._check_test_X(X)
        w = check_weights(sample_weight, Xa.shape[0], Xa.dtype).astype(np.float64)

        def inertia(rows: NDArray[np.floating[Any]]) -> float:
            return float(w @ self._labels_sq(rows)[1].astype(np.float64))

        # The sum is checked too: squared distances that each fit can add up beyond it.
        return -float64_on_overflow(Xa, inertia, float, self._refusal(self._offset()))

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.object_]:
        """Names of the transform's columns: ``<classname><i>``. ``input_features``, when
        given, must be ``feature_names_in_`` (or as many names as X had columns, fitted
        without names), as scikit-learn checks it in a pipeline."""
        self._check_fitted()
        if input_features is not None:
            given = np.asarray(input_features, dtype=object)
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and not np.array_equal(fitted, given):
                raise InvalidInputError(
                    f"input_features is not equal to feature_names_in_: got "
                    f"{brief(given.tolist())}, fitted on {brief(fitted.tolist())}."
                )
            if given.ndim != 1 or given.size != self.n_features_in_:
                raise InvalidInputError(
                    f"input_features should have length equal to number of features "
                    f"({self.n_features_in_}), got {given.size}."
                )
        prefix = type(self).__name__.lower()
        k = self.cluster_centers_.shape[0]
        return np.asarray([f"{prefix}{i}" for i in range(k)], dtype=object)


class KMeans(_KMeansBase):
    """k-means clustering (k-means++ seeding, chunked Lloyd) with the scikit-learn API.

    Parameters are those of ``monitor.core.kmeans.fit_kmeans`` (``n_threads`` and
    ``kernel`` also for predict, transform and score); ``n_init="auto"`` is
    1 run for k-means++ or an array init and 10 for random. scikit-learn's
    ``algorithm`` ("lloyd" or "elkan": both give Lloyd's iterates, which this kernel
    computes, skipping distances with Hamerly's bounds), ``copy_x`` (X is never written
    to) and ``verbose`` (0: nothing is printed) are taken where they mean what this
    estimator does, and refused otherwise. Fitted attributes:
    ``cluster_centers_``, ``labels_``, ``inertia_``, ``n_iter_``, ``n_features_in_``,
    ``converged_``, ``n_relocated_``, ``n_distinct_points_``, ``fit_`` (the
    ``KMeansFit`` record) and, fitted on a DataFrame, ``feature_names_in_``.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | ArrayLike = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
        metric: str = "euclidean",
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
        n_threads: int = 1,
        kernel: str = "auto",
        init_sample: int | str = "auto",
        algorithm: str = "lloyd",
        copy_x: bool = True,
        verbose: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.metric = metric
        self.working_memory_mib = working_memory_mib
        self.n_threads = n_threads
        self.kernel = kernel
        self.init_sample = init_sample
        self.algorithm = algorithm
        self.copy_x = copy_x
        self.verbose = verbose

    def _threads(self) -> int:
        return check_int(self.n_threads, "n_threads", low=1, owner="KMeans")

    def _compiled(self) -> bool:
        k = self.cluster_centers_.shape[0]
        return resolve_kernel(self.kernel, metric=self.metric, k=k, owner="KMeans")

    def _offset(self) -> NDArray[Any] | None:
        return self.fit_.offset

    def fit(self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None) -> KMeans:
        """Fit the centres on X (``y`` is ignored)."""
        self._check_sklearns_params()
        Xa = _check_X(X)
        fit = float64_on_overflow(
            Xa,
            lambda rows: self._fit_rows(rows, sample_weight),
            lambda f: f.inertia,
            lambda rows, f: overflow_error(rows, _feature_names(X), f.offset),
        )
        self.fit_ = fit  # centres in X's dtype below, where a float64 fit gave them
        self.cluster_centers_ = fit.centers.astype(Xa.dtype, copy=False)
        self.labels_ = fit.labels
        self.inertia_ = fit.inertia
        self.n_iter_ = fit.n_iter
        self.converged_ = fit.converged
        self.n_relocated_ = fit.n_relocated
        self.n_distinct_points_ = fit.n_distinct_points
        self.n_features_in_ = int(Xa.shape[1])
        self._remember_names(X)
        return self

    def _check_sklearns_params(self) -> None:
        """scikit-learn's parameters, taken where they mean what this estimator does."""
        check_choice(self.algorithm, "algorithm", ("lloyd", "elkan"), owner="KMeans")
        if not isinstance(self.copy_x, bool | np.bool_):
            raise Mismatch(Problem("copy_x", "a bool", self.copy_x), "KMeans")
        verbose = self.verbose
        if not ((is_int(verbose) or isinstance(verbose, bool | np.bool_)) and verbose == 0):
            expected = "0 or False (this KMeans prints no progress)"
            raise Mismatch(Problem("verbose", expected, verbose), "KMeans")

    def _fit_rows(self, Xa: NDArray[np.floating[Any]], sample_weight: ArrayLike | None) -> Any:
        return validate_and_fit(
            Xa,
            self.n_clusters,
            init=self.init,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=self.random_state,
            sample_weight=sample_weight,
            metric=self.metric,
            working_memory_mib=self.working_memory_mib,
            n_threads=self.n_threads,
            owner="KMeans",
            kernel=self.kernel,
            init_sample=self.init_sample,
        )


class MiniBatchKMeans(_KMeansBase):
    """Mini-batch k-means (Sculley, 2010): per-centre counts, learning rate 1/count.

    ``fit`` runs up to ``max_iter`` epochs over the window in shuffled batches of
    ``batch_size`` rows and stops early when the smoothed batch inertia has not improved
    for ``max_no_improvement`` batches. ``partial_fit`` consumes a window chunk by chunk
    (the first chunk seeds the centres and needs at least ``n_clusters`` rows); each
    chunk is split into shuffled batches of ``batch_size``. Centres are kept in float64.
    Data far from the origin is fitted around its weighted mean, as in KMeans: that of
    the first data seen (``fit``'s window, ``partial_fit``'s first chunk), kept for the
    later chunks, predict, transform and score.
    """

    # The mean the centres are kept around (KMeansFit.offset's role), or None.
    _fit_offset: NDArray[np.float64] | None = None

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | ArrayLike = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        max_no_improvement: int | None = 10,
        n_init: int | str = "auto",
        random_state: Any = None,
        metric: str = "euclidean",
        working_memory_mib: float = DEFAULT_WORKING_MEMORY_MIB,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.max_no_improvement = max_no_improvement
        self.n_init = n_init
        self.random_state = random_state
        self.metric = metric
        self.working_memory_mib = working_memory_mib

    # -------------------------------------------------------------- helpers

    def _offset(self) -> NDArray[Any] | None:
        return self._fit_offset

    def _start(
        self, Xa: NDArray[np.floating[Any]], w: NDArray[np.floating[Any]]
    ) -> NDArray[np.floating[Any]]:
        """Choose the offset on the first data seen (never for cosine); Xa around it."""
        self._fit_offset = None if self.metric == "cosine" else offset_of(Xa, w, self._wm())
        return self._centred(Xa)

    def _centred(self, Xa: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        offset = self._fit_offset
        return Xa if offset is None else centred_rows(Xa, offset, self._wm())

    def _params(self) -> tuple[int, int, str]:
        owner = "MiniBatchKMeans"
        k = check_int(self.n_clusters, "n_clusters", low=1, owner=owner)
        batch = check_int(self.batch_size, "batch_size", low=1, owner=owner)
        metric = check_choice(self.metric, "metric", METRICS, owner=owner)
        if isinstance(self.init, str):
            check_choice(self.init, "init", INITS, owner=owner)
        self._wm()
        return k, batch, metric

    def _init_centers(
        self,
        Xa: NDArray[np.floating[Any]],
        w: NDArray[np.floating[Any]],
        k: int,
        rng: np.random.Generator,
        n_runs: int,
    ) -> NDArray[np.float64]:
        cosine = self.metric == "cosine"
        if not isinstance(self.init, str):
            C = check_centers(
                self.init, Xa.shape[1], n_clusters=k, name="init", owner="MiniBatchKMeans"
            )
            if cosine:
                check_nonzero_rows(C, "init")
                C /= np.sqrt(np.einsum("ij,ij->i", C, C))[:, None]
            return C if self._fit_offset is None else C - self._fit_offset
        data = prepare(Xa, w, cosine=cosine, k=k, working_memory_mib=self._wm())
        canon = canonical(data)
        best: NDArray[np.float64] | None = None
        best_inertia = math.inf
        for _ in range(n_runs):
            if self.init == "k-means++":
                C, _ = greedy_kmeans_plusplus(data, canon, k, rng, 2 + int(math.log(k)))
            else:
                C, _ = random_init(data, canon, k, rng)
            _, sq = assign(data, C)
            inertia = float(w.astype(np.float64) @ sq.astype(np.float64))
            if inertia < best_inertia or best is None:
                best, best_inertia = C.astype(np.float64), inertia
        assert best is not None
        return best

    def _steps(
        self,
        Xa: NDArray[np.floating[Any]],
        w: NDArray[np.floating[Any]],
        perm: NDArray[np.intp],
        batch: int,
    ) -> list[float]:
        """Sculley steps over ``Xa[perm]`` in batches; the per-weight inertia of each."""
        out = []
        for s in iter_slices(perm.size, batch):
            idx = np.sort(perm[s])
            wb = w[idx]
            inertia = minibatch_step(
                Xa[idx],
                wb,
                self._centers64,
                self.counts_,
                cosine=self.metric == "cosine",
                working_memory_mib=self._wm(),
            )
            out.append(inertia / max(float(wb.sum(dtype=np.float64)), 1e-300))
            self.n_steps_ += 1
        self._show_centers()
        return out

    def _show_centers(self) -> None:
        """``cluster_centers_``: the float64 centres kept, in X's units and dtype."""
        offset = self._fit_offset
        C = self._centers64 if offset is None else self._centers64 + offset
        self.cluster_centers_ = C.astype(self._dtype)

    # -------------------------------------------------------------- API

    def fit(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> MiniBatchKMeans:
        """Fit on the whole window X in mini-batches."""
        Xa = _check_X(X)
        try:
            float64_on_overflow(
                Xa,
                lambda rows: self._fit_rows(X, rows, sample_weight),
                float,
                lambda rows, _: overflow_error(rows, _feature_names(X), self._fit_offset),
            )
        except InvalidValuesError:
            self._forget()  # a refused fit leaves no model, not the half-made one
            raise
        self._dtype = Xa.dtype  # as KMeans does, where the fit was done again in float64
        self.cluster_centers_ = self.cluster_centers_.astype(Xa.dtype, copy=False)
        return self

    def _forget(self) -> None:
        """Drop the fitted attributes (scikit-learn's names: ending in ``_``)."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)

    def _fit_rows(
        self, X: ArrayLike, Xa: NDArray[np.floating[Any]], sample_weight: ArrayLike | None
    ) -> float:
        """Fit; the last smoothed per-weight inertia of the steps (inf or NaN where the
        squared distances overflowed)."""
        owner = "MiniBatchKMeans"
        k, batch, metric = self._params()
        n_runs = resolve_n_init(self.n_init, self.init, owner)
        max_iter = check_int(self.max_iter, "max_iter", low=1, owner=owner)
        patience = (
            None
            if self.max_no_improvement is None
            else check_int(self.max_no_improvement, "max_no_improvement", low=1, owner=owner)
        )
        check_enough_samples(Xa, k)
        w = check_weights(sample_weight, Xa.shape[0], Xa.dtype)
        if metric == "cosine":
            check_nonzero_rows(Xa)
        rng = check_random_state(self.random_state)
        self._rng = rng  # partial_fit after fit continues from this generator
        n = Xa.shape[0]
        init_size = min(n, max(3 * batch, 3 * k))
        # Seed on rows that can be drawn: a sample of all rows could hold no positive
        # weight (an IndexError). With every weight positive, the same draws as before.
        pos = np.flatnonzero(w > 0)
        sub = np.sort(rng.choice(pos, init_size, replace=False)) if init_size < pos.size else pos
        self._dtype = Xa.dtype
        Xc = self._start(Xa, w)
        self._centers64 = self._init_centers(Xc[sub], w[sub], k, rng, n_runs)
        self.counts_ = np.zeros(k)
        self.n_steps_ = 0
        ewa: float | None = None
        best = math.inf
        stale = 0
        alpha = min(1.0, 2.0 * batch / (n + 1))
        epochs = 0
        stopped = False
        for _ in range(max_iter):
            epochs += 1
            for value in self._steps(Xc, w, rng.permutation(n), batch):
                ewa = value if ewa is None else (1 - alpha) * ewa + alpha * value
                if ewa < best:
                    best, stale = ewa, 0
                else:
                    stale += 1
                if patience is not None and stale >= patience:
                    stopped = True
                    break
            if stopped:
                break
        self.n_features_in_ = int(Xa.shape[1])
        self._remember_names(X)
        labels, sq = self._labels_sq(Xc, centred=True)
        self.labels_ = labels
        self.inertia_ = float(w.astype(np.float64) @ sq.astype(np.float64))
        self.n_iter_ = epochs
        self.converged_ = stopped
        return 0.0 if ewa is None else ewa

    def partial_fit(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> MiniBatchKMeans:
        """Update the centres with one chunk of a window (seeding them on the first).

        A float32 chunk whose squared distances overflow is done again in float64 from
        the state before it, as ``fit`` does with the whole window; a chunk that overflows
        even so is refused, and the model is left as it was before it.
        """
        first = not self.__sklearn_is_fitted__()
        Xa = _check_X(X) if first else self._check_test_X(X)
        k, batch, metric = self._params()
        check_weights(sample_weight, Xa.shape[0], Xa.dtype)
        if metric == "cosine":
            check_nonzero_rows(Xa)
        if first:
            check_enough_samples(Xa, k)
            self._rng = check_random_state(self.random_state)
            self._dtype = Xa.dtype
            before = None
        else:
            before = (self._centers64.copy(), self.counts_.copy(), self.n_steps_)
        rng_state = self._rng.bit_generator.state

        def update(rows: NDArray[np.floating[Any]]) -> list[float]:
            self._rng.bit_generator.state = rng_state  # a retry draws as the first try did
            w = check_weights(sample_weight, rows.shape[0], rows.dtype)
            if before is None:
                n_runs = resolve_n_init(self.n_init, self.init, "MiniBatchKMeans")
                Xc = self._start(rows, w)
                self._centers64 = self._init_centers(Xc, w, k, self._rng, n_runs)
                self.counts_ = np.zeros(k)
                self.n_steps_ = 0
            else:
                self._centers64, self.counts_ = before[0].copy(), before[1].copy()
                self.n_steps_ = before[2]
                Xc = self._centred(rows)
            return self._steps(Xc, w, self._rng.permutation(rows.shape[0]), batch)

        try:
            float64_on_overflow(
                Xa,
                update,
                np.asarray,
                lambda rows, _: overflow_error(rows, _feature_names(X), self._fit_offset),
            )
        except InvalidValuesError:
            self._rng.bit_generator.state = rng_state
            if before is None:
                self._forget()
            else:
                self._centers64, self.counts_, self.n_steps_ = before
                self._show_centers()
            raise
        if first:
            self.n_features_in_ = int(Xa.shape[1])
            self._remember_names(X)
        return self
