"""Command-line interface: ``python -m core COMMAND ...`` (``--help`` on every command).

Each command is a thin wrapper over the same ``core`` functions the dashboard calls.
Progress bars go to stderr; ``--json`` output goes to stdout alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict

from tqdm import tqdm

from core.errors import BadInputError


def _progress_bar(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr, and its closer."""
    bar = tqdm(desc=description, unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import write_plant

    update, close = _progress_bar("demo plant")
    try:
        plan = write_plant(
            args.out_dir,
            seed=args.seed,
            snr_db=args.snr,
            machines=args.machines,
            normal=args.normal,
            abnormal=args.abnormal,
            duration_s=args.duration,
            channels=args.channels,
            progress=update,
        )
    finally:
        close()
    machines = sorted({f"{c.machine_type}/{c.machine_id}" for c in plan})
    print(f"wrote {len(plan)} clips for {len(machines)} machines ({', '.join(machines)}) under {args.out_dir}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from core.ingest import ingest

    update, close = _progress_bar("ingest")
    try:
        report = ingest(args.paths, n_jobs=args.jobs, progress=update)
    finally:
        close()
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(f"ingested {report.ingested}, already known {report.already_known}, rejected {len(report.rejected)}")
        for item in report.rejected:
            print(f"  rejected {item['path']}: {item['detail']} [{item['reason']}]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from db.queries import clip_counts
    from db.session import database_url, session_scope

    with session_scope() as session:
        counts = clip_counts(session)
    if args.json:
        payload = {
            "database": _safe_url(database_url()),
            "total": sum(c.n_clips for c in counts),
            "counts": [asdict(c) for c in counts],
        }
        print(json.dumps(payload, indent=2))
        return 0
    if not counts:
        print("no clips yet: run `python -m core demo DIR` then `python -m core ingest DIR`")
        return 0
    print(f"{'machine type':<14}{'machine id':<14}{'label':<10}{'split':<7}{'clips':>7}")
    for c in counts:
        print(f"{c.machine_type:<14}{c.machine_id:<14}{c.label:<10}{c.split:<7}{c.n_clips:>7}")
    print(f"{'total':<45}{sum(c.n_clips for c in counts):>7}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Machine-sound anomaly triage: headless commands. "
        "The database is DATABASE_URL, or SQLite under DATA_DIR (default ./data).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="write a synthetic demo plant in the MIMII layout",
        description="Write a synthetic demo plant (fans and other machines, "
        "several fault kinds, factory noise) in the MIMII layout.",
    )
    demo.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    demo.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    demo.add_argument("--snr", type=float, default=6.0, help="machine-to-background ratio in dB (default 6)")
    demo.add_argument("--machines", type=int, default=4, help="number of machines, 1-8 (default 4: 3 fans, 1 pump)")
    demo.add_argument("--normal", type=int, default=60, help="normal clips per machine (default 60)")
    demo.add_argument("--abnormal", type=int, default=15, help="abnormal clips per machine (default 15)")
    demo.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    demo.add_argument("--channels", type=int, default=1, help="microphones per clip (default 1; MIMII has 8)")
    demo.set_defaults(func=cmd_demo)

    ingest = commands.add_parser(
        "ingest",
        help="register clips (files or folders) in the database",
        description="Register clips; the same content twice is one clip; a bad "
        "file is reported with its reason and never stops the batch.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="WAV/FLAC files or folders (any known layout)")
    ingest.add_argument("--json", action="store_true", help="print {ingested, already_known, rejected} as JSON")
    ingest.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    ingest.set_defaults(func=cmd_ingest)

    info = commands.add_parser(
        "info",
        help="clips per machine type, id, label and split",
        description="Print clip counts per machine type, machine id, label and split.",
    )
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
