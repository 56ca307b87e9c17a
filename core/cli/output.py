"""Output shared by the commands: progress on stderr, JSON and job lines on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable


def progress_bar(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr, and its closer."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def print_epoch(done: int, total: int) -> None:
    """Training progress on stderr, one line rewritten until the last epoch."""
    print(f"  epoch {done}/{total}", file=sys.stderr, end="\r" if done < total else "\n")


def log(line: str) -> None:
    """A log line on stderr (stdout stays for results)."""
    print(line, file=sys.stderr)


def print_json(payload) -> None:
    """``payload`` as indented JSON on stdout."""
    print(json.dumps(payload, indent=2))


def job_json(status) -> dict:
    """The JSON form of a supervised-training job."""
    return {"job_id": status.job_id, "backend": status.backend, "status": status.status,
            "message": status.message, "model_id": status.model_id, "export_id": status.export_id,
            "external": status.external, "created_at": status.created_at.isoformat(),
            "finished_at": status.finished_at.isoformat() if status.finished_at else None}  # fmt: skip


def print_job(status, as_json: bool) -> None:
    """A supervised-training job: its JSON, or a line plus its test evaluation if any."""
    if as_json:
        print_json(job_json(status))
        return
    line = f"job {status.job_id} ({status.backend}): {status.status}"
    if status.model_id:
        line += f", model {status.model_id}"
    if status.message:
        line += f" - {status.message}"
    print(line)
    evaluation = status.external.get("evaluation")
    if evaluation:
        c = evaluation["confusion"]
        print(f"  test images {evaluation['n']}: P {evaluation['precision']:.3f} R {evaluation['recall']:.3f} "
              f"F1 {evaluation['f1']:.3f} AUC {evaluation['auc']}  "
              f"tp {c['tp']} fp {c['fp']} tn {c['tn']} fn {c['fn']}")  # fmt: skip
