"""Streamlit's own limits, set from the product's settings so that there is one number in one place."""

from __future__ import annotations

import math

from streamlit import config

from core.settings import settings


def apply_upload_limit() -> int:
    """Set Streamlit's ``server.maxUploadSize`` (whole MB) to ``MAX_UPLOAD_MB``, rounded up, so the server
    refuses a larger upload while it streams in, before holding it; ``core.workflows.uploads`` then applies
    the exact limit.  Returns the value set."""
    megabytes = max(1, math.ceil(settings().max_upload_bytes / 1e6))
    if config.get_option("server.maxUploadSize") != megabytes:
        config.set_option("server.maxUploadSize", megabytes)
    return megabytes
