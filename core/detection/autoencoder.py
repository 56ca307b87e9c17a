"""The seed's dense autoencoder (Keras), trained to reconstruct normal log-mel frame vectors.

Input ``n_mels * frames``; Dense 64-64-8-64-64 with ReLU, linear output; MSE loss,
Adam at 1e-3, batch 512, 30 epochs; 10% of the vectors held out for early stopping.
A vector's error is its mean squared reconstruction error (dB²); a clip's score pools its vectors'
errors (``pooling``: the seed's ``"mean"`` by default, or ``"max"``, ``"topN"``; see :mod:`core.detection.pooling`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from core.detection.base import Detector, Explanation, stack_clips
from core.detection.keras_backend import keras
from core.detection.pooling import check_pooling, pool_clips

MODEL_FILE = "model.keras"
PREDICT_BATCH = 16_384  # vectors per forward pass when scoring


def build_autoencoder(input_dims: int, hidden: Sequence[int] = (64, 64, 8, 64, 64)) -> keras.Model:
    """Dense autoencoder ``input_dims -> hidden... -> input_dims`` (ReLU hidden, linear output)."""
    inputs = keras.Input(shape=(input_dims,))
    x = inputs
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(input_dims, activation=None)(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="autoencoder")


class AutoencoderDetector(Detector):
    name = "autoencoder"
    description = "Seed's dense autoencoder on log-mel frames; score = mean reconstruction MSE"

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {
            "hidden": [64, 64, 8, 64, 64],
            "epochs": 30,
            "batch_size": 512,
            "learning_rate": 1e-3,
            "validation_split": 0.1,
            "patience": 5,
            "seed": 0,
            "pooling": "mean",
        }

    def fit(self, clips: Sequence[np.ndarray], progress=None) -> Self:
        """Train on the vectors of normal clips; ``progress(epoch, epochs)`` after each epoch."""
        p = self.params
        check_pooling(p["pooling"])
        x, offsets = stack_clips(clips, self.feature_params.dims)
        keras.utils.set_random_seed(int(p["seed"]))
        x = x[np.random.default_rng(int(p["seed"])).permutation(len(x))]  # held-out vectors from every clip
        self.model_ = build_autoencoder(x.shape[1], p["hidden"])
        self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]), loss="mse")
        callbacks = [keras.callbacks.EarlyStopping(patience=int(p["patience"]), restore_best_weights=True)]
        if progress:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, _: progress(e + 1, p["epochs"])))
        validation = float(p["validation_split"]) if len(x) >= 20 else 0.0
        started = time.perf_counter()
        history = self.model_.fit(
            x, x, epochs=int(p["epochs"]), batch_size=int(p["batch_size"]), shuffle=True,
            validation_split=validation, callbacks=callbacks if validation else callbacks[1:], verbose=0,
        )  # fmt: skip
        self.training_seconds_ = time.perf_counter() - started
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.decision_scores_ = self.decision_function(clips)
        return self

    def _reconstruct(self, chunk: np.ndarray) -> np.ndarray:
        """Forward pass, padded to a power-of-two batch (>= 512) so the traced graph is reused, not rebuilt."""
        n = len(chunk)
        size = max(512, 1 << (n - 1).bit_length())
        if size != n:
            chunk = np.concatenate([chunk, np.zeros((size - n, chunk.shape[1]), chunk.dtype)])
        return self.model_.predict_on_batch(chunk)[:n]

    def _squared_errors(self, x: np.ndarray) -> np.ndarray:
        """Squared reconstruction error per vector and dimension, ``x.shape``."""
        out = np.empty_like(x)
        for start in range(0, len(x), PREDICT_BATCH):
            chunk = x[start : start + PREDICT_BATCH]
            out[start : start + PREDICT_BATCH] = np.square(chunk - self._reconstruct(chunk))
        return out

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "model_"):
            self._check_fitted()
        x, offsets = stack_clips(clips, self.feature_params.dims)
        return pool_clips(self._squared_errors(x).mean(axis=1), offsets, self.params["pooling"])

    def explain(self, features: np.ndarray) -> Explanation:
        return self.score_and_explain([features])[1][0]

    def score_and_explain(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Explanation]]:
        """Scores and explanations from one forward pass: the score pools the error map's per-vector means."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        x, offsets = stack_clips(clips, self.feature_params.dims)
        n_mels, frames = self.feature_params.n_mels, self.feature_params.frames
        maps = self._squared_errors(x).reshape(len(x), frames, n_mels).mean(axis=1)
        scores = pool_clips(maps.mean(axis=1), offsets, self.params["pooling"])
        return scores, [Explanation(error_map=m) for m in np.split(maps, offsets[1:])]

    def _save_state(self, folder: Path) -> None:
        self.model_.save(folder / MODEL_FILE)

    def _load_state(self, folder: Path) -> None:
        self.model_ = keras.models.load_model(folder / MODEL_FILE, compile=False)
