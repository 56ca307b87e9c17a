"""Signing in, in a real browser: ``streamlit run`` with ``AUTH=local`` (accounts and passwords in the
product's database) and with ``AUTH=oidc`` (Streamlit's ``st.login`` against a local OpenID Connect test
provider, oidc-provider-mock, started by the test), driven by headless Chromium through Playwright.

* The sign-in wall shows nothing of the plant, and a wrong password gets the one generic refusal.
* An annotator judges blind (no ground-truth label, no file name, nobody else's verdicts) and the stored
  verdict carries their user name; they cannot save a threshold.  An engineer saves one in their own name,
  sees what blind review hides (the control: the seeded dispute is there to be hidden), and signs out back
  to the wall.
* The audit log holds the sign-ins, the verdict and the threshold, each under the signed-in user.
* An OpenID Connect user whose ID token says ``roles: annotator`` judges a clip, stored under their e-mail.

Screenshots land in ``test-artifacts/screenshots/auth-*.png``.  Like ``test_browser.py``, the tests skip
without Chromium locally and fail without it in CI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.dashboard.test_browser import (
    ROOT,
    SCREENSHOTS,
    SERVER_START_S,
    SKELETONS,
    _assert_no_exception,
    _full_page_screenshot,
    _healthy,
    _require_chromium,
    _wait_for_app_idle,
    launched_chromium,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MACHINE = "fan/id_00"  # the first machine seed_demo_plant(machines=2) writes: the pickers' default
OTHER_MACHINE = "fan/id_02"
ANNOTATOR, ANNOTATOR_PASSWORD = "Ada Annotator", "ada-secret-pass-1"
ENGINEER, ENGINEER_PASSWORD = "Eng Engineer", "eng-secret-pass-2"
OTHERS = ("Olga Othername", "Otto Otherguy")  # disagree on a clip: it is on the review list (not blind)
OIDC_EMAIL = "pilot.oidc@example.com"
WRONG_CREDENTIALS = "wrong username or password"  # core.workflows.users.WRONG_CREDENTIALS
DB_FILE = "anomaly.db"  # db.session.DB_FILENAME
_DONE: set[str] = set()  # which local flows completed (the audit test reads what they did)


@dataclass(frozen=True)
class App:
    url: str
    data_dir: Path
    log: Path
    shown_clip: int  # the clip the triage queue shows first on MACHINE
    shown_file: str  # its file name (blind review must not show it)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / DB_FILE}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


# --- servers ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """A small plant seeded once (2 fans, Mahalanobis detector, every clip scored), in a subprocess with its
    own DATA_DIR; each server gets a copy of its database (clips and models stay here)."""
    _require_chromium()
    folder = tmp_path_factory.mktemp("auth-seed") / "data"
    env = _server_env(folder)
    seed = (
        "from core.workflows.bootstrap import seed_demo_plant\n"
        "seed_demo_plant(machines=2, normal=12, abnormal=4, detector='mahalanobis')"
    )
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True, timeout=300)
    return folder


def _server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AUTH", "AUTH_ROLE_CLAIM", "BLIND_REVIEW")}
    return env | {"DATA_DIR": str(data_dir), "DEMO_PLANT": "0", "PYTHONPATH": str(ROOT)} | extra


def _copy_database(template: Path, target: Path) -> str:
    target.mkdir(parents=True, exist_ok=True)
    for file in template.glob(f"{DB_FILE}*"):
        shutil.copy2(file, target / file.name)
    return f"sqlite:///{target / DB_FILE}"


def _first_in_queue(url: str) -> tuple[int, str]:
    from core.workflows.triage import triage_queue

    queue = triage_queue(MACHINE, "score", url=url)
    assert queue, f"the seeded plant flags no clip of {MACHINE}"
    return queue[0].clip_id, Path(queue[0].path).name


def _as_shown(name: str) -> str:
    """A name as the page shows it: supplied text keeps an invisible word joiner after "@", so that Streamlit
    never turns an e-mail address into a link (dashboard.components.text.md_literal)."""
    return name.replace("@", "@\u2060")


@contextmanager
def _streamlit(data_dir: Path, env: dict[str, str], *extra_args: str, port: int | None = None,
               host: str = "127.0.0.1") -> Iterator[tuple]:  # fmt: skip
    """``streamlit run`` on a loopback port (default: a free one) until the block ends; yields (url, log), the
    url naming ``host``."""
    port = port or free_port()
    url = f"http://{host}:{port}"
    log = data_dir.parent / f"streamlit-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
               "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", *extra_args]  # fmt: skip
    with log.open("wb") as sink:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(f"http://127.0.0.1:{port}"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy on {url}:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@pytest.fixture(scope="module")
def local_app(seeded_template, tmp_path_factory) -> Iterator[App]:
    """``AUTH=local``: an annotator and an engineer with passwords, and a clip of MACHINE disputed by two other
    annotators (normal against abnormal), so the review list names them to anyone who does not judge blind."""
    from core.workflows.triage import record_verdict, triage_queue
    from core.workflows.users import add_user
    from db.session import dispose_engines

    folder = tmp_path_factory.mktemp("auth-local") / "data"
    url = _copy_database(seeded_template, folder)
    try:
        add_user(ANNOTATOR, "annotator", ANNOTATOR_PASSWORD, url=url)
        add_user(ENGINEER, "engineer", ENGINEER_PASSWORD, url=url)
        queue = triage_queue(MACHINE, "score", url=url)
        assert len(queue) >= 2, f"the seeded plant flags too few clips of {MACHINE} to dispute one: {queue}"
        disputed = queue[-1].clip_id  # the lowest score: the queue still starts with the same clip
        record_verdict(disputed, OTHERS[0], "normal", url=url)
        record_verdict(disputed, OTHERS[1], "abnormal", url=url)
        shown_clip, shown_file = _first_in_queue(url)
    finally:
        dispose_engines()
    with _streamlit(folder, _server_env(folder, AUTH="local")) as (base, log):
        yield App(base, folder, log, shown_clip, shown_file)


@pytest.fixture(scope="module")
def browser(seeded_template):
    with launched_chromium() as chromium:
        yield chromium


# --- driving the app -----------------------------------------------------------------------------------------------


def _settle(page) -> None:
    """The script has finished and every lazily loaded element has arrived (bounded waits)."""
    _wait_for_app_idle(page)
    page.wait_for_function(f"() => !document.querySelector({SKELETONS!r})")
    page.wait_for_load_state("networkidle")
    _wait_for_app_idle(page)


def _heading(page, text: str) -> None:
    page.locator("[data-testid='stMain'] h1", has_text=text).first.wait_for(state="visible")
    _settle(page)


def _text(page) -> str:
    return page.locator("body").inner_text()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _full_page_screenshot(page, SCREENSHOTS / f"auth-{name}.png")


def _field(page, label: str):
    return page.get_by_role("textbox", name=label, exact=True)  # "Password" alone: not its "Show password"


def _open_wall(page, app: App) -> None:
    page.goto(f"{app.url}/", wait_until="domcontentloaded")
    _heading(page, "Sign in")


def _sign_in(page, app: App, name: str, password: str) -> None:
    _open_wall(page, app)
    _field(page, "Username").fill(name)
    _field(page, "Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    _signed_in_as(page, name)


def _signed_in_as(page, name: str) -> None:
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {_as_shown(name)}").wait_for(state="visible")
    _settle(page)


def _go(page, app: App, title: str, heading: str) -> None:
    """Open a page from the sidebar's menu: in-app navigation keeps the session (a reload would not, with
    ``AUTH=local``, whose sign-in lives in the Streamlit session)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    _heading(page, heading)
    _assert_no_exception(page, app, f"page {title!r}")


def _open_triage(page, app: App) -> None:
    _go(page, app, "Triage", "Triage queue")
    page.get_by_role("button", name="Confirm abnormal").wait_for(state="visible")
    _settle(page)
    page.get_by_text(f"left for {MACHINE}").wait_for(state="visible")


def _verdicts(app: App, clip_id: int) -> list[tuple[str, str]]:
    with sqlite3.connect(app.data_dir / DB_FILE, timeout=30) as conn:
        return conn.execute(
            "SELECT annotator, verdict FROM annotations WHERE clip_id = ? AND undoes_id IS NULL ORDER BY id",
            (clip_id,),
        ).fetchall()


def _confirm_abnormal(page, app: App) -> None:
    page.get_by_role("button", name="Confirm abnormal").click()
    page.get_by_text(f"Last saved: #{app.shown_clip}: abnormal").wait_for(state="visible")
    _settle(page)
    _assert_no_exception(page, app, "the triage page after a verdict")


def _blind(page, app: App, who: str) -> None:
    """Nothing that could sway the verdict is on screen (or in the page's HTML)."""
    shown, html = _text(page), page.content()
    assert f"clip #{app.shown_clip}" in shown, f"{who} does not see the first queued clip:\n{shown}"
    assert "Blind review:" in shown
    assert "label:" not in shown, f"{who} sees the clip's ground-truth label:\n{shown}"
    assert app.shown_file not in html, f"{who}'s page holds the clip's file name {app.shown_file}"
    assert "Review list" not in shown, f"{who} sees the review list of disagreements:\n{shown}"
    assert "Verdict history" not in shown, f"{who} sees the clip's verdict history:\n{shown}"
    for other in OTHERS:
        assert other not in html, f"{who}'s page names another annotator, {other!r}"


# --- AUTH=local ----------------------------------------------------------------------------------------------------


def test_sign_in_wall_shows_no_data_and_refuses_a_wrong_password(page, local_app):
    _open_wall(page, local_app)
    assert _field(page, "Username").is_visible()
    assert _field(page, "Password").is_visible()
    assert page.get_by_role("button", name="Sign in").is_visible()

    def nothing_of_the_plant(when: str) -> None:
        shown, html = _text(page), page.content()
        for machine in (MACHINE, OTHER_MACHINE):
            assert machine not in html, f"the sign-in wall ({when}) names machine {machine}:\n{shown}"
        assert "id_0" not in shown
        for what in ("stMetric", "stAudio", "stPlotlyChart", "stDataFrame", "stSidebarNav"):
            assert not page.locator(f"[data-testid='{what}']").count(), f"the sign-in wall ({when}) shows {what}"
        assert "Signed in as" not in shown

    nothing_of_the_plant("before sign-in")
    _shot(page, "wall")

    _field(page, "Username").fill(ANNOTATOR)
    _field(page, "Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    refusal = page.get_by_test_id("stAlertContentError")
    refusal.wait_for(state="visible")
    _settle(page)
    assert refusal.inner_text().strip() == WRONG_CREDENTIALS
    # an unknown name gets the very same words: a refusal never tells whether a name exists
    _field(page, "Username").fill("Nobody Atall")
    _field(page, "Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    _settle(page)
    page.get_by_test_id("stAlertContentError").wait_for(state="visible")
    assert page.get_by_test_id("stAlertContentError").inner_text().strip() == WRONG_CREDENTIALS
    nothing_of_the_plant("after a refusal")
    _shot(page, "wall-refused")


def test_annotator_judges_blind_in_their_own_name_and_cannot_save_a_threshold(page, local_app):
    assert _verdicts(local_app, local_app.shown_clip) == []
    _sign_in(page, local_app, ANNOTATOR, ANNOTATOR_PASSWORD)
    assert page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {ANNOTATOR} (annotator)").is_visible()
    nav = page.get_by_test_id("stSidebarNav").inner_text()
    assert "Audit" not in nav and "Users" not in nav, f"an annotator's menu offers admin pages:\n{nav}"

    _open_triage(page, local_app)
    _assert_no_exception(page, local_app, "the annotator's triage page")
    assert page.get_by_label("Your name", exact=True).count() == 0, "a signed-in annotator is asked for a name"
    _blind(page, local_app, "the annotator")
    _shot(page, "annotator-triage-blind")
    _confirm_abnormal(page, local_app)
    assert _verdicts(local_app, local_app.shown_clip) == [(ANNOTATOR, "abnormal")]

    _go(page, local_app, "Thresholds", "Threshold tuning")
    save = page.get_by_role("button", name="Save threshold")
    save.wait_for(state="visible")
    _settle(page)
    assert save.is_disabled(), "an annotator may press Save threshold"
    _shot(page, "annotator-thresholds")
    _DONE.add("annotator")


def _thresholds(app: App) -> list[tuple[float, str]]:
    with sqlite3.connect(app.data_dir / DB_FILE, timeout=30) as conn:
        return conn.execute("SELECT value, set_by FROM thresholds ORDER BY id").fetchall()


def test_engineer_saves_a_threshold_in_their_own_name_and_signs_out(page, local_app):
    before = _thresholds(local_app)
    _sign_in(page, local_app, ENGINEER, ENGINEER_PASSWORD)
    assert page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {ENGINEER} (engineer)").is_visible()

    # the control for the blind-review checks: an engineer does not judge blind, and sees the seeded dispute
    _open_triage(page, local_app)
    shown = _text(page)
    assert "label:" in shown, f"an engineer does not see the clip's label:\n{shown}"
    assert "Review list: 1 clip where annotators disagree" in shown, shown
    assert "Blind review:" not in shown
    assert local_app.shown_file in page.content(), "an engineer does not see the clip's file name"
    page.get_by_text("Review list: 1 clip where annotators disagree").click()  # open the expander
    page.get_by_text(f"{OTHERS[0]}: normal").wait_for(state="visible")
    assert f"{OTHERS[1]}: abnormal" in _text(page)
    _shot(page, "engineer-triage")

    _go(page, local_app, "Thresholds", "Threshold tuning")
    save = page.get_by_role("button", name="Save threshold")
    save.wait_for(state="visible")
    _settle(page)
    assert save.is_enabled()
    page.get_by_label("Why this threshold?").fill("browser sign-in test")
    page.get_by_label("Why this threshold?").press("Enter")
    _settle(page)
    save.click()
    page.get_by_text(f"saved for {MACHINE}").wait_for(state="visible")
    _settle(page)
    _assert_no_exception(page, local_app, "the thresholds page after saving")
    after = _thresholds(local_app)
    assert len(after) == len(before) + 1, (before, after)
    assert after[-1][1] == ENGINEER
    _shot(page, "engineer-threshold-saved")

    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")
    assert _field(page, "Username").is_visible() and _field(page, "Password").is_visible()
    shown = _text(page)
    assert MACHINE not in shown and "Signed in as" not in shown, f"signed out, the wall still shows:\n{shown}"
    _shot(page, "engineer-signed-out")
    # The engineer's menu may linger after sign-out (the wall's run builds no navigation, so the browser keeps
    # the last one); following it must lead back to the wall only, never to a page.
    nav = page.get_by_test_id("stSidebarNav")
    if nav.count():
        nav.get_by_role("link", name="Triage", exact=True).click()
        _heading(page, "Sign in")
        shown = _text(page)
        assert "Triage queue" not in shown and MACHINE not in page.content(), f"signed out, Triage opens:\n{shown}"
        assert _field(page, "Username").is_visible()
    _DONE.add("engineer")


def test_audit_log_names_the_signed_in_users(local_app):
    from core.access import OPERATOR
    from core.workflows.audit import audit_events
    from db.session import dispose_engines

    if not {"annotator", "engineer"} <= _DONE:
        pytest.skip(f"needs the annotator and engineer flows above to have passed (done: {sorted(_DONE)})")
    try:
        events = audit_events(1000, actor=OPERATOR, url=local_app.db_url)
    finally:
        dispose_engines()
    seen = {(e["action"], e["user"], e["role"]) for e in events}
    assert ("judge", ANNOTATOR, "annotator") in seen, events
    assert ("set threshold", ENGINEER, "engineer") in seen, events
    assert ("sign in", ANNOTATOR, "annotator") in seen, events
    assert ("sign in", ENGINEER, "engineer") in seen, events
    judged = [e for e in events if e["action"] == "judge" and e["user"] == ANNOTATOR]
    assert [e["target"] for e in judged] == [f"clip {local_app.shown_clip}"], judged
    assert not [e for e in events if e["action"] == "sign in" and e["user"] == "Nobody Atall"], "a refusal was logged"


def test_a_shared_triage_link_opens_its_clip_once_signed_in(page, local_app):
    """A link from a notification (``/triage?machine=...&clip=...``) leads through the sign-in wall to its clip."""
    with sqlite3.connect(local_app.data_dir / DB_FILE, timeout=30) as conn:
        (clip_id,) = conn.execute("SELECT clip_id FROM annotations WHERE annotator = ?", (OTHERS[0],)).fetchone()
    assert clip_id != local_app.shown_clip  # not the first in anyone's queue
    query = urllib.parse.urlencode({"machine": MACHINE, "clip": clip_id})
    page.goto(f"{local_app.url}/triage?{query}", wait_until="domcontentloaded")
    _heading(page, "Sign in")
    nothing = page.get_by_test_id("stMain").inner_text()
    assert MACHINE not in nothing and "Triage queue" not in nothing  # the wall, and only the wall
    _field(page, "Username").fill(ANNOTATOR)
    _field(page, "Password").fill(ANNOTATOR_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    _signed_in_as(page, ANNOTATOR)
    _heading(page, "Triage queue")
    page.get_by_text(f"clip #{clip_id}", exact=True).wait_for(state="visible")  # blind: the id alone
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query) == {
        "machine": [MACHINE],
        "clip": [str(clip_id)],
    }
    _assert_no_exception(page, local_app, "a shared link after sign-in")


# --- AUTH=oidc -----------------------------------------------------------------------------------------------------


@pytest.fixture
def oidc_app(seeded_template, tmp_path) -> Iterator[App]:
    """oidc-provider-mock on a free loopback port (its user ``OIDC_EMAIL`` has ``roles: [annotator]`` in the ID
    token), and ``AUTH=oidc`` with a secrets file whose ``[auth]`` points at it."""
    from db.session import dispose_engines

    with warnings.catch_warnings():  # the test provider imports Authlib modules Authlib itself calls deprecated
        import authlib.deprecate  # noqa: F401  (its import sets "always" for its warnings: ignore them after it)

        warnings.simplefilter("ignore", DeprecationWarning)
        from oidc_provider_mock import User, run_server_in_thread

    folder = tmp_path / "oidc" / "data"
    url = _copy_database(seeded_template, folder)
    try:
        shown_clip, shown_file = _first_in_queue(url)
    finally:
        dispose_engines()
    claims = {"email": OIDC_EMAIL, "email_verified": True, "roles": ["annotator"], "name": "Pilot Oidc"}
    with run_server_in_thread(user_claims=[User(sub=OIDC_EMAIL, claims=claims)]) as provider:
        app_port = free_port()
        secrets_file = folder.parent / "secrets.toml"
        secrets_file.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{app_port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
            'client_id = "machine-sound-browser-test"\n'
            f'client_secret = "{secrets.token_urlsafe(16)}"\n'
            f'server_metadata_url = "http://localhost:{provider.server_port}/.well-known/openid-configuration"\n'
        )
        env = _server_env(folder, AUTH="oidc")
        # the app on localhost (the redirect_uri's host): its auth cookie must come back to the same origin
        server = _streamlit(folder, env, "--secrets.files", str(secrets_file), port=app_port, host="localhost")
        with server as (base, log):
            yield App(base, folder, log, shown_clip, shown_file)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the in-process test provider's own Authlib calls
def test_oidc_user_judges_in_the_name_their_provider_gives(page, oidc_app):
    assert _verdicts(oidc_app, oidc_app.shown_clip) == []
    page.goto(f"{oidc_app.url}/", wait_until="domcontentloaded")
    _heading(page, "Sign in")
    assert MACHINE not in page.content(), "the OpenID Connect sign-in wall names a machine"
    assert not _field(page, "Password").count(), "AUTH=oidc asks for a local password"
    _shot(page, "oidc-wall")

    page.get_by_role("button", name="Sign in").click()  # st.login: off to the provider's authorization form
    page.wait_for_url("**/oauth2/authorize**")
    page.locator("input[name='sub']").fill(OIDC_EMAIL)
    _shot(page, "oidc-provider-form")
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{oidc_app.url}/**")
    _signed_in_as(page, OIDC_EMAIL)
    signed_in = page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {_as_shown(OIDC_EMAIL)} (annotator)")
    assert signed_in.is_visible()
    _assert_no_exception(page, oidc_app, "the app after the OpenID Connect sign-in")

    _open_triage(page, oidc_app)
    _blind(page, oidc_app, "the OpenID Connect annotator")
    _confirm_abnormal(page, oidc_app)
    assert _verdicts(oidc_app, oidc_app.shown_clip) == [(OIDC_EMAIL, "abnormal")]
    _shot(page, "oidc-triage-after-verdict")
