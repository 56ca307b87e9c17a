"""Data commands: ``demo`` writes a synthetic plant, ``ingest`` registers clips, ``info`` counts them."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from core.cli.options import acting_user, add_command, add_jobs, add_json
from core.cli.output import print_json, progress_bar


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo plant and say what was written."""
    from core.datasets.demo import write_plant

    update, close = progress_bar("demo plant")
    try:
        plan = write_plant(
            args.out_dir, seed=args.seed, snr_db=args.snr, machines=args.machines, normal=args.normal,
            abnormal=args.abnormal, duration_s=args.duration, channels=args.channels, progress=update,
        )  # fmt: skip
    finally:
        close()
    machines = sorted({f"{c.machine_type}/{c.machine_id}" for c in plan})
    print(f"wrote {len(plan)} clips for {len(machines)} machines ({', '.join(machines)}) under {args.out_dir}")
    return 0


def register_demo(commands) -> None:
    """``demo OUT_DIR [--seed --snr --machines --normal --abnormal --duration --channels]``."""
    demo = add_command(
        commands, "demo", cmd_demo,
        help="write a synthetic demo plant in the MIMII layout",
        description="Write a synthetic demo plant (fans and other machines, "
        "several fault kinds, factory noise) in the MIMII layout.",
    )  # fmt: skip
    demo.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    demo.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    demo.add_argument("--snr", type=float, default=6.0, help="machine-to-background ratio in dB (default 6)")
    demo.add_argument("--machines", type=int, default=4, help="number of machines, 1-8 (default 4: 3 fans, 1 pump)")
    demo.add_argument("--normal", type=int, default=60, help="normal clips per machine (default 60)")
    demo.add_argument("--abnormal", type=int, default=15, help="abnormal clips per machine (default 15)")
    demo.add_argument("--duration", type=float, default=10.0, help="seconds per clip (default 10)")
    demo.add_argument("--channels", type=int, default=1, help="microphones per clip (default 1; MIMII has 8)")


def cmd_ingest(args: argparse.Namespace) -> int:
    """Register the clips under ``args.paths``; list each refused file with its reason."""
    from core.workflows.ingest import ingest

    update, close = progress_bar("ingest")
    try:
        report = ingest(args.paths, n_jobs=args.jobs, progress=update, actor=acting_user(args))
    finally:
        close()
    if args.json:
        print_json(report.as_json())
        return 0
    print(f"ingested {report.ingested}, already known {report.already_known}, rejected {len(report.rejected)}")
    for item in report.rejected:
        print(f"  rejected {item['path']}: {item['detail']} [{item['reason']}]")
    return 0


def register_ingest(commands) -> None:
    """``ingest PATH... [--json --jobs]``."""
    ingest = add_command(
        commands, "ingest", cmd_ingest,
        help="register clips (files or folders) in the database",
        description="Register clips; the same content twice is one clip; a bad "
        "file is reported with its reason and never stops the batch.",
    )  # fmt: skip
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="WAV/FLAC files or folders (any known layout)")
    add_json(ingest, "print {ingested, already_known, rejected} as JSON")
    add_jobs(ingest)


def cmd_info(args: argparse.Namespace) -> int:
    """Clip counts per machine type, id, label and split, as a table or JSON."""
    from core.workflows.catalogue import clip_counts, database_shown

    counts = clip_counts()
    if args.json:
        total = sum(c.n_clips for c in counts)
        print_json({"database": database_shown(), "total": total, "counts": [asdict(c) for c in counts]})
        return 0
    if not counts:
        print("no clips yet: run `python -m core demo DIR` then `python -m core ingest DIR`")
        return 0
    print(f"{'machine type':<14}{'machine id':<14}{'label':<10}{'split':<7}{'clips':>7}")
    for c in counts:
        print(f"{c.machine_type:<14}{c.machine_id:<14}{c.label:<10}{c.split:<7}{c.n_clips:>7}")
    print(f"{'total':<45}{sum(c.n_clips for c in counts):>7}")
    return 0


def register_info(commands) -> None:
    """``info [--json]``."""
    info = add_command(
        commands, "info", cmd_info,
        help="clips per machine type, id, label and split",
        description="Print clip counts per machine type, machine id, label and split.",
    )  # fmt: skip
    add_json(info, "print the counts as JSON")
