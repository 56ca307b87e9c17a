"""A small Keras CNN that classifies spectrogram images as normal or abnormal (supervised).

The local stand-in for Rekognition Custom Labels: it learns from the exported images
of confirmed normal and abnormal clips.  Images (:mod:`core.signal.spectrogram_image`) are
resized to ``input_height x input_width``, scaled to [0, 1], standardised with the
training images' pixel mean and variance, and fed to three
Conv-ReLU-MaxPool blocks (16, 32, 64 filters), global average pooling, dropout and
one sigmoid unit.  A clip's score is the predicted probability of *abnormal*,
in [0, 1]; 0.5 is the natural threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from PIL import Image

from core.detection.base import Detector, Explanation
from core.detection.keras_backend import keras
from core.errors import BadInputError, Reason
from core.signal.features import FeatureParams
from core.signal.spectrogram_image import IMAGE_FEATURES, image_from_features

MODEL_FILE = "model.keras"


def build_cnn(
    height: int, width: int, normalization: keras.layers.Layer, filters: Sequence[int] = (16, 32, 64),
    dropout: float = 0.3,
) -> keras.Model:  # fmt: skip
    """Binary image classifier: ``(height, width, 1)`` in [0, 1] -> P(abnormal).

    ``normalization`` standardises the pixels with the training images' mean and variance
    (without it the small network barely learns: test AUC ~0.8 against ~0.97 on the demo plant).
    """
    inputs = keras.Input(shape=(height, width, 1))
    x = normalization(inputs)
    for n in filters:
        x = keras.layers.Conv2D(n, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="spectrogram_cnn")


class SpectrogramCNN(Detector):
    name = "spectrogram_cnn"
    description = "Supervised CNN on spectrogram images of curated clips; score = P(abnormal)"

    def __init__(self, feature_params: FeatureParams = IMAGE_FEATURES, **params: Any):
        if feature_params.frames != 1:
            raise BadInputError(Reason.INVALID_PARAMETER, "the spectrogram CNN reads one log-mel column per vector")
        super().__init__(feature_params, **params)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return {"epochs": 60, "min_steps": 800, "batch_size": 8, "learning_rate": 1e-3, "input_height": 64,
                "input_width": 128, "seed": 0}  # fmt: skip

    def epochs_for(self, n_images: int) -> int:
        """Epochs to run on ``n_images``: ``epochs``, raised until ``min_steps`` gradient steps are taken.

        A curated dataset is often a few dozen images; 60 epochs of them are too few steps
        for the network to learn (test AUC ~0.64 on a 22-per-class demo export, ~0.94 with
        ~800 steps), while large datasets keep the plain epoch count.
        """
        steps_per_epoch = max(1, math.ceil(n_images / int(self.params["batch_size"])))
        return max(int(self.params["epochs"]), math.ceil(int(self.params["min_steps"]) / steps_per_epoch))

    def schedule_for(self, n_images: int) -> tuple[int, int]:
        """``(epochs, repeats)``: the :meth:`epochs_for` passes over ``n_images`` run as ``epochs`` Keras epochs,
        each over the images repeated ``repeats`` times (at least as many gradient steps).  Keras spends about
        50 ms per epoch whatever its size, which made most of the time of 200 four-step epochs (16.6 s on 32
        images; 6.5 s as 50 epochs of the images repeated 4 times); repeating keeps the epochs at most ``epochs``."""
        passes = self.epochs_for(n_images)
        repeats = max(1, math.ceil(passes / int(self.params["epochs"])))
        return math.ceil(passes / repeats), repeats

    def _inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 images of any size -> float32 ``(n, input_height, input_width, 1)`` in [0, 1]."""
        size = (int(self.params["input_width"]), int(self.params["input_height"]))
        resized = [np.asarray(Image.fromarray(np.asarray(i, np.uint8)).resize(size, Image.BILINEAR)) for i in images]
        return (np.stack(resized).astype(np.float32) / 255.0)[..., None]

    def fit(self, clips: Sequence[np.ndarray], y: Sequence[int] | None = None, progress=None) -> Self:
        """Learn from per-column log-mel features of labelled clips; ``y`` is 1 for abnormal, 0 for normal."""
        return self.fit_images([image_from_features(c) for c in clips], y, progress=progress)

    def fit_images(self, images: Sequence[np.ndarray], y: Sequence[int] | None, progress=None) -> Self:
        """Learn from spectrogram images (uint8, any size) and labels ``y`` (1 = abnormal)."""
        if y is None:
            raise BadInputError(Reason.INVALID_PARAMETER, "the spectrogram CNN is supervised: it needs labels")
        labels = np.asarray(y, dtype=np.float32)
        if len(images) != len(labels) or set(np.unique(labels)) != {0.0, 1.0}:
            raise BadInputError(
                Reason.INVALID_PARAMETER, "need one label per image, and images of both classes (0 and 1)"
            )
        p = self.params
        keras.utils.set_random_seed(int(p["seed"]))
        x = self._inputs(images)
        normalization = keras.layers.Normalization(axis=None)
        normalization.adapt(x)
        self.model_ = build_cnn(int(p["input_height"]), int(p["input_width"]), normalization)
        self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate=float(p["learning_rate"])),
                            loss="binary_crossentropy", metrics=["accuracy"])  # fmt: skip
        epochs, repeats = self.schedule_for(len(images))
        callbacks = []
        if progress:
            callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, _: progress(e + 1, epochs)))
        history = self.model_.fit(np.repeat(x, repeats, axis=0), np.repeat(labels, repeats), epochs=epochs,
                                  batch_size=int(p["batch_size"]), shuffle=True, callbacks=callbacks,
                                  verbose=0)  # fmt: skip
        self.history_ = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        self.decision_scores_ = self.predict_images(images)
        return self

    def predict_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(abnormal) per image, float64 ``(n_images,)`` in [0, 1]."""
        if not hasattr(self, "model_"):
            self._check_fitted()
        return self.model_.predict(self._inputs(images), verbose=0, batch_size=64)[:, 0].astype(np.float64)

    def decision_function(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict_images([image_from_features(c) for c in clips])

    def explain(self, features: np.ndarray) -> Explanation:
        """Saliency: how strongly each time column and mel band moves P(abnormal) (input gradient magnitude)."""
        return self.score_and_explain([features])[1][0]

    def score_and_explain(self, clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Explanation]]:
        import tensorflow as tf

        if not hasattr(self, "model_"):
            self._check_fitted()
        x = tf.convert_to_tensor(self._inputs([image_from_features(c) for c in clips]))
        with tf.GradientTape() as tape:
            tape.watch(x)
            probabilities = self.model_(x, training=False)
        saliency = tf.abs(tape.gradient(probabilities, x)).numpy()[..., 0]  # (n, height, width), top = high band
        explanations = []
        for features, grid in zip(clips, saliency, strict=True):
            n_columns, n_mels = features.shape
            # bilinear, as the input was resized: the default (bicubic) overshoots below zero, and a saliency
            # magnitude is never negative
            grid_image = Image.fromarray(grid.astype(np.float32), mode="F")
            back = np.asarray(grid_image.resize((n_columns, n_mels), Image.BILINEAR))
            explanations.append(Explanation(error_map=np.ascontiguousarray(back[::-1].T, dtype=np.float64)))
        return probabilities.numpy()[:, 0].astype(np.float64), explanations

    def _save_state(self, folder: Path) -> None:
        self.model_.save(folder / MODEL_FILE)

    def _load_state(self, folder: Path) -> None:
        self.model_ = keras.models.load_model(folder / MODEL_FILE, compile=False)
