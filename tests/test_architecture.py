"""The import rules of ../shared/ARCHITECTURE.md, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"
STDLIB = set(sys.stdlib_module_names)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def top_level_imports_of(path: Path) -> set[str]:
    """The modules imported when ``path`` is imported (module-level statements only)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}
TOP_LEVEL = {module_name(p): top_level_imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def uses(importer: str, prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in MODULES[importer])


def test_the_modules_are_found() -> None:
    assert {"monitor.core.kmeans", "monitor.pipeline", "monitor.cli"} <= set(MODULES)


# The optional compiler of the core's kernels (k-means, the PSI count), imported in one
# place (docs/decisions.md).
NUMBA_OWNERS = {"monitor.core._numba"}

# Libraries the KMeans estimator imports only when asked: scikit-learn (its tags and
# NotFittedError), pandas and polars (the DataFrames of set_output).
ESTIMATOR_EXTRAS = {"sklearn", "pandas", "polars"}


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("monitor.core")))
def test_core_imports_only_numpy_scipy_stdlib_records_errors_checks(name: str) -> None:
    allowed_project = (
        "monitor.core",
        "monitor.records",
        "monitor.errors",
        "monitor.checks",
        "monitor.slis",
    )
    for imp in MODULES[name]:
        top = imp.split(".")[0]
        if top == "monitor":
            assert imp.startswith(allowed_project), f"{name} imports {imp}"
        elif top in ESTIMATOR_EXTRAS:
            # The estimator's optional scikit-learn integration and the DataFrames of its
            # set_output, imported lazily only (docs/decisions.md).
            assert name == "monitor.core._kmeans_estimator", f"{name} imports {imp}"
            assert not any(i.split(".")[0] == top for i in TOP_LEVEL[name]), name
        elif top == "numba":
            # The optional compiled kernels (extra "fast"); numpy runs without them.
            assert name in NUMBA_OWNERS, f"{name} imports {imp}"
        else:
            assert top in {"numpy", "scipy", "__future__"} or top in STDLIB, f"{name} imports {imp}"
        # No clock, no files, no environment, no network in the core.
        assert top not in {"time", "datetime", "os", "pathlib", "socket", "urllib", "io"}, (
            f"{name} imports {imp}"
        )


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("monitor.core")))
def test_core_uses_no_global_random_state(name: str) -> None:
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / name.replace(".", "/") / "__init__.py"
    allowed = {"default_rng", "Generator", "RandomState", "SeedSequence", "BitGenerator", "PCG64"}
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "random"
        ):
            assert node.attr in allowed, f"{name} uses np.random.{node.attr} (global state)"


def test_pipeline_gets_its_collaborators_through_ports() -> None:
    forbidden = (
        "prometheus_client",
        "apscheduler",
        "jinja2",
        "click",
        "urllib",
        "http",
        "requests",
        "sqlite3",
        "monitor.sources",
        "monitor.store",
        "monitor.exporter",
        "monitor.scheduling",
        "monitor.http",
        "monitor.render",
        "monitor.bootstrap",
    )
    for prefix in forbidden:
        assert not uses("monitor.pipeline", prefix), f"monitor.pipeline imports {prefix}"


@pytest.mark.parametrize("name", ["monitor.pipeline.replay", "monitor.alerting"])
def test_the_replay_and_the_alert_conditions_get_rules_and_schedules_as_arguments(
    name: str,
) -> None:
    for prefix in ("monitor.render", "monitor.scheduling", "monitor.runner", "apscheduler"):
        assert not uses(name, prefix), f"{name} imports {prefix}"
    for prefix in ("monitor.sources", "monitor.store", "monitor.exporter", "jinja2"):
        assert not uses(name, prefix), f"{name} imports {prefix}"


@pytest.mark.parametrize(
    "name", sorted(m for m in MODULES if m.startswith(("monitor.sources", "monitor.store")))
)
def test_an_adapter_never_imports_another(name: str) -> None:
    family = ".".join(name.split(".")[:2])  # monitor.sources or monitor.store
    others = {"monitor.sources", "monitor.store"} - {family}
    for prefix in (
        *others,
        "monitor.pipeline",
        "monitor.bootstrap",
        "monitor.daemon",
        "monitor.exporter",
        "monitor.scheduling",
        "monitor.http",
        "monitor.cli",
    ):
        assert not uses(name, prefix), f"{name} imports {prefix}"
    if family == "monitor.sources" and name not in {"monitor.sources", "monitor.sources._common"}:
        for imp in MODULES[name]:
            if imp.startswith("monitor.sources."):
                assert imp.startswith("monitor.sources._common"), f"{name} imports {imp}"


@pytest.mark.parametrize(
    ("library", "owners"),
    [
        ("apscheduler", {"monitor.scheduling"}),
        ("jinja2", {"monitor.render.templates"}),
        ("click", {"monitor.cli"}),
        ("sklearn", {"monitor.core._kmeans_estimator"}),
        ("pandas", {"monitor.core._kmeans_estimator"}),
        ("polars", {"monitor.core._kmeans_estimator"}),
        ("matplotlib", {"monitor.plots"}),
        ("numba", NUMBA_OWNERS),
        ("yaml", {"monitor.yamlfile"}),
        (
            "prometheus_client",
            {
                "monitor.exporter.daemon",
                "monitor.exporter.exposition",
                "monitor.exporter.serving",
                "monitor.exporter.simulated",
            },
        ),
        ("sqlite3", {"monitor.store.history"}),
        ("pyarrow", {"monitor.sources.files"}),
        ("urllib.request", {"monitor.sources.prometheus"}),
        # HTTP clients: the telemetry source, the Pushgateway's errors, the label API's client.
        (
            "http.client",
            {"monitor.sources.prometheus", "monitor.exporter.exposition", "monitor.serving.client"},
        ),
        ("cryptography", {"monitor.store._crypto"}),
        ("bcrypt", {"monitor.http._auth"}),
        ("pyspark", {"monitor.engines.spark"}),
    ],
)
def test_each_library_has_one_owner(library: str, owners: set[str]) -> None:
    users = {m for m in MODULES if uses(m, library)}
    assert users <= owners, f"{library} is imported by {sorted(users - owners)}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("monitor.core")))
def test_the_core_starts_no_process_and_reads_no_interpreter_state(name: str) -> None:
    """No sys, random or subprocess in the core. Threads only where the k-means kernels,
    the PSI count and the exact silhouette run chunks on a pool that one call creates
    and sizes by its n_threads parameter (docs/decisions.md: no pool outlives the call,
    nothing is shared between calls)."""
    kernels = {
        "monitor.core._kmeans_lloyd",
        "monitor.core._kmeans_numba",
        "monitor.core._psi",
        "monitor.core.quality",
    }
    for imp in MODULES[name]:
        top = imp.split(".")[0]
        assert top not in {"sys", "random", "subprocess", "multiprocessing"}, f"{name}: {imp}"
        if top in {"threading", "concurrent"}:
            assert name in kernels, f"{name} imports {imp}"


ADAPTERS = (
    "monitor.sources",
    "monitor.store",
    "monitor.simulator",
    "monitor.http",
    "monitor.scheduling",
    "monitor.exporter",
)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_composition_root_composes_adapters(name: str) -> None:
    """Only bootstrap (and the daemon, which runs what bootstrap built) bring adapters
    together; the CLI reaches them through bootstrap."""
    if name in {"monitor.bootstrap", "monitor.daemon"} or name.startswith(ADAPTERS):
        return
    for imp in MODULES[name]:
        for adapter in ("monitor.sources", "monitor.store", "monitor.simulator"):
            assert not (imp == adapter or imp.startswith(adapter + ".")), (
                f"{name} imports {imp}: adapters are built by monitor.bootstrap"
            )


def private_names(path: Path) -> list[str]:
    """Leading-underscore names imported from another module (``from m import _x``).

    A package's private submodule (``from monitor.core import _psi``) is not a private
    name of a module: the package shares it with its own modules.
    """
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}" in MODULES
                if alias.name.startswith("_") and not submodule:
                    out.append(f"{node.module}.{alias.name}")
    return out


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    found = [n for n in private_names(path) if not n.endswith(".__version__")]
    assert not found, f"{path.relative_to(PACKAGE.parent)} imports private names {found}"


def test_importing_the_package_imports_no_kernels() -> None:
    """Python imports the package before the command line's first line, which handles
    the signals: its estimators' kernels (numba, most of a second) made that long
    window in which a Ctrl-C printed a traceback and a SIGTERM killed the process."""
    heavy = "{'numba', 'numpy', 'importlib.metadata'}"
    code = f"import sys, monitor; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_command_line_imports_no_kernels_before_a_command_needs_them() -> None:
    """``kmeans-monitor --help``, ``check-config`` and the like start without the compiled
    kernels (numba, about 0.3 s): the configuration checks a model's metric against a
    constant that lives beside the distances, not in the k-means module."""
    code = "import sys, monitor.cli; print(sorted(m for m in sys.modules if m == 'numba'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_daemon_imports_no_spark_unless_a_model_asks_for_it() -> None:
    """pyspark is an optional extra: wiring local models must not even import it."""
    code = (
        "import sys, monitor.cli, monitor.bootstrap, monitor.engines; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("monitor.serving")))
def test_serving_gets_its_store_through_the_port_and_its_metrics_through_a_protocol(
    name: str,
) -> None:
    for prefix in (
        "monitor.store",
        "monitor.sources",
        "monitor.exporter",
        "monitor.bootstrap",
        "monitor.daemon",
        "monitor.scheduling",
        "monitor.cli",
        "monitor.render",
        "prometheus_client",
        "apscheduler",
    ):
        assert not uses(name, prefix), f"{name} imports {prefix}"


def test_the_serving_client_needs_only_the_standard_library_and_numpy() -> None:
    for imp in MODULES["monitor.serving.client"]:
        top = imp.split(".")[0]
        assert top in STDLIB or top in {"numpy", "__future__"}, imp
