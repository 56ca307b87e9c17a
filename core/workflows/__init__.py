"""The product's work over the database: ingest, scoring, training, triage, the label policy, thresholds,
comparisons, drift reports, exports, continuous watching and notifications.

The dashboard and the CLI call these functions; they call the pure packages and ``db``.
"""
