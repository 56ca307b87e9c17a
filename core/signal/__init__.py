"""Sound in, numbers out: reading audio, log-mel features, spectrogram images and display helpers.

Pure: nothing here touches the database, the dashboard, the environment or TensorFlow.
"""
