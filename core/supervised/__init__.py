"""Supervised-training backends behind one interface (:class:`core.supervised.base.Trainer`).

``local`` (a Keras CNN on this machine) is the offline default; ``rekognition``
(Amazon Rekognition Custom Labels) needs an AWS account and a bucket.  Each backend is
imported only when used, so listing them loads neither TensorFlow nor boto3.
"""

from __future__ import annotations

from importlib import import_module

from core.errors import BadInputError, Reason
from core.supervised.base import Trainer

_REGISTRY = {
    "local": "core.supervised.local:LocalTrainer",
    "rekognition": "core.supervised.rekognition:RekognitionTrainer",
}


def trainer_names() -> list[str]:
    return list(_REGISTRY)


def get_trainer(name: str, **options) -> Trainer:
    """A trainer of backend ``name`` built with ``options`` (see each backend's constructor)."""
    try:
        module, cls = _REGISTRY[name].split(":")
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise BadInputError(Reason.INVALID_PARAMETER, f"unknown trainer {name!r}; known: {known}") from None
    return getattr(import_module(module), cls)(**options)
