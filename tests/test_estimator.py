"""monitor.KMeans / MiniBatchKMeans against scikit-learn's own estimator checks and API."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
)

from monitor import KMeans, MiniBatchKMeans
from monitor.core.kmeans import NotFittedError
from monitor.errors import DegenerateDataWarning, InvalidInputError

# Checks that can only skip on this machine, never fail or pass: the pandas one needs
# pandas (not a dependency), the array-API one needs SCIPY_ARRAY_API=1 and an array
# API library (the estimators declare array_api_support=False).
ONLY_SKIP_HERE = {"check_sample_weights_pandas_series", "check_array_api_input"}


# The cosine metric rejects all-zero rows (they have no direction): the one check whose
# data has such a row (random data rounded to integers) must fail with that error.
COSINE_EXPECTED = {
    "check_estimators_dtypes": "rounded data has an all-zero row, which cosine rejects"
}


@pytest.mark.parametrize(
    ("estimator", "expected_failed"),
    [
        (KMeans(n_clusters=2, n_init=2, max_iter=5), {}),
        (KMeans(), {}),
        (KMeans(n_clusters=3, metric="cosine"), COSINE_EXPECTED),
        (KMeans(n_clusters=3, n_threads=2, working_memory_mib=0.01), {}),
        (MiniBatchKMeans(n_clusters=2, max_iter=5, batch_size=10), {}),
    ],
    ids=lambda p: repr(p) if not isinstance(p, dict) else "",
)
def test_sklearn_check_estimator(estimator, expected_failed: dict[str, str]) -> None:
    with warnings.catch_warnings():
        # By design the estimators do not inherit sklearn.base.BaseEstimator (the core
        # must not import scikit-learn); check_estimator says so in a UserWarning.
        warnings.filterwarnings("ignore", message=".*does not inherit from", category=UserWarning)
        # Fewer distinct rows than clusters in some checks' tiny data: warned by design.
        warnings.filterwarnings("ignore", category=DegenerateDataWarning)
        results = check_estimator(
            estimator, on_fail=None, on_skip=None, expected_failed_checks=expected_failed
        )
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed == set(expected_failed)
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == {}
    assert skipped <= ONLY_SKIP_HERE
    assert len(results) > 40  # the whole suite ran, not an early exit


def test_core_runs_without_importing_sklearn() -> None:
    code = (
        "import sys, numpy as np\n"
        "import monitor\n"
        "X = np.random.default_rng(0).normal(size=(50, 3))\n"
        "km = monitor.KMeans(3, random_state=0).fit(X)\n"
        "km.predict(X), km.transform(X), km.score(X)\n"
        "monitor.MiniBatchKMeans(3, random_state=0).fit(X).predict(X)\n"
        "assert 'sklearn' not in sys.modules, 'sklearn was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_not_fitted_without_sklearn_is_ours_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes the import fail as if scikit-learn were not installed.
    monkeypatch.setitem(sys.modules, "sklearn.exceptions", None)
    with pytest.raises(NotFittedError, match="not fitted yet") as info:
        KMeans().predict(np.zeros((2, 2)))
    assert type(info.value) is NotFittedError
    assert not isinstance(info.value, SkNotFittedError)


def test_tags_without_sklearn_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.utils", None)
    with pytest.raises(ImportError, match=r"pip install 'kmeans-monitor\[sklearn\]'"):
        KMeans().__sklearn_tags__()


def test_not_fitted_is_ours_and_sklearns() -> None:
    with pytest.raises(NotFittedError, match="This KMeans instance is not fitted yet") as info:
        KMeans().predict(np.zeros((2, 2)))
    assert isinstance(info.value, SkNotFittedError)
    assert isinstance(info.value, ValueError | AttributeError)
    with pytest.raises(NotFittedError) as second:
        MiniBatchKMeans().transform(np.zeros((2, 2)))
    assert type(second.value) is type(info.value)  # one class, not one per error
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is NotFittedError and again.args == info.value.args


def test_params_repr_clone() -> None:
    km = KMeans(3, n_init=4, random_state=1, metric="cosine")
    assert repr(km) == "KMeans(n_clusters=3, n_init=4, random_state=1, metric='cosine')"
    assert km.get_params()["n_init"] == 4
    other = clone(km)
    assert other is not km and other.get_params() == km.get_params()
    km.set_params(n_clusters=5)
    assert km.n_clusters == 5
    with pytest.raises(InvalidInputError, match="Invalid parameter 'k' for estimator KMeans"):
        km.set_params(k=3)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"n_clusters": 0},
            r"The 'n_clusters' parameter of KMeans must be an int in \[1, inf\)\. "
            r"Got 0 instead\.",
        ),
        ({"n_init": "many"}, r"The 'n_init' parameter of KMeans must be one of \{'auto'\}"),
        ({"metric": "l1"}, r"The 'metric' parameter of KMeans must be one of"),
        ({"working_memory_mib": -1.0}, r"'working_memory_mib' parameter of KMeans"),
        (
            {"algorithm": "auto"},
            r"^The 'algorithm' parameter of KMeans must be one of \{'lloyd', 'elkan'\}\. "
            r"Got 'auto' instead\.$",
        ),
        ({"copy_x": "yes"}, r"^The 'copy_x' parameter of KMeans must be a bool\. Got 'yes'"),
        (
            {"verbose": 1},
            r"^The 'verbose' parameter of KMeans must be 0 or False \(this KMeans prints no "
            r"progress\)\. Got 1 instead\.$",
        ),
    ],
)
def test_parameter_errors_name_the_estimator(params: dict, match: str) -> None:
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(InvalidInputError, match=match):
        KMeans(**params).fit(X)


@pytest.mark.parametrize(
    "params",
    [
        {"algorithm": "lloyd"},
        {"algorithm": "elkan"},
        {"copy_x": False},
        {"copy_x": np.True_},
        {"verbose": 0},
        {"verbose": False},
    ],
)
def test_sklearns_kmeans_parameters_that_mean_what_this_one_does_are_taken(params: dict) -> None:
    """KMeans(algorithm="elkan"), copy_x=False and verbose=0 were TypeErrors, so code
    written for scikit-learn's KMeans did not run. Elkan's bounds give Lloyd's iterates
    exactly (this kernel has Hamerly's); X is never written to, so copy_x has nothing to
    do; verbose=0 is the silence this estimator keeps. The same fit as scikit-learn's,
    with the same initial centres, to 1e-12 (the order of the float sums differs)."""
    from sklearn.cluster import KMeans as SkKMeans

    X, _ = make_blobs(300, centers=3, random_state=0)
    init = X[[0, 100, 200]]
    ours = KMeans(3, init=init, **params).fit(X)
    # scikit-learn's copy_x=False centres X in place and adds the mean back: its last
    # bits may change. Ours never writes to X.
    theirs = SkKMeans(3, init=init, n_init=1, **params).fit(X.copy())
    [(name, value)] = params.items()
    assert ours.get_params()[name] is value and clone(ours).get_params()[name] == value
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-12)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-12)
    np.testing.assert_array_equal(X, make_blobs(300, centers=3, random_state=0)[0])


def test_the_architecture_page_quotes_the_api_error_as_the_code_words_it() -> None:
    """docs/architecture.md quoted "The 'k' parameter of KMeans ..."; the code says
    'n_clusters', scikit-learn's name."""
    page = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
    quoted = re.search(r"\(\"(The '\w+' parameter of KMeans [^\"]*)\"\)", page.read_text())
    assert quoted is not None
    with pytest.raises(InvalidInputError) as info:
        KMeans(0).fit(np.zeros((4, 2)))
    assert str(info.value) == quoted.group(1)


def test_predict_feature_mismatch_and_api_consistency() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 8.0])
    km = KMeans(2, random_state=0).fit(X)
    with pytest.raises(InvalidInputError, match="X has 3 features, but KMeans is expecting 2"):
        km.predict(np.zeros((4, 3)))
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)
    D = km.transform(X)
    assert D.shape == (100, 2)
    ref = np.sqrt(((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2))
    np.testing.assert_allclose(D, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(km.fit_transform(X), D)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-12)
    assert km.n_iter_ >= 1 and km.n_features_in_ == 2
    assert km.get_feature_names_out().tolist() == ["kmeans0", "kmeans1"]


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_a_nullable_frame_with_pd_na_is_said_to_hold_missing_values(cls: type) -> None:
    # pd.NA was "X cannot be read as numbers: ... not 'NAType'", a TypeError; scikit-learn
    # says "Input X contains NaN." (helper-145).
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_blobs(40, 3, centers=2, random_state=0)[0]).astype("Float64")
    X.iloc[5, 1] = pd.NA
    X.iloc[9, 0] = pd.NA
    with pytest.raises(ValueError) as caught:
        cls(2, random_state=0).fit(X)
    assert not isinstance(caught.value, TypeError)
    assert str(caught.value) == (
        "X contains missing values (pd.NA), which k-means cannot use: 2 value(s), the first "
        "at row 5, column 1; drop or fill them first."
    )


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_get_feature_names_out_checks_input_features_as_sklearn_does(cls: type) -> None:
    # input_features was ignored: any names, of any length, gave kmeans0, kmeans1, and
    # scikit-learn's two checks of it (in its own common tests) failed.
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(make_blobs(40, 2, centers=2, random_state=0)[0], columns=["a", "b"])
    km = cls(2, random_state=0).fit(X)
    assert km.get_feature_names_out(["a", "b"]).tolist() == [
        f"{cls.__name__.lower()}{i}" for i in range(2)
    ]
    for names in (["x", "y"], ["a", "b", "c"]):
        with pytest.raises(
            InvalidInputError, match="input_features is not equal to feature_names_in_"
        ):
            km.get_feature_names_out(names)
    unnamed = cls(2, random_state=0).fit(X.to_numpy())
    assert len(unnamed.get_feature_names_out(["p", "q"])) == 2
    with pytest.raises(
        InvalidInputError,
        match="input_features should have length equal to number of features \\(2\\), got 3",
    ):
        unnamed.get_feature_names_out(["p", "q", "r"])
    for check in (
        check_transformer_get_feature_names_out,
        check_transformer_get_feature_names_out_pandas,
    ):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DegenerateDataWarning)
            check(cls.__name__, cls(2, random_state=0))


def test_works_inside_a_sklearn_pipeline() -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(40, 3)) * 100, rng.normal(size=(40, 3)) * 100 + 900])
    pipe = make_pipeline(StandardScaler(), KMeans(2, random_state=0)).fit(X)
    labels = pipe.predict(X)
    assert len(set(labels[:40].tolist())) == 1 and labels[0] != labels[-1]


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_predict_and_transform_keep_the_precision_of_a_fit_around_an_offset(cls: type) -> None:
    # MiniBatchKMeans fitted without an offset: inertia_ 2048 for a true 176737 at 1e9.
    X0 = make_blobs(2000, 3, centers=4, cluster_std=0.3, random_state=1)[0]
    far = cls(4, random_state=0).fit(X0 + 1.7e9)
    near = cls(4, random_state=0).fit(X0)
    # The same partition, under other cluster numbers (the seeding's row order follows
    # the rows' bytes): the distances to each row's own centre agree.
    labels = far.predict(X0 + 1.7e9)
    np.testing.assert_array_equal(labels, far.labels_)
    assert adjusted_rand_score(labels, near.labels_) == 1.0
    rows = np.arange(len(X0))
    own_far = far.transform(X0 + 1.7e9)[rows, labels]
    np.testing.assert_allclose(own_far, near.transform(X0)[rows, near.labels_], atol=1e-5)
    assert far.score(X0 + 1.7e9) == pytest.approx(near.score(X0), rel=1e-6)
    assert far.score(X0 + 1.7e9) == pytest.approx(-far.inertia_, rel=1e-12)
    # A pickled model keeps the offset it was fitted around.
    again = pickle.loads(pickle.dumps(far))
    np.testing.assert_array_equal(again.predict(X0 + 1.7e9), labels)
    np.testing.assert_array_equal(again.transform(X0 + 1.7e9), far.transform(X0 + 1.7e9))


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_a_dataframes_columns_are_its_feature_names_and_must_match(cls: type) -> None:
    # A reordered frame was taken as it came: every label from the wrong features.
    pd = pytest.importorskip("pandas")
    X = make_blobs(300, 4, centers=3, random_state=2)[0]
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = cls(3, random_state=0).fit(frame)
    assert list(est.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(est.predict(frame), est.predict(X))
    with pytest.raises(InvalidInputError, match="feature names should match those that were"):
        est.predict(frame[["d", "c", "b", "a"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X)
    plain = cls(3, random_state=0).fit(X)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but"):
        plain.predict(frame)


# -------------------------------------------------------------- set_output

# Well-separated blobs around known centres: both libraries start from those centres.
BLOB_CENTRES = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])


def blobs() -> tuple[np.ndarray, float]:
    """X, and the largest distance of a row to its blob's centre."""
    X, y = make_blobs(300, 3, centers=BLOB_CENTRES, cluster_std=0.05, random_state=0)
    return X, float(np.linalg.norm(X - BLOB_CENTRES[y], axis=1).max())


def pair(cls: type, init: np.ndarray) -> tuple[object, object, float]:
    """Our estimator, scikit-learn's, and the tolerance of their distances.

    KMeans: from the true centres both converge in one Lloyd step to the blob means, and
    both compute the distances in float64 as sqrt(|x|^2 - 2 x.c + |c|^2), whose rounding
    (about 1e-14 on the squares here, 1.6e-12 measured on the smallest distances, which
    are about 5e-3) is far below 1e-9.

    MiniBatchKMeans: each centre moves to weighted means of its blob's rows in batches
    that differ between the two (batch order, sampling), so they differ by up to 1e-2.
    Each centre stays in the convex hull of its blob, within ``radius`` of the blob's
    centre (scikit-learn's random reassignment is off), and a distance moves no more
    than its centre: the two transforms differ by at most 2 * radius (0.36 here, where
    a wrong column or centre is off by about 10).
    """
    import sklearn.cluster as sk

    if cls is KMeans:
        return KMeans(4, init=init), sk.KMeans(4, init=init, n_init=1), 1e-9
    _, radius = blobs()
    theirs = sk.MiniBatchKMeans(
        4, init=init, n_init=1, batch_size=64, random_state=0, reassignment_ratio=0.0
    )
    return MiniBatchKMeans(4, init=init, batch_size=64, random_state=0), theirs, 2 * radius


def assert_same_container(ours: object, theirs: object, tol: float) -> None:
    """Same type, columns, index and dtypes, values within ``tol``."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    elif type(theirs).__module__.startswith("pandas"):
        import pandas as pd

        pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=tol, atol=tol)
    else:
        from polars.testing import assert_frame_equal

        assert_frame_equal(ours, theirs, check_exact=False, rel_tol=tol, abs_tol=tol)


@pytest.mark.parametrize("method", ["transform", "fit_transform"])
@pytest.mark.parametrize("frame_input", [False, True], ids=["array", "frame"])
@pytest.mark.parametrize("output", ["default", "pandas", "polars"])
@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
def test_set_output_gives_what_sklearn_gives(
    cls: type, output: str, frame_input: bool, method: str
) -> None:
    import pandas as pd

    X, _ = blobs()
    if frame_input:  # an index of its own, which the pandas output must carry
        X = pd.DataFrame(X, columns=["a", "b", "c"], index=[f"row{i}" for i in range(len(X))])
    ours, theirs, tol = pair(cls, BLOB_CENTRES)
    assert ours.set_output(transform=output) is ours
    theirs.set_output(transform=output)
    if method == "transform":
        got, want = ours.fit(X).transform(X), theirs.fit(X).transform(X)
    else:
        got, want = ours.fit_transform(X), theirs.fit_transform(X)
    assert_same_container(got, want, tol)
    if output != "default":
        prefix = cls.__name__.lower()
        assert list(got.columns) == [f"{prefix}{i}" for i in range(4)]
    if output == "pandas":
        assert got.index.equals(X.index if frame_input else pd.RangeIndex(len(X)))


def test_a_pipeline_set_to_pandas_output_ends_in_our_kmeans() -> None:
    # Pipeline.set_output raised: "Unable to configure output ... set_output is not
    # available" for a pipeline whose last step was our KMeans.
    import pandas as pd
    import sklearn.cluster as sk
    from sklearn.pipeline import Pipeline

    X, _ = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=[f"r{i}" for i in range(len(X))])
    init = StandardScaler().fit(frame).transform(pd.DataFrame(BLOB_CENTRES, columns=list("abc")))
    ours = Pipeline([("scale", StandardScaler()), ("km", KMeans(4, init=init))])
    theirs = Pipeline([("scale", StandardScaler()), ("km", sk.KMeans(4, init=init, n_init=1))])
    assert ours.set_output(transform="pandas") is ours
    theirs.set_output(transform="pandas")
    got = ours.fit_transform(frame)
    assert list(got.columns) == ["kmeans0", "kmeans1", "kmeans2", "kmeans3"]
    assert got.index.equals(frame.index)
    assert_same_container(got, theirs.fit_transform(frame), 1e-9)
    assert_same_container(ours.transform(frame), theirs.transform(frame), 1e-9)
    # The step saw the scaler's DataFrame: its columns are the feature names.
    assert list(ours.named_steps["km"].feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_array_equal(ours.predict(frame), theirs.predict(frame))


@pytest.mark.parametrize("cls", [KMeans, MiniBatchKMeans])
@pytest.mark.parametrize("value", ["numpy", "Pandas", "", 1, True])
def test_set_output_rejects_an_unknown_container(cls: type, value: object) -> None:
    est = cls(2)
    with pytest.raises(InvalidInputError, match=r"^The 'transform' parameter of ") as info:
        est.set_output(transform=value)
    assert str(info.value).startswith(
        f"The 'transform' parameter of {cls.__name__}.set_output must be one of "
        "{'default', 'pandas', 'polars'}. Got "
    )
    assert isinstance(info.value, ValueError)
    assert not hasattr(est, "_sklearn_output_config")  # the bad value was not kept


def test_set_output_none_keeps_the_choice_and_clone_copies_it() -> None:
    import pandas as pd
    from sklearn import config_context

    X, _ = blobs()
    est = KMeans(4, init=BLOB_CENTRES)
    # scikit-learn's global transform_output is not read (docs/decisions.md): arrays.
    with config_context(transform_output="pandas"):
        assert est.set_output(transform=None) is est
        assert type(est.fit_transform(X)) is np.ndarray
    est.set_output(transform="pandas").set_output(transform=None)
    assert isinstance(est.fit(X).transform(X), pd.DataFrame)
    assert isinstance(clone(est).fit_transform(X), pd.DataFrame)
    assert type(pickle.loads(pickle.dumps(est)).transform(X)) is pd.DataFrame
    assert type(est.set_output(transform="default").transform(X)) is np.ndarray


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_a_missing_frame_library_names_its_pip_package(
    library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = blobs()
    est = KMeans(4, init=BLOB_CENTRES).fit(X)
    monkeypatch.setitem(sys.modules, library, None)  # import fails as if not installed
    est.set_output(transform=library)  # the library is not needed until a frame is made
    with pytest.raises(ImportError, match=rf"needs {library}, .*: pip install {library}$"):
        est.transform(X)


def test_frame_libraries_are_imported_only_to_make_a_frame() -> None:
    code = (
        "import sys, numpy as np\n"
        "import monitor\n"
        "X = np.random.default_rng(0).normal(size=(50, 3))\n"
        "km = monitor.KMeans(3, random_state=0).set_output(transform='default').fit(X)\n"
        "km.transform(X), km.fit_transform(X)\n"
        "km.set_output(transform='pandas')\n"
        "loaded = {'pandas', 'polars', 'sklearn'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
        "assert type(km.transform(X)).__name__ == 'DataFrame'\n"
        "assert 'pandas' in sys.modules and 'polars' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


SET_OUTPUT_CHECKS = [
    "check_set_output_transform",
    "check_set_output_transform_pandas",
    "check_set_output_transform_polars",
]


# The checks fit on a frame and transform an array, and the other way round: warned.
FEATURE_NAMES_WARNING = "ignore:X (does not have valid|has) feature names:UserWarning"


@pytest.mark.filterwarnings(FEATURE_NAMES_WARNING)
@pytest.mark.parametrize("check", SET_OUTPUT_CHECKS)
@pytest.mark.parametrize(
    "estimator", [KMeans(n_clusters=3), MiniBatchKMeans(n_clusters=2, batch_size=10)], ids=repr
)
def test_sklearn_set_output_checks(estimator: object, check: str) -> None:
    # check_estimator does not run these (scikit-learn runs them on its own estimators).
    import sklearn.utils.estimator_checks as checks

    getattr(checks, check)(type(estimator).__name__, estimator)


@pytest.mark.filterwarnings(FEATURE_NAMES_WARNING)
@pytest.mark.parametrize(
    "check", ["check_global_output_transform_pandas", "check_global_set_output_transform_polars"]
)
def test_sklearns_global_output_config_is_not_read(check: str) -> None:
    # Reading it needs sys.modules in the core (docs/decisions.md, "set_output"): the
    # check fails on our arrays, where it expects a frame, and not on a missing method.
    import sklearn.utils.estimator_checks as checks

    with pytest.raises(AssertionError) as info:
        getattr(checks, check)("KMeans", KMeans(n_clusters=3))
    assert "assert is_supported_dataframe(df_trans)" in str(info.traceback[-1].statement)
