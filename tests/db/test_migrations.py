"""Alembic migrations: they stand alone, and upgrade databases that hold data, on SQLite and PostgreSQL.

For each earlier revision a database is created at that revision, filled with plain SQL
valid there (what the app of that time would have written), then upgraded to head by
``db.session.migrate``: nothing is lost, foreign keys hold, and every clip ends with the
split a fresh ingest gives it today (MIMII's SNR versions of one recording together).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import sqlite3
from pathlib import Path, PurePath

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.datasets.splits import assign_split, split_key
from core.workflows.notify import Channel, deliver_due, webhook_reference
from db.base import Base
from db.models import Clip, Score
from db.queries import score_details
from db.session import MIGRATIONS_DIR, alembic_config, make_engine, migrate

EARLIER = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008")
WHEN = "2026-01-05 10:00:00.000000"
SNRS = (-6, 0, 6)

# (machine_type, machine_id, label, file name): each recorded at -6, 0 and 6 dB, as MIMII ships it
MIMII_TAKES = [("fan", "id_00", "normal", f"{n:08d}.wav") for n in range(4)] + [
    ("fan", "id_00", "abnormal", "00000000.wav"),
    ("pump", "id_02", "normal", "00000010.wav"),
]

# (path, layout, machine, label, layout split): clips whose layout says something else
OTHER_CLIPS = [
    ("/data/dcase2020/fan/train/normal_id_00_00000000.wav", "dcase2020", ("fan", "id_00"), "normal", "train"),
    ("/data/dcase2020/fan/test/normal_id_00_00000001.wav", "dcase2020", ("fan", "id_00"), "normal", "test"),
    ("/data/dcase2020/fan/test/anomaly_id_00_00000002.wav", "dcase2020", ("fan", "id_00"), "abnormal", "test"),
    ("/plant/field/valve/id_01/snippet_0001.wav", "plain", ("valve", "id_01"), "unknown", "none"),
]

# what must survive an upgrade unchanged, per table (every column a later revision does not rewrite)
KEPT = {
    "machines": ("id", "machine_type", "machine_id"),
    "detector_models": ("id", "detector", "scope", "version", "artifact_path", "status"),
    "clips": ("id", "path", "content_hash", "machine_pk", "label", "layout", "snr_db", "sample_rate", "n_bytes"),
    "scores": ("id", "clip_id", "model_id", "score"),
    "thresholds": ("id", "model_id", "value", "method", "set_by"),
    "annotations": ("id", "clip_id", "annotator", "verdict", "anomaly_type", "undoes_id"),
    "exports": ("id", "out_dir", "created_by"),
    "training_jobs": ("id", "backend", "status", "export_id", "model_id"),
    "rejected_files": ("id", "path", "reason"),
    "anomaly_types": ("id", "name", "created_by"),
    "notifications": ("id", "clip_id", "model_id", "channel", "status", "attempts"),
}
FOREIGN_KEYS = [  # (table, column, referred table)
    ("clips", "machine_pk", "machines"),
    ("machines", "active_model_id", "detector_models"),
    ("scores", "clip_id", "clips"),
    ("scores", "model_id", "detector_models"),
    ("thresholds", "model_id", "detector_models"),
    ("annotations", "clip_id", "clips"),
    ("annotations", "undoes_id", "annotations"),
    ("training_jobs", "export_id", "exports"),
    ("training_jobs", "model_id", "detector_models"),
    ("notifications", "clip_id", "clips"),
    ("notifications", "model_id", "detector_models"),
]


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _hash(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _clip_facts() -> list[dict]:
    """Every clip of the test plant: where it lies, its machine and label, and the split its layout gives."""
    clips = []
    for machine_type, machine_id, label, name in MIMII_TAKES:
        for snr in SNRS:
            path = f"/data/mimii/{snr}_dB_{machine_type}/{machine_type}/{machine_id}/{label}/{name}"
            clips.append(
                {
                    "path": path,
                    "layout": "mimii",
                    "machine": (machine_type, machine_id),
                    "label": label,
                    "layout_split": "none",
                    "snr_db": float(snr),
                }
            )
    for path, layout, machine, label, layout_split in OTHER_CLIPS:
        clips.append(
            {
                "path": path,
                "layout": layout,
                "machine": machine,
                "label": label,
                "layout_split": layout_split,
                "snr_db": None,
            }
        )
    for clip in clips:
        clip["content_hash"] = _hash(clip["path"])  # each SNR version has its own bytes
    return clips


def _split_then(clip: dict, revision: str) -> tuple[str, str]:
    """The split (and its source) the app stored for ``clip`` at ``revision``: the layout's up to 0001,
    from 0002 the content-hash rule of revision 0002's time, from 0005 the recording-keyed rule of today."""
    if revision == "0001" or clip["layout_split"] != "none":
        return clip["layout_split"], "layout"
    key = clip["content_hash"]
    if revision >= "0005":
        machine = "/".join(clip["machine"])
        key = split_key(clip["content_hash"], clip["layout"], machine, clip["label"], PurePath(clip["path"]).name)
    split = assign_split(key, clip["label"], "none")
    return split, "layout" if split == "none" else "assigned"


def _split_now(clip_row) -> tuple[str, str]:
    """The split (and its source) a fresh ingest gives this clip today: the live rule."""
    layout_split = next(c["layout_split"] for c in _clip_facts() if c["path"] == clip_row.path)
    machine = f"{clip_row.machine_type}/{clip_row.machine_id}"
    key = split_key(clip_row.content_hash, clip_row.layout, machine, clip_row.label, PurePath(clip_row.path).name)
    split = assign_split(key, clip_row.label, layout_split)
    return split, "layout" if split == layout_split else "assigned"


def test_the_plant_has_mimii_takes_that_the_old_rule_split_across_train_and_test():
    """Guard on the test data: the content-hash rule of 0002 puts some take's SNR versions on both sides."""
    by_take: dict[tuple, set[str]] = {}
    for clip in _clip_facts():
        if clip["layout"] == "mimii":
            take = (clip["machine"], clip["label"], PurePath(clip["path"]).name)
            by_take.setdefault(take, set()).add(_split_then(clip, "0002")[0])
    assert any(splits == {"train", "test"} for splits in by_take.values())


# --- Filling a database at an earlier revision ------------------------------------------------------------------


def _insert(conn, table: str, row: dict) -> int:
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    return conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id"), row).scalar_one()


def _sql(conn, statement: str, **params) -> int | None:
    """Run one plain SQL statement (``:when`` is the rows' timestamp); the id it returns, if any."""
    result = conn.execute(text(statement), {"when": WHEN, **params})
    return result.scalar_one() if result.returns_rows else None


def _fill(conn, revision: str) -> None:
    """A small plant as the app of ``revision`` stored it, in plain SQL valid at ``revision``."""
    model = _sql(
        conn,
        "INSERT INTO detector_models (detector, scope, version, artifact_path, params, provenance, status, created_at) "
        "VALUES ('mahalanobis', 'fan/id_00', 1, 'models/fan_id_00_v1.npz', '{\"n_mels\": 64}', '{\"clips\": 12}', "
        "'ready', :when) RETURNING id",
    )
    machines = {}
    for machine in sorted({clip["machine"] for clip in _clip_facts()}):
        row = {"machine_type": machine[0], "machine_id": machine[1], "created_at": WHEN}
        if revision >= "0002":
            row["active_model_id"] = model if machine == ("fan", "id_00") else None
        machines[machine] = _insert(conn, "machines", row)
    clip_ids = [_insert_clip(conn, clip, machines[clip["machine"]], revision) for clip in _clip_facts()]
    for k, clip_id in enumerate(clip_ids):
        _sql(
            conn,
            "INSERT INTO scores (clip_id, model_id, score, details, computed_at) "
            "VALUES (:clip, :model, :score, '{\"band_errors\": [0.1, 0.4]}', :when)",
            clip=clip_id, model=model, score=1.5 + k,
        )  # fmt: skip
    _fill_history(conn, revision, clip_ids, model)


def _fill_history(conn, revision: str, clip_ids: list[int], model: int) -> None:
    """Verdicts (one undone), a threshold, an export and its training job, a rejected file, and, where the
    revision has them, a team anomaly type and a pending notification."""
    verdict = _sql(
        conn,
        "INSERT INTO annotations (clip_id, annotator, verdict, anomaly_type, note, created_at) "
        "VALUES (:clip, 'ana', 'abnormal', 'bearing', 'rattle', :when) RETURNING id",
        clip=clip_ids[0],
    )
    _sql(
        conn,
        "INSERT INTO annotations (clip_id, annotator, verdict, note, undoes_id, created_at) "
        "VALUES (:clip, 'ana', 'normal', 'undo', :undoes, :when)",
        clip=clip_ids[0], undoes=verdict,
    )  # fmt: skip
    _sql(
        conn,
        "INSERT INTO thresholds (model_id, value, method, set_by, reason, set_at) "
        "VALUES (:model, 3.25, 'f1', 'ana', 'tuned', :when)",
        model=model,
    )
    export = _sql(
        conn,
        "INSERT INTO exports (out_dir, params, summary, created_by, created_at) "
        "VALUES ('/exports/e1', '{}', '{\"clips\": 3}', 'ana', :when) RETURNING id",
    )
    _sql(
        conn,
        "INSERT INTO training_jobs (backend, status, message, export_id, model_id, external, created_at, updated_at) "
        "VALUES ('local', 'done', '', :export, :model, '{}', :when, :when)",
        export=export, model=model,
    )  # fmt: skip
    _sql(
        conn,
        "INSERT INTO rejected_files (path, reason, detail, seen_at) "
        "VALUES ('/data/broken.wav', 'unreadable', 'bad header', :when)",
    )
    if revision >= "0003":
        _sql(conn, "INSERT INTO anomaly_types (name, created_by, created_at) VALUES ('cavitation', 'ana', :when)")
    if revision >= "0004":
        _sql(
            conn,
            "INSERT INTO notifications (clip_id, model_id, channel, target, payload, status, attempts, last_error, "
            "next_attempt_at, created_at) VALUES (:clip, :model, 'webhook', :target, "
            "'{\"score\": 9.0}', 'pending', 1, 'timeout', :when, :when)",
            clip=clip_ids[1], model=model,  # from 0007 on the outbox holds scheme, host and fingerprint only
            target="https://hooks.example/x" if revision < "0007" else webhook_reference("https://hooks.example/x"),
        )  # fmt: skip


def _insert_clip(conn, clip: dict, machine_pk: int, revision: str) -> int:
    split, source = _split_then(clip, revision)
    row = {
        "path": clip["path"],
        "content_hash": clip["content_hash"],
        "machine_pk": machine_pk,
        "label": clip["label"],
        "split": split,
        "layout": clip["layout"],
        "snr_db": clip["snr_db"],
        "domain": None,
        "sample_rate": 16000,
        "n_channels": 1,
        "duration_s": 10.0,
        "n_bytes": 320_044,
        "ingested_at": WHEN,
    }
    if revision >= "0002":
        row["split_source"] = source
    return _insert(conn, "clips", row)


def _snapshot(conn) -> dict[str, list[tuple]]:
    tables = set(_table_names(conn))
    return {
        table: sorted(tuple(row) for row in conn.execute(text(f"SELECT {', '.join(columns)} FROM {table}")))
        for table, columns in KEPT.items()
        if table in tables
    }


def _table_names(conn) -> list[str]:
    return inspect(conn).get_table_names()


def _orphans(conn) -> list[tuple[str, str, int]]:
    """Rows whose foreign key names a row that is not there (checked with joins, on every backend)."""
    found = []
    for table, column, referred in FOREIGN_KEYS:
        query = (
            f"SELECT t.id FROM {table} t LEFT JOIN {referred} r ON r.id = t.{column} "
            f"WHERE t.{column} IS NOT NULL AND r.id IS NULL"
        )
        found += [(table, column, row_id) for (row_id,) in conn.execute(text(query))]
    return found


# --- The upgrades ---------------------------------------------------------------------------------------------


@pytest.fixture
def engine(any_db_url) -> Engine:
    engine = make_engine(any_db_url)
    yield engine
    engine.dispose()


def _upgrade_to(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@pytest.mark.parametrize("revision", EARLIER)
def test_a_database_with_data_upgrades_to_head(engine, revision):
    """No error, every row kept, foreign keys intact, the models' schema, and a fresh ingest's splits."""
    _upgrade_to(engine, revision)
    with engine.begin() as conn:
        _fill(conn, revision)
        before = _snapshot(conn)

    migrate(engine)

    assert _revision(engine) == _head()
    with engine.connect() as conn:
        _assert_rows_and_keys_kept(conn, revision, before)
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []  # the upgraded schema is the models' schema
        _assert_splits_of_a_fresh_ingest(conn)
        if revision >= "0004":  # the pending webhook row: its URL replaced by scheme, host and fingerprint
            targets = conn.execute(text("SELECT target FROM notifications")).scalars().all()
            assert targets == [webhook_reference("https://hooks.example/x")]


def _assert_rows_and_keys_kept(conn, revision: str, before: dict[str, list[tuple]]) -> None:
    after = _snapshot(conn)
    assert {table: after[table] for table in before} == before  # every row still there, unchanged
    assert len(after["anomaly_types"]) == 7 + (revision >= "0003")  # 0003's defaults, plus the team's own
    assert _orphans(conn) == []
    if conn.dialect.name == "sqlite":
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the app
    machines = dict(conn.execute(text("SELECT machine_type || '/' || machine_id, active_model_id FROM machines")).all())
    assert machines["fan/id_00"] == (None if revision == "0001" else after["detector_models"][0][0])


def _assert_splits_of_a_fresh_ingest(conn) -> None:
    query = text(
        "SELECT c.path, c.content_hash, c.label, c.layout, c.split, c.split_source, m.machine_type, m.machine_id "
        "FROM clips c JOIN machines m ON m.id = c.machine_pk ORDER BY c.id"
    )
    rows = conn.execute(query).fetchall()
    assert len(rows) == len(_clip_facts())
    for row in rows:
        assert (row.split, row.split_source) == _split_now(row), row.path
    takes: dict[tuple, set[str]] = {}
    for row in rows:
        if row.layout == "mimii":
            take = (row.machine_type, row.machine_id, row.label, PurePath(row.path).name)
            takes.setdefault(take, set()).add(row.split)
    assert len(takes) == len(MIMII_TAKES)
    assert all(len(splits) == 1 for splits in takes.values()), takes  # -6/0/6 dB of one take: one split
    assert {row.split for row in rows if row.layout == "plain"} == {"none"}


def test_the_app_reads_an_upgraded_database(engine):
    _upgrade_to(engine, "0001")
    with engine.begin() as conn:
        _fill(conn, "0001")
    migrate(engine)
    with Session(engine) as session:
        clips = session.scalars(select(Clip).order_by(Clip.id)).all()
        assert [clip.machine.key for clip in clips[:3]] == ["fan/id_00"] * 3
        assert {clip.split_source for clip in clips} == {"layout", "assigned"}


def _user(conn, name: str, role: str = "engineer", email: str | None = None) -> None:
    _sql(
        conn,
        "INSERT INTO users (name, email, role, password_hash, active, created_at) "
        "VALUES (:name, :email, :role, NULL, :active, :when)",
        name=name, email=email, role=role, active=True,
    )  # fmt: skip


def test_0006_adds_users_failed_sign_ins_and_the_audit_log_to_a_0005_database(engine):
    """From 0005 with data: the three tables, empty, with their keys: one name, one e-mail (several
    without), the four roles only; the audit log's ``user`` column quoted where it is a reserved word."""
    _upgrade_to(engine, "0005")
    with engine.begin() as conn:
        _fill(conn, "0005")
    migrate(engine)
    assert _revision(engine) == _head()
    with engine.connect() as conn:
        assert {"users", "failed_sign_ins", "audit_events"} <= set(_table_names(conn))
        assert [conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("users", "failed_sign_ins", "audit_events")] == [0, 0, 0]  # fmt: skip
    with engine.begin() as conn:
        _user(conn, "ana", "admin", "ana@example.com")
        _user(conn, "bo")
        _user(conn, "cy", "annotator")  # no e-mail twice: allowed
        _sql(conn, "INSERT INTO failed_sign_ins (name, at) VALUES ('ana', :when)")
        _sql(
            conn,
            'INSERT INTO audit_events (at, "user", role, action, target, detail) '
            "VALUES (:when, 'ana', 'admin', 'add user', 'bo', 'role engineer')",
        )
    for name, role, email in [("ana", "engineer", None), ("di", "boss", None), ("di", "manager", "ana@example.com")]:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _user(conn, name, role, email)
    with engine.connect() as conn:
        assert conn.execute(text('SELECT "user", action, target FROM audit_events')).all() == [
            ("ana", "add user", "bo")
        ]


def test_0006_downgrades_to_0005(engine):
    _upgrade_to(engine, "0006")
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    with engine.connect() as conn:
        assert not {"users", "failed_sign_ins", "audit_events"} & set(_table_names(conn))
    assert _revision(engine) == "0005"


def test_0008_adds_adjudications_and_the_verdicts_role_to_a_0006_database(engine):
    """From 0006 with data: old verdicts keep every value and have no known role; adjudications are a new,
    empty table that takes normal or abnormal (never unsure) by a known role, and goes with its clip."""
    _upgrade_to(engine, "0006")
    with engine.begin() as conn:
        _fill(conn, "0006")
    migrate(engine)
    with engine.connect() as conn:
        assert {row.role for row in conn.execute(text("SELECT role FROM annotations"))} == {None}
        assert conn.execute(text("SELECT COUNT(*) FROM adjudications")).scalar_one() == 0
        clip = conn.execute(text("SELECT MIN(id) FROM clips")).scalar_one()
    adjudication = ("INSERT INTO adjudications (clip_id, adjudicator, role, verdict, anomaly_type, reason, created_at) "
                    "VALUES (:clip, 'eve', :role, :verdict, NULL, 'heard it twice', :when)")  # fmt: skip
    with engine.begin() as conn:
        _sql(conn, adjudication, clip=clip, role="engineer", verdict="normal")
    for role, verdict, clip_id in [("engineer", "unsure", clip), ("boss", "normal", clip), ("admin", "normal", 99999)]:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _sql(conn, adjudication, clip=clip_id, role=role, verdict=verdict)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM scores"))
        conn.execute(text("DELETE FROM notifications"))
        conn.execute(text("DELETE FROM annotations WHERE undoes_id IS NOT NULL"))
        conn.execute(text("DELETE FROM annotations"))
        conn.execute(text("DELETE FROM clips WHERE id = :clip"), {"clip": clip})
        assert conn.execute(text("SELECT COUNT(*) FROM adjudications")).scalar_one() == 0  # cascaded


def test_0008_downgrades_to_0006(engine):
    _upgrade_to(engine, "0008")
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    with engine.connect() as conn:
        assert "adjudications" not in _table_names(conn)
        assert "role" not in {c["name"] for c in inspect(conn).get_columns("annotations")}
    assert _revision(engine) == "0006"


def test_0009_moves_per_frame_errors_into_float16_bytes_and_back(engine):
    """From 0008 with data: each score's JSON errors become ``frames`` (float16 bytes) the live code reads,
    other JSON keys stay; the indexes serving the queue exist; a downgrade puts the errors back as JSON."""
    _upgrade_to(engine, "0008")
    with engine.begin() as conn:
        _fill(conn, "0008")
        extra = conn.execute(text("SELECT MIN(id) FROM scores")).scalar_one()
        old = '{"frame_errors": [1.5, 70000.0], "band_errors": [0.25], "note": "x"}'
        conn.execute(text("UPDATE scores SET details = :d WHERE id = :id"), {"d": old, "id": extra})
    _upgrade_to(engine, "0009")
    with Session(engine) as session:
        rows = {row.id: row for row in session.scalars(select(Score))}
        assert rows and all(row.frames is not None for row in rows.values())
        assert score_details(session, rows[extra].model_id, rows[extra].clip_id) == {
            "frame_errors": [1.5, 65504.0], "band_errors": [0.25], "note": "x"}  # fmt: skip
        other = next(row for row in rows.values() if row.id != extra)
        assert other.details is None
        near = [pytest.approx(0.1, rel=1e-3), pytest.approx(0.4, rel=1e-3)]  # float16 keeps ~3 digits
        assert score_details(session, other.model_id, other.clip_id) == {"frame_errors": [], "band_errors": near}
    with engine.connect() as conn:
        indexes = {i["name"] for table in ("scores", "clips", "annotations") for i in inspect(conn).get_indexes(table)}
        assert {"ix_scores_model_id_score", "ix_clips_machine_pk_ingested_at_id", "ix_annotations_undoes_id"} <= indexes
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    with engine.connect() as conn:
        assert "frames" not in {c["name"] for c in inspect(conn).get_columns("scores")}
        found = conn.execute(text("SELECT details FROM scores WHERE id = :id"), {"id": extra}).scalar_one()
        found = json.loads(found) if isinstance(found, str) else found
        assert found == {"frame_errors": [1.5, 65504.0], "band_errors": [0.25], "note": "x"}


def _index_columns(conn, table: str) -> dict[str, list[str]]:
    return {i["name"]: i["column_names"] for i in inspect(conn).get_indexes(table)}


def test_0010_widens_the_indexes_overview_and_drift_read_alone_and_back(engine):
    """0010 replaces ``scores (model_id, score)`` and ``clips (machine_pk, label)`` with wider indexes that hold
    what Overview, drift and the Thresholds page read, adds ``clips (id, machine_pk)``, keeps the data, and
    downgrades to 0009's indexes."""
    _upgrade_to(engine, "0009")
    with engine.begin() as conn:
        _fill(conn, "0008")
        before = conn.execute(text("SELECT COUNT(*) FROM scores")).scalar_one()
    migrate(engine)
    with engine.connect() as conn:
        clips, scores = _index_columns(conn, "clips"), _index_columns(conn, "scores")
        assert scores["ix_scores_model_id_score_clip_id"] == ["model_id", "score", "clip_id"]
        assert clips["ix_clips_id_machine_pk"] == ["id", "machine_pk"]
        assert clips["ix_clips_machine_pk_label_sample_rate_ingested_at_split_id"] == [
            "machine_pk", "label", "sample_rate", "ingested_at", "split", "id"]  # fmt: skip
        assert "ix_scores_model_id_score" not in scores and "ix_clips_machine_pk_label" not in clips
        assert conn.execute(text("SELECT COUNT(*) FROM scores")).scalar_one() == before > 0
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    with engine.connect() as conn:
        clips, scores = _index_columns(conn, "clips"), _index_columns(conn, "scores")
        assert scores["ix_scores_model_id_score"] == ["model_id", "score"]
        assert clips["ix_clips_machine_pk_label"] == ["machine_pk", "label"]
        assert "ix_scores_model_id_score_clip_id" not in scores and "ix_clips_id_machine_pk" not in clips
    assert _revision(engine) == "0009"


def test_foreign_keys_are_enforced_after_migrating(engine):
    _upgrade_to(engine, "0004")
    migrate(engine)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _insert(conn, "scores", {"clip_id": 12345, "model_id": 6789, "score": 1.0, "computed_at": WHEN})


def test_sqlite_upgrade_fails_loudly_on_a_broken_foreign_key_and_commits_nothing(data_dir):
    url = f"sqlite:///{data_dir / 'broken.db'}"
    engine = make_engine(url)
    try:
        _upgrade_to(engine, "0004")
        with engine.begin() as conn:
            _fill(conn, "0004")
        raw = sqlite3.connect(make_url(url).database)  # foreign keys off: how an orphan gets in
        raw.execute("INSERT INTO scores (clip_id, model_id, score, computed_at) VALUES (999999, 1, 0.5, ?)", (WHEN,))
        raw.commit()
        raw.close()

        with pytest.raises(RuntimeError, match="foreign key"):
            migrate(engine)

        assert _revision(engine) == "0004"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


SECRET_HOOK = "https://hooks.example.com/services/T0001/B0002/Zs3cr3tT0k3n?key=hush"


def test_0007_replaces_webhook_urls_by_scheme_host_and_fingerprint(engine):
    """From 0006 with a pending webhook row holding its URL (and an error quoting its path): the URL is gone from
    the row, the SNS row is as it was, and a process started with that URL still sends the row."""
    _upgrade_to(engine, "0006")
    with engine.begin() as conn:
        _fill(conn, "0006")
        conn.execute(text("DELETE FROM notifications"))
        clip, model = conn.execute(text("SELECT clip_id, model_id FROM scores")).first()
        for channel, target, error in [
            ("webhook", SECRET_HOOK, "POST /services/T0001/B0002/Zs3cr3tT0k3n?key=hush: timed out"),
            ("sns", "arn:aws:sns:eu-west-1:123456789012:flags", ""),
        ]:
            _sql(
                conn,
                "INSERT INTO notifications (clip_id, model_id, channel, target, payload, status, attempts, last_error, "
                "next_attempt_at, created_at) VALUES (:clip, :model, :channel, :target, '{\"clip_id\": 1}', 'pending', "
                "2, :error, :when, :when)",
                clip=clip, model=model, channel=channel, target=target, error=error,
            )  # fmt: skip
    migrate(engine)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT channel, target, last_error, status, attempts FROM notifications "
                                   "ORDER BY channel DESC")).all()  # fmt: skip
    fingerprint = hashlib.sha256(SECRET_HOOK.encode()).hexdigest()[:16]
    assert stored == [
        ("webhook", f"https://hooks.example.com sha256:{fingerprint}", "POST …?…: timed out", "pending", 2),
        ("sns", "arn:aws:sns:eu-west-1:123456789012:flags", "", "pending", 2),
    ]
    sent = []
    webhook = Channel("webhook", SECRET_HOOK, lambda where, payload: sent.append(where))
    assert deliver_due([webhook], url=engine.url.render_as_string(hide_password=False))["sent"] == 1
    assert sent == [SECRET_HOOK]


def _migration_0007():
    (path,) = (MIGRATIONS_DIR / "versions").glob("0007_*.py")
    spec = importlib.util.spec_from_file_location("migration_0007", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "url", [SECRET_HOOK, "http://127.0.0.1:8080/x", "http://[::1]:9000/hook", "https://example.com", "HTTPS://Ex.com/a",
            "http://user:pw@example.com/x", "http://example.com:port/Zs3cr3t", "example.com/services/Zs3cr3t",
            "http://127.0.0.1:9/services/Zs3cr3t T0k3n?key=hush"],
)  # fmt: skip
def test_0007_rewrites_a_url_as_the_live_code_names_it(url):
    """The migration's frozen copy agrees with the live code, so a rewritten row is found by a process with its URL."""
    assert _migration_0007()._reference(url) == webhook_reference(url)


# --- Migrations stand alone -------------------------------------------------------------------------------------


VERSION_FILES = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", VERSION_FILES, ids=lambda p: p.name)
def test_a_migration_never_imports_live_code(path):
    imported = _imported_modules(path)
    assert not [name for name in imported if name.split(".")[0] in ("core", "db", "dashboard") or name.startswith(".")]


@pytest.mark.parametrize("path", VERSION_FILES, ids=lambda p: p.name)
def test_migration_functions_are_short(path):
    tree = ast.parse(path.read_text())
    long = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > 60]
    assert long == []


def test_migrations_are_one_chain_ending_at_head():
    script = ScriptDirectory.from_config(alembic_config())
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == [*EARLIER, "0009", "0010"]
    assert len(VERSION_FILES) == len(EARLIER) + 2
