"""Engines and sessions: SQLite under ``DATA_DIR`` by default, any SQLAlchemy URL via ``DATABASE_URL``.

A SQLite database file (and its ``-wal``/``-shm`` files) is readable and writable by its owner
only (``0600``), and the folder it is created in ``0700``: it holds who judged what, and the
accounts' password hashes.

The schema is brought to the latest Alembic revision the first time an engine is
opened in a process, so a fresh machine and an old database both just work.

SQLite is configured for a multi-threaded app (Streamlit runs each session in a
thread) and several processes: WAL journal, a 30 s busy timeout, foreign keys on,
and ``BEGIN IMMEDIATE`` for write transactions so that two writers queue up instead
of failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import logging
import os
import random
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
DB_FILENAME = "anomaly.db"

WRITE_ATTEMPTS = 8
T = TypeVar("T")
log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def data_dir() -> Path:
    """The ``DATA_DIR`` setting (default ``./data``), absolute: where the database, clips and models live."""
    return settings().data_dir


def database_url() -> str:
    """The ``DATABASE_URL`` setting, or the SQLite file ``DATA_DIR/anomaly.db``."""
    current = settings()
    return current.database_url or f"sqlite:///{current.data_dir / DB_FILENAME}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every SQLite test
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def private_sqlite_file(path: Path) -> None:
    """Make the SQLite file ``path`` readable and writable by its owner only, before SQLite opens it.

    A missing folder is created ``0700`` (its missing parents as the umask says); a missing file is created
    empty (a valid, empty database) with mode ``0600``, which SQLite then gives its ``-wal``, ``-shm`` and
    ``-journal`` files too.  An existing file and its siblings lose any group and other permissions; one that
    this user may not change (not its owner) is left as it is, with a warning."""
    folder = path.parent
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with suppress(FileExistsError):  # made meanwhile by another process: left as it is
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # whatever the umask
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(os.stat(file).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                os.chmod(file, mode & 0o700)
            except PermissionError:
                log.warning("cannot make %s private to its owner (mode %o): not its owner", file, mode)


def make_engine(url: str) -> Engine:
    """A new engine for ``url``; SQLite files get their folder and themselves created private to their owner
    (:func:`private_sqlite_file`) and the pragmas above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":  # JIT compiling costs more than any of our short queries runs
        options = " ".join(filter(None, [parsed.query.get("options"), "-c jit=off"]))  # the URL's own kept
        return create_engine(url, pool_pre_ping=True, connect_args={"options": options})
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        private_sqlite_file(Path(parsed.database))
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _configure_sqlite(engine)
    return engine


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configuration pointing at ``db/migrations``, bound to ``engine`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        # configparser reads "%" as interpolation: a URL-encoded password or path (%40, %3A) must be doubled
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the latest revision, in one transaction.

    On SQLite, foreign keys are off while the migrations run (Alembic's batch mode copies
    and drops tables that others refer to) and checked as a whole before the commit: a
    violation fails the upgrade, which then commits nothing.
    """
    config = alembic_config(engine)
    with engine.connect() as connection, _sqlite_foreign_keys_off(connection), connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        _check_sqlite_foreign_keys(connection)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite's foreign keys off on ``connection`` for the block, as they were after it; nothing elsewhere.

    ``PRAGMA foreign_keys`` is a no-op inside a transaction, so it goes straight to the DBAPI
    connection (autocommit: ``isolation_level`` is None, see :func:`_configure_sqlite`) before
    the block begins one; SQLAlchemy's ``exec_driver_sql`` would begin a transaction first.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    dbapi_connection = connection.connection.dbapi_connection
    was_on = dbapi_connection.execute("PRAGMA foreign_keys").fetchone()[0]
    dbapi_connection.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if not connection.invalidated:  # an invalidated connection is closed, never pooled again
            dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if was_on else 'OFF'}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    """Raise if any row of the SQLite database behind ``connection`` breaks a foreign key."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        shown = ", ".join(f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in broken[:10])
        raise RuntimeError(f"migration left {len(broken)} rows breaking a foreign key: {shown}")


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default :func:`database_url`), migrated on first use."""
    url = url or database_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests, and before forking worker processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None, *, write: bool = False) -> Iterator[Session]:
    """A session committed on success and rolled back on error.

    ``write=True`` takes SQLite's write lock at the start of the transaction
    (``BEGIN IMMEDIATE``), for read-then-write work such as "insert unless known".
    """
    engine = get_engine(url)
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    factory = sessionmaker(bind=bind, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def write_transaction(work: Callable[[Session], T], url: str | None = None, *, attempts: int = WRITE_ATTEMPTS) -> T:
    """``work(session)`` in a write transaction, run again from the start when a concurrent writer
    made it fail in a way a retry cures, and its result.

    Retried: a unique key inserted meanwhile by another process (``IntegrityError``: the
    retry sees the committed row), a lock or busy timeout, a serialization failure or a
    deadlock (``OperationalError``).  A failed attempt committed nothing, so a retry never
    duplicates a row.  After ``attempts`` tries the last error propagates.
    """
    for attempt in range(attempts):
        try:
            with session_scope(url, write=True) as session:
                return work(session)
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")
