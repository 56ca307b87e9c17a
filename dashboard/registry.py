"""The one list of dashboard pages; ``streamlit_app.py`` builds the navigation from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dashboard.pages import overview


@dataclass(frozen=True)
class PageSpec:
    title: str
    url_path: str
    icon: str
    render: Callable[[], None]


PAGES: tuple[PageSpec, ...] = (PageSpec("Overview", "overview", ":material/dashboard:", overview.render),)
