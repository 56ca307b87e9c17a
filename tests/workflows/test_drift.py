"""core/workflows/drift.py: PSI and the state rule on known samples; drift reports on a real SQLite database with real
WAV files (a demo fan trained with the Mahalanobis detector, then newer clips of the same or a shifted sound)."""

from __future__ import annotations

import json
import shutil
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest

from core.errors import BadInputError, Reason
from core.workflows.drift import (
    KS_ALPHA,
    MAJOR_PSI,
    MIN_CLIPS,
    MODERATE_PSI,
    NOT_ENOUGH_DATA,
    PSI_BINS,
    RETRAIN,
    RETRAIN_ADVICE,
    STABLE,
    WATCH,
    WATCH_ALPHA,
    classify,
    drift_cache_key,
    drift_report,
    drift_reports,
    ks_test,
    mel_band_centres,
    population_stability_index,
    psi_bins,
    stable_reason,
)
from db.session import dispose_engines

MACHINE = "fan/id_00"
N_TRAINED_PLANT = 60  # normal clips ingested before training
N_LATER = 20  # newer normal clips of the same machine, same sound
N_SHIFTED = 20  # newer clips of the same machine at -6 dB SNR instead of 6 dB (a louder factory)


# --- population stability index ----------------------------------------------------------------------------------


def _normal(n: int = 2000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_psi_is_zero_for_identical_samples():
    x = _normal()
    assert population_stability_index(x, x) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(x, x.copy()[::-1]) == pytest.approx(0.0, abs=1e-12)  # order does not matter


def test_psi_of_a_fresh_sample_of_the_same_distribution_is_small():
    assert population_stability_index(_normal(5000, seed=1), _normal(5000, seed=2)) < 0.02


def test_psi_grows_with_the_shift():
    x = _normal()
    values = [population_stability_index(x, x + shift) for shift in (0.0, 0.1, 0.3, 0.6, 1.0, 2.0)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert values[1] < MODERATE_PSI  # a tenth of a standard deviation: stable
    assert values[4] > MAJOR_PSI  # one standard deviation: a major shift


def test_psi_bins_are_quantiles_of_the_expected_sample():
    x = _normal()
    # equal shares of the expected sample in each bin: a sample of the bin centres' quantiles matches it exactly
    centres = np.quantile(x, (np.arange(PSI_BINS) + 0.5) / PSI_BINS)
    assert population_stability_index(x, np.repeat(centres, 7)) == pytest.approx(0.0, abs=1e-3)
    # a symmetric distribution gives (about) the same PSI for the same shift either way
    up, down = population_stability_index(x, x + 0.5), population_stability_index(x, x - 0.5)
    assert up == pytest.approx(down, rel=0.15)
    # everything beyond the last quantile still counts (open-ended outer bins)
    assert population_stability_index(x, x + 100.0) == pytest.approx(population_stability_index(x, x + 1000.0))


def test_psi_handles_constant_input():
    constant = np.full(50, 3.0)
    assert population_stability_index(constant, constant) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(constant, np.full(20, 3.0)) == pytest.approx(0.0, abs=1e-12)
    shifted = population_stability_index(constant, np.full(20, 2.0))
    assert np.isfinite(shifted) and shifted > MAJOR_PSI
    assert np.isfinite(population_stability_index(_normal(100), constant))


@pytest.mark.parametrize(
    ("expected", "actual", "bins"),
    [([], [1.0], 10), ([1.0, 2.0], [], 10), ([1.0, np.nan], [1.0], 10), ([1.0, np.inf], [1.0], 10),
     ([1.0, 2.0], [1.0], 0), ([1.0, 2.0], [1.0], 2.5)],
)  # fmt: skip
def test_psi_refuses_bad_input(expected, actual, bins):
    with pytest.raises(BadInputError) as info:
        population_stability_index(expected, actual, bins)
    assert info.value.reason is Reason.INVALID_PARAMETER


def test_psi_bins_shrink_with_small_samples():
    assert psi_bins(1000, 500) == PSI_BINS
    assert psi_bins(200, 50) == 5
    assert psi_bins(12, 20) == psi_bins(3, 3) == 2


def test_ks_test_tells_same_from_shifted():
    x = _normal(200)
    assert ks_test(x, x) == (0.0, 1.0)
    statistic, pvalue = ks_test(x, x + 3.0)
    assert statistic > 0.8 and pvalue < 1e-10


@pytest.mark.parametrize(
    ("score_psi", "score_p", "level_psi", "level_p", "state"),
    [
        (0.05, 0.5, 0.08, 0.5, STABLE),
        (None, None, 0.08, 0.5, STABLE),
        (0.1, 0.5, 0.1, 0.5, STABLE),  # thresholds are strict
        (0.12, 0.5, 0.05, 0.9, STABLE),  # a moderate PSI the KS test does not confirm: noise on a small sample
        (0.12, 0.04, 0.05, 0.9, WATCH),
        (0.05, 0.9, 0.2, 0.001, WATCH),
        (0.9, 0.2, 0.05, 0.9, STABLE),  # even a major PSI: the KS test does not confirm it
        (0.9, 0.02, 0.05, 0.9, WATCH),  # confirmed at 5 % but not at 1 %
        (MAJOR_PSI, KS_ALPHA / 10, 0.05, 0.9, WATCH),
        (0.3, KS_ALPHA / 10, 0.05, 0.9, RETRAIN),
        (None, None, 0.3, KS_ALPHA / 10, RETRAIN),
        (0.05, 0.9, 0.3, KS_ALPHA, WATCH),
        (0.3, 0.5, 0.3, 0.001, RETRAIN),
    ],
)
def test_classify(score_psi, score_p, level_psi, level_p, state):
    assert classify(score_psi, score_p, level_psi, level_p) == state


@pytest.mark.parametrize(
    ("score_psi", "score_p", "level_psi", "level_p", "reason"),
    [
        (0.05, 0.5, 0.08, 0.6, "no significant shift: score PSI 0.05 <= 0.1; level PSI 0.08 <= 0.1"),
        (0.23, 0.41, 0.05, 0.9, "no significant shift: score PSI 0.23, KS p 0.41 >= 0.05; level PSI 0.05 <= 0.1"),
        (None, None, 0.9, 0.2, "no significant shift: level PSI 0.90, KS p 0.2 >= 0.05"),
        (0.1, 0.01, None, None, "no significant shift: score PSI 0.10 <= 0.1"),
        (0.3, WATCH_ALPHA, 0.12, 0.07, "no significant shift: score PSI 0.30, KS p 0.05 >= 0.05; "
                                       "level PSI 0.12, KS p 0.07 >= 0.05"),
    ],
)  # fmt: skip
def test_the_stable_reason_agrees_with_the_rule(score_psi, score_p, level_psi, level_p, reason):
    """A PSI above 0.1 is never called "<= 0.1": it is stable because its KS test is not significant."""
    assert classify(score_psi, score_p, level_psi, level_p) == STABLE
    assert stable_reason(score_psi, score_p, level_psi, level_p) == reason


def test_mel_band_centres_rise_within_the_nyquist_band():
    centres = mel_band_centres(16_000, 64)
    assert centres.shape == (64,) and np.all(np.diff(centres) > 0)
    assert 0 < centres[0] < 100 and 7000 < centres[-1] < 8000


# --- drift reports on a real database ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _template(tmp_path_factory) -> dict[str, Path]:
    """Once per module: a demo fan (60 normal + 4 abnormal 2 s clips) ingested, a Mahalanobis model trained and
    every clip scored; beside it, 20 newer clips of the same sound and 20 of the same machine in a louder factory."""
    from core.datasets.demo import write_plant
    from core.workflows.ingest import ingest
    from core.workflows.scoring import score
    from core.workflows.training import train

    root = tmp_path_factory.mktemp("drift")
    write_plant(root / "plant", machines=1, normal=N_TRAINED_PLANT + N_LATER, abnormal=4, duration_s=2.0, seed=0,
                n_jobs=1)  # fmt: skip
    later = root / "later" / "6dB" / "fan" / "id_00" / "normal"
    later.mkdir(parents=True)
    for path in sorted((root / "plant" / "6dB" / "fan" / "id_00" / "normal").glob("*.wav"))[N_TRAINED_PLANT:]:
        shutil.move(path, later / path.name)
    write_plant(root / "shifted", machines=1, normal=N_SHIFTED, abnormal=0, duration_s=2.0, seed=0, snr_db=-6.0,
                n_jobs=1)  # fmt: skip
    data = root / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATA_DIR", str(data))
        patch.delenv("DATABASE_URL", raising=False)
        report = ingest([str(root / "plant")])
        assert (report.ingested, report.rejected) == (N_TRAINED_PLANT + 4, [])
        assert train(MACHINE, "mahalanobis").trained
        score()
        dispose_engines()
    return {"data": data, "later": root / "later", "shifted": root / "shifted"}


@pytest.fixture
def trained(data_dir, _template) -> dict[str, Path]:
    """This test's DATA_DIR holding its own copy of the template's database (models and clips stay in the template)."""
    from db.session import DB_FILENAME

    dispose_engines()
    data_dir.mkdir(parents=True, exist_ok=True)
    for file in _template["data"].glob(f"{DB_FILENAME}*"):
        shutil.copy2(file, data_dir / file.name)
    return _template


def _ingest(*paths: Path) -> int:
    from core.workflows.ingest import ingest

    report = ingest([str(p) for p in paths])
    assert report.rejected == []
    return report.ingested


def _copy_clips(source: Path, target: Path, n: int) -> list[Path]:
    """The first ``n`` WAV files under ``source``, copied into ``target`` in the same MIMII layout (fan/id_00)."""
    folder = target / "6dB" / "fan" / "id_00" / "normal"
    folder.mkdir(parents=True)
    return [Path(shutil.copy2(path, folder / path.name)) for path in sorted(source.rglob("*.wav"))[:n]]


def test_no_clip_since_training_is_not_enough_data(trained):
    report = drift_report(MACHINE)
    assert report.state == NOT_ENOUGH_DATA
    assert report.n_recent == 0  # the held-out normals and the abnormal clips are neither training nor recent
    assert report.n_reference >= MIN_CLIPS
    assert any("only 0 recent clips" in reason for reason in report.reasons)
    assert report.score_psi is None and report.level_psi is None


def test_newer_clips_of_the_same_sound_are_not_drift(trained):
    assert _ingest(trained["later"]) == N_LATER
    report = drift_report(MACHINE)
    assert report.state in (STABLE, WATCH), report.reasons
    if report.state == STABLE:
        assert report.reasons[-1] == stable_reason(
            report.score_psi, report.score_ks_pvalue, report.level_psi, report.level_ks_pvalue
        )
    assert report.n_recent == N_LATER  # the 4 abnormal clips are left out although recent=50
    assert report.n_reference + report.n_held_out == N_TRAINED_PLANT
    assert report.n_reference >= MIN_CLIPS and report.n_held_out >= MIN_CLIPS
    assert report.score_psi is not None and report.score_ks_pvalue > KS_ALPHA
    assert report.level_ks_pvalue > KS_ALPHA
    assert (report.detector, report.model_version, report.n_unreadable) == ("mahalanobis", 1, 0)


def test_a_louder_factory_suggests_retraining(trained):
    _ingest(trained["later"], trained["shifted"])
    report = drift_report(MACHINE, recent=N_SHIFTED)  # the newest: the shifted clips
    assert report.state == RETRAIN, report.reasons
    assert report.n_recent == N_SHIFTED
    assert report.score_psi > MAJOR_PSI and report.score_ks_pvalue < KS_ALPHA
    assert report.level_psi > MAJOR_PSI and report.level_ks_pvalue < KS_ALPHA
    assert any(r.startswith("scores of recent clips shifted: PSI") and "> 0.25" in r for r in report.reasons)
    assert any(r.startswith("log-mel levels of recent clips shifted") and " Hz)" in r for r in report.reasons)
    assert report.reasons[-1].startswith(f"{RETRAIN_ADVICE}: ")
    assert len(report.worst_bands) == 3
    band, centre_hz, psi = report.worst_bands[0]
    assert 0 <= band < 64 and 0 < centre_hz < 8000 and psi == pytest.approx(report.level_psi)
    assert report.retrain_command == "python -m core train --machine fan/id_00 --detector mahalanobis"
    from dataclasses import replace  # what the command says for a PCEN model, and for an automatic choice's

    pcen = replace(report, front_end="pcen")
    assert pcen.retrain_command == "python -m core train --machine fan/id_00 --detector mahalanobis --front-end pcen"
    assert replace(pcen, automatic=True).retrain_command == "python -m core train --machine fan/id_00 --detector auto"
    payload = json.loads(json.dumps(report.as_json()))
    assert payload["state"] == RETRAIN and payload["machine"] == MACHINE
    assert payload["worst_bands"][0]["band"] == band and set(payload["worst_bands"][0]) == {"band", "centre_hz", "psi"}


def test_retraining_after_drift_learns_the_field_clips_pilots_confirmed_normal(trained, tmp_path):
    """Field snippets (as `watch` ingests them: label unknown, split none) of a louder factory: the advice counts
    those confirmed normal, and retraining takes exactly those into what the model learned from."""
    from core.workflows.training import train
    from core.workflows.triage import record_verdict
    from db.queries import clips_newest_first, machine_by_key
    from db.session import session_scope

    field = tmp_path / "field" / "fan" / "id_00"
    field.mkdir(parents=True)
    for path in sorted(trained["shifted"].rglob("*.wav")):
        shutil.copy2(path, field / path.name)
    assert _ingest(tmp_path / "field") == N_SHIFTED
    report = drift_report(MACHINE, recent=N_SHIFTED)
    assert report.state == RETRAIN, report.reasons
    assert report.reasons[-1] == f"{RETRAIN_ADVICE}: 0 of the {N_SHIFTED} recent clips so far"

    with session_scope() as session:
        newest = clips_newest_first(session, machine_by_key(session, MACHINE).id)[:N_SHIFTED]
    assert {(c.label, c.split) for c in newest} == {("unknown", "none")}
    for clip in newest[:5]:
        record_verdict(clip.id, "alice", "normal")
    record_verdict(newest[5].id, "bob", "unsure")
    report = drift_report(MACHINE, recent=N_SHIFTED)  # one annotator's word alone is not trusted (the default)
    assert report.reasons[-1] == f"{RETRAIN_ADVICE}: 0 of the {N_SHIFTED} recent clips so far"
    for clip in newest[:5]:
        record_verdict(clip.id, "carol", "normal")  # a second annotator confirms five
    report = drift_report(MACHINE, recent=N_SHIFTED)
    assert report.reasons[-1] == f"{RETRAIN_ADVICE}: 5 of the {N_SHIFTED} recent clips so far"

    (retrained,) = train(MACHINE, "mahalanobis").trained
    assert retrained.n_from_verdicts == 5
    report = drift_report(MACHINE, recent=N_SHIFTED)
    assert report.model_version == 2
    assert report.n_recent == N_SHIFTED - 5  # the confirmed clips are now what the model learned from


def test_a_second_report_reads_only_the_recent_clips_audio(trained, monkeypatch):
    """The reference levels are cached per model: counted through the real feature extraction."""
    import core.workflows.drift

    monkeypatch.setattr(core.workflows.drift, "_REFERENCE_CACHE", OrderedDict())  # nothing cached by earlier tests
    reads: Counter[str] = Counter()
    real = core.workflows.drift.extract_features

    def counted(paths, *args, **kwargs):
        reads.update(paths)
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(core.workflows.drift, "extract_features", counted)
    _ingest(trained["later"])
    first, second = drift_report(MACHINE), drift_report(MACHINE)

    assert first.as_json() == second.as_json()
    recent = {p for p in reads if Path(p).is_relative_to(trained["later"])}
    reference = set(reads) - recent
    assert len(recent) == first.n_recent == N_LATER and set(reads[p] for p in recent) == {2}
    assert len(reference) == first.n_reference >= MIN_CLIPS and set(reads[p] for p in reference) == {1}


def test_a_read_only_report_scores_nothing(trained):
    """``score_missing=False`` (the Overview page): unscored recent clips are left out of the score comparison."""
    from db.models import Score
    from db.session import session_scope

    def n_scores() -> int:
        with session_scope() as session:
            return session.query(Score).count()

    _ingest(trained["later"])
    before = n_scores()
    report = drift_report(MACHINE, score_missing=False)
    assert n_scores() == before
    assert report.score_psi is None and report.level_psi is not None and report.n_recent == N_LATER
    assert f"{N_LATER} clips not scored yet were left out of the score comparison (`python -m core score " \
           f"--machine {MACHINE}` scores them)" in report.reasons  # fmt: skip
    assert drift_report(MACHINE).score_psi is not None  # the CLI's default scores them
    assert n_scores() == before + N_LATER


def test_clips_confirmed_abnormal_are_not_drift(trained):
    from core.workflows.triage import record_verdict
    from db.queries import clips_newest_first, machine_by_key
    from db.session import session_scope

    _ingest(trained["shifted"])
    with session_scope() as session:
        newest = clips_newest_first(session, machine_by_key(session, MACHINE).id)[:N_SHIFTED]
    for clip in newest:
        record_verdict(clip.id, "alice", "abnormal")
    report = drift_report(MACHINE)
    assert report.state == NOT_ENOUGH_DATA and report.n_recent == 0


def test_too_few_recent_clips_is_not_enough_data(trained, tmp_path):
    _copy_clips(trained["shifted"], tmp_path / "few", 5)
    assert _ingest(tmp_path / "few") == 5
    report = drift_report(MACHINE)
    assert report.state == NOT_ENOUGH_DATA  # clearly shifted, but five clips are no evidence
    assert any(f"only 5 recent clips outside the training set (need {MIN_CLIPS})" in r for r in report.reasons)


def test_a_machine_without_a_model_is_not_enough_data(_template):
    _ingest(_template["later"])
    report = drift_report(MACHINE)
    assert report.state == NOT_ENOUGH_DATA and report.detector is None
    assert any("no active model" in r and "python -m core train --machine fan/id_00" in r for r in report.reasons)


def test_a_hostile_machine_name_is_quoted_in_the_suggested_command(tmp_path):
    """A folder named to run a command: the "train one with ..." command pasted into bash runs nothing else."""
    from tests.conftest import tone, write_wav
    from tests.test_commands import HOSTILE, MARKER, run_pasted

    for k, name in enumerate(HOSTILE[:4]):
        write_wav(tmp_path / "field" / name / "id_00" / "a.wav", tone(1.0, seed=k))
        assert _ingest(tmp_path / "field" / name) == 1
        machine = f"{name}/id_00"
        (reason,) = [r for r in drift_report(machine).reasons if r.startswith("no active model")]
        command = reason.removeprefix("no active model: train one with `").removesuffix("`")
        assert run_pasted(command, tmp_path) == ["-m", "core", "train", "--machine", machine]
        assert not (tmp_path / MARKER).exists()


def test_unreadable_clips_are_skipped_and_counted(trained, tmp_path):
    copies = _copy_clips(trained["shifted"], tmp_path / "new", 14)
    assert _ingest(tmp_path / "new") == 14
    copies[0].unlink()
    copies[1].write_bytes(b"not audio any more")
    report = drift_report(MACHINE)
    assert report.n_unreadable == 2 and report.n_recent == 12
    assert report.state == RETRAIN  # the readable ones still tell
    assert any("2 clips could not be read and were skipped" in r for r in report.reasons)


def test_clips_at_another_sample_rate_are_left_out_and_counted(trained, tmp_path):
    from tests.conftest import tone, write_wav

    folder = tmp_path / "8k" / "6dB" / "fan" / "id_00" / "normal"
    for i in range(12):
        write_wav(folder / f"{i:08d}.wav", tone(2.0, sr=8000, freq=1000.0 + 20 * i, seed=i), sr=8000)
    assert _ingest(trained["later"], tmp_path / "8k") == N_LATER + 12
    report = drift_report(MACHINE)
    assert report.n_recent == N_LATER and report.state in (STABLE, WATCH), report.reasons
    assert any("12 clips recorded at another sample rate than 16000 Hz were left out" in r for r in report.reasons)


def test_drift_reports_cover_the_matching_machines(trained):
    reports = drift_reports()
    assert [r.machine for r in reports] == [MACHINE]
    assert [r.machine for r in drift_reports("fan")] == [MACHINE]
    for spec in ("pump", "fan/id_09"):
        with pytest.raises(BadInputError):
            drift_reports(spec)
    with pytest.raises(BadInputError):
        drift_report("fan")  # a type is no machine
    with pytest.raises(BadInputError):
        drift_report(MACHINE, recent=0)


def test_the_cache_key_is_the_machine_and_its_active_model(trained):
    from core.workflows.training import train

    before = drift_cache_key(MACHINE)
    assert before[0] == MACHINE and before[1] is not None
    _ingest(trained["later"])
    assert drift_cache_key(MACHINE) == before  # new clips alone do not invalidate a cached report
    (retrained,) = train(MACHINE, "mahalanobis").trained
    assert drift_cache_key(MACHINE) == (MACHINE, retrained.model_id)
    assert drift_cache_key("fan/id_09") == ("fan/id_09", None)


def test_an_active_model_that_cannot_score_here_is_named_in_words(trained):
    """A model kept elsewhere (e.g. in Rekognition: no artifact here) leaves the scores uncompared, and says so."""
    from db.models import DetectorModel
    from db.session import session_scope

    _ingest(trained["later"])
    with session_scope() as session:
        session.query(DetectorModel).update({DetectorModel.artifact_path: None})
    report = drift_report(MACHINE)
    assert report.score_psi is None and report.level_psi is not None
    assert "scores not compared: the active model (Mahalanobis v1) cannot score clips here" in report.reasons
