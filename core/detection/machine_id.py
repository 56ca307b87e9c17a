"""Machine-ID classification (the idea behind the DCASE 2020-2022 winners, e.g. STgram-MFN), kept tiny.

A small Keras network learns, from the normal clips of every machine of one type, which machine
a log-mel patch (one feature vector: ``frames`` consecutive columns, ``n_mels`` bands each, dB)
comes from.  A clip's anomaly score is how unlikely its own machine is: the negative log of the
probability the network gives the clip's own machine, per patch, pooled over the clip
(``pooling``: mean, max or topN).  A fault makes a machine sound unlike itself, so the network
stops recognising it.  Needs at least one other machine of the same type (``others`` in :meth:`fit`).

For cross-validation, :meth:`MachineIDDetector.fit_folds` trains one classifier per fold in a single Keras model
(one weight slice per fold of three batched layers, each fold's held-out clips weighing 0 in its loss): the same
networks, one fit instead of one per fold, whose fixed cost (Keras' per fit and per epoch, not the arithmetic) was
most of what the automatic choice cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from core.detection.base import Detector, Explanation, stack_clips
from core.detection.keras_backend import keras
from core.detection.pooling import check_pooling, pool_clips
from core.errors import BadInputError, NotFittedError, Reason

MODEL_FILE = "model.keras"
STATE_FILE = "state.npz"


def build_classifier(input_dims: int, n_machines: int, hidden: int) -> keras.Model:
    """Dense ``input_dims -> hidden -> hidden -> n_machines`` (ReLU; linear output: the logits)."""
    inputs = keras.Input(shape=(input_dims,))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    outputs = keras.layers.Dense(n_machines, activation=None)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="machine_id")


def build_fold_classifiers(input_dims: int, n_machines: int, hidden: int, means: np.ndarray,
                           scales: np.ndarray) -> keras.Model:  # fmt: skip
    """One standardise -> :func:`build_classifier` network per fold (``means``/``scales`` ``(n_folds, input_dims)``),
    side by side on one input, as three batched ``EinsumDense`` layers (one weight slice per fold, initialised as
    ``Dense`` initialises its kernel, so the graph Keras traces is the same size for any number of folds):
    logits ``(n, n_folds, n_machines)``."""
    n_folds = len(means)

    def layer(equation: str, n_in: int, n_out: int, activation: str | None) -> keras.layers.Layer:
        limit = float(np.sqrt(6.0 / (n_in + n_out)))  # Glorot uniform over each fold's slice
        return keras.layers.EinsumDense(equation, output_shape=(n_folds, n_out), bias_axes="fo",
                                        activation=activation, kernel_initializer=keras.initializers.RandomUniform(
                                            -limit, limit))  # fmt: skip

    inputs = keras.Input(shape=(input_dims,))
    x = (keras.ops.expand_dims(inputs, 1) - means.astype(np.float32)) / scales.astype(np.float32)
    x = layer("bfi,fio->bfo", input_dims, hidden, "relu")(x)
    x = layer("bfi,fio->bfo", hidden, hidden, "relu")(x)
    return keras.Model(inputs=inputs, outputs=layer("bfi,fio->bfo", hidden, n_machines, None)(x),
                       name="machine_id_folds")  # fmt: skip


def _fold_loss(target, logits):
    """Per vector, the sum over folds of its class-balancing weight times the cross-entropy of its machine
    (``target`` ``(n, n_folds, 2)``: machine index, weight; weight 0 where the vector's clip is held out)."""
    labels = keras.ops.cast(target[..., 0], "int32")
    entropy = keras.ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return keras.ops.sum(entropy * target[..., 1], axis=-1)


def _other_groups(others: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
    """The other machines' clip lists that hold clips; raises :class:`BadInputError` when none does."""
    groups = [list(g) for g in others if len(g)]
    if not groups:
        raise BadInputError(Reason.INVALID_PARAMETER, "machine_id needs the normal clips of at least one "
                            "other machine of the same type")  # fmt: skip
    return groups


def _surprise_of(logits: np.ndarray) -> np.ndarray:
    """``-log p(own machine)`` per row of ``logits`` ``(n, n_machines)`` (own machine first), float64 (nats)."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))) - logits[:, 0]


class MachineIDDetector(Detector):
    """Negative log-probability that a clip's patches come from its own machine, among its type's machines.

    Parameters (keyword-only)
    -------------------------
    hidden : int
        Units of each hidden layer (default 64).
    epochs, batch_size, learning_rate, seed : training settings (defaults 20, 256, 1e-3, 0).
    pooling : str
        ``"mean"`` (default), ``"max"`` or ``"topN"``.
    max_vectors : int
        Most feature vectors per machine used for training (evenly strided; default 5,000).

    Attributes
    ----------
    model_ : keras.Model
        The classifier; output 0 is the clip's own machine.
    mean_, scale_ : np.ndarray, float32 ``(n_mels * frames,)``
        Standardisation of the feature vectors (dB).
    n_machines_ : int
        The machines it tells apart, its own included.
    decision_scores_ : np.ndarray, float64 ``(n_clips,)``
        The training clips' scores (nats; in-sample).
    fold_model_ : keras.Model
        After :meth:`fit_folds` only: one classifier per cross-validation fold, logits ``(n, n_folds, n_machines)``
        (standardisation inside); score with :meth:`fold_decision_function`.
    fold_means_, fold_scales_ : np.ndarray, float32 ``(n_folds, n_mels * frames)``
        After :meth:`fit_folds` only: each fold's standardisation (dB).
    """

    name = "machine_id"
    description = "tiny Keras machine-ID classifier over the type's machines; score = -log p(own machine)"

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"hidden": 64, "epochs": 20, "batch_size": 256, "learning_rate": 1e-3, "seed": 0,
                "pooling": "mean", "max_vectors": 5_000}  # fmt: skip

    def _vectors(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        x, _ = stack_clips(clips, self.feature_params.dims)
        stride = max(1, int(np.ceil(len(x) / int(self.params["max_vectors"]))))
        return x[::stride]

    def fit(self, clips: Sequence[np.ndarray], progress=None, *, others: Sequence[Sequence[np.ndarray]] = ()) -> Self:
        """Learn to tell ``clips`` (this machine's normal clips) from each group in ``others`` (the normal
        clips of each other machine of the same type); ``progress(epoch, epochs)`` after each epoch."""
        p = self.params
        check_pooling(p["pooling"])
        groups = [list(clips)] + _other_groups(others)
        parts = [self._vectors(g) for g in groups]
        x = np.concatenate(parts)
        y = np.concatenate([np.full(len(part), i) for i, part in enumerate(parts)])
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-3
        self.n_machines_ = len(groups)
        keras.utils.set_random_seed(int(p["seed"]))
        self.model_ = build_classifier(x.shape[1], self.n_machines_, int(p["hidden"]))
        self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda e, _: progress(e + 1, p["epochs"]))]
        weights = (len(y) / (self.n_machines_ * np.bincount(y)))[y]  # each machine counts the same
        self.model_.fit((x - self.mean_) / self.scale_, y, sample_weight=weights, epochs=int(p["epochs"]),
                        batch_size=int(p["batch_size"]), shuffle=True, verbose=0,
                        callbacks=callbacks if progress else [])  # fmt: skip
        self.decision_scores_ = self.decision_function(clips)
        return self

    def fit_folds(self, clips: Sequence[np.ndarray], folds: Sequence[np.ndarray], *,
                  others: Sequence[Sequence[np.ndarray]] = ()) -> Self:  # fmt: skip
        """Cross-validation only: for each fold (indices into ``clips``), the classifier :meth:`fit` would train on
        the ``clips`` outside it and ``others``, all trained at once (:func:`build_fold_classifiers`); each fold
        keeps its own standardisation and class balance, and its held-out clips weigh 0 in its loss.  This
        machine's vectors are strided to at most ``max_vectors`` over all ``clips`` (so a fold learns from about
        ``(n - held) / n`` of that).  Sets ``fold_model_``, ``fold_means_``, ``fold_scales_`` and ``n_machines_``; no
        ``model_``."""
        p = self.params
        check_pooling(p["pooling"])
        groups = _other_groups(others)
        own, _ = stack_clips(clips, self.feature_params.dims)
        stride = max(1, int(np.ceil(len(own) / int(p["max_vectors"]))))
        clip_of = np.repeat(np.arange(len(clips)), [len(c) for c in clips])[::stride]
        parts = [own[::stride]] + [self._vectors(g) for g in groups]
        x = np.concatenate(parts)
        y = np.concatenate([np.full(len(part), i) for i, part in enumerate(parts)])
        self.n_machines_ = len(parts)
        target = np.zeros((len(x), len(folds), 2), dtype=np.float32)
        target[..., 0] = y[:, None]
        means, scales = [], []
        for f, fold in enumerate(folds):
            learn = np.r_[~np.isin(clip_of, fold), np.ones(len(y) - len(clip_of), bool)]
            counts = np.bincount(y[learn], minlength=self.n_machines_)
            target[learn, f, 1] = (learn.sum() / (self.n_machines_ * counts))[y[learn]]
            means.append(x[learn].mean(axis=0))
            scales.append(x[learn].std(axis=0) + 1e-3)
        self.fold_means_, self.fold_scales_ = np.array(means, np.float32), np.array(scales, np.float32)
        keras.utils.set_random_seed(int(p["seed"]))
        self.fold_model_ = build_fold_classifiers(x.shape[1], self.n_machines_, int(p["hidden"]), self.fold_means_,
                                                  self.fold_scales_)  # fmt: skip
        self.fold_model_.compile(optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]), loss=_fold_loss)
        self.fold_model_.fit(x, target, epochs=int(p["epochs"]), batch_size=int(p["batch_size"]), shuffle=True,
                             verbose=0)  # fmt: skip
        return self

    def fold_decision_function(self, fold: int, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled ``-log p(own machine)`` per clip by fold ``fold``'s classifier (:meth:`fit_folds`), float64
        ``(n_clips,)`` (nats)."""
        if not hasattr(self, "fold_model_"):
            raise NotFittedError(f"the {self.name} detector has no fold classifiers: call fit_folds first")
        x, offsets = stack_clips(clips, self.feature_params.dims)
        return pool_clips(_surprise_of(self._fold_logits(x, int(fold))), offsets, self.params["pooling"])

    def _fold_logits(self, x: np.ndarray, fold: int) -> np.ndarray:
        """Fold ``fold``'s logits ``(n, n_machines)`` for vectors ``x`` ``(n, dims)``, from its slice of the weights
        alone (float32; standardise, then the three layers, ReLU on the hidden two), without Keras' predict set-up
        or the other folds' arithmetic."""
        z = (x - self.fold_means_[fold]) / self.fold_scales_[fold]
        dense = [layer for layer in self.fold_model_.layers if isinstance(layer, keras.layers.EinsumDense)]
        for index, layer in enumerate(dense):
            kernel, bias = (keras.ops.convert_to_numpy(w)[fold] for w in (layer.kernel, layer.bias))
            z = z @ kernel + bias
            if index < len(dense) - 1:
                z = np.maximum(z, 0.0)
        return z

    def _surprise(self, x: np.ndarray) -> np.ndarray:
        """``-log p(own machine)`` per vector ``(n,)`` (nats), from the logits in float64 so that confident
        vectors do not all round to 0."""
        return _surprise_of(self.model_.predict((x - self.mean_) / self.scale_, batch_size=4096, verbose=0))

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Pooled ``-log p(own machine)`` per clip, float64 ``(n_clips,)`` (nats)."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        x, offsets = stack_clips(clips, self.feature_params.dims)
        return pool_clips(self._surprise(x), offsets, self.params["pooling"])

    def explain(self, features: np.ndarray) -> Explanation:
        """Each vector's surprise spread over the bands in proportion to its squared standardised level."""
        self._check_fitted()
        x, _ = stack_clips([features], self.feature_params.dims)
        n_mels, frames = self.feature_params.n_mels, self.feature_params.frames
        z = np.square((x - self.mean_) / self.scale_).reshape(len(x), frames, n_mels).mean(axis=1)
        share = z / np.maximum(z.sum(axis=1, keepdims=True), 1e-12)
        return Explanation(error_map=(share * n_mels * self._surprise(x)[:, None]).astype(np.float64))

    def _save_state(self, folder: Path) -> None:
        self.model_.save(folder / MODEL_FILE)
        np.savez(folder / STATE_FILE, mean=self.mean_, scale=self.scale_, n_machines=self.n_machines_)

    def _load_state(self, folder: Path) -> None:
        self.model_ = keras.models.load_model(folder / MODEL_FILE, compile=False)
        with np.load(folder / STATE_FILE) as state:
            self.mean_, self.scale_, self.n_machines_ = state["mean"], state["scale"], int(state["n_machines"])
