"""Entry point: ``streamlit run streamlit_app.py``.  Pages are listed in ``dashboard/registry.py``.

Streamlit runs this file as ``__main__``; everything it does is under the ``__name__`` guard, as in the pages,
because worker processes (``core.parallel``, started from a page) re-import the main script as
``__mp_main__``: unguarded, each worker would run the app, and a first start would wait on itself.
"""

import logging

import streamlit as st

from core.errors import MachineSoundError, environment_problem
from dashboard.components.auth import sign_in
from dashboard.components.first_start import ensure_demo_data
from dashboard.components.limits import apply_upload_limit
from dashboard.components.reruns import skip_keras_reset_after_runs
from dashboard.components.text import md_literal
from dashboard.registry import PAGES, pages_for
from dashboard.theme import APP_TITLE


def _signed_in_actor():
    """Page set-up and sign-in; stops the run (with what to do) when nobody is signed in."""
    st.set_page_config(page_title=APP_TITLE, page_icon=":material/graphic_eq:", layout="wide")
    apply_upload_limit()  # Streamlit's server refuses uploads over MAX_UPLOAD_MB before holding them
    skip_keras_reset_after_runs()  # a full gc.collect after every rerun once Keras is loaded: 0.25 s per key
    try:
        actor = sign_in()  # with AUTH=local or oidc, nothing of the plant is drawn before this returns someone
    except MachineSoundError as exc:
        st.error(f"{md_literal(exc.detail)}.")
        st.stop()
    except Exception as exc:  # the database refused before anyone signed in: say so without SQL
        logging.getLogger(__name__).exception("sign-in failed")
        problem = md_literal(environment_problem(exc) or type(exc).__name__)  # may name a file
        st.error(f"Sign-in is unavailable ({problem}). Check DATA_DIR / DATABASE_URL and the server log.")
        st.stop()
    if actor is None:  # signed out: no page menu either (not even the previous user's)
        # Each page's address leads to the sign-in wall and keeps its query (a shared /triage?machine=...&clip=...
        # link), so that once signed in the same address opens the page itself (pages are known by their url_path).
        wall = [st.Page(lambda: None, title="Sign in", url_path="sign-in", default=True)]
        wall += [st.Page(lambda: None, title="Sign in", url_path=page.url_path) for page in PAGES]
        st.navigation(wall, position="hidden")
        st.stop()
    return actor


def _prepare_database() -> None:
    """A first start when one is due; stops the run with what to do when the database cannot be prepared."""
    try:
        ensure_demo_data()
    except Exception as exc:  # shown to the user with what to do, never as a raw traceback
        logging.getLogger(__name__).exception("first start failed")
        problem = md_literal(environment_problem(exc) or type(exc).__name__)
        st.error(f"Could not prepare the database ({problem}). Check DATA_DIR / DATABASE_URL and that the disk is "
                 "writable.")  # fmt: skip
        st.stop()


def _run_page(actor) -> None:
    """The pages this user may open, and the chosen one, with any failure said in words."""
    navigation = st.navigation(
        [st.Page(page.path, title=page.title, url_path=page.url_path, icon=page.icon) for page in pages_for(actor)]
    )
    try:
        navigation.run()
    except MachineSoundError as exc:
        st.error(f"{md_literal(exc.detail)}. Nothing was changed; check what is named here and try again.")
    except Exception as exc:  # never a raw traceback in front of a pilot: say what failed and what to do
        logging.getLogger(__name__).exception("page failed")
        problem = md_literal(environment_problem(exc) or type(exc).__name__)  # the log has the details, never SQL
        st.error(
            f"This page hit an unexpected problem ({problem}). Your verdicts are saved; reload the page, and if it "
            "persists, report it with the server log."
        )


def main() -> None:
    actor = _signed_in_actor()
    _prepare_database()
    _run_page(actor)


if __name__ == "__main__":
    main()
