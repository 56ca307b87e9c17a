"""Supervised training on an export: ``train-supervised`` (local CNN) and ``rekognition`` (AWS)."""

from __future__ import annotations

import argparse
import sys

from core.cli.export import add_curation_options
from core.cli.options import acting_user, add_command, add_jobs, add_json, add_machine, add_who
from core.cli.output import job_json, print_epoch, print_job, print_json, progress_bar
from core.errors import BadInputError, Reason
from core.vocabulary import JobState

CLOUD_SETTINGS = ("bucket", "prefix", "region", "profile", "project")


def cmd_train_supervised(args: argparse.Namespace) -> int:
    """Train the local spectrogram CNN on an export and print the job."""
    from core.supervised.jobs import job_status
    from core.supervised.local import LocalTrainer

    job_id = LocalTrainer(epochs=args.epochs).train(
        args.export, user=args.user, progress=print_epoch, actor=acting_user(args)
    )
    print_job(job_status(job_id), args.json)
    return 0


def register_train_supervised(commands) -> None:
    """``train-supervised [--export DIR --epochs --user --json]``."""
    supervised = add_command(
        commands, "train-supervised", cmd_train_supervised,
        help="train the local spectrogram CNN on an export",
        description="Train a small Keras CNN on an export's train images, evaluate it on its test images, "
        "and store it as a model version (no cloud account needed).",
    )  # fmt: skip
    supervised.add_argument("--export", metavar="DIR", help="export folder (default: the newest export)")
    supervised.add_argument("--epochs", type=int, default=None,
                            help="epochs, exactly (default: 60, more on small exports)")  # fmt: skip
    add_who(supervised, "who trains (recorded)")
    add_json(supervised, "print the job as JSON")


def cmd_export_and_train(args: argparse.Namespace) -> int:
    """Export the curated dataset and train on it in one step; print the export and the job (exit 1 if the
    Rekognition cost is not accepted, or the job failed)."""
    from core.supervised.jobs import job_status
    from core.supervised.pipeline import export_and_train
    from core.workflows.export import ExportOptions, describe_counts

    trainer = _one_step_trainer(args)
    paid = trainer.name == "rekognition"
    if paid and not _confirmed(trainer.config.training_cost_notice(), args.yes, "Export and start training?"):
        return 1
    options = ExportOptions(prefer=args.prefer, seed=args.seed, test_fraction=args.test_fraction, cap=args.cap,
                            machine=args.machine, trusted_only=args.trusted_only)  # fmt: skip
    update, close = progress_bar("spectrograms")
    upload, close_upload = progress_bar("upload") if paid else (print_epoch, lambda: None)
    try:
        result = export_and_train(options, out_dir=args.out_dir, trainer=trainer, confirm_cost=paid, user=args.user,
                                  actor=acting_user(args), n_jobs=args.jobs, export_progress=update,
                                  train_progress=upload)  # fmt: skip
    finally:
        close()
        close_upload()
    status = job_status(result.job_id)
    if args.json:
        summary = result.summary
        print_json({"export_id": summary["export_id"], "out_dir": summary["out_dir"], "counts": summary["counts"],
                    "backend": result.backend, "job": job_json(status)})  # fmt: skip
    else:
        print(f"export {result.summary['export_id']} in {result.summary['out_dir']}: "
              f"{describe_counts(result.summary['counts'])}")  # fmt: skip
        print_job(status, False)
    return 0 if status.status != JobState.FAILED else 1


def _one_step_trainer(args: argparse.Namespace):
    """The trainer ``--backend`` names (``auto``: Rekognition when configured, else local)."""
    from core.supervised import get_trainer
    from core.supervised.cloud.config import CloudConfig, unavailable_reason
    from core.supervised.pipeline import default_trainer

    if args.backend == "auto":
        return default_trainer(epochs=args.epochs)
    if args.backend == "local":
        return get_trainer("local", epochs=args.epochs)
    config = CloudConfig.from_env()
    reason = unavailable_reason(config)
    if reason:
        raise BadInputError(Reason.INVALID_PARAMETER, f"cannot train with Rekognition: {reason}")
    return get_trainer("rekognition", config=config)


def register_export_and_train(commands) -> None:
    """``export-and-train [OUT] [--backend --epochs --yes --prefer --seed --test-fraction --cap --machine
    --trusted-only --jobs --user --json]``."""
    one = add_command(
        commands, "export-and-train", cmd_export_and_train,
        help="export the curated dataset and train a supervised model on it, in one step",
        description="Export the curated, balanced spectrogram dataset (as `export` does) and train on that "
        "export: with Rekognition Custom Labels when REKOGNITION_BUCKET and AWS credentials are configured "
        "(after accepting its cost), else the local CNN (as `train-supervised` does).",
    )  # fmt: skip
    one.add_argument("out_dir", metavar="OUT", nargs="?", help="folder to write (default: a new DATA_DIR/exports/…)")
    one.add_argument("--backend", choices=["auto", "local", "rekognition"], default="auto",
                     help="auto (default): Rekognition when configured, else local")  # fmt: skip
    one.add_argument("--epochs", type=int, default=None, help="local CNN epochs, exactly (default: its own)")
    one.add_argument("--yes", action="store_true", help="with Rekognition: accept the cost of training")
    add_curation_options(one)
    one.add_argument("--trusted-only", action="store_true", help="only trusted labels (see `export --help`)")
    add_machine(one)
    add_jobs(one)
    add_who(one, "who exports and trains (recorded)")
    add_json(one, "print the export and the job as JSON")


def cmd_rekognition(args: argparse.Namespace) -> int:
    """``train``, ``status``, ``evaluate`` or ``stop`` a Rekognition Custom Labels job."""
    trainer = _rekognition(args)
    if args.action == "train":
        return _reko_train(trainer, args)
    if args.action == "status":
        return _reko_status(trainer, args)
    if args.job is None:
        raise BadInputError(Reason.INVALID_PARAMETER, f"rekognition {args.action} needs a JOB id")
    if args.action == "evaluate":
        return _reko_evaluate(trainer, args)
    print_job(trainer.stop(args.job, actor=acting_user(args)), args.json)
    return 0


def _rekognition(args: argparse.Namespace):
    """A Rekognition trainer configured from the environment and the command-line overrides."""
    from core.supervised.cloud.config import CloudConfig
    from core.supervised.rekognition import RekognitionTrainer

    config = CloudConfig.from_env().with_overrides(**{option: getattr(args, option) for option in CLOUD_SETTINGS})
    return RekognitionTrainer(config)


def _reko_train(trainer, args: argparse.Namespace) -> int:
    """Upload the export and start training (waiting with ``--wait``); exit 1 if it failed."""
    from core.supervised.cloud.config import unavailable_reason
    from core.supervised.jobs import job_status

    reason = unavailable_reason(trainer.config)
    if reason:
        raise BadInputError(Reason.INVALID_PARAMETER, f"cannot train with Rekognition: {reason}")
    if not _confirmed(trainer.config.training_cost_notice(), args.yes, "Start training?"):
        return 1
    update, close = progress_bar("upload")
    try:
        job_id = trainer.train(args.export, user=args.user, progress=update, confirm_cost=True, actor=acting_user(args))
    finally:
        close()
    status = trainer.wait(job_id, on_poll=lambda s: print(f"  {s.status}", file=sys.stderr)) if args.wait \
        else job_status(job_id)  # fmt: skip
    print_job(status, args.json)
    return 0 if status.status != JobState.FAILED else 1


def _reko_status(trainer, args: argparse.Namespace) -> int:
    """One job (refreshed, or waited for), or every recent Rekognition job."""
    from core.supervised.jobs import recent_jobs

    if args.job is not None:
        print_job(trainer.wait(args.job) if args.wait else trainer.refresh(args.job), args.json)
        return 0
    jobs = recent_jobs(backend="rekognition")
    if args.json:
        print_json([{"job_id": j.job_id, "status": j.status, "message": j.message} for j in jobs])
        return 0
    for job in jobs:
        print_job(trainer.refresh(job.job_id) if job.status == JobState.TRAINING else job, False)
    if not jobs:
        print("no Rekognition jobs yet: `python -m core rekognition train`")
    return 0


def _reko_evaluate(trainer, args: argparse.Namespace) -> int:
    """Start the model (once its cost is accepted), predict the test images, stop it; exit 1 if refused."""
    from core.supervised.jobs import job_status

    if not _confirmed(trainer.config.cost_notice(), args.yes, "Start the model?"):
        return 1
    update, close = progress_bar("test images")
    try:
        trainer.evaluate(args.job, confirm_cost=True, progress=update, actor=acting_user(args))
    finally:
        close()
    print_job(job_status(args.job), args.json)
    return 0


def _confirmed(notice: str, yes: bool, question: str) -> bool:
    """Whether the user accepts the cost: ``--yes``, or a yes at the prompt (never without a terminal)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        print(f"{notice}\nNot started: add --yes to accept the cost.", file=sys.stderr)
        return False
    return input(f"{notice}\n{question} [y/N] ").strip().lower() in ("y", "yes")


def register_rekognition(commands) -> None:
    """``rekognition {train,status,evaluate,stop} [JOB] [--export --wait --yes --bucket ... --user --json]``."""
    reko = add_command(
        commands, "rekognition", cmd_rekognition,
        help="train and evaluate with Amazon Rekognition Custom Labels",
        description="train: upload an export to S3 and start training; status: follow jobs; evaluate: start the "
        "model (after confirming its cost), predict the test images, stop it; stop: stop a job's model. "
        "Settings come from REKOGNITION_BUCKET, _PREFIX, _PROJECT, _REGION, _PROFILE; credentials from "
        "boto3's standard chain.",
    )  # fmt: skip
    reko.add_argument("action", choices=["train", "status", "evaluate", "stop"])
    reko.add_argument("job", nargs="?", type=int, help="job id (status, evaluate, stop)")
    reko.add_argument("--export", metavar="DIR", help="with train: export folder (default: the newest)")
    reko.add_argument("--wait", action="store_true", help="with train/status: poll until training ends")
    reko.add_argument(
        "--yes", action="store_true", help="with train or evaluate: accept the cost of training or of running the model"
    )
    for option in CLOUD_SETTINGS:
        reko.add_argument(f"--{option}", help=f"override REKOGNITION_{option.upper()}")
    add_who(reko, "who trains (recorded)")
    add_json(reko, "print the job as JSON")
