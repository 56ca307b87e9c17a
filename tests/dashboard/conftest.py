"""Fixtures shared by the browser tests: each module provides ``browser`` (Chromium beside its own app server)."""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import fresh_page


@pytest.fixture
def page(browser):
    """A fresh browser context (so a fresh Streamlit session) per test."""
    with fresh_page(browser) as page:
        yield page
