"""db.session: URLs from the environment, SQLite pragmas, migrations, threads, PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import stat
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


def test_postgresql_connections_never_jit_compile(any_db_url):
    """PostgreSQL's JIT compiles a plan whose estimated cost passes jit_above_cost, which Overview's grouped
    queries do at a million clips: compiling took 300 ms of a 650 ms query.  The product's queries are short."""
    with get_engine(any_db_url).connect() as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL setting")
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"


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


# --- the SQLite file is its owner's only ---------------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_sqlite_database_and_its_folder_are_private_to_their_owner(data_dir):
    """Whatever the umask: the folder the product creates is 0700, the file and its WAL siblings 0600."""
    old_umask = os.umask(0o002)  # as permissive as a shared workstation's
    try:
        assert not data_dir.exists()
        with session_scope() as session:  # a write: SQLite makes the -wal and -shm files
            session.add(Machine(machine_type="fan", machine_id="id_00"))
        database = data_dir / "anomaly.db"
        assert _mode(data_dir) == 0o700
        assert _mode(database) == 0o600
        siblings = [data_dir / f"anomaly.db{suffix}" for suffix in ("-wal", "-shm")]
        assert all(path.exists() for path in siblings)
        assert [_mode(path) for path in siblings] == [0o600, 0o600]
    finally:
        os.umask(old_umask)


def test_an_existing_readable_sqlite_database_is_tightened(tmp_path):
    """A database file (and a WAL left beside it) readable by others, from an earlier version: 0600 once opened;
    a folder that was there already is left as it is."""
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    database = folder / "anomaly.db"
    sqlite3.connect(database).close()
    (folder / "anomaly.db-wal").write_bytes(b"")
    for path in (database, folder / "anomaly.db-wal"):
        os.chmod(path, 0o644)
    engine = get_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM machines").scalar() == 0
    assert [_mode(database), _mode(folder / "anomaly.db-wal")] == [0o600, 0o600]
    assert _mode(folder) == 0o755
