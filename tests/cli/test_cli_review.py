"""``disputes``, ``adjudicate`` and ``agreement`` in-process (``core.cli.main``), as the operator and ``--as``."""

from __future__ import annotations

import json

import pytest

from core.access import Actor, Role
from core.cli import main
from core.workflows.triage import record_verdict, triage_queue
from core.workflows.users import add_user

FAN = "fan/id_00"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def team(seeded, monkeypatch):
    """ana and bob (annotators), eve (engineer); three flagged clips of fan/id_00: disputed, unsure, agreed."""
    monkeypatch.setenv("OVERLAP_FRACTION", "0")
    for name, role in (("ana", "annotator"), ("bob", "annotator"), ("eve", "engineer")):
        add_user(name, role, "a long enough password")
    ana, bob = Actor("ana", Role.ANNOTATOR), Actor("bob", Role.ANNOTATOR)
    disputed, unsure, agreed = (item.clip_id for item in triage_queue(FAN)[:3])
    record_verdict(disputed, "ana", "abnormal", anomaly_type="bearing", actor=ana)
    record_verdict(disputed, "bob", "normal", actor=bob)
    record_verdict(unsure, "ana", "unsure", actor=ana)
    record_verdict(agreed, "bob", "abnormal", actor=bob)
    return disputed, unsure, agreed


def test_disputes_json_then_adjudicate_settles(team, capsys):
    disputed, unsure, _ = team
    code, out, _ = _run(capsys, "disputes", "--machine", FAN, "--json")
    assert code == 0
    clips = json.loads(out)["clips"]
    assert [(c["clip_id"], c["machine"], c["state"]) for c in clips] == [
        (disputed, FAN, "disputed"), (unsure, FAN, "unsure")]  # fmt: skip
    by_id = {c["clip_id"]: c for c in clips}
    assert [{k: v[k] for k in ("annotator", "verdict", "anomaly_type")} for v in by_id[disputed]["verdicts"]] == [
        {"annotator": "ana", "verdict": "abnormal", "anomaly_type": "bearing"},
        {"annotator": "bob", "verdict": "normal", "anomaly_type": None},
    ]
    code, out, _ = _run(capsys, "--as", "eve", "adjudicate", str(disputed), "--verdict", "abnormal", "--reason",
                        "bearing whine at 2 s", "--type", "bearing")  # fmt: skip
    assert code == 0 and f"clip {disputed}: settled as abnormal by eve" in out
    code, out, _ = _run(capsys, "adjudicate", str(unsure), "--verdict", "normal", "--reason", "just quiet", "--json")
    assert json.loads(out)["adjudicator"] == "operator"
    clips = {c["clip_id"]: c for c in json.loads(_run(capsys, "disputes", "--json")[1])["clips"]}
    assert (clips[disputed]["state"], clips[unsure]["state"]) == ("settled", "settled")
    assert clips[disputed]["adjudication"]["adjudicator"] == "eve"
    assert json.loads(_run(capsys, "disputes", "--open", "--json")[1]) == {"clips": []}
    code, out, _ = _run(capsys, "disputes")
    assert f"clip {disputed} ({FAN}) settled: ana: abnormal (bearing), bob: normal  -> abnormal by eve" in out


def test_annotators_may_not_adjudicate_or_list_disputes(team, capsys):
    disputed = team[0]
    for args in (["--as", "ana", "disputes"],
                 ["--as", "ana", "adjudicate", str(disputed), "--verdict", "normal", "--reason", "x"]):  # fmt: skip
        code, out, err = _run(capsys, *args)
        assert code == 2 and out == ""
        assert err.startswith("error: ana may not adjudicate: adjudicate needs the engineer role")


def test_adjudicate_refuses_a_type_without_abnormal_and_an_unknown_clip(team, capsys):
    code, _, err = _run(capsys, "adjudicate", str(team[0]), "--verdict", "normal", "--reason", "x", "--type", "bearing")
    assert code == 2 and "--type names the fault" in err
    code, _, err = _run(capsys, "adjudicate", "99999", "--verdict", "normal", "--reason", "x")
    assert code == 2 and "no clip with id 99999" in err


def test_agreement_json_for_managers_only(team, capsys):
    disputed, _, _ = team
    add_user("max", "manager", "a long enough password")
    code, out, _ = _run(capsys, "--as", "max", "agreement", "--machine", FAN, "--json")
    assert code == 0
    (fan,) = json.loads(out)["machines"]
    assert {"machine", "n_double", "agreement", "kappa", "alpha", "pairs"} <= set(fan)
    assert (fan["machine"], fan["n_double"], fan["agreement"]) == (FAN, 1, 0.0)  # ana and bob on the disputed clip
    assert fan["pairs"] == [{"annotators": ["ana", "bob"], "n_clips": 1, "agreement": 0.0, "kappa": None}]
    code, out, _ = _run(capsys, "agreement")
    assert code == 0 and out.startswith(f"{FAN}: 1 clip(s) judged twice or more (1 pairs): agreement 0.00, kappa n/a")
    code, out, err = _run(capsys, "--as", "eve", "agreement")
    assert code == 2 and "view audit needs the manager role" in err


def test_annotators_may_not_score_or_watch(team, capsys, tmp_path):
    for args in (["--as", "ana", "score"], ["--as", "ana", "watch", str(tmp_path), "--once"]):
        code, out, err = _run(capsys, *args)
        assert (code, out) == (2, ""), err
        assert err.startswith("error: ana may not ingest: ingest needs the engineer role"), err
    code, out, _ = _run(capsys, "--as", "eve", "score")
    assert code == 0 and out.startswith("scored 0 clips")
