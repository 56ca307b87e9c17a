"""dashboard/pages/overview.py through AppTest: the empty state, the seeded plant's counts, and drift; and no page
script holding a bare expression that Streamlit's magic would draw."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from streamlit.runtime.scriptrunner.magic import MAGIC_MODULE_NAME, add_magic

from core.workflows.drift import NOT_ENOUGH_DATA, RETRAIN, RETRAIN_ADVICE
from core.workflows.triage import machine_summaries, record_verdict, triage_queue
from dashboard.components.format import MISSING, number
from dashboard.components.text import md_literal
from tests.conftest import APP_SCRIPT, SEEDED_MACHINES, infos, no_exception, tone, write_wav


def _metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_empty_database_shows_how_to_add_clips(open_page):
    app = open_page("overview")
    assert [t.value for t in app.title] == ["Overview"]
    assert any("No clips yet" in text and "Data" in text for text in infos(app))
    assert not app.metric and not app.dataframe


def _shown(block) -> list[str]:
    """Every text under ``block`` (values and labels), in the order they are on the page."""
    texts = []
    for child in block.children.values():
        if getattr(child, "children", None):
            texts += _shown(child)
        else:
            texts += [t for t in (getattr(child, "value", None), getattr(child, "label", None)) if isinstance(t, str)]
    return texts


def test_the_page_opens_with_its_title_and_shows_no_developers_note(seeded, open_page):
    """A bare string meant as a comment (on the machines table's columns) was drawn above the title."""
    app = open_page("overview")
    texts = _shown(app.main)
    assert texts[0] == "Overview"
    assert not [t for t in texts if "machines table's columns" in t]


def _magic_writes(script: Path) -> list[str]:
    """The expressions in ``script`` that Streamlit's magic turns into ``st.write`` calls (drawn on the page), as
    ``file:line: code``."""
    tree = add_magic(script.read_text(), str(script))
    return [f"{script.name}:{node.lineno}: {ast.unparse(node.args[0])[:80]}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == MAGIC_MODULE_NAME]  # fmt: skip


def test_no_page_script_holds_a_bare_expression_magic_would_draw():
    """Streamlit draws a page script's bare expressions (a string meant as a comment too); docstrings it skips."""
    app = Path(APP_SCRIPT)
    scripts = [app, *sorted((app.parent / "dashboard" / "pages").glob("*.py"))]
    assert len(scripts) > 10
    assert [line for script in scripts for line in _magic_writes(script)] == []


def test_seeded_plant_shows_counts_machines_and_review_progress(seeded, open_page):
    summaries = machine_summaries()
    flagged = sum(s.flagged for s in summaries)
    assert flagged > 0
    app = open_page("overview")
    assert not infos(app)
    metrics = _metrics(app)
    assert metrics["Clips"] == "32" and metrics["Machines"] == "2"
    assert metrics["Flagged"] == metrics["Awaiting review"] == str(flagged)
    assert metrics["Flags reviewed"] == "0%"
    machines = app.dataframe[0].value
    assert list(machines["machine"]) == list(SEEDED_MACHINES)
    assert list(machines["detector"]) == ["Mahalanobis v1", "Mahalanobis v1"]  # in words, not the CLI's name

    first = triage_queue(SEEDED_MACHINES[0])[0]
    record_verdict(first.clip_id, "alice", "abnormal")
    app.run()
    no_exception(app)
    metrics = _metrics(app)
    assert metrics["Awaiting review"] == str(flagged - 1)
    assert metrics["Flags reviewed"] == f"{1 / flagged:.0%}"


def _drift_table(app):
    tables = [t.value for t in app.dataframe if "level PSI" in t.value.columns]
    assert len(tables) == 1
    return tables[0].set_index("machine")


def _drift_reasons(app) -> dict[str, str]:
    """Each machine's drift reasons as listed below the table (Markdown), by machine (none: not listed)."""
    shown = [m.value for m in app.markdown]
    return {machine: text for machine in _drift_table(app).index for text in shown
            if text.startswith(f"**{md_literal(machine)}**")}  # fmt: skip


def test_seeded_plant_shows_drift_without_enough_recent_clips(seeded, open_page):
    app = open_page("overview")
    assert "Drift" in [h.value for h in app.subheader]
    drift = _drift_table(app)
    assert list(drift.index) == list(SEEDED_MACHINES)
    assert set(drift["state"]) == {NOT_ENOUGH_DATA}  # every clip predates the models: nothing recent yet
    reasons = _drift_reasons(app)
    assert list(reasons) == list(SEEDED_MACHINES) and all("recent clips" in text for text in reasons.values())
    assert not app.warning


def _trained_plant_with_new_sound(tmp_path) -> None:
    """The small plant trained (Mahalanobis, not scored), then 12 pure tones ingested as newer fan/id_00 clips."""
    from core.workflows.ingest import ingest
    from core.workflows.training import train

    assert len(train(None, "mahalanobis").trained) == 2
    folder = tmp_path / "new" / "6dB" / "fan" / "id_00" / "normal"
    for i in range(12):
        write_wav(folder / f"{i:08d}.wav", tone(2.0, freq=2000.0 + 50 * i, seed=i))
    assert ingest([str(tmp_path / "new")]).ingested == 12


def _n_scores() -> int:
    from db.models import Score
    from db.session import session_scope

    with session_scope() as session:
        return session.query(Score).count()


def test_drift_suggests_retraining_with_the_command(plant, open_page, tmp_path):
    _trained_plant_with_new_sound(tmp_path)
    app = open_page("overview")
    drift = _drift_table(app)
    assert drift.loc["fan/id_00", "state"] == RETRAIN and drift.loc["fan/id_00", "recent"] == 12
    assert drift.loc["fan/id_02", "state"] == NOT_ENOUGH_DATA
    assert md_literal("log-mel levels of recent clips shifted") in _drift_reasons(app)["fan/id_00"]
    [warning] = [w.value for w in app.warning]
    assert f"Retrain suggested for {md_literal('fan/id_00')}:" in warning
    assert f"The command below will {RETRAIN_ADVICE}" in warning
    [command] = [c.value for c in app.code]  # shown as is, not as Markdown
    assert command == "python -m core train --machine fan/id_00 --detector mahalanobis"
    [link] = [e.proto for e in app.get("page_link")]  # or from the dashboard, with progress
    assert link.page.endswith("compare") and "Train detector" in link.label


def test_the_drift_section_scores_nothing(plant, open_page, tmp_path):
    """A read-only page: clips not scored yet are left out of the score comparison, never scored (written) here."""
    _trained_plant_with_new_sound(tmp_path)
    assert _n_scores() == 0
    app = open_page("overview")
    assert _n_scores() == 0
    assert md_literal("not scored yet were left out of the score comparison") in _drift_reasons(app)["fan/id_00"]


def test_drift_is_cached_per_machine_and_model_not_per_clip(plant, open_page, tmp_path):
    """New clips do not recompute the drift section (that rereads audio); a new active model does."""
    from core.workflows.ingest import ingest
    from core.workflows.training import train

    _trained_plant_with_new_sound(tmp_path)
    app = open_page("overview")
    assert _drift_table(app).loc["fan/id_02", "recent"] == 0
    folder = tmp_path / "more" / "fan" / "id_02"  # field snippets: never trained on without a verdict
    for i in range(12):
        write_wav(folder / f"{i:08d}.wav", tone(2.0, freq=3000.0 + 50 * i, seed=i))
    assert ingest([str(tmp_path / "more")]).ingested == 12
    app.run()
    no_exception(app)
    assert _drift_table(app).loc["fan/id_02", "recent"] == 0  # cached for DRIFT_TTL_S
    train("fan/id_02", "mahalanobis")
    app.run()
    no_exception(app)
    assert _drift_table(app).loc["fan/id_02", "recent"] == 12


def test_a_machine_whose_drift_fails_shows_its_error_not_a_page_crash(plant, open_page, tmp_path):
    from db.queries import machine_by_key
    from db.session import session_scope

    _trained_plant_with_new_sound(tmp_path)
    with session_scope() as session:
        model = machine_by_key(session, "fan/id_00").active_model
        model.provenance = {**model.provenance, "clip_ids": 7}  # a corrupt model row: drift cannot find its clips
    app = open_page("overview")
    assert any(e.value.startswith(f"Drift of {md_literal('fan/id_00')} could not be computed") for e in app.error)
    assert list(_drift_table(app).index) == ["fan/id_02"]
    assert app.metric  # the rest of the page is there


def _shown_cells(app) -> list[str]:
    """Every cell of every table on the page, as a string."""
    return [str(cell) for table in app.dataframe for row in table.value.itertuples(index=False) for cell in row]


def test_no_table_cell_says_none_a_machine_without_model_or_verdicts_is_described_in_words(seeded, open_page,
                                                                                             tmp_path):  # fmt: skip
    from core.workflows.ingest import ingest

    write_wav(tmp_path / "field" / "pump" / "id_09" / "a.wav", tone(1.0, seed=3))  # no model, no verdict, no label
    assert ingest([str(tmp_path / "field")], n_jobs=1).ingested == 1
    app = open_page("overview")
    cells = _shown_cells(app)
    assert cells and not [c for c in cells if c in ("None", "nan", "NaN", "NaT", "<NA>")]
    machines = app.dataframe[0].value.set_index("machine")
    assert machines.loc["pump/id_09", ["detector", "threshold", "last verdict"]].tolist() == [
        "not trained", "no model", "none yet",
    ]  # fmt: skip
    summary = {s.machine: s for s in machine_summaries()}[SEEDED_MACHINES[0]]
    assert machines.loc[SEEDED_MACHINES[0], "threshold"] == number(summary.threshold)  # plain decimals
    assert "e" not in machines.loc[SEEDED_MACHINES[0], "threshold"]
    drift = _drift_table(app)
    assert drift.loc["pump/id_09", "score PSI"] == MISSING  # not compared: said so, not "None"


def test_drift_reasons_are_shown_once_in_full_below_the_table(seeded, open_page):
    """Each reason was shown twice: cut off in a table cell, then in full below the table."""
    from core.workflows.drift import drift_report

    app = open_page("overview")
    assert "reasons" not in _drift_table(app).columns
    cells, shown = _shown_cells(app), [m.value for m in app.markdown]
    for machine in SEEDED_MACHINES:
        reasons = drift_report(machine, score_missing=False).reasons
        (text,) = [m for m in shown if m.startswith(f"**{md_literal(machine)}**")]
        assert reasons and all(f"- {md_literal(reason)}" in text for reason in reasons)
        assert not [c for c in cells if any(reason in c for reason in reasons)]
        assert sum(md_literal(reasons[0]) in m for m in shown) == 1


def test_the_machines_table_names_its_columns_in_words_what_matters_most_first(seeded, open_page):
    """A raw "second_opinion" header, and the detector, threshold, last clip and last verdict off the right edge."""
    app = open_page("overview")
    assert list(app.dataframe[0].value.columns) == [
        "machine", "detector", "threshold", "clips", "flagged", "unreviewed", "last clip", "last verdict",
        "confirmed", "rejected", "unsure", "disputed", "2nd opinion", "settled",
    ]  # fmt: skip
    config = json.loads(app.dataframe[0].proto.columns)
    counts = ("clips", "flagged", "unreviewed", "confirmed", "rejected", "unsure", "disputed", "2nd opinion", "settled")
    assert {name: config[name].get("width") for name in counts} == dict.fromkeys(counts, "small")  # narrow
    assert "second opinion" in config["2nd opinion"]["help"]
