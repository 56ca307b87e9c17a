"""``export OUT``: the curated, balanced spectrogram dataset for supervised training."""

from __future__ import annotations

import argparse

from core.cli.options import acting_user, add_command, add_jobs, add_json, add_machine, add_who
from core.cli.output import print_json, progress_bar


def cmd_export(args: argparse.Namespace) -> int:
    """Write the export; print its summary (or JSON)."""
    from core.workflows.export import ExportOptions, export_dataset

    base = args.s3_uri.rstrip("/") + "/" if args.s3_uri else ""
    options = ExportOptions(prefer=args.prefer, seed=args.seed, test_fraction=args.test_fraction, cap=args.cap,
                            machine=args.machine, source_ref_base=base, trusted_only=args.trusted_only)  # fmt: skip
    update, close = progress_bar("spectrograms")
    try:
        summary = export_dataset(args.out_dir, options, overwrite=args.overwrite, user=args.user,
                                 actor=acting_user(args), n_jobs=args.jobs, progress=update)  # fmt: skip
    finally:
        close()
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    """The export's counts, label sources, per-machine advice and skipped files."""
    from core.workflows.export import describe_counts

    print(f"export {summary['export_id']} in {summary['out_dir']}: {describe_counts(summary['counts'])}")
    print(f"labels: {summary['label_source']}; {summary['conflicts']} conflict(s); sources {summary['sources']}")
    for label, quality in summary["label_quality"].items():
        print(f"  {label}: {quality['ground_truth']} ground truth, {quality['single']} single-annotator, "
              f"{quality['double']} double-confirmed, {quality['adjudicated']} adjudicated ({quality['trusted']} "
              "trusted)")  # fmt: skip
    if summary["disputed"]:
        print(f"left out {len(summary['disputed'])} clip(s) whose annotators disagree (the review queue: disputes)")
    for m in summary["machines"]:
        print(f"  {m['machine']:<16} available {m['available']}  kept {m['kept']}  {m['advice']}")
    for item in summary["unreadable"]:
        print(f"  skipped {item['path']}: {item['detail']} [{item['reason']}]")


def register_export(commands) -> None:
    """``export OUT [--prefer --seed --test-fraction --cap --machine --s3-uri --overwrite --jobs --user --json]``."""
    export = add_command(
        commands, "export", cmd_export,
        help="export the curated, balanced spectrogram dataset",
        description="Write the curated clips (pilot verdicts and the layout's ground truth), balanced per "
        "machine and split by group into train/test, as spectrogram PNGs with Ground Truth manifests "
        "(train.manifest, test.manifest) and summary.json, validated for Rekognition Custom Labels.",
    )  # fmt: skip
    export.add_argument("out_dir", metavar="OUT", help="folder to write: empty, or an old export with --overwrite")
    add_curation_options(export)
    add_machine(export)
    export.add_argument("--s3-uri", help="write source-refs under this s3://bucket/prefix (default: relative paths)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT")
    export.add_argument("--trusted-only", action="store_true",
                        help="only trusted labels: ground truth, double-confirmed, adjudicated, or one verdict by an "
                        "engineer or higher (single annotators' labels are left out)")  # fmt: skip
    add_jobs(export)
    add_who(export, "who exports (recorded)")
    add_json(export, "print the summary as JSON")


def add_curation_options(parser: argparse.ArgumentParser) -> None:
    """What an export takes from the labels and how it balances and splits them (``export``, ``export-and-train``)."""
    parser.add_argument("--prefer", choices=["verdicts", "ground-truth"], default="verdicts",
                        help="which label wins when a clip has both (default verdicts)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed for balancing and the split (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="share of groups for testing (default 0.25)")
    parser.add_argument("--cap", type=int, default=None, help="at most this many clips per class and machine")
