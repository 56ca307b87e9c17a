"""The one list of dashboard pages; ``streamlit_app.py`` builds the navigation from it.

Each page is a script under ``dashboard/pages`` whose ``render()`` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.access import Action, Actor

PAGES_DIR = Path(__file__).with_name("pages")


@dataclass(frozen=True)
class PageSpec:
    title: str
    url_path: str
    icon: str
    script: str  # file name under dashboard/pages
    needs: Action | None = None  # listed only for roles that may do this (the page checks it again)

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.script


PAGES: tuple[PageSpec, ...] = (
    PageSpec("Overview", "overview", ":material/dashboard:", "overview.py"),
    PageSpec("Triage", "triage", ":material/fact_check:", "triage.py"),
    PageSpec("Review", "review", ":material/gavel:", "review.py", needs=Action.ADJUDICATE),
    PageSpec("Explore", "explore", ":material/graphic_eq:", "explore.py"),
    PageSpec("Thresholds", "thresholds", ":material/tune:", "thresholds.py"),
    PageSpec("Supervised training", "supervised", ":material/model_training:", "supervised.py"),
    PageSpec("Compare models", "compare", ":material/compare:", "compare.py"),
    PageSpec("Data", "data", ":material/upload_file:", "data.py"),
    PageSpec("Agreement", "agreement", ":material/handshake:", "agreement.py", needs=Action.VIEW_AUDIT),
    PageSpec("Audit", "audit", ":material/history:", "audit.py", needs=Action.VIEW_AUDIT),
    PageSpec("Users", "users", ":material/group:", "users.py", needs=Action.MANAGE_USERS),
)


def pages_for(actor: Actor) -> list[PageSpec]:
    """The pages ``actor``'s role may open, in menu order."""
    return [page for page in PAGES if page.needs is None or actor.may(page.needs)]


def page_script(url_path: str) -> str:
    """The script of the page at ``url_path`` as ``st.page_link`` and ``st.switch_page`` name it (relative to
    ``streamlit_app.py``: ``dashboard/pages/compare.py``)."""
    spec = next(page for page in PAGES if page.url_path == url_path)
    return f"{PAGES_DIR.parent.name}/{PAGES_DIR.name}/{spec.script}"
