"""Train the fraud model on feature vectors emitted by `fraudstream replay --emit-features`.

LightGBM binary classifier, time-based split (train | gap | validation for early stopping | test),
threshold chosen for a target flag rate, exported to ONNX (probabilities as a plain tensor, no ZipMap)
with a manifest beside it. Deterministic: the same features file gives byte-identical outputs.

    python models/train/train.py --features data/train/features.csv --out models/default
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnxmltools
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import average_precision_score, roc_auc_score

DAY_MS = 86_400_000
META = ["event_id", "event_time", "event_type", "label"]


def load(path: Path):
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[: len(META)] != META:
            sys.exit(f"{path}: expected the columns {META} first, got {header[:len(META)]}")
        names = header[len(META):]
        times, labels, rows = [], [], []
        for r in reader:
            times.append(int(r[1]))
            labels.append(int(r[3]))
            rows.append([float(x) for x in r[len(META):]])
    x = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(x).all():
        sys.exit(f"{path}: the features hold NaN or Infinity")
    return names, np.asarray(times, dtype=np.int64), np.asarray(labels, dtype=np.int32), x


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def at_threshold(y, p, threshold):
    flagged = p >= threshold
    tp = int((flagged & (y == 1)).sum())
    n_flag = int(flagged.sum())
    pos = int((y == 1).sum())
    return {
        "flag_rate": n_flag / len(y),
        "precision": tp / n_flag if n_flag else 0.0,
        "recall": tp / pos if pos else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, type=Path, help="CSV from replay --emit-features")
    ap.add_argument("--out", required=True, type=Path, help="folder for model.onnx, manifest.json, parity.json")
    ap.add_argument("--name", default="fraudstream-lgbm")
    ap.add_argument("--version", default="1")
    ap.add_argument("--feature-spec", help="spec hash of the features (default: from FEATURES.meta.json)")
    ap.add_argument("--test-days", type=float, default=7, help="last days held out for the test")
    ap.add_argument("--valid-days", type=float, default=4, help="days before the test used for early stopping")
    ap.add_argument("--gap-days", type=float, default=0, help="days dropped between training and validation")
    ap.add_argument("--flag-rate", type=float, default=0.01, help="share of events the threshold flags (validation)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    names, t, y, x = load(args.features)
    meta_path = Path(str(args.features) + ".meta.json")
    if args.feature_spec is None:
        if not meta_path.exists():
            sys.exit(f"{meta_path} is missing: pass --feature-spec")
        meta = json.loads(meta_path.read_text())
        if meta["feature_names"] != names:
            sys.exit(f"{args.features}: columns differ from {meta_path}")
        args.feature_spec = meta["feature_spec"]
    end = int(t.max())
    test_from = end - int(args.test_days * DAY_MS)
    valid_from = test_from - int(args.valid_days * DAY_MS)
    train_to = valid_from - int(args.gap_days * DAY_MS)
    tr, va, te = t < train_to, (t >= valid_from) & (t < test_from), t >= test_from
    for what, m in (("training", tr), ("validation", va), ("test", te)):
        if y[m].sum() == 0:
            sys.exit(f"the {what} period has no fraud label: simulate more days or accounts")

    params = dict(
        objective="binary",
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        feature_fraction=0.9,
        bagging_fraction=0.8,
        bagging_freq=1,
        seed=args.seed,
        deterministic=True,
        force_row_wise=True,
        num_threads=1,
        verbose=-1,
    )
    train = lgb.Dataset(x[tr], y[tr], feature_name=names, free_raw_data=False)
    valid = lgb.Dataset(x[va], y[va], reference=train)
    booster = lgb.train(params, train, num_boost_round=400, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(30, verbose=False)])
    p_va = booster.predict(x[va], num_iteration=booster.best_iteration)
    threshold = float(np.quantile(p_va, 1 - args.flag_rate))

    clf = lgb.LGBMClassifier(n_estimators=booster.best_iteration, **params)
    clf.fit(x[tr], y[tr])
    p_te = clf.predict_proba(x[te])[:, 1]
    metrics = {
        "test_events": int(te.sum()),
        "test_fraud": int(y[te].sum()),
        "roc_auc": float(roc_auc_score(y[te], p_te)),
        "pr_auc": float(average_precision_score(y[te], p_te)),
        **{f"{k}_at_threshold": v for k, v in at_threshold(y[te], p_te, threshold).items()},
        "best_iteration": int(booster.best_iteration),
    }

    onx = onnxmltools.convert_lightgbm(
        clf, initial_types=[("features", FloatTensorType([None, len(names)]))], zipmap=False, target_opset=15
    )
    # onnxmltools names the graph with a random uuid: fix it so the same data gives the same bytes.
    onx.graph.name = f"{args.name}-{args.version}"
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_bytes = onx.SerializeToString()
    (args.out / "model.onnx").write_bytes(onnx_bytes)
    outputs = [o.name for o in onx.graph.output]
    prob_output = "probabilities" if "probabilities" in outputs else outputs[-1]
    manifest = {
        "name": args.name,
        "version": args.version,
        "onnx": "model.onnx",
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "feature_names": names,
        "feature_spec": args.feature_spec,
        "output": prob_output,
        "threshold": threshold,
        "target_flag_rate": args.flag_rate,
        "trained_at": iso(end),
        "training_window": {"from": iso(int(t.min())), "to": iso(train_to)},
        "validation_window": {"from": iso(valid_from), "to": iso(test_from)},
        "test_window": {"from": iso(test_from), "to": iso(end)},
        "metrics": metrics,
        "trainer": {"lightgbm": lgb.__version__, "onnxmltools": onnxmltools.__version__, "params": params},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # Rows and LightGBM's own probabilities, for the ONNX parity test in test/unit.
    idx = np.linspace(0, int(te.sum()) - 1, num=min(256, int(te.sum())), dtype=np.int64)
    fraud_idx = np.flatnonzero(y[te] == 1)[:32]
    sel = np.unique(np.concatenate([idx, fraud_idx]))
    parity = {"rows": x[te][sel].tolist(), "probabilities": p_te[sel].tolist()}
    (args.out / "parity.json").write_text(json.dumps(parity) + "\n")
    print(json.dumps({"out": str(args.out), "threshold": threshold, **metrics}))


if __name__ == "__main__":
    main()
