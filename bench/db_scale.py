"""Benchmark: every page's queries on a database with many scored clips, and a threshold change.

Seeds ``--clips`` scored clips (bulk inserts: ``COPY`` on PostgreSQL, ``executemany`` on SQLite) over
``--machines`` machines, each with an active model, a threshold flagging about 5% of its clips, the team's
verdicts on most flagged clips (some undone, some disputed, some adjudicated, the overlap sample judged
twice), then times what each page and command asks the database (best of ``--repeats``):

* Overview: ``machine_summaries`` (every machine's counts);
* Triage: the first queue page in each order, for a named annotator, and ``queue_size``;
* Explore: one clip's details (its float16 per-frame errors unpacked);
* drift: choosing the reference, held-out and recent clips (``_clip_sets``; reading their audio is not
  the database's time);
* Thresholds: ``tuning_data`` with the test split included (the page's default): the labelled set and a rank
  sketch of the unlabelled scores;
* a threshold change: ``set_threshold``, then the queue's first page and size under it.

It prints each time in ms and the database's bytes per clip (SQLite: the file after a WAL checkpoint;
PostgreSQL: ``pg_database_size`` after ``VACUUM ANALYZE``).  Aim: every query under 300 ms.

    python bench/db_scale.py --clips 200000                                   # SQLite
    python bench/db_scale.py --clips 1000000 --postgres postgresql+psycopg://u@host/db
    python bench/db_scale.py --clips 2000                                     # smoke run (tests)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_FRAMES, N_BANDS = 309, 128  # a 10 s clip at 16 kHz
FLAGGED_SHARE = 0.05
START = datetime(2026, 1, 1, tzinfo=UTC)


def _rows_clips(n: int, machine_pks: list[int], rng) -> list[dict]:
    labels = rng.choice(["normal", "abnormal", "unknown"], n, p=[0.6, 0.05, 0.35])
    splits = np.where(labels == "unknown", "none", rng.choice(["train", "test"], n, p=[0.7, 0.3]))
    return [
        {"id": i + 1, "path": f"/plant/m{machine_pks[i % len(machine_pks)]}/clip_{i:08d}.wav",
         "content_hash": f"{i:064x}", "machine_pk": machine_pks[i % len(machine_pks)], "label": str(labels[i]),
         "split": str(splits[i]), "split_source": "layout", "layout": "mimii", "snr_db": None, "domain": None,
         "sample_rate": 16000, "n_channels": 8, "duration_s": 10.0, "n_bytes": 2_560_044,
         "ingested_at": START + timedelta(seconds=30 * i)}
        for i in range(n)
    ]  # fmt: skip


def _rows_scores(clips: list[dict], model_of: dict[int, int], rng) -> list[dict]:
    from db.frames import pack_errors

    values = rng.gamma(2.0, 1.0, len(clips))
    blobs = [pack_errors(rng.gamma(2.0, 1.0, N_FRAMES), rng.gamma(2.0, 1.0, N_BANDS)) for _ in range(64)]
    return [{"id": c["id"], "clip_id": c["id"], "model_id": model_of[c["machine_pk"]], "score": float(values[k]),
             "details": None, "frames": blobs[k % len(blobs)], "computed_at": c["ingested_at"]}
            for k, c in enumerate(clips)]  # fmt: skip


def _rows_verdicts(flagged: list[int], rng, overlap: float) -> tuple[list[dict], list[dict]]:
    """Verdicts on 80% of the flagged clips (two annotators on most of the overlap sample), every 6th undone, every
    7th unsure, every 4th in the overlap sample disputed, every 25th adjudicated."""
    from db.queries import overlap_cut, overlap_hash

    notes, rulings, at = [], [], START + timedelta(days=400)
    for k, clip_id in enumerate(flagged):
        if rng.random() > 0.8:
            continue
        who = ["ana", "bob"] if overlap_hash(clip_id) < overlap_cut(overlap) and k % 5 != 4 else ["ana"]
        for name in who:
            verdict = "normal" if (k % 4 == 0 and name == "bob") else ("abnormal" if k % 3 else "normal")
            verdict = "unsure" if k % 7 == 0 and name == "ana" else verdict
            notes.append(
                {
                    "id": len(notes) + 1,
                    "clip_id": clip_id,
                    "annotator": name,
                    "verdict": verdict,
                    "anomaly_type": None,
                    "note": "",
                    "undoes_id": None,
                    "created_at": at,
                    "role": None,
                }
            )
        if k % 6 == 5:
            last = notes[-1]
            notes.append({**last, "id": len(notes) + 1, "note": "undo", "undoes_id": last["id"]})
        if k % 25 == 0:
            rulings.append(
                {
                    "id": len(rulings) + 1,
                    "clip_id": clip_id,
                    "adjudicator": "eve",
                    "role": "engineer",
                    "verdict": "abnormal",
                    "anomaly_type": None,
                    "reason": "heard it",
                    "created_at": at,
                }
            )
    return notes, rulings


def _copy(conn, table: str, rows: list[dict]) -> None:
    """PostgreSQL: ``COPY table FROM STDIN`` through psycopg (binary for bytes columns)."""
    if not rows:
        return
    columns = list(rows[0])
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _insert(conn, table, rows: list[dict], batch: int = 20_000) -> None:
    if conn.dialect.name == "postgresql":
        _copy(conn, table.name, rows)
        return
    for start in range(0, len(rows), batch):
        conn.execute(table.insert(), rows[start : start + batch])


def seed(url: str, n_clips: int, n_machines: int = 10, seed_: int = 0, overlap: float = 0.1) -> dict:
    """Seed ``n_clips`` scored clips on an empty database at ``url``; returns ``{"machines": [keys], ...}``."""
    from sqlalchemy import text

    from db.models import Adjudication, Annotation, Clip, DetectorModel, Machine, Score, Threshold
    from db.session import get_engine

    rng = np.random.default_rng(seed_)
    engine = get_engine(url)
    with engine.begin() as conn:
        machines = [{"id": m + 1, "machine_type": "fan", "machine_id": f"id_{m:02d}", "created_at": START,
                     "active_model_id": None} for m in range(n_machines)]  # fmt: skip
        conn.execute(Machine.__table__.insert(), machines)
        models = [{"id": m["id"], "detector": "mahalanobis", "scope": f"fan/{m['machine_id']}", "version": 1,
                   "artifact_path": None, "params": {"sample_rate": 16000}, "provenance": {}, "status": "ready",
                   "created_at": START + timedelta(days=200)} for m in machines]  # fmt: skip
        conn.execute(DetectorModel.__table__.insert(), models)
        for m in machines:
            conn.execute(Machine.__table__.update().where(Machine.id == m["id"]).values(active_model_id=m["id"]))
        cut = float(np.quantile(rng.gamma(2.0, 1.0, 100_000), 1 - FLAGGED_SHARE))
        conn.execute(Threshold.__table__.insert(), [{"model_id": m["id"], "value": cut, "method": "manual",
                     "set_by": "bench", "reason": "seed", "set_at": START} for m in models])  # fmt: skip
        clips = _rows_clips(n_clips, [m["id"] for m in machines], rng)
        _insert(conn, Clip.__table__, clips)
        scores = _rows_scores(clips, {m["id"]: m["id"] for m in machines}, rng)
        _insert(conn, Score.__table__, scores)
        notes, rulings = _rows_verdicts([s["clip_id"] for s in scores if s["score"] > cut], rng, overlap)
        _insert(conn, Annotation.__table__, notes)
        _insert(conn, Adjudication.__table__, rulings)
        if conn.dialect.name == "postgresql":
            for table in ("clips", "scores", "annotations", "adjudications"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"))  # fmt: skip
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return {"machines": [f"fan/{m['machine_id']}" for m in machines], "threshold": cut,
            "verdicts": len(notes), "adjudications": len(rulings)}  # fmt: skip


def _best_ms(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def measure(url: str, seeded: dict, repeats: int = 3) -> dict[str, float]:
    """``{what: best time in ms}`` of each page's queries on the seeded database."""
    from core.workflows import drift
    from core.workflows.explore import clip_details
    from core.workflows.triage import machine_summaries, queue_size, triage_queue
    from core.workflows.tuning import set_threshold, tuning_data
    from db.queries import machine_by_key
    from db.session import session_scope

    machine = seeded["machines"][len(seeded["machines"]) // 2]
    first = triage_queue(machine, url=url, limit=1)
    clip_id = first[0].clip_id if first else 1

    def drift_sets() -> None:
        with session_scope(url) as session:
            found = machine_by_key(session, machine)
            drift._clip_sets(session, found, found.active_model, 50, 200)

    values = iter(seeded["threshold"] * f for f in (1.02, 0.98, 1.01, 0.99, 1.0) * repeats)

    def threshold_change() -> None:
        set_threshold(machine, next(values), set_by="bench", reason="benchmark", url=url)
        triage_queue(machine, url=url, annotator="carl")
        queue_size(machine, annotator="carl", url=url)

    jobs = {
        "Overview: machine summaries (all machines)": lambda: machine_summaries(url),
        "Triage: queue, highest score first": lambda: triage_queue(machine, "score", annotator="carl", url=url),
        "Triage: queue, closest to the threshold": lambda: triage_queue(machine, "margin", annotator="carl", url=url),
        "Triage: queue, newest first": lambda: triage_queue(machine, "newest", annotator="carl", url=url),
        "Triage: queue size": lambda: queue_size(machine, annotator="carl", url=url),
        "Explore: one clip's details": lambda: clip_details(clip_id, url=url),
        "drift: reference, held-out and recent clips": drift_sets,
        "Thresholds: labelled set and score sketch": lambda: tuning_data(machine, use_test=True, url=url),
        "threshold change, then the queue and its size": threshold_change,
    }
    return {name: _best_ms(job, repeats) for name, job in jobs.items()}


def database_bytes(url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from db.session import get_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with get_engine(url).connect() as conn:  # the WAL's pages go into the file; the WAL is emptied
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(parsed.database)
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))  # dead tuples of the seeding's updates reclaimed; visibility map set
        return conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200_000)
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL of an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{tmp}/scale.db"
        start = time.perf_counter()
        seeded = seed(url, args.clips, args.machines)
        seeding = time.perf_counter() - start
        backend = "PostgreSQL" if args.postgres else "SQLite"
        judged = f"{seeded['verdicts']} verdicts, {seeded['adjudications']} adjudications"
        what = f"{args.clips} scored clips over {args.machines} machines ({judged})"
        print(f"{backend}: seeded {what} in {seeding:.1f} s")
        size = database_bytes(url)
        print(f"database: {size / 1e6:.1f} MB, {size / args.clips:.0f} bytes per clip")
        for name, ms in measure(url, seeded, args.repeats).items():
            print(f"{name:50s} {ms:8.1f} ms{'' if ms < 300 else '  (over 300 ms)'}")


if __name__ == "__main__":
    main()
