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
from datetime import datetime

from tqdm import tqdm

from core.supervised.cloud import CloudError
from core.errors import BadInputError, Reason
from core.detection.thresholds import METHODS as THRESHOLD_METHODS


def _progress_bar(description: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr, and its closer."""
    bar = tqdm(desc=description, unit="file", file=sys.stderr, disable=None, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar.close


def cmd_demo(args: argparse.Namespace) -> int:
    from core.datasets.demo import write_plant

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
    from core.workflows.ingest import ingest

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


def _print_json(payload) -> None:
    print(json.dumps(payload, indent=2))


def cmd_detectors(args: argparse.Namespace) -> int:
    from core.detection.registry import detector_names

    for name in detector_names():
        print(name)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from core.workflows.training import train

    def epoch(done: int, total: int) -> None:
        print(f"  epoch {done}/{total}", file=sys.stderr, end="\r" if done < total else "\n")

    report = train(
        args.machine, args.detector, per_type=args.per_type, epochs=args.epochs, user=args.user,
        log=lambda line: print(line, file=sys.stderr), progress=epoch if sys.stderr.isatty() else None,
    )  # fmt: skip
    if args.json:
        _print_json({"trained": [vars(t) for t in report.trained], "skipped": report.skipped})
    else:
        for t in report.trained:
            print(f"model {t.model_id}: {t.detector} v{t.version} for {t.scope}, {t.n_train} clips, "
                  f"{t.seconds:.1f} s, threshold {t.threshold:.4g}")  # fmt: skip
        for s in report.skipped:
            print(f"skipped {s['scope']}: {s['reason']}")
    return 0 if report.trained or not report.skipped else 1


def cmd_score(args: argparse.Namespace) -> int:
    from core.workflows.scoring import score

    update, close = _progress_bar("score")
    try:
        report = score(args.machine, n_jobs=args.jobs, progress=update, log=lambda line: print(line, file=sys.stderr))
    finally:
        close()
    if args.json:
        _print_json(vars(report))
        return 0
    print(f"scored {report.scored} clips with {report.models} model(s)")
    for item in report.failed:
        print(f"  could not score {item['path']}: {item['detail']} [{item['reason']}]")
    if report.machines_without_model:
        print(f"  no trained model yet for: {', '.join(report.machines_without_model)} (run `train`)")
    return 0


def cmd_threshold(args: argparse.Namespace) -> int:
    from core.workflows.tuning import SuggestOptions, set_threshold, suggest

    options = SuggestOptions(
        method=args.method, quantile=args.quantile, target=args.target, cost_miss=args.cost_miss,
        cost_false_alarm=args.cost_false_alarm, use_test=args.use_test,
    )  # fmt: skip
    if args.action == "suggest":
        suggestion = suggest(args.machine, options)
        if args.json:
            _print_json(vars(suggestion))
        else:
            print(f"{suggestion.machine}: {suggestion.value:.6g} ({suggestion.reason})")
        return 0
    if args.value is not None:
        value, method, reason = args.value, "manual", args.reason or "set by hand"
    else:
        suggestion = suggest(args.machine, options)
        value, method = suggestion.value, suggestion.method
        reason = f"{args.reason + '; ' if args.reason else ''}{suggestion.reason}"
    row = set_threshold(args.machine, value, set_by=args.by, reason=reason, method=method)
    print(f"{args.machine}: threshold {value:.6g} set by {args.by} ({reason}) [record {row}]")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.workflows.evaluation import compare_detectors, evaluate

    if args.compare:
        if not args.machine or "/" not in args.machine:
            raise BadInputError(Reason.INVALID_PARAMETER, "--compare needs --machine TYPE/ID")
        rows = compare_detectors(args.machine)
        if args.json:
            _print_json({"machine": args.machine, "detectors": rows})
        if rows and not args.json:
            print(f"suggested default for {args.machine}: {rows[0]['detector']} (best AUC on the test split)")
        for row in [] if args.json else rows:
            mark = " (active)" if row["active"] else ""
            print(f"{row['detector']:<12} v{row['version']:<3} AUC {row['auc']}  pAUC {row['pauc']}  "
                  f"n_test {row['n_test']}{mark}")  # fmt: skip
        return 0
    records = evaluate(args.machine)
    if args.json:
        _print_json({"models": records})
        return 0
    if not records:
        print("no trained models yet: run `train` first")
    for r in records:
        c = r["confusion"]
        print(f"{r['machine']:<16} {r['detector']} v{r['version']}  AUC {r['auc']}  pAUC {r['pauc']}  "
              f"P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}  "
              f"tp {c['tp']} fp {c['fp']} tn {c['tn']} fn {c['fn']}  (n_test {r['n_test']})")  # fmt: skip
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from core.workflows.training import activate

    detector = args.detector
    if args.best:
        from core.workflows.evaluation import suggested_detector

        detector = suggested_detector(args.machine)
    model_id = activate(args.machine, detector=detector, model_id=args.model_id)
    print(f"{args.machine}: model {model_id} is now active")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.workflows.export import ExportOptions, describe_counts, export_dataset

    base = args.s3_uri.rstrip("/") + "/" if args.s3_uri else ""
    options = ExportOptions(prefer=args.prefer, seed=args.seed, test_fraction=args.test_fraction, cap=args.cap,
                            machine=args.machine, source_ref_base=base)  # fmt: skip
    update, close = _progress_bar("spectrograms")
    try:
        summary = export_dataset(args.out_dir, options, overwrite=args.overwrite, user=args.user,
                                 n_jobs=args.jobs, progress=update)  # fmt: skip
    finally:
        close()
    if args.json:
        _print_json(summary)
        return 0
    print(f"export {summary['export_id']} in {summary['out_dir']}: {describe_counts(summary['counts'])}")
    print(f"labels: {summary['label_source']}; {summary['conflicts']} conflict(s); sources {summary['sources']}")
    if summary["disputed"]:
        print(f"left out {len(summary['disputed'])} clip(s) whose annotators disagree (see the Triage review list)")
    for m in summary["machines"]:
        print(f"  {m['machine']:<16} available {m['available']}  kept {m['kept']}  {m['advice']}")
    for item in summary["unreadable"]:
        print(f"  skipped {item['path']}: {item['detail']} [{item['reason']}]")
    return 0


def _print_job(status, as_json: bool) -> None:
    if as_json:
        _print_json({"job_id": status.job_id, "backend": status.backend, "status": status.status,
                     "message": status.message, "model_id": status.model_id, "export_id": status.export_id,
                     "external": status.external, "created_at": status.created_at.isoformat(),
                     "finished_at": status.finished_at.isoformat() if status.finished_at else None})  # fmt: skip
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


def cmd_train_supervised(args: argparse.Namespace) -> int:
    from core.supervised.jobs import job_status
    from core.supervised.local import LocalTrainer

    def epoch(done: int, total: int) -> None:
        print(f"  epoch {done}/{total}", file=sys.stderr, end="\r" if done < total else "\n")

    job_id = LocalTrainer(epochs=args.epochs).train(args.export, user=args.user, progress=epoch)
    _print_job(job_status(job_id), args.json)
    return 0


def _rekognition(args: argparse.Namespace):
    from core.supervised.cloud.config import CloudConfig
    from core.supervised.rekognition import RekognitionTrainer

    config = CloudConfig.from_env().with_overrides(bucket=args.bucket, prefix=args.prefix, region=args.region,
                                                   profile=args.profile, project=args.project)  # fmt: skip
    return RekognitionTrainer(config)


def _confirmed(notice: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        print(f"{notice}\nNot started: add --yes to accept the cost.", file=sys.stderr)
        return False
    return input(f"{notice}\nStart the model? [y/N] ").strip().lower() in ("y", "yes")


def cmd_rekognition(args: argparse.Namespace) -> int:
    from core.supervised.jobs import job_status, recent_jobs

    trainer = _rekognition(args)
    if args.action == "train":
        update, close = _progress_bar("upload")
        try:
            job_id = trainer.train(args.export, user=args.user, progress=update)
        finally:
            close()
        status = trainer.wait(job_id, on_poll=lambda s: print(f"  {s.status}", file=sys.stderr)) if args.wait \
            else job_status(job_id)  # fmt: skip
        _print_job(status, args.json)
        return 0 if status.status != "failed" else 1
    if args.action == "status":
        if args.job is None:
            jobs = recent_jobs(backend="rekognition")
            if args.json:
                _print_json([{"job_id": j.job_id, "status": j.status, "message": j.message} for j in jobs])
            for job in [] if args.json else jobs:
                _print_job(trainer.refresh(job.job_id) if job.status == "training" else job, False)
            if not jobs and not args.json:
                print("no Rekognition jobs yet: `python -m core rekognition train`")
            return 0
        status = trainer.wait(args.job) if args.wait else trainer.refresh(args.job)
        _print_job(status, args.json)
        return 0
    if args.job is None:
        raise BadInputError(Reason.INVALID_PARAMETER, f"rekognition {args.action} needs a JOB id")
    if args.action == "evaluate":
        if not _confirmed(trainer.config.cost_notice(), args.yes):
            return 1
        update, close = _progress_bar("test images")
        try:
            trainer.evaluate(args.job, confirm_cost=True, progress=update)
        finally:
            close()
        _print_job(job_status(args.job), args.json)
        return 0
    _print_job(trainer.stop(args.job), args.json)
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from core.workflows.triage import other_verdicts, record_verdict, resolve_clip

    if args.type and args.verdict != "abnormal":
        raise BadInputError(Reason.INVALID_PARAMETER, "--type names the fault of an abnormal clip: use it with "
                            "--verdict abnormal")  # fmt: skip
    clip_id = resolve_clip(args.clip)
    annotation = record_verdict(clip_id, args.annotator, args.verdict, anomaly_type=args.type, note=args.note)
    others = other_verdicts(clip_id, args.annotator)
    if args.json:
        _print_json({"annotation_id": annotation, "clip_id": clip_id, "verdict": args.verdict,
                     "annotator": args.annotator.strip(), "type": args.type, "note": args.note,
                     "other_verdicts": others})  # fmt: skip
        return 0
    print(f"clip {clip_id}: {args.verdict} by {args.annotator.strip()} [annotation {annotation}]")
    if others:
        said = ", ".join(f"{who}: {verdict}" for who, verdict in others.items())
        print(f"  others judged it too ({said}); every verdict is kept", file=sys.stderr)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from core.workflows.notify import channels_from
    from core.workflows.watch import Watcher

    channels = channels_from(args.webhook, args.sns_topic)
    watcher = Watcher(args.folder, settle_s=args.settle, channels=channels, n_jobs=args.jobs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    where = ", ".join(c.describe() for c in channels) or "no notifications configured"  # no webhook secrets
    print(f"watching {watcher.folder} every {args.interval:g} s ({where}); Ctrl-C to stop", file=sys.stderr)

    def report(poll) -> None:
        if poll.busy or args.once:
            print(f"{datetime.now():%H:%M:%S} ingested {poll.ingested}, already known {poll.already_known}, "
                  f"refused {len(poll.rejected)}, scored {poll.scored}, new flags {len(poll.flagged)}, "
                  f"still being written {poll.waiting}", file=sys.stderr, flush=True)  # fmt: skip
        for item in poll.rejected:
            print(f"  refused {item['path']}: {item['detail']} [{item['reason']}]", file=sys.stderr)

    try:
        watcher.run(interval_s=args.interval, stop=stop, max_polls=1 if args.once else None, on_poll=report)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from core.workflows.drift import RETRAIN, drift_reports

    reports = drift_reports(args.machine, recent=args.recent, n_jobs=args.jobs)
    if args.json:
        _print_json({"machines": [r.as_json() for r in reports]})
        return 0
    if not reports:
        print("no machines yet: ingest clips first")
        return 0

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(f"{'machine':<16} {'state':<18} {'score PSI':>9} {'level PSI':>9} {'recent':>6} {'reference':>9}")
    for r in reports:
        print(f"{r.machine:<16} {r.state:<18} {fmt(r.score_psi):>9} {fmt(r.level_psi):>9} {r.n_recent:>6} "
              f"{r.n_reference:>9}")  # fmt: skip
        for reason in r.reasons:
            print(f"    {reason}")
    for r in reports:
        if r.state == RETRAIN:
            print(f"retrain suggested for {r.machine}: {r.retrain_command}")
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

    commands.add_parser(
        "detectors",
        help="list the detector names, one a line",
        description="List the registered detector names, the default first.",
    ).set_defaults(func=cmd_detectors)

    train = commands.add_parser(
        "train",
        help="train a detector on normal training clips",
        description="Train a detector per machine (or per type) on the normal clips of "
        "the training split; each model becomes a new version with a gamma threshold.",
    )
    train.add_argument("--machine", help="TYPE/ID, or TYPE for all its machines (default: every machine)")
    train.add_argument("--detector", default="autoencoder", help="detector name (see `detectors`; default autoencoder)")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (autoencoder; default 30)")
    train.add_argument("--per-type", action="store_true", help="one model per machine type instead of per machine")
    train.add_argument("--user", default="cli", help="who trains (recorded in the provenance)")
    train.add_argument("--json", action="store_true", help="print the trained models as JSON")
    train.set_defaults(func=cmd_train)

    score = commands.add_parser(
        "score",
        help="score clips not yet scored by the active model",
        description="Score every clip not yet scored by its machine's active model.",
    )
    score.add_argument("--machine", help="TYPE/ID or TYPE (default: every machine)")
    score.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    score.add_argument("--json", action="store_true", help="print the report as JSON")
    score.set_defaults(func=cmd_score)

    threshold = commands.add_parser(
        "threshold",
        help="suggest or set a machine's threshold",
        description="suggest: compute a threshold; set: record one (a VALUE, or "
        "the suggestion of --method) with who and why.",
    )
    threshold.add_argument("action", choices=["suggest", "set"])
    threshold.add_argument("value", nargs="?", type=float, help="with set: the threshold value")
    threshold.add_argument("--machine", required=True, help="TYPE/ID")
    threshold.add_argument(
        "--method",
        default="gamma",
        choices=list(THRESHOLD_METHODS),
        help="gamma (no labels), max_f1, target_recall, target_precision, min_cost",
    )
    threshold.add_argument("--quantile", type=float, default=0.9, help="gamma quantile (default 0.9)")
    threshold.add_argument("--target", type=float, default=0.9, help="target recall or precision (default 0.9)")
    threshold.add_argument("--cost-miss", type=float, default=10.0, help="cost of a missed anomaly (default 10)")
    threshold.add_argument("--cost-false-alarm", type=float, default=1.0, help="cost of a false alarm (default 1)")
    threshold.add_argument("--use-test", action="store_true", help="also fit on the test split (off by default)")
    threshold.add_argument("--by", default="cli", help="with set: who sets it")
    threshold.add_argument("--reason", default="", help="with set: why")
    threshold.add_argument("--json", action="store_true", help="with suggest: print JSON")
    threshold.set_defaults(func=cmd_threshold)

    evaluate = commands.add_parser(
        "evaluate",
        help="metrics of the active models on the test split",
        description="AUC, pAUC, precision, recall, F1, accuracy and the confusion "
        "matrix of each machine's active model on its test split (abnormal = positive).",
    )
    evaluate.add_argument("--machine", help="TYPE/ID or TYPE (default: every machine)")
    evaluate.add_argument(
        "--compare",
        action="store_true",
        help="compare the newest model of each detector for --machine TYPE/ID, best first (the suggested default)",
    )
    evaluate.add_argument("--json", action="store_true", help='print {"models": [...]} as JSON')
    evaluate.set_defaults(func=cmd_evaluate)

    activate = commands.add_parser(
        "activate",
        help="choose a machine's active detector model",
        description="Make a model active for a machine: the newest of --detector, or --model-id.",
    )
    activate.add_argument("--machine", required=True, help="TYPE/ID")
    group = activate.add_mutually_exclusive_group(required=True)
    group.add_argument("--detector", help="detector name")
    group.add_argument("--model-id", type=int, help="model id")
    group.add_argument(
        "--best", action="store_true", help="the detector with the best test AUC (see evaluate --compare)"
    )
    activate.set_defaults(func=cmd_activate)

    export = commands.add_parser(
        "export",
        help="export the curated, balanced spectrogram dataset",
        description="Write the curated clips (pilot verdicts and the layout's ground truth), balanced per "
        "machine and split by group into train/test, as spectrogram PNGs with Ground Truth manifests "
        "(train.manifest, test.manifest) and summary.json, validated for Rekognition Custom Labels.",
    )
    export.add_argument("out_dir", metavar="OUT", help="folder to write: empty, or an old export with --overwrite")
    export.add_argument("--prefer", choices=["verdicts", "ground-truth"], default="verdicts",
                        help="which label wins when a clip has both (default verdicts)")  # fmt: skip
    export.add_argument("--seed", type=int, default=0, help="random seed for balancing and the split (default 0)")
    export.add_argument("--test-fraction", type=float, default=0.25, help="share of groups for testing (default 0.25)")
    export.add_argument("--cap", type=int, default=None, help="at most this many clips per class and machine")
    export.add_argument("--machine", help="TYPE/ID or TYPE (default: every machine)")
    export.add_argument("--s3-uri", help="write source-refs under this s3://bucket/prefix (default: relative paths)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT")
    export.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    export.add_argument("--user", default="cli", help="who exports (recorded)")
    export.add_argument("--json", action="store_true", help="print the summary as JSON")
    export.set_defaults(func=cmd_export)

    supervised = commands.add_parser(
        "train-supervised",
        help="train the local spectrogram CNN on an export",
        description="Train a small Keras CNN on an export's train images, evaluate it on its test images, "
        "and store it as a model version (no cloud account needed).",
    )
    supervised.add_argument("--export", metavar="DIR", help="export folder (default: the newest export)")
    supervised.add_argument("--epochs", type=int, default=None,
                            help="epochs, exactly (default: 60, more on small exports)")  # fmt: skip
    supervised.add_argument("--user", default="cli", help="who trains (recorded)")
    supervised.add_argument("--json", action="store_true", help="print the job as JSON")
    supervised.set_defaults(func=cmd_train_supervised)

    reko = commands.add_parser(
        "rekognition",
        help="train and evaluate with Amazon Rekognition Custom Labels",
        description="train: upload an export to S3 and start training; status: follow jobs; evaluate: start the "
        "model (after confirming its cost), predict the test images, stop it; stop: stop a job's model. "
        "Settings come from REKOGNITION_BUCKET, _PREFIX, _PROJECT, _REGION, _PROFILE; credentials from "
        "boto3's standard chain.",
    )
    reko.add_argument("action", choices=["train", "status", "evaluate", "stop"])
    reko.add_argument("job", nargs="?", type=int, help="job id (status, evaluate, stop)")
    reko.add_argument("--export", metavar="DIR", help="with train: export folder (default: the newest)")
    reko.add_argument("--wait", action="store_true", help="with train/status: poll until training ends")
    reko.add_argument("--yes", action="store_true", help="with evaluate: accept the cost of running the model")
    for option in ("bucket", "prefix", "region", "profile", "project"):
        reko.add_argument(f"--{option}", help=f"override REKOGNITION_{option.upper()}")
    reko.add_argument("--user", default="cli", help="who trains (recorded)")
    reko.add_argument("--json", action="store_true", help="print the job as JSON")
    reko.set_defaults(func=cmd_rekognition)

    annotate = commands.add_parser(
        "annotate",
        help="record a pilot's verdict on a clip",
        description="Record a verdict on a clip, as the Triage page does: appended, never overwriting "
        "another annotator's; safe to run from many processes at once.",
    )
    annotate.add_argument("clip", metavar="CLIP",
                          help="clip id, or a file registered under that path or with the same content")  # fmt: skip
    annotate.add_argument("--verdict", required=True, choices=["normal", "abnormal", "unsure"],
                          help="abnormal confirms a flag, normal rejects it")  # fmt: skip
    annotate.add_argument("--annotator", required=True, metavar="NAME", help="who gives the verdict")
    annotate.add_argument("--type", metavar="T", help="anomaly type (with abnormal; new types join the list)")
    annotate.add_argument("--note", metavar="N", default="", help="why")
    annotate.add_argument("--json", action="store_true", help="print the stored annotation as JSON")
    annotate.set_defaults(func=cmd_annotate)

    watch = commands.add_parser(
        "watch",
        help="ingest, score and flag new recordings as they land in a folder",
        description="Watch DIR (recursively; field snippets as DIR/<type>/<id>/<file>.wav): ingest each "
        "complete new file, score it with its machine's active model, and announce new flags by webhook "
        "(NOTIFY_WEBHOOK_URL) or AWS SNS (NOTIFY_SNS_TOPIC_ARN), retried in the background. Safe to stop "
        "and restart at any time.",
    )
    watch.add_argument("folder", metavar="DIR", help="folder the recorders write into")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
    watch.add_argument("--settle", type=float, default=2.0,
                       help="seconds a file must stay unwritten before it is read (default 2)")  # fmt: skip
    watch.add_argument("--webhook", metavar="URL", help="POST a JSON message per new flag to this URL")
    watch.add_argument("--sns-topic", metavar="ARN", help="publish a message per new flag to this SNS topic")
    watch.add_argument("--jobs", type=int, default=1, help="worker processes per pass (default 1)")
    watch.add_argument("--once", action="store_true", help="one pass, then exit (for cron and tests)")
    watch.set_defaults(func=cmd_watch)

    drift = commands.add_parser(
        "drift",
        help="compare each machine's recent clips with its training clips",
        description="Compare each machine's newest clips with the clips its active model learned from "
        "(anomaly scores and per-band log-mel levels, by population stability index and Kolmogorov-Smirnov "
        "tests): stable, watch, retrain suggested, or not enough data.",
    )
    drift.add_argument("--machine", help="TYPE/ID or TYPE (default: every machine)")
    drift.add_argument("--recent", type=int, default=50, help="newest clips per machine to compare (default 50)")
    drift.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    drift.add_argument("--json", action="store_true", help='print {"machines": [...]} as JSON')
    drift.set_defaults(func=cmd_drift)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CloudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
