"""Benchmark: detector quality (ROC AUC and pAUC at FPR <= 0.1, per machine) on the demo plant
at several SNRs and on the real recordings in ../shared/data/real, for every detector.

Runs the product's own pipeline in a scratch DATA_DIR: ingest, train each detector per
machine on its normal training clips, score, and compare on the test split.

    python bench/quality.py                                  # the README's figures
    python bench/quality.py --machines 1 --normal 6 --abnormal 2 --duration 2 --epochs 1 --no-real  # smoke
    python bench/quality.py --real ../shared/data/real       # few-shot quality on real recordings (README table)

``--real DIR`` runs every detector and the automatic choice on every machine found under DIR (any layout the
product reads: MIMII, DCASE) that has enough labelled clips, on few-shot splits (``--train-sizes``, default 6 and
12 normal clips to train on, each at several ``--seeds``; the other normals and every abnormal clip are the test
set), and prints AUC and pAUC (FPR <= 0.1) per machine and in mean, and the share of test normals the automatic
choice's first threshold flags (per machine, with a 95% binomial interval).  ``--mean-of PART`` adds the mean over
the machines whose folder/type/id contains PART (``neg6db``: the noisy MIMII four), with its standard error over seeds.

``--real DIR --faults K`` is the same after a first day of triage: ``K`` abnormal clips of each machine (drawn per
seed) are faults the team confirmed, outside the test split; every detector is graded on the rest, and
``auto+faults`` (the automatic choice weighing them) runs beside ``auto`` (the choice without them).

``--real DIR --absolute-levels`` is an experiment: the same with features on one dB scale for every clip (each
clip's level added back: ``power_to_db(ref=1.0)``), so that a machine grown louder or quieter shows; the product's
features are in dB below each clip's loudest mel bin, the seed's recipe.

``--real DIR --weight-check`` checks the automatic choice's one tuned constant, ``OTHER_WEIGHT``, on machines it was
not tuned on: one cross-validation run and one fit of every candidate per split (the first ``--train-sizes``), then
for each machine the weight (from 0.5 to 1.0) that does best on the *other* machines, applied to this one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "real"


def evaluate_dataset(label: str, sources: list[str], epochs: int) -> list[tuple]:
    """Ingest ``sources`` into a fresh database, train every detector, compare per machine."""
    from core.detection.registry import CHOSEN_ONLY, detector_names
    from core.workflows.evaluation import compare_detectors
    from core.workflows.ingest import ingest
    from core.workflows.training import train
    from db.queries import machines_matching
    from db.session import dispose_engines, session_scope

    with tempfile.TemporaryDirectory() as data:
        os.environ["DATA_DIR"] = data
        dispose_engines()
        ingest(sources)
        trained = set()
        for name in (n for n in detector_names() if n not in CHOSEN_ONLY):  # the ensemble is only chosen
            trained |= {t.scope for t in train(None, name, epochs=epochs).trained}
        with session_scope() as session:
            machines = [m.key for m in machines_matching(session) if m.key in trained]
        rows = []
        for machine in machines:
            for r in compare_detectors(machine):
                rows.append((label, machine, r["detector"], r["auc"], r["pauc"], r["n_test"]))
        dispose_engines()
    return rows


def real_fan_repeated_splits(epochs: int, repeats: int, n_train: int = 5) -> list[tuple]:
    """The real MIMII fan clips (10 normal, 10 abnormal): ``repeats`` random splits, each training
    every detector on ``n_train`` normals and testing on the other normals and all abnormals."""
    import numpy as np

    from core.datasets.layouts import discover
    from core.detection.metrics import partial_auc, roc_auc
    from core.detection.registry import CHOSEN_ONLY, detector_class, detector_names
    from core.signal.batch import extract_features

    names = [n for n in detector_names() if n not in CHOSEN_ONLY | {"machine_id"}]  # one machine, fitted alone

    clips = discover(REAL / "mimii_ch0" / "fan")
    batch = extract_features([c.path for c in clips])
    normal = [batch.features[c.path] for c in clips if c.label == "normal"]
    abnormal = [batch.features[c.path] for c in clips if c.label == "abnormal"]
    results = {name: [] for name in names}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        order = rng.permutation(len(normal))
        train = [normal[i] for i in order[:n_train]]
        test = [normal[i] for i in order[n_train:]] + abnormal
        y = np.r_[np.zeros(len(normal) - n_train, bool), np.ones(len(abnormal), bool)]
        for name in names:
            params = {"epochs": epochs} if name == "autoencoder" else {}
            scores = detector_class(name)(**params).fit(train).decision_function(test)
            results[name].append((roc_auc(y, scores), partial_auc(y, scores)))
    rows = []
    for name, values in results.items():
        auc, pauc = np.mean(values, axis=0)
        low = min(v[0] for v in values)
        rows.append((f"real fan x{repeats}", f"mimii fan (min AUC {low:.2f})", name, auc, pauc, len(test)))
    return rows


def real_machines(root: Path, *, absolute_levels: bool = False) -> dict[str, tuple[list, list]]:
    """``{"<folder>/<type>/<id>": (normal features, abnormal features)}`` for every machine under ``root``; with
    ``absolute_levels``, each clip's features on one dB scale for every clip (:func:`clip_level_db` added back, as
    ``librosa.power_to_db(ref=1.0)``) instead of below the clip's own loudest mel bin, the product's (the seed's)
    reference, which hides a change of the machine's level."""
    from core.datasets.layouts import discover
    from core.signal.batch import extract_features

    clips = discover(root)
    batch = extract_features([c.path for c in clips])
    machines: dict[str, tuple[list, list]] = {}
    for c in clips:
        if c.path not in batch.features or c.label not in ("normal", "abnormal"):
            continue
        folder = Path(c.path).resolve().relative_to(root.resolve()).parts[0]
        key = f"{folder}/{c.machine_type}/{c.machine_id}"
        features = batch.features[c.path] + (clip_level_db(c.path) if absolute_levels else 0.0)
        machines.setdefault(key, ([], []))[c.label == "abnormal"].append(features)
    return machines


def clip_level_db(path: str) -> float:
    """The loudest mel bin of ``path`` (channel 0) in dB of unit power (``ref=1.0``; the STFT unnormalised, so a
    full-scale tone reads well above 0 dB): what 0 dB of its features stands for."""
    import librosa
    import numpy as np

    from core.signal.audio import load_clip
    from core.signal.features import AMIN, FeatureParams

    p, clip = FeatureParams(), load_clip(path, 0)
    power = librosa.feature.melspectrogram(y=clip.signal, sr=clip.sr, n_fft=p.n_fft, hop_length=p.hop_length,
                                           n_mels=p.n_mels)  # fmt: skip
    return float(10.0 * np.log10(max(float(power.max()), AMIN)))


def _siblings(machines: dict, key: str) -> list[list]:
    """The normal clips of the other machines of ``key``'s type (any folder): other IDs only, as the product keys
    machines by type and ID (the DCASE 2020 recordings of MIMII's fan id_06 are that same fan, not another one)."""
    _, kind, machine_id = key.split("/")
    return [normal for other, (normal, _) in machines.items()
            if normal and other.split("/")[1] == kind and other.split("/")[2] != machine_id]  # fmt: skip


def _fit_score(label: str, train: list, test: list, others: list, epochs: int, faults: list = ()) -> tuple:
    """``(test scores, first threshold or None, chosen or None)`` of one detector configuration, ``auto`` or
    ``auto+faults`` (the choice weighing ``faults``, confirmed faults outside the test set)."""
    import numpy as np

    from core.detection.base import FrontEnd
    from core.detection.ensemble import fit_detector
    from core.detection.registry import detector_class
    from core.detection.selection import choose_detector
    from core.detection.thresholds import DEFAULT_QUANTILE, prediction_threshold

    if label in ("auto", "auto+faults"):
        choice = choose_detector(train, others, faults=faults if label == "auto+faults" else ())
        model = fit_detector(detector_class(choice.detector)(**choice.params), train, others)
        reference = choice.held_out_normal if len(choice.held_out_normal) >= 2 else model.decision_scores_
        threshold = prediction_threshold(np.asarray(reference), DEFAULT_QUANTILE)
        return model.decision_function(test), threshold, choice.chosen
    name, *options = label.split(":")  # mahalanobis, frame_gmm:top10, frame_gmm:top10:pcen
    params = {"epochs": epochs} if name in ("autoencoder", "machine_id") else {}
    for option in options:
        params["front_end" if option in list(FrontEnd) else "pooling"] = option
    model = fit_detector(detector_class(name)(**params), train, others)
    return model.decision_function(test), None, None


REAL_DETECTORS = ["autoencoder", "mahalanobis", "band_deviation:max", "band_deviation:mean", "frame_knn:top10",
                  "frame_gmm:top10", "mahalanobis:pcen", "frame_knn:top10:pcen", "frame_gmm:top10:pcen", "machine_id",
                  "auto"]  # fmt: skip


def few_shot_split(normal: list, abnormal: list, n_train: int, seed: int) -> tuple[list, list, Any]:
    """``(train, test normals, y)``: ``n_train`` normals drawn with ``seed`` to train on, the other normals, and the
    labels of the test set, bool ``(n_test,)`` (those normals, then every abnormal clip; True = abnormal)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(normal))
    test = [normal[i] for i in order[n_train:]]
    return [normal[i] for i in order[:n_train]], test, np.r_[np.zeros(len(test), bool), np.ones(len(abnormal), bool)]


def confirmed_faults(abnormal: list, k: int, seed: int) -> tuple[list, list]:
    """``(faults, test abnormals)``: ``k`` abnormal clips drawn with ``seed`` as faults the team confirmed outside
    the test split, and the others."""
    import numpy as np

    order = np.random.default_rng(1_000 + seed).permutation(len(abnormal))
    return [abnormal[i] for i in order[:k]], [abnormal[i] for i in order[k:]]


def real_benchmark(root: Path, train_sizes: list[int], seeds: int, epochs: int, detectors: list[str],
                   faults: int = 0, absolute_levels: bool = False) -> list[dict]:  # fmt: skip
    """One row per machine, training size, seed and detector: ``{"machine", "n_train", "seed", "detector", "auc",
    "pauc", "flagged_normal", "n_test_normal", "chosen"}`` (``flagged_normal``: how many of the ``n_test_normal``
    test normals score above the automatic choice's first threshold; None for the other detectors).  With
    ``faults``, that many abnormal clips per split are confirmed faults (:func:`confirmed_faults`), out of the test
    set; machines with fewer than ``faults + 2`` abnormal clips are skipped.  ``absolute_levels``: see
    :func:`real_machines`."""
    import numpy as np

    from core.detection.metrics import partial_auc, roc_auc

    machines = real_machines(root, absolute_levels=absolute_levels)
    rows = []
    for key, (normal, abnormal) in sorted(machines.items()):
        others = _siblings(machines, key)
        for n_train in train_sizes:
            if len(normal) < n_train + 2 or len(abnormal) < (faults + 2 if faults else 1):
                continue
            for seed in range(seeds):
                confirmed, graded = confirmed_faults(abnormal, faults, seed)
                train, test, y = few_shot_split(normal, graded, n_train, seed)
                for label in detectors:
                    if label == "machine_id" and not others:
                        continue
                    scores, threshold, chosen = _fit_score(label, train, test + graded, others, epochs, confirmed)
                    flagged = None if threshold is None else int(np.sum(scores[: len(test)] > threshold))
                    rows.append({"machine": key, "n_train": n_train, "seed": seed, "detector": label,
                                 "auc": roc_auc(y, scores), "pauc": partial_auc(y, scores),
                                 "flagged_normal": flagged, "n_test_normal": len(test), "chosen": chosen})  # fmt: skip
            print_progress([r for r in rows if r["machine"] == key and r["n_train"] == n_train])
    return rows


def print_progress(rows: list[dict]) -> None:
    """One machine's mean test AUC per detector over its splits, to stderr as soon as it is done (a run of many
    seeds takes half an hour)."""
    import numpy as np

    if not rows:
        return
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    means = ", ".join(f"{d} {np.mean([r['auc'] for r in rows if r['detector'] == d]):.2f}" for d in detectors)
    splits = len({r["seed"] for r in rows})
    print(f"{rows[0]['machine']} ({rows[0]['n_train']} to train on, {splits} split{'s' * (splits != 1)}): {means}",
          file=sys.stderr, flush=True)  # fmt: skip


WEIGHTS = [round(0.5 + 0.05 * i, 2) for i in range(11)]  # the grid of --weight-check: 0.5, 0.55, ..., 1.0


def candidate_runs(root: Path, n_train: int, seeds: int) -> list[dict]:
    """Per machine that has other machines of its type, per few-shot split: ``{"machine", "seed", "by_kind":
    {candidate: pseudo-AUC per evidence kind}, "test_auc": {candidate: test AUC}}``, from one run of the automatic
    choice's cross-validation and one fit of every candidate on the split's training clips (its test AUC)."""
    from core.detection.ensemble import fit_detector
    from core.detection.metrics import roc_auc
    from core.detection.registry import detector_class
    from core.detection.selection import CANDIDATES, MACHINE_ID_CANDIDATE, choose_detector

    candidates = dict(CANDIDATES) | {"machine_id": MACHINE_ID_CANDIDATE}
    machines = real_machines(root)
    runs = []
    for key, (normal, abnormal) in sorted(machines.items()):
        others = _siblings(machines, key)
        if not others or len(normal) < n_train + 2 or not abnormal:
            continue
        for seed in range(seeds):
            train, test, y = few_shot_split(normal, abnormal, n_train, seed)
            test = test + abnormal
            evidence = {k: v for k, v in choose_detector(train, others).evidence.items() if k != "ensemble"}
            if not evidence or not any("other_machines" in e["by_kind"] for e in evidence.values()):
                continue  # too few clips, or no other machine's clips to weigh
            aucs = {}
            for label in evidence:
                name, hyper = candidates[label]
                model = fit_detector(detector_class(name)(**hyper), train, others)
                aucs[label] = roc_auc(y, model.decision_function(test))
            runs.append({"machine": key, "seed": seed, "by_kind": {k: e["by_kind"] for k, e in evidence.items()},
                         "test_auc": aucs})  # fmt: skip
    return runs


def chosen_auc(run: dict, weight: float) -> float:
    """The test AUC of the candidate the automatic choice picks in ``run`` with ``OTHER_WEIGHT = weight``: the
    highest weighted pseudo-AUC (rounded as the choice rounds it, the first on a tie), alone, as with other
    machines' clips it always is."""
    from core.detection.selection import weighted_auc

    best = max(run["by_kind"], key=lambda label: round(weighted_auc(run["by_kind"][label], weight), 3))
    return run["test_auc"][best]


def weight_check(runs: list[dict], grid: list[float]) -> list[dict]:
    """Leave one machine out: per machine, the weights of ``grid`` with the best mean test AUC over the *other*
    machines (each machine's mean over its splits), and this machine's mean test AUC with them (the mean over
    tied weights: any of them could have been picked), beside its AUC at the fixed :data:`OTHER_WEIGHT`.
    ``[{"machine", "weights", "nested", "fixed", "best"}]`` (``best``: its own best weight's AUC, an upper bound)."""
    import numpy as np

    from core.detection.selection import OTHER_WEIGHT

    machines = sorted({r["machine"] for r in runs})
    table = {m: {w: float(np.mean([chosen_auc(r, w) for r in runs if r["machine"] == m])) for w in grid}
             for m in machines}  # fmt: skip
    out = []
    for machine in machines:
        others = [m for m in machines if m != machine]
        if not others:
            continue
        mean_others = {w: float(np.mean([table[m][w] for m in others])) for w in grid}
        top = max(mean_others.values())
        weights = [w for w in grid if mean_others[w] >= top - 1e-9]
        nested = float(np.mean([table[machine][w] for w in weights]))
        out.append({"machine": machine, "weights": weights, "nested": nested,
                    "fixed": float(np.mean([chosen_auc(r, OTHER_WEIGHT) for r in runs if r["machine"] == machine])),
                    "best": max(table[machine].values())})  # fmt: skip
    return out


def print_weight_check(runs: list[dict], grid: list[float]) -> None:
    """Per machine and in mean: the weight chosen on the other machines, the AUC it gives here, the fixed weight's."""
    import numpy as np

    from core.detection.selection import OTHER_WEIGHT

    rows = weight_check(runs, grid)
    print(f"weight check: OTHER_WEIGHT chosen from {grid[0]}..{grid[-1]} on the other machines' mean test AUC")
    print(f"{'machine':<34}{'splits':>7}{'weight(s) chosen':>22}{'AUC':>7}{'AUC at ' + str(OTHER_WEIGHT):>13}"
          f"{'own best':>10}")  # fmt: skip
    for r in rows:
        splits = sum(1 for run in runs if run["machine"] == r["machine"])
        chosen = _spans(r["weights"], grid)
        print(f"{r['machine']:<34}{splits:>7}{chosen:>22}{r['nested']:>7.2f}{r['fixed']:>13.2f}{r['best']:>10.2f}")
    if rows:
        mean = {k: np.mean([r[k] for r in rows]) for k in ("nested", "fixed", "best")}
        print(f"{'mean (leave one machine out)':<34}{'':>7}{'':>22}{mean['nested']:>7.2f}{mean['fixed']:>13.2f}"
              f"{mean['best']:>10.2f}")  # fmt: skip


def _spans(weights: list[float], grid: list[float]) -> str:
    """``weights`` (a subset of ``grid``) as runs of neighbours on the grid: ``"0.5-0.65,0.9"``."""
    index = [grid.index(w) for w in weights]
    runs = [[index[0]]] if index else []
    for i in index[1:]:
        if i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(f"{grid[r[0]]:g}" + (f"-{grid[r[-1]]:g}" if len(r) > 1 else "") for r in runs)


def seed_means(rows: list[dict], detector: str, n_train: int, machines: set[str]) -> list[float]:
    """Per seed, the mean AUC of ``detector`` over ``machines`` (those that have a row for it at that seed)."""
    import numpy as np

    picked = [r for r in rows if r["detector"] == detector and r["n_train"] == n_train and r["machine"] in machines]
    return [float(np.mean([r["auc"] for r in picked if r["seed"] == seed]))
            for seed in sorted({r["seed"] for r in picked})]  # fmt: skip


def print_mean_of(rows: list[dict], part: str) -> None:
    """The mean AUC over the machines whose key contains ``part``, per detector and training size, with its
    standard error over seeds (the seeds' means differ by which clips each split trains and tests on; the
    splits share one machine's clips, so read it as a lower bound on the uncertainty)."""
    import numpy as np

    machines = {r["machine"] for r in rows if part in r["machine"]}
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    for n in sorted({r["n_train"] for r in rows}):
        cells = []
        for detector in detectors:
            means = seed_means(rows, detector, n, machines)
            se = f"{np.std(means, ddof=1) / np.sqrt(len(means)):.3f}" if len(means) > 1 else "-"  # one seed: none
            cells.append(f"{np.mean(means):>11.3f} ± {se:<5}" if means else f"{'-':>20}")
        print(f"{'mean of *' + part + '* (' + str(len(machines)) + ')':<34}{n:>3}" + "".join(cells))


def print_real(rows: list[dict], mean_of: list[str] = ()) -> None:
    """Mean AUC (pAUC) per machine, training size and detector over the seeds, then the mean over machines (and
    over the machines whose key contains each of ``mean_of``, with the standard error over seeds)."""
    import numpy as np

    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    groups = sorted({(r["machine"], r["n_train"]) for r in rows}, key=lambda g: (g[1], g[0]))
    print(f"{'machine':<34}{'n':>3}" + "".join(f"{d[:19]:>20}" for d in detectors))

    def cell(selected: list[dict]) -> str:
        if not selected:
            return f"{'-':>20}"
        return f"{np.mean([r['auc'] for r in selected]):>11.2f} ({np.mean([r['pauc'] for r in selected]):.2f})"

    for machine, n in groups:
        picked = [r for r in rows if (r["machine"], r["n_train"]) == (machine, n)]
        print(f"{machine:<34}{n:>3}" + "".join(cell([r for r in picked if r["detector"] == d]) for d in detectors))
    for n in sorted({g[1] for g in groups}):
        print(f"{'mean, ' + str(n) + ' normals to train on':<34}{n:>3}" + "".join(
            cell([r for r in rows if r["n_train"] == n and r["detector"] == d]) for d in detectors))  # fmt: skip
    for part in mean_of:
        print_mean_of(rows, part)
    for label in ("auto", "auto+faults"):
        auto = [r for r in rows if r["detector"] == label]
        if not auto:
            continue
        chosen = ", ".join(f"{k} x{v}" for k, v in sorted(_count(r["chosen"] for r in auto).items()))
        print(f"{label}: first threshold flags {_flagged(auto)} of test normals; chosen: {chosen}")
        for machine, n in groups:
            picked = [r for r in auto if (r["machine"], r["n_train"]) == (machine, n)]
            print(f"  {machine:<32}{n:>3}  {_flagged(picked)}")


def _flagged(rows: list[dict]) -> str:
    """``"k/n = p% (95% CI lo-hi%)"``: the test normals the first threshold flags, pooled over ``rows``, with the
    exact (Clopper-Pearson) binomial interval.  The splits of one machine share its normal clips, so the interval
    treats dependent draws as independent: read it as a lower bound on the uncertainty."""
    from scipy.stats import binomtest

    k, n = sum(r["flagged_normal"] for r in rows), sum(r["n_test_normal"] for r in rows)
    if n == 0:
        return "-"
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95)
    return f"{k}/{n} = {k / n:.0%} (95% CI {ci.low:.0%}-{ci.high:.0%})"


def _count(items) -> dict:
    from collections import Counter

    return dict(Counter(items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=6, help="demo machines (default 6)")
    parser.add_argument("--normal", type=int, default=60, help="normal clips per demo machine (default 60)")
    parser.add_argument("--abnormal", type=int, default=15, help="abnormal clips per demo machine (default 15)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per demo clip (default 10)")
    parser.add_argument("--snr", type=float, nargs="+", default=[6.0, -6.0], help="demo SNRs in dB (default 6 -6)")
    parser.add_argument("--epochs", type=int, default=30, help="autoencoder epochs (default 30)")
    parser.add_argument("--no-real", action="store_true", help="skip ../shared/data/real")
    parser.add_argument("--repeats", type=int, default=20, help="random splits of the real fan clips (default 20)")
    parser.add_argument("--real", type=Path, help="only the few-shot benchmark on the real recordings under DIR")
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[6, 12], help="normals to train on (6 12)")
    parser.add_argument("--seeds", type=int, default=3, help="random few-shot splits per size (default 3)")
    parser.add_argument("--detectors", nargs="+", default=REAL_DETECTORS, help="with --real: what to run")
    parser.add_argument("--faults", type=int, default=0, help="with --real: abnormal clips per machine the team "
                        "confirmed before the test (out of it); adds auto+faults, the choice weighing them")
    parser.add_argument("--mean-of", nargs="+", default=[], metavar="PART", help="with --real: also the mean over "
                        "the machines whose folder/type/id contains PART (e.g. neg6db), ± its s.e. over seeds")
    parser.add_argument("--absolute-levels", action="store_true", help="with --real: features on one dB scale for "
                        "every clip, its level added back (an experiment: the product's are below each clip's top)")
    parser.add_argument("--weight-check", action="store_true", help="with --real: instead of the table, choose "
                        "OTHER_WEIGHT per machine on the other machines only (nested)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.real:
        import time

        started = time.perf_counter()
        if args.weight_check:
            print_weight_check(candidate_runs(args.real, args.train_sizes[0], args.seeds), WEIGHTS)
        else:
            extra = ["auto+faults"] if args.faults and "auto+faults" not in args.detectors else []
            detectors = args.detectors + extra
            rows = real_benchmark(args.real, args.train_sizes, args.seeds, args.epochs, detectors, args.faults,
                                  args.absolute_levels)  # fmt: skip
            print_real(rows, args.mean_of)
        print(f"took {time.perf_counter() - started:.0f} s")
        return 0

    from core.datasets.demo import write_plant

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for snr in args.snr:
            out = Path(tmp) / f"plant_{snr:g}"
            write_plant(out, machines=args.machines, normal=args.normal, abnormal=args.abnormal,
                        duration_s=args.duration, snr_db=snr)  # fmt: skip
            rows += evaluate_dataset(f"demo {snr:g} dB", [str(out)], args.epochs)
    if not args.no_real and REAL.is_dir():
        rows += evaluate_dataset("real (shared/data)", [str(REAL)], args.epochs)
        rows += real_fan_repeated_splits(args.epochs, args.repeats)

    print(f"{'data':<20}{'machine':<28}{'detector':<13}{'AUC':>7}{'pAUC':>7}{'n_test':>8}")
    for data, machine, detector, auc, pauc, n_test in rows:
        fmt = lambda v: f"{v:7.3f}" if v is not None else "      -"  # noqa: E731
        print(f"{data:<20}{machine:<28}{detector:<13}{fmt(auc)}{fmt(pauc)}{n_test:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
