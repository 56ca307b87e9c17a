"""The product's words as types: labels, splits, verdicts, where a label came from and how many people stand
behind it, job and drift states, users' roles; and how long each kind of stored text may be (the one table of
text lengths).

Each is a :class:`~enum.StrEnum` (as :class:`core.errors.Reason` is): its members compare equal
to, and are stored as, their stable string values, so the database, JSON output and the CLI keep
the same words while code names them once.  Pure: imports nothing of the product.
"""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """What a dataset layout says of a clip (MIMII's folders, DCASE's file names)."""

    NORMAL = "normal"
    ABNORMAL = "abnormal"
    UNKNOWN = "unknown"  # the layout says nothing (field snippets, plain folders, DCASE evaluation files)


CLASSES = (Label.NORMAL, Label.ABNORMAL)  # the two labels a detector is graded on; abnormal is positive


class Split(StrEnum):
    """Which side of the train/test split a clip is on."""

    TRAIN = "train"
    TEST = "test"
    NONE = "none"  # neither: unlabelled clips (field snippets)


class SplitSource(StrEnum):
    """Who decided a clip's split."""

    LAYOUT = "layout"  # the dataset layout's hint (DCASE's train/test folders), or none at all
    ASSIGNED = "assigned"  # core.datasets.splits, where the layout gives no hint


class Verdict(StrEnum):
    """A person's verdict on a clip."""

    NORMAL = "normal"  # rejects a flag
    ABNORMAL = "abnormal"  # confirms a flag
    UNSURE = "unsure"  # no label; goes back for review


class LabelSource(StrEnum):
    """Where a clip's label comes from (see :mod:`core.workflows.labels`)."""

    GROUND_TRUTH = "ground truth"
    VERDICT = "verdict"
    ADJUDICATION = "adjudication"  # an engineer's (or higher) final verdict on a disputed or doubtful clip


class LabelState(StrEnum):
    """Where a clip stands under the label policy (:mod:`core.workflows.labels`)."""

    LABELLED = "labelled"  # normal or abnormal, from ground truth or from the verdicts
    DISPUTED = "disputed"  # annotators say normal and abnormal: no label until settled
    UNSURE = "unsure"  # only "unsure" verdicts and no ground truth
    UNLABELLED = "unlabelled"  # no ground truth and nobody has judged it
    SETTLED = "settled"  # an adjudication gives the label, above every individual verdict


class LabelQuality(StrEnum):
    """How many people stand behind a label (:mod:`core.workflows.labels`)."""

    GROUND_TRUTH = "ground truth"  # the dataset layout says so; no verdict decides it
    SINGLE = "single"  # one annotator's verdict
    DOUBLE = "double"  # two or more annotators' standing verdicts say the same
    ADJUDICATED = "adjudicated"  # an adjudication settled it


class Prefer(StrEnum):
    """Which source wins when a clip has both a pilot verdict and a ground-truth label."""

    VERDICTS = "verdicts"
    GROUND_TRUTH = "ground-truth"


class JobState(StrEnum):
    """The life of a supervised training job (local or in the cloud)."""

    PENDING = "pending"
    UPLOADING = "uploading"
    TRAINING = "training"
    REGISTERING = "registering"
    TRAINED = "trained"  # a cloud model exists and can be evaluated
    EVALUATING = "evaluating"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


FINAL_JOB_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.STOPPED, JobState.INTERRUPTED})


class DriftState(StrEnum):
    """How a machine's recent clips compare with what its active model learned from."""

    STABLE = "stable"
    WATCH = "watch"
    RETRAIN = "retrain suggested"
    NOT_ENOUGH_DATA = "not enough data"


class Engine(StrEnum):
    """Where feature extraction and scoring run (``score`` and ``train``'s ``--engine``)."""

    PROCESS = "process"  # a pool of worker processes on this machine
    RAY = "ray"  # tasks on Ray: a local instance, or an existing cluster (core.workflows.ray_engine)


class Role(StrEnum):
    """A user's role; each role may do everything the roles before it may."""

    ANNOTATOR = "annotator"  # judges clips
    ENGINEER = "engineer"  # also thresholds, training, exports, ingest, detector choice
    MANAGER = "manager"  # also activates models, sees every report
    ADMIN = "admin"  # also users and cloud settings

    @property
    def rank(self) -> int:
        return list(Role).index(self)


# --- How long stored text may be -----------------------------------------------------------------------------------
# The one table of text lengths.  ``db.models`` declares every bounded text column with one of these, and every
# value users or files supply is checked against the same constant (``core.errors.check_text``) before it
# reaches the database: PostgreSQL enforces a column's length, SQLite ignores it, and both must accept (and
# refuse) the same inputs.  Free text without a natural bound (paths, notes, reasons, messages) is stored as
# unbounded text instead.  The other bounded columns hold only the product's own words (the enums above, error
# reasons, layout, detector and channel names), each at most its column's length (tests/db/test_db_models.py).

MACHINE_TYPE_LENGTH = 64  # a machine's type, from a folder name (fan, pump, ...)
MACHINE_ID_LENGTH = 64  # a machine's id within its type, from a folder name (id_00, section_00, ...)
MODEL_SCOPE_LENGTH = 140  # what a model covers: a machine's type/id (at most 64 + 1 + 64), a type, or "*"
PERSON_NAME_LENGTH = 128  # who: a user, an annotator, who set a threshold, trained a model or exported
EMAIL_LENGTH = 320  # a user's e-mail address (RFC 5321's limit)
ANOMALY_TYPE_LENGTH = 64  # a kind of fault the team names (bearing wear, clogging, ...)
THRESHOLD_METHOD_LENGTH = 32  # how a threshold was set (manual, gamma, max_f1, ...)
AUDIT_ACTION_LENGTH = 32  # what an audit event records was done (judge, set threshold, sign in, ...)
DETECTOR_NAME_LENGTH = 64  # a registered detector's name
BACKEND_NAME_LENGTH = 32  # a supervised training backend's name (local, rekognition)
CONTENT_HASH_LENGTH = 64  # a SHA-256 in hexadecimal
REASON_LENGTH = 32  # a core.errors.Reason value (why a file was refused)
STATE_LENGTH = 32  # a JobState value
WORD_LENGTH = 16  # a Label, Verdict, Role, layout, domain, channel or model/notification status
SHORT_WORD_LENGTH = 8  # a Split or SplitSource
