"""Colours and labels shared by every page, so normal/abnormal look the same everywhere."""

LABEL_COLOURS = {"normal": "#2a9d8f", "abnormal": "#e63946", "unknown": "#8d99ae", "unsure": "#f4a261"}
LABEL_ORDER = ["normal", "abnormal", "unknown"]
APP_TITLE = "Machine Sound Triage"
