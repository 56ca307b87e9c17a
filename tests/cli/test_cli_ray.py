"""``score --engine ray`` and ``train --engine ray`` through the command line, on the session's local Ray."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from tests.conftest import SMALL_PLANT_CLIPS


@pytest.mark.usefixtures("ray_local")
def test_train_and_score_on_ray(plant, capsys):
    assert main(["train", "--detector", "mahalanobis", "--engine", "ray", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)["trained"]
    assert sorted(t["scope"] for t in trained) == ["fan/id_00", "fan/id_02"]

    assert main(["score", "--engine", "ray", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["scored"], report["models"], report["failed"]) == (SMALL_PLANT_CLIPS, 2, [])

    assert main(["score", "--engine", "ray"]) == 0
    assert "scored 0 clips" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["score", "train"])
def test_an_address_without_the_ray_engine_exits_2(plant, capsys, command):
    assert main([command, "--address", "ray://head:10001"]) == 2
    assert capsys.readouterr().err.strip() == "error: --address needs --engine ray [invalid_parameter]"


def test_an_unknown_engine_is_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["score", "--engine", "spark"])
    assert exited.value.code == 2 and "invalid choice: 'spark'" in capsys.readouterr().err
