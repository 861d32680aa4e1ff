"""monitor.KMeans / MiniBatchKMeans against scikit-learn's own estimator checks and API."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

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
    ],
)
def test_parameter_errors_name_the_estimator(params: dict, match: str) -> None:
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(InvalidInputError, match=match):
        KMeans(**params).fit(X)


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
