"""db.session: URLs from the environment, SQLite pragmas, migrations, threads, PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text

from db.base import Base
from db.models import Machine
from db.session import alembic_config, database_url, get_engine, session_scope


def test_default_url_is_sqlite_file_under_data_dir(data_dir):
    assert database_url() == f"sqlite:///{data_dir / 'anomaly.db'}"
    get_engine()
    assert (data_dir / "anomaly.db").is_file()


def test_database_url_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert database_url().endswith("other.db")


def test_sqlite_pragmas(db_url):
    with get_engine(db_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_migrations_reach_head_and_match_the_models(any_db_url):
    engine = get_engine(any_db_url)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == head
        assert compare_metadata(context, Base.metadata) == []
    assert {
        "machines",
        "clips",
        "scores",
        "annotations",
        "thresholds",
        "detector_models",
        "exports",
        "training_jobs",
        "rejected_files",
    } <= set(inspect(engine).get_table_names())


def test_migrating_twice_is_harmless(any_db_url):
    from db.session import dispose_engines, migrate

    engine = get_engine(any_db_url)
    migrate(engine)
    dispose_engines()
    with session_scope(any_db_url) as session:
        assert session.scalar(text("SELECT 1")) == 1


def test_session_rolls_back_on_error(any_db_url):
    with pytest.raises(RuntimeError), session_scope(any_db_url, write=True) as session:
        session.add(Machine(machine_type="fan", machine_id="id_00"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(any_db_url) as session:
        assert session.scalar(select(func.count(Machine.id))) == 0


def test_many_threads_write_and_read_one_database(any_db_url):
    """Streamlit serves each browser session from its own thread: every write must land."""

    def work(worker: int) -> int:
        for k in range(10):
            with session_scope(any_db_url, write=True) as session:
                session.add(Machine(machine_type=f"t{worker}", machine_id=f"id_{k:02d}"))
            with session_scope(any_db_url) as session:
                session.scalar(select(func.count(Machine.id)))
        return worker

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))
    with session_scope(any_db_url) as session:
        assert session.scalar(select(func.count(Machine.id))) == 80
