"""dashboard/pages/data.py through AppTest: registering a folder of recordings, each refusal with its reason."""

from __future__ import annotations

import pytest

from core.workflows.audit import audit_events
from dashboard.components.annotator import UNNAMED
from dashboard.components.format import MISSING, number
from dashboard.components.text import md_literal
from db.queries import count_clips, recent_rejections
from db.session import session_scope
from tests.conftest import SEEDED_MACHINES, infos, no_exception, tone, write_wav

NAME = "carol"  # given in the sidebar: with sign-in off, what a page saves needs a name


def _ingest_folder(app, folder: str):
    next(t for t in app.text_input if t.label == "Folder on this server").input(folder)
    next(b for b in app.form_submit_button if b.label == "Ingest folder").click().run()
    no_exception(app)
    return app


@pytest.mark.parametrize("seed", [False, True], ids=["empty", "seeded"])
def test_the_page_renders(open_page, request, seed):
    if seed:
        request.getfixturevalue("seeded")
    app = open_page("data", name=NAME)
    assert [t.value for t in app.title] == ["Add recordings"]
    assert [b.label for b in app.form_submit_button] == ["Ingest folder"]
    assert not app.success and not app.error


def test_ingesting_a_folder_reports_clips_and_each_refused_file(open_page, data_dir):
    folder = data_dir / "drop"  # inside INGEST_ROOTS (default: DATA_DIR)
    for k in range(2):
        write_wav(folder / f"pump_{k}.wav", tone(1.0, seed=k))
    (folder / "junk.wav").write_bytes(b"this is not audio")
    app = _ingest_folder(open_page("data", name=NAME), str(folder))

    assert [s.value for s in app.success] == ["Ingested 2 clips; 0 already known."]
    (refused,) = [e.value for e in app.error]
    said = md_literal("not a readable audio file (WAV or FLAC)")  # not the audio library's "Format not recognised."
    assert refused == f"{md_literal(folder / 'junk.wav')}: {said}"  # the reason in words, not its code
    with session_scope() as session:
        assert count_clips(session) == 2
        assert [(r.path, r.reason) for r in recent_rejections(session)] == [(str(folder / "junk.wav"), "not_audio")]

    _ingest_folder(app, str(folder))  # the same content again is recognised, not duplicated, and named
    assert not app.success and infos(app)[0] == "Ingested 0 clips; 2 already known."  # nothing new: no success
    assert [c.value for c in app.caption if c.value.startswith("Already known")] == [
        "Already known (the same recording is stored, perhaps under another name): "
        f"{md_literal(folder / 'pump_0.wav')}, {md_literal(folder / 'pump_1.wav')}."
    ]
    with session_scope() as session:
        assert count_clips(session) == 2


def test_a_folder_ingested_again_names_at_most_ten_known_files_then_how_many_more(open_page, data_dir):
    folder = data_dir / "drop"
    for k in range(12):
        write_wav(folder / f"pump_{k:02d}.wav", tone(0.2, seed=k))
    app = _ingest_folder(_ingest_folder(open_page("data", name=NAME), str(folder)), str(folder))
    assert not app.success and infos(app)[0] == "Ingested 0 clips; 12 already known."  # nothing new: no success
    (known,) = [c.value for c in app.caption if c.value.startswith("Already known")]
    named = ", ".join(md_literal(folder / f"pump_{k:02d}.wav") for k in range(10))
    assert known == f"Already known (the same recording is stored, perhaps under another name): {named} and 2 more."


def test_an_empty_folder_field_says_what_is_missing(open_page):
    app = _ingest_folder(open_page("data", name=NAME), "  ")
    assert [w.value for w in app.warning] == ["Type the folder to ingest: a path on this server, inside the ingest "
                                              "roots."]  # fmt: skip
    assert not app.error and not app.success and not app.get("progress")


def test_a_missing_folder_is_an_error_as_a_sentence_with_no_progress_bar_left(open_page, data_dir):
    missing = data_dir / "nowhere"
    app = _ingest_folder(open_page("data", name=NAME), str(missing))
    assert [e.value for e in app.error] == [md_literal("No such folder inside the ingest roots.")]
    assert not app.success and not app.get("progress")  # nothing is being ingested
    with session_scope() as session:
        assert count_clips(session) == 0


def test_folders_outside_the_ingest_roots_are_refused_alike_whether_they_exist_or_not(open_page, tmp_path):
    outside = tmp_path / "outside"
    write_wav(outside / "a.wav", tone(1.0))
    app = open_page("data", name=NAME)
    said = []
    for folder in (outside, tmp_path / "no-such-folder", "/root", "/etc/../root"):
        _ingest_folder(app, str(folder))
        said.append([e.value for e in app.error])
        assert not app.get("progress")
    assert all(s == said[0] for s in said) and md_literal("INGEST_ROOTS") in said[0][0]  # nothing tells which exist
    assert said[0][0].startswith("The dashboard ingests only from inside") and said[0][0].endswith(md_literal("CLI."))
    with session_scope() as session:
        assert count_clips(session) == 0


def test_a_link_inside_a_root_that_leads_out_is_refused_and_the_rest_ingested(open_page, data_dir, tmp_path):
    secret = write_wav(tmp_path / "secret" / "private.wav", tone(1.0, seed=7))
    folder = data_dir / "drop"
    write_wav(folder / "fine.wav", tone(1.0, seed=1))
    (folder / "linked.wav").symlink_to(secret)
    (folder / "sub").symlink_to(secret.parent, target_is_directory=True)  # folder links are not followed at all
    app = _ingest_folder(open_page("data", name=NAME), str(folder))
    assert [s.value for s in app.success] == ["Ingested 1 clip; 0 already known."]
    (refused,) = [e.value for e in app.error]
    assert md_literal("linked.wav") in refused and "outside the ingest roots" in refused
    with session_scope() as session:
        assert count_clips(session) == 1


def test_uploads_keep_the_good_files_and_name_each_refused_one(open_page, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.05")  # 50 kB
    app = open_page("data", name=NAME)
    (uploader,) = app.get("file_uploader")
    assert uploader.label == "WAV/FLAC files (up to 0.05 MB each)"
    next(t for t in app.text_input if t.label == "Machine for the uploads (type/id)").input("pump/id_05")

    good = [write_wav(tmp_path / f"g{k}.wav", tone(1.0, seed=k)).read_bytes() for k in range(2)]  # 32 kB each
    uploader.set_value([
        ("pump 1.wav", good[0], "audio/wav"),
        ("../../../../evil.wav", good[1], "audio/wav"),
        ("long.wav", good[0] + good[1], "audio/wav"),
        ("junk.wav", b"not audio at all" * 10, "audio/wav"),
    ]).run()  # fmt: skip
    next(b for b in app.button if b.label == "Ingest uploads").click().run()
    no_exception(app)

    assert [s.value for s in app.success] == ["Ingested 2 clips; 0 already known."]
    folder = data_dir / "uploads" / "pump" / "id_05"
    assert [e.value for e in app.error] == [
        f"{md_literal('long.wav')}: {md_literal('0.1 MB is over the 0.05 MB limit')}",
        f"{md_literal('junk.wav')}: {md_literal('not a readable audio file (WAV or FLAC)')}; the file was not kept.",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["evil.wav", "pump_1.wav"]  # the refused one is deleted
    assert not (tmp_path.parent / "evil.wav").exists() and not (tmp_path / "evil.wav").exists()
    with session_scope() as session:
        assert count_clips(session) == 2


def _upload(app, files, machine: str):
    next(t for t in app.text_input if t.label == "Machine for the uploads (type/id)").input(machine)
    (uploader,) = app.get("file_uploader")
    uploader.set_value([(name, content, "audio/wav") for name, content in files]).run()
    next(b for b in app.button if b.label == "Ingest uploads").click().run()
    no_exception(app)
    return app


def test_uploads_wait_for_a_machine_to_be_named(open_page, data_dir, tmp_path):
    """No machine is made up: with none typed the upload is refused, nothing stored, and the box keeps its files."""
    content = write_wav(tmp_path / "a.wav", tone(1.0)).read_bytes()
    app = open_page("data", name=NAME)
    (machine_field,) = [t for t in app.text_input if t.label == "Machine for the uploads (type/id)"]
    assert (machine_field.value, machine_field.placeholder) == ("", "type/id, e.g. fan/id_00")  # no value lookalike
    for machine in ("", "  ", "fan", "fan/ ", "/id_00", "../.."):
        _upload(app, [("a.wav", content)], machine)
        if machine.strip():  # typed, but not type/id: core's words
            detail = f"machine must be type/id, e.g. fan/id_00, got {machine!r}"
            assert [w.value for w in app.warning] == [f"Nothing was stored: {md_literal(detail)}."]
        else:
            assert [w.value for w in app.warning] == ["Name the machine the uploads belong to, as type/id, e.g. "
                                                      "fan/id_00."]  # fmt: skip
        assert not app.success and not app.error
        assert [f.name for f in app.get("file_uploader")[0].value] == ["a.wav"]  # still there, to send once named
    assert not (data_dir / "uploads").exists()
    with session_scope() as session:
        assert count_clips(session) == 0


def test_the_upload_machine_is_the_one_picked_in_the_sidebar(open_page, data_dir, tmp_path):
    app = open_page("data", name=NAME)
    app.session_state["selected_machine"] = "pump/id_02"  # picked on another page
    app.run()
    (machine,) = [t for t in app.text_input if t.label == "Machine for the uploads (type/id)"]
    assert machine.value == "pump/id_02"
    (uploader,) = app.get("file_uploader")
    uploader.set_value([("a.wav", write_wav(tmp_path / "a.wav", tone(1.0)).read_bytes(), "audio/wav")]).run()
    next(b for b in app.button if b.label == "Ingest uploads").click().run()
    assert [s.value for s in app.success] == ["Ingested 1 clip; 0 already known."]
    assert [p.name for p in (data_dir / "uploads" / "pump" / "id_02").iterdir()] == ["a.wav"]


def test_an_upload_already_stored_is_named_as_uploaded(open_page, data_dir, tmp_path):
    content = write_wav(tmp_path / "a.wav", tone(1.0, seed=3)).read_bytes()
    app = _upload(open_page("data", name=NAME), [("first take.wav", content)], "press/id_01")
    _upload(app, [("first take.wav", content)], "press/id_01")  # the same file again: it is the clip's own file
    assert not app.success and infos(app)[0] == "Ingested 0 clips; 1 already known."  # nothing new: no success
    saved = data_dir / "uploads" / "press" / "id_01" / "first_take.wav"
    assert [c.value for c in app.caption if c.value.startswith("Already known")] == [
        "Already known (the same recording is stored, perhaps under another name): "
        f"{md_literal('first take.wav')} (clip #{_clip_of(saved)} of {md_literal('press/id_01')})."
    ]
    assert not app.warning and not app.dataframe  # no new clip: nothing scored, nothing listed twice


def test_uploads_of_recordings_already_clips_of_another_machine_are_not_kept_and_say_which_clip(
    open_page, data_dir, tmp_path
):
    """The same recordings uploaded for valve/id_00 as for fan/id_00 register nothing for valve/id_00: the copies
    are deleted again and each upload names the clip it already is."""
    files = [(f"take {k}.wav", write_wav(tmp_path / f"{k}.wav", tone(1.0, seed=k)).read_bytes()) for k in range(2)]
    app = _upload(open_page("data", name=NAME), files, "fan/id_00")
    fan = data_dir / "uploads" / "fan" / "id_00"
    ids = [_clip_of(fan / f"take_{k}.wav") for k in range(2)]
    _upload(app, files, "valve/id_00")
    assert not app.success and infos(app)[0] == "Ingested 0 clips; 2 already known."  # nothing new: no success
    assert [w.value for w in app.warning] == [
        "Not kept, as the same recording is already a clip: "
        + ", ".join(f"{md_literal(f'take {k}.wav')} (clip #{ids[k]} of {md_literal('fan/id_00')})" for k in range(2))
        + "."
    ]  # fmt: skip
    assert not [c for c in app.caption if c.value.startswith("Already known")] and not app.dataframe
    assert list((data_dir / "uploads" / "valve" / "id_00").iterdir()) == []
    assert sorted(p.name for p in fan.iterdir()) == ["take_0.wav", "take_1.wav"]


def test_the_upload_box_states_the_same_limit_as_the_page(open_page, monkeypatch):
    """Streamlit's box writes its own "… per file" from the widget's limit: MAX_UPLOAD_MB, not whatever
    server.maxUploadSize the server was started with (its default 200 MB, or a config file's 1 GB)."""
    from streamlit import config

    monkeypatch.setenv("MAX_UPLOAD_MB", "1000")
    config.set_option("server.maxUploadSize", 200)
    app = open_page("data", name=NAME)
    (uploader,) = app.get("file_uploader")
    assert uploader.label == "WAV/FLAC files (up to 1000 MB each)"
    assert uploader.proto.max_upload_size_mb == 1000
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.05")  # the box counts whole MB: the next one up
    app.run()
    (uploader,) = app.get("file_uploader")
    assert (uploader.label, uploader.proto.max_upload_size_mb) == ("WAV/FLAC files (up to 0.05 MB each)", 1)
    rounded = "the box's own size note rounds this limit"
    assert [c.value for c in app.caption if rounded in c.value] == [f"Files over 0.05 MB are refused; {rounded}."]
    monkeypatch.setenv("MAX_UPLOAD_MB", "200")  # whole MB, below 512: the box says exactly this, no note needed
    app.run()
    assert not [c.value for c in app.caption if rounded in c.value]


def _clip_of(path) -> int:
    from core.workflows.triage import resolve_clip

    return resolve_clip(str(path))


def test_uploaded_clips_are_scored_at_once_each_with_its_score_and_whether_flagged(seeded, open_page, tmp_path):
    from core.workflows.explore import clip_details

    files = [(f"take {k}.wav", write_wav(tmp_path / f"{k}.wav", tone(2.0, freq=300.0 * (k + 1), seed=k)).read_bytes())
             for k in range(2)]  # fmt: skip
    app = _upload(open_page("data", name=NAME), files, SEEDED_MACHINES[0])
    (table,) = [t.value for t in app.dataframe]
    assert list(table["file"]) == ["take 0.wav", "take 1.wav"]
    folder = seeded / "uploads" / "fan" / "id_00"
    for k, row in table.iterrows():
        details = clip_details(_clip_of(folder / f"take_{k}.wav"))
        assert details.score is not None and row["clip"] == details.clip_id and row["machine"] == SEEDED_MACHINES[0]
        assert (row["score"], row["threshold"]) == (number(details.score), number(details.threshold))
        assert row["result"] == ("flagged: in the triage queue" if details.flagged else "not flagged")
        assert row["model"] == "Mahalanobis v1"  # in words, not the CLI's name
    flagged = sum(clip_details(_clip_of(folder / f"take_{k}.wav")).flagged for k in range(2))
    assert f"Scored 2 clips; {flagged} flagged, now in the triage queue." in infos(app)
    assert not app.warning and not app.code


def _no_model_advice(app) -> str:
    (said,) = [text for text in infos(app) if text.startswith("No model yet")]
    (link,) = [e.proto for e in app.get("page_link")]  # in the app first, the command line second
    assert link.page.endswith("compare") and "Train detector" in link.label
    return said


def test_uploads_to_a_new_machine_say_it_needs_normal_clips_then_train_detector(open_page, tmp_path):
    """Uploads are unlabelled: a new machine has no normal clip to learn from, so training (in the app or on the
    command line) must wait for a folder of its normal recordings; no advice that cannot work (confirming clips
    that never reach the triage queue)."""
    content = write_wav(tmp_path / "a.wav", tone(1.0)).read_bytes()
    app = _upload(open_page("data", name=NAME), [("a.wav", content)], "press/id_01")
    said = _no_model_advice(app)
    assert said == (
        f"No model yet for {md_literal('press/id_01')}, so these clips are stored but not scored, and none reaches the "
        "triage queue until a model scores it. A model learns the machine's normal sound from clips labelled normal, "
        f"at least 3 ({md_literal('press/id_01')} has 0; uploads, as any file outside the MIMII and DCASE layouts, are "
        "unlabelled): first ingest a folder of its normal recordings above, in the MIMII layout "
        f"({md_literal('…/press/id_01/normal/')}), then train one with **Train detector** on Compare models (pick the "
        "machine there), or with the command below."
    )  # fmt: skip
    assert [c.value for c in app.code] == ["python -m core train --machine press/id_01"]
    (table,) = [t.value for t in app.dataframe]
    assert table.loc[0, ["score", "result"]].tolist() == [MISSING, "not scored: no model yet"]


def test_uploads_to_a_machine_with_normal_clips_but_no_model_point_to_train_detector(open_page, data_dir, tmp_path):
    for k in range(4):
        write_wav(data_dir / "drop" / "press" / "id_01" / "normal" / f"{k:08d}.wav", tone(1.0, seed=k))
    app = _ingest_folder(open_page("data", name=NAME), str(data_dir / "drop"))
    content = write_wav(tmp_path / "a.wav", tone(1.0, seed=9)).read_bytes()
    said = _no_model_advice(_upload(app, [("a.wav", content)], "press/id_01"))
    assert said.endswith("until a model scores it. Train one with **Train detector** on Compare models (pick the "
                         "machine there), or with the command below.")  # fmt: skip


def test_scoring_new_clips_does_not_repeat_other_clips_old_failures(seeded, open_page, tmp_path):
    """A clip of another machine that can never be scored (another sample rate) is not warned about again
    each time something is uploaded."""
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score

    write_wav(tmp_path / "other" / "fan" / "id_02" / "normal" / "8k.wav", tone(2.0, sr=8000), sr=8000)
    assert ingest([str(tmp_path / "other")], n_jobs=1).ingested == 1
    assert [f["reason"] for f in score().failed] == ["wrong_sample_rate"]  # it fails every time
    content = write_wav(tmp_path / "new.wav", tone(2.0, freq=700.0)).read_bytes()
    app = _upload(open_page("data", name=NAME), [("new.wav", content)], SEEDED_MACHINES[0])
    assert not app.warning  # the old failure of fan/id_02 is not this upload's
    assert any(text.startswith("Scored 1 clip;") for text in infos(app))

    write_wav(tmp_path / "bad8k.wav", tone(2.0, sr=8000, freq=900.0), sr=8000)  # not the same content
    app = _upload(app, [("bad8k.wav", (tmp_path / "bad8k.wav").read_bytes())], SEEDED_MACHINES[0])
    (warning,) = [w.value for w in app.warning]  # this upload's own failure is shown, once
    assert warning.startswith(md_literal("bad8k.wav (saved as"))
    assert warning.endswith(md_literal("(resample the file to 16000 Hz)"))  # the reason in words, not its code


def test_after_an_ingest_the_upload_box_is_emptied_and_each_file_is_counted_and_listed_once(
    seeded, open_page, tmp_path
):
    """The box's files are not sent again with the next batch; a file sent again on purpose is named once, as
    already known, and the scored and flagged counts are of the new clips alone (never more flagged than scored)."""
    from core.workflows.explore import clip_details

    def take(k: int) -> tuple[str, bytes]:
        path = write_wav(tmp_path / f"{k}.wav", tone(2.0, freq=2500.0 + 400 * k, amplitude=0.9, seed=k))
        return f"take {k}.wav", path.read_bytes()

    app = _upload(open_page("data", name=NAME), [take(0)], SEEDED_MACHINES[0])
    assert [s.value for s in app.success] == ["Ingested 1 clip; 0 already known."]  # said after the box empties
    (uploader,) = app.get("file_uploader")
    assert not uploader.value and not [b for b in app.button if b.label == "Ingest uploads"]

    _upload(app, [take(0), take(1), take(2)], SEEDED_MACHINES[0])
    assert [s.value for s in app.success] == ["Ingested 2 clips; 1 already known."]
    folder = seeded / "uploads" / "fan" / "id_00"
    saved = folder / "take_0.wav"
    assert [c.value for c in app.caption if c.value.startswith("Already known")] == [
        "Already known (the same recording is stored, perhaps under another name): "
        f"{md_literal('take 0.wav')} (clip #{_clip_of(saved)} of {md_literal(SEEDED_MACHINES[0])})."
    ]
    (table,) = [t.value for t in app.dataframe]
    assert list(table["file"]) == ["take 1.wav", "take 2.wav"]  # the new clips, each once
    flagged = sum(clip_details(_clip_of(folder / f"take_{k}.wav")).flagged for k in (1, 2))
    assert [t for t in infos(app) if t.startswith("Scored")] == [
        f"Scored 2 clips; {flagged} flagged, now in the triage queue."
    ]


def test_earlier_clips_of_the_machine_scored_on_the_way_are_counted_apart(seeded, open_page, tmp_path):
    from core.workflows.ingest import ingest

    write_wav(tmp_path / "field" / "fan" / "id_00" / "earlier.wav", tone(2.0, freq=800.0))
    assert ingest([str(tmp_path / "field")], n_jobs=1).ingested == 1  # registered, not scored
    content = write_wav(tmp_path / "new.wav", tone(2.0, freq=900.0)).read_bytes()
    app = _upload(open_page("data", name=NAME), [("new.wav", content)], SEEDED_MACHINES[0])
    (said,) = [t for t in infos(app) if t.startswith("Scored")]
    assert said.startswith("Scored 1 clip; ")
    assert said.endswith(f" flagged, now in the triage queue. Also scored: 1 earlier clip of "
                         f"{md_literal('fan/id_00')}, not scored until now.")  # fmt: skip


def test_with_sign_in_off_ingesting_waits_for_a_name_then_records_it(open_page, data_dir, tmp_path):
    """A folder or an upload was ingested (and audited) as "local user" when no name had been given."""
    folder = data_dir / "drop"
    write_wav(folder / "pump_0.wav", tone(1.0, seed=0))
    app = open_page("data")
    (submit,) = app.form_submit_button
    assert submit.disabled and submit.help == UNNAMED
    next(t for t in app.text_input if t.label == "Machine for the uploads (type/id)").input("pump/id_05")
    (uploader,) = app.get("file_uploader")
    uploader.set_value([("a.wav", write_wav(tmp_path / "a.wav", tone(1.0, seed=1)).read_bytes(), "audio/wav")]).run()
    upload = next(b for b in app.button if b.label == "Ingest uploads")
    assert upload.disabled and upload.help == UNNAMED
    assert [c.value for c in app.caption].count(UNNAMED) == 2  # beside each button, not only in its tooltip
    app.sidebar.text_input(key="annotator_input").input("Ann").run()
    assert UNNAMED not in [c.value for c in app.caption]
    app = _ingest_folder(app, str(folder))
    assert [s.value for s in app.success] == ["Ingested 1 clip; 0 already known."]
    newest = audit_events(1)[0]
    assert (newest["user"], newest["action"]) == ("Ann", "ingest")
    next(b for b in app.button if b.label == "Ingest uploads").click().run()
    no_exception(app)
    assert [s.value for s in app.success] == ["Ingested 1 clip; 0 already known."]
    assert [(e["user"], e["action"]) for e in audit_events(2)] == [("Ann", "ingest")] * 2
