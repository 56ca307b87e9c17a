"""Anomaly detection on features: the detectors, their registry, metrics, thresholds and drift statistics.

Pure: nothing here touches the database, the dashboard or the environment.  TensorFlow loads
only inside the Keras models (``autoencoder``, ``spectrogram_cnn``, ``keras_backend``).
"""
