"""The layers, enforced: pure packages touch no database, UI or environment; the dashboard reaches data
only through ``core``; nothing outside the model code loads TensorFlow; every page is registered.

Two checks per rule: what a module's source imports (ast, every import statement anywhere in the file),
and what importing it really loads (a subprocess), so a lazy import inside a function is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("core/signal", "core/detection", "core/datasets")
TOP_LEVEL_PURE = ("core/errors.py", "core/vocabulary.py", "core/settings.py", "core/clock.py", "core/parallel.py",
                  "core/commands.py")  # fmt: skip
KERAS_MODULES = {
    "core/detection/autoencoder.py",
    "core/detection/spectrogram_cnn.py",
    "core/detection/keras_backend.py",
}
FORBIDDEN_IN_PURE = ("db", "sqlalchemy", "streamlit", "alembic", "dashboard", "core.workflows", "core.supervised",
                     "core.cli")  # fmt: skip


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module name the file imports, at any depth of its code."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _hits(names: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", _python_files(*PURE_PACKAGES) + [ROOT / p for p in TOP_LEVEL_PURE], ids=_rel)
def test_pure_modules_import_no_database_ui_or_workflow(path):
    assert not _hits(_imports(path), FORBIDDEN_IN_PURE), f"{_rel(path)} must stay pure"


@pytest.mark.parametrize("path", _python_files(*PURE_PACKAGES), ids=_rel)
def test_pure_modules_read_no_environment(path):
    source = path.read_text()
    assert "os.environ" not in source and "getenv" not in source, f"{_rel(path)} must take settings as arguments"


@pytest.mark.parametrize("path", _python_files("dashboard") + [ROOT / "streamlit_app.py"], ids=_rel)
def test_dashboard_reaches_data_only_through_core(path):
    assert not _hits(_imports(path), ("db", "sqlalchemy", "alembic")), f"{_rel(path)} must call core, not db"


@pytest.mark.parametrize("path", _python_files("core", "db", "dashboard") + [ROOT / "streamlit_app.py"], ids=_rel)
def test_only_the_model_code_imports_tensorflow(path):
    if _rel(path) in KERAS_MODULES:
        return
    assert not _hits(_imports(path), ("tensorflow", "keras")), f"{_rel(path)} must not import TensorFlow"


def test_core_and_db_never_import_the_dashboard():
    for path in _python_files("core", "db"):
        assert not _hits(_imports(path), ("dashboard", "streamlit")), _rel(path)


def test_db_imports_only_the_vocabulary_and_settings_of_core():
    for path in _python_files("db"):
        core = {n for n in _hits(_imports(path), ("core",))}
        assert core <= {"core.vocabulary", "core.settings"}, (_rel(path), core)


def test_migrations_import_no_live_code():
    for path in _python_files("db/migrations/versions"):
        assert not _hits(_imports(path), ("core", "db", "dashboard")), _rel(path)


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


LIGHT = ["core.signal.audio", "core.signal.features", "core.signal.batch", "core.datasets.layouts",
         "core.datasets.demo", "core.detection.registry", "core.detection.mahalanobis", "core.detection.metrics",
         "core.detection.drift_stats", "core.cli", "core.settings", "core.workflows.ingest",
         "core.workflows.training", "core.workflows.labels", "core.workflows.export", "core.supervised",
         "core.supervised.local", "core.supervised.rekognition", "db.models", "db.queries", "db.session"]  # fmt: skip


@pytest.mark.parametrize("module", LIGHT)
def test_importing_logic_loads_neither_streamlit_nor_tensorflow(module):
    loaded = _modules_loaded_by(module)
    assert "streamlit" not in loaded
    assert "tensorflow" not in loaded and "keras" not in loaded


@pytest.mark.parametrize("module", ["core.signal.features", "core.detection.metrics", "core.datasets.layouts"])
def test_importing_a_pure_module_loads_no_database(module):
    assert not {"sqlalchemy", "db", "alembic"} & _modules_loaded_by(module)


@pytest.mark.parametrize("path", sorted((ROOT / "dashboard" / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_hold_no_sql(path):
    assert not any(name.startswith("sqlalchemy") for name in _imports(path))


def test_every_page_module_is_registered():
    from dashboard.registry import PAGES

    registered = {page.path.resolve() for page in PAGES}
    scripts = {p.resolve() for p in (ROOT / "dashboard" / "pages").glob("*.py") if p.stem != "__init__"}
    assert scripts == registered


def test_tests_mirror_the_packages():
    packages = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages -= {"__pycache__"}
    for folder in packages | {"db", "dashboard"}:
        assert list((ROOT / "tests" / folder).glob("test_*.py")), f"tests/{folder}/ should hold the tests of {folder}"


def _function_lengths(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [(n.end_lineno - n.lineno + 1, f"{_rel(path)}:{n.lineno} {n.name}") for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]  # fmt: skip


def test_no_function_is_longer_than_sixty_lines():
    long = [f"{where} ({n} lines)" for path in _python_files("core", "db", "dashboard")
            for n, where in _function_lengths(path) if n > 60]  # fmt: skip
    assert not long, long
