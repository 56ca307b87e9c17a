"""Benchmark: detector quality (ROC AUC and pAUC at FPR <= 0.1, per machine) on the demo plant
at several SNRs and on the real recordings in ../shared/data/real, for every detector.

Runs the product's own pipeline in a scratch DATA_DIR: ingest, train each detector per
machine on its normal training clips, score, and compare on the test split.

    python bench/quality.py                                  # the README's figures
    python bench/quality.py --machines 1 --normal 6 --abnormal 2 --duration 2 --epochs 1 --no-real  # smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "real"


def evaluate_dataset(label: str, sources: list[str], epochs: int) -> list[tuple]:
    """Ingest ``sources`` into a fresh database, train every detector, compare per machine."""
    from core.detection.registry import detector_names
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
        for name in detector_names():
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
    from core.detection.registry import detector_class, detector_names
    from core.signal.batch import extract_features

    clips = discover(REAL / "mimii_ch0" / "fan")
    batch = extract_features([c.path for c in clips])
    normal = [batch.features[c.path] for c in clips if c.label == "normal"]
    abnormal = [batch.features[c.path] for c in clips if c.label == "abnormal"]
    results = {name: [] for name in detector_names()}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        order = rng.permutation(len(normal))
        train = [normal[i] for i in order[:n_train]]
        test = [normal[i] for i in order[n_train:]] + abnormal
        y = np.r_[np.zeros(len(normal) - n_train, bool), np.ones(len(abnormal), bool)]
        for name in detector_names():
            params = {"epochs": epochs} if name == "autoencoder" else {}
            scores = detector_class(name)(**params).fit(train).decision_function(test)
            results[name].append((roc_auc(y, scores), partial_auc(y, scores)))
    rows = []
    for name, values in results.items():
        auc, pauc = np.mean(values, axis=0)
        low = min(v[0] for v in values)
        rows.append((f"real fan x{repeats}", f"mimii fan (min AUC {low:.2f})", name, auc, pauc, len(test)))
    return rows


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
    args = parser.parse_args(argv)

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
