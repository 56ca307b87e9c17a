"""Dependencies point inward: pure modules import neither Streamlit nor TensorFlow, the
database layer holds no Streamlit, pages hold no SQL, and every page is in the registry."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_CORE = [
    "core.errors",
    "core.signal.audio",
    "core.signal.features",
    "core.datasets.layouts",
    "core.datasets.demo",
    "core.parallel",
    "core.signal.batch",
    "core.workflows.ingest",
    "core.workflows.bootstrap",
    "core.cli",
    "core.clock",
    "core.signal.spectrogram_image",
    "core.workflows.curation",
    "core.workflows.manifest",
    "core.workflows.export",
    "core.workflows.comparison",
    "core.supervised",
    "core.supervised.local",  # the CNN (and TensorFlow) loads only when training starts
    "core.supervised.rekognition",
    "core.supervised.cloud.config",
    "core.supervised.cloud.s3",
    "core.supervised.cloud.retry",
]
DB = ["db.base", "db.models", "db.session", "db.queries"]


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize("module", PURE_CORE + DB)
def test_logic_imports_neither_streamlit_nor_tensorflow(module):
    loaded = _modules_loaded_by(module)
    assert "streamlit" not in loaded
    assert "tensorflow" not in loaded and "keras" not in loaded


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "dashboard" / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_hold_no_sql(path):
    assert not any(name.startswith("sqlalchemy") for name in _imports(path))


def test_core_and_db_never_import_the_dashboard():
    for folder in ("core", "db"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not any(name.startswith(("dashboard", "streamlit")) for name in _imports(path)), path


def test_every_page_module_is_registered():
    from dashboard.registry import PAGES

    registered = {page.path.resolve() for page in PAGES}
    scripts = {p.resolve() for p in (ROOT / "dashboard" / "pages").glob("*.py") if p.stem != "__init__"}
    assert scripts == registered
