"""Detector-model commands: ``detectors``, ``train``, ``score``, ``evaluate``, ``activate``."""

from __future__ import annotations

import argparse
import sys

from core.cli.options import acting_user, add_command, add_engine, add_jobs, add_json, add_machine, add_who
from core.cli.output import log, print_epoch, print_json, progress_bar
from core.commands import core_command
from core.errors import BadInputError, Reason


def cmd_detectors(args: argparse.Namespace) -> int:
    """The registered detector names, one a line."""
    from core.detection.registry import detector_names

    for name in detector_names():
        print(name)
    return 0


def register_detectors(commands) -> None:
    """``detectors`` (no options)."""
    add_command(
        commands, "detectors", cmd_detectors,
        help="list the detector names, one a line",
        description="List the registered detector names, the default first.",
    )  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    """Train; exit 1 when every scope was skipped and none trained."""
    from core.workflows.training import train

    report = train(
        args.machine, args.detector, per_type=args.per_type, epochs=args.epochs, pooling=args.pooling,
        front_end=args.front_end, user=args.user,
        actor=acting_user(args), engine=args.engine, address=args.address,
        log=log, progress=print_epoch if sys.stderr.isatty() else None,
    )  # fmt: skip
    if args.json:
        print_json({"trained": [vars(t) for t in report.trained], "skipped": report.skipped})
    else:
        for t in report.trained:
            print(f"model {t.model_id}: {t.detector} v{t.version} for {t.scope}, {t.n_train} clips, "
                  f"{t.seconds:.1f} s, threshold {t.threshold:.4g}")  # fmt: skip
            if t.choice:
                print(f"  automatic choice: {t.choice}")
        for s in report.skipped:
            print(f"skipped {s['scope']}: {s['reason']}")
    return 0 if report.trained or not report.skipped else 1


def register_train(commands) -> None:
    """``train [--machine --detector --epochs --pooling --front-end --per-type --engine --address --user --json]``."""
    train = add_command(
        commands, "train", cmd_train,
        help="train a detector on normal training clips",
        description="Train a detector per machine (or per type) on the normal clips of "
        "the training split; each model becomes a new version with a gamma threshold.",
    )  # fmt: skip
    add_machine(train, "TYPE/ID, or TYPE for all its machines (default: every machine)")
    train.add_argument(
        "--detector", default="auto",
        help="detector name (see `detectors`), or auto (the default): choose per machine from its training clips "
        "only, by cross-validation against pseudo-anomalies",
    )  # fmt: skip
    train.add_argument("--epochs", type=int, default=None,
                       help="epochs of a detector trained in epochs (autoencoder: default 30, machine_id: 20); "
                       "refused with auto")  # fmt: skip
    train.add_argument("--pooling", default=None, metavar="mean|max|topN",
                       help="how a frame-level detector's frame scores become the clip's (e.g. top10: the mean of the "
                       "largest 10%%; band_deviation: max or mean); refused with auto")  # fmt: skip
    train.add_argument("--front-end", default=None, choices=["log_mel", "pcen"],
                       help="what a statistical detector (mahalanobis, band_deviation, frame_knn, frame_gmm) reads: "
                       "log-mel levels (the default) or PCEN, which levels steady sound and lifts short events "
                       "(clicks, strokes); refused with auto")  # fmt: skip
    train.add_argument("--per-type", action="store_true", help="one model per machine type instead of per machine")
    add_engine(train, "the training clips' feature extraction")
    add_who(train, "who trains (recorded in the provenance)")
    add_json(train, "print the trained models as JSON")


def cmd_score(args: argparse.Namespace) -> int:
    """Score the clips not yet scored by their machine's active model."""
    from core.access import Action, require
    from core.workflows.scoring import score

    require(acting_user(args), Action.INGEST)  # scoring is part of adding recordings: an engineer's work

    update, close = progress_bar("score")
    try:
        report = score(args.machine, n_jobs=args.jobs, progress=update, log=log, engine=args.engine,
                       address=args.address)  # fmt: skip
    finally:
        close()
    if args.json:
        print_json(vars(report))
        return 0
    print(f"scored {report.scored} clips with {report.models} model(s)")
    for item in report.failed:
        print(f"  could not score {item['path']}: {item['detail']} [{item['reason']}]")
    if report.machines_without_model:
        print(f"  no trained model yet for: {', '.join(report.machines_without_model)} (run `train`)")
    return 0


def register_score(commands) -> None:
    """``score [--machine --jobs --engine --address --json]``."""
    score = add_command(
        commands, "score", cmd_score,
        help="score clips not yet scored by the active model",
        description="Score every clip not yet scored by its machine's active model.",
    )  # fmt: skip
    add_machine(score)
    add_jobs(score, help="worker processes, or with --engine ray the CPUs of a local Ray instance "
             "(default: all cores)")  # fmt: skip
    add_engine(score, "reading, feature extraction and scoring")
    add_json(score, "print the report as JSON")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Test-split metrics of the active models, or (``--compare``) of each detector for one machine."""
    from core.workflows.evaluation import evaluate

    if args.compare:
        return _compare(args.machine, args.json)
    records = evaluate(args.machine)
    if args.json:
        print_json({"models": records})
        return 0
    if not records:
        print("no trained models yet: run `train` first")
    for r in records:
        c = r["confusion"]
        print(f"{r['machine']:<16} {r['detector']} v{r['version']}  AUC {r['auc']}  pAUC {r['pauc']}  "
              f"P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}  "
              f"tp {c['tp']} fp {c['fp']} tn {c['tn']} fn {c['fn']}  (n_test {r['n_test']})")  # fmt: skip
    return 0


def _compare(machine: str | None, as_json: bool) -> int:
    """``evaluate --compare``: the automatic choice (training data only) and each detector's newest model graded on
    the test split, best test AUC first."""
    from core.workflows.evaluation import automatic_choice, compare_detectors

    if not machine or "/" not in machine:
        raise BadInputError(Reason.INVALID_PARAMETER, "--compare needs --machine TYPE/ID")
    rows = compare_detectors(machine)
    choice = automatic_choice(machine)
    if as_json:
        print_json({"machine": machine, "choice": choice, "detectors": rows})
        return 0
    if choice:
        print(f"suggested default for {machine}: {choice['detector']} (model {choice['model_id']}, chosen from "
              f"training data only: {choice['note']})")  # fmt: skip
    else:
        print(f"no automatic choice for {machine} yet: "
              f"{core_command('train', '--machine', machine, '--detector', 'auto')}")  # fmt: skip
    print("test-split figures below grade the models; they did not choose them")
    for row in rows:
        mark = " (active)" if row["active"] else ""
        detector = row["detector"] + (" (pcen)" if row["front_end"] == "pcen" else "")
        print(f"{detector:<19} v{row['version']:<3} AUC {row['auc']}  pAUC {row['pauc']}  "
              f"n_test {row['n_test']}{mark}")  # fmt: skip
    return 0


def register_evaluate(commands) -> None:
    """``evaluate [--machine --compare --json]``."""
    evaluate = add_command(
        commands, "evaluate", cmd_evaluate,
        help="metrics of the active models on the test split",
        description="AUC, pAUC, precision, recall, F1, accuracy and the confusion "
        "matrix of each machine's active model on its test split (abnormal = positive).",
    )  # fmt: skip
    add_machine(evaluate)
    evaluate.add_argument(
        "--compare",
        action="store_true",
        help="for --machine TYPE/ID: the automatic choice (from training data only) and each detector's newest model "
        "graded on the test split, best test AUC first",
    )
    add_json(evaluate, 'print {"models": [...]} as JSON')


def cmd_activate(args: argparse.Namespace) -> int:
    """Make a model active: the newest of a detector, a model id, or the best detector."""
    from core.workflows.training import activate

    detector = args.detector
    if args.best:
        from core.workflows.evaluation import suggested_detector

        detector = suggested_detector(args.machine)
    model_id = activate(args.machine, detector=detector, model_id=args.model_id, actor=acting_user(args))
    print(f"{args.machine}: model {model_id} is now active")
    return 0


def register_activate(commands) -> None:
    """``activate --machine TYPE/ID (--detector NAME | --model-id N | --best)``."""
    activate = add_command(
        commands, "activate", cmd_activate,
        help="choose a machine's active detector model",
        description="Make a model active for a machine: the newest of --detector, or --model-id.",
    )  # fmt: skip
    add_machine(activate, "TYPE/ID", required=True)
    group = activate.add_mutually_exclusive_group(required=True)
    group.add_argument("--detector", help="detector name")
    group.add_argument("--model-id", type=int, help="model id")
    group.add_argument(
        "--best",
        action="store_true",
        help="the automatic choice's detector (train --detector auto; chosen from training data only)",
    )
