"""Train the fraud model on feature vectors emitted by `fraudstream replay --emit-features`.

Input: an Arrow IPC file (Feather v2) with the columns event_id (utf8), event_time (int64 ms),
event_type (utf8), label (int8: FRAUD label known by the end of the history), labelled_at (int64 ms,
nullable: when that label became known), then one float32 column per feature; schema metadata
`feature_spec` (spec hash) and `feature_names` (JSON array, equal to the feature columns).

Time-based split, by event time:

    | fit            | validation | gap (>= label delay) | test        |
    start                        train_to    cutoff = test_from        end

The model is trained at the cutoff, the start of the test period, with only what was known then:
the events of the training period (fit and validation), and a fit or validation row counts as FRAUD
only if its label had arrived by the cutoff (labelled_at <= cutoff); a later label is not used. The
gap, whose events are not used, is at least the label delay (by default the median time from an event
to its FRAUD label in the data), so most training labels have arrived by the cutoff. The test period is
scored with every label known by the end of the history. LightGBM stops early on the validation
period; the threshold is the validation scores' quantile that flags --flag-rate of events. Exported to
ONNX (probabilities as a plain tensor, no ZipMap) with manifest.json and parity.json beside it.
Deterministic: the same file gives the same bytes.

    python models/train/train.py --features data/train/features.arrow --out models/default
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnxmltools
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import average_precision_score, roc_auc_score

DAY_MS = 86_400_000
META = [
    ("event_id", pa.string()),
    ("event_time", pa.int64()),
    ("event_type", pa.string()),
    ("label", pa.int8()),
    ("labelled_at", pa.int64()),
]


class Features:
    def __init__(self, names, spec, t, y, labelled_at, x):
        self.names, self.spec, self.t, self.y, self.labelled_at, self.x = names, spec, t, y, labelled_at, x


def load(path: Path) -> Features:
    """Reads and checks a features file of the contract's shape; exits naming what is wrong."""
    try:
        with pa.memory_map(str(path), "r") as src:
            table = ipc.open_file(src).read_all()
    except (OSError, pa.ArrowInvalid) as e:
        sys.exit(f"{path}: not a readable Arrow IPC file: {e}")
    schema = table.schema
    for i, (name, typ) in enumerate(META):
        if i >= len(schema) or schema.field(i).name != name:
            got = schema.field(i).name if i < len(schema) else "nothing"
            sys.exit(f"{path}: column {i} must be {name}, got {got}")
        if not schema.field(i).type.equals(typ):
            sys.exit(f"{path}: column {name} must be {typ}, got {schema.field(i).type}")
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    for key in ("feature_spec", "feature_names"):
        if key not in meta:
            sys.exit(f"{path}: schema metadata {key} is missing")
    names = [f.name for f in schema][len(META):]
    if json.loads(meta["feature_names"]) != names:
        sys.exit(f"{path}: metadata feature_names differ from the feature columns")
    for f in list(schema)[len(META):]:
        if not f.type.equals(pa.float32()):
            sys.exit(f"{path}: feature column {f.name} must be float32, got {f.type}")
    n = table.num_rows
    x = np.empty((n, len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        col = table.column(name)
        if col.null_count:
            sys.exit(f"{path}: feature column {name} holds nulls")
        x[:, j] = col.to_numpy()
    if not np.isfinite(x).all():
        sys.exit(f"{path}: the features hold NaN or Infinity")
    for name in ("event_time", "label"):
        if table.column(name).null_count:
            sys.exit(f"{path}: column {name} holds nulls")
    t = table.column("event_time").to_numpy().astype(np.int64)
    y = table.column("label").to_numpy().astype(np.int32)
    # null -> no label at all: known never.
    never = pa.scalar(np.iinfo(np.int64).max, pa.int64())
    labelled_at = pc.fill_null(table.column("labelled_at"), never).to_numpy().astype(np.int64)
    if n == 0:
        sys.exit(f"{path}: no rows")
    return Features(names, meta["feature_spec"], t, y, labelled_at, x)


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


def flag_threshold(p, rate: float) -> float:
    """The lowest threshold t with share(p >= t) <= rate: tied scores are flagged together or not at all."""
    values, counts = np.unique(p, return_counts=True)  # ascending
    flagged = np.cumsum(counts[::-1])[::-1] / len(p)  # share(p >= values[i])
    ok = np.flatnonzero(flagged <= rate)
    # Nothing qualifies: only scores above the maximum would do; use the next float up.
    return float(values[ok[0]]) if ok.size else float(np.nextafter(values[-1], np.inf))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True, type=Path, help="Arrow IPC file from replay --emit-features")
    ap.add_argument("--out", required=True, type=Path, help="folder for model.onnx, manifest.json, parity.json")
    ap.add_argument("--name", default="fraudstream-lgbm", help="model name (model_version = name@version)")
    ap.add_argument("--version", default="1")
    ap.add_argument("--test-days", type=float, default=7, help="last days of the history: the test period")
    ap.add_argument("--label-delay-days", type=float,
                    help="label delay the gap must cover (default: median event -> FRAUD label delay in the data)")
    ap.add_argument("--gap-days", type=float,
                    help="days between the training period and the test, unused (default: the label delay)")
    ap.add_argument("--valid-days", type=float, default=4, help="last days of the training period: validation")
    ap.add_argument("--flag-rate", type=float, default=0.01, help="share of events the threshold flags (validation)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if not 0 < args.flag_rate < 1:
        sys.exit("--flag-rate must be in (0, 1)")

    f = load(args.features)
    t, y, x = f.t, f.y, f.x
    known = (y == 1) & (f.labelled_at != np.iinfo(np.int64).max)
    delays = (f.labelled_at[known] - t[known]) / DAY_MS
    if args.label_delay_days is None:
        if delays.size == 0:
            sys.exit("no FRAUD label has a labelled_at: pass --label-delay-days")
        args.label_delay_days = float(math.ceil(float(np.median(delays))))
    if args.gap_days is None:
        args.gap_days = args.label_delay_days
    if args.gap_days < args.label_delay_days:
        sys.exit(f"--gap-days {args.gap_days} is shorter than the label delay {args.label_delay_days}")

    start, end = int(t.min()), int(t.max())
    test_from = end - int(args.test_days * DAY_MS)
    cutoff = test_from
    train_to = cutoff - int(args.gap_days * DAY_MS)
    valid_from = train_to - int(args.valid_days * DAY_MS)
    if valid_from <= start:
        sys.exit(f"the history ({(end - start) / DAY_MS:.1f} days) is too short for these periods")
    # Labels as known at the cutoff: a later label is not used, the row counts as not fraud.
    y_cut = ((y == 1) & (f.labelled_at <= cutoff)).astype(np.int32)
    fit, va, te = t < valid_from, (t >= valid_from) & (t < train_to), t >= test_from
    for what, yy, m in (("fit", y_cut, fit), ("validation", y_cut, va), ("test", y, te)):
        if yy[m].sum() == 0:
            sys.exit(f"the {what} period has no known fraud label: simulate more days or accounts")

    params = dict(
        objective="binary",
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=20,
        feature_fraction=0.9,
        bagging_fraction=0.8,
        bagging_freq=1,
        metric="binary_logloss",
        seed=args.seed,
        deterministic=True,
        force_row_wise=True,
        num_threads=1,
        verbose=-1,
    )
    train = lgb.Dataset(x[fit], y_cut[fit], feature_name=f.names, free_raw_data=False)
    valid = lgb.Dataset(x[va], y_cut[va], reference=train)
    booster = lgb.train(params, train, num_boost_round=400, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(30, verbose=False)])
    best = max(1, int(booster.best_iteration))
    p_va = booster.predict(x[va], num_iteration=best)
    threshold = flag_threshold(p_va, args.flag_rate)

    clf = lgb.LGBMClassifier(n_estimators=best, **params)
    clf.fit(x[fit], y_cut[fit])
    p_te = clf.predict_proba(x[te])[:, 1]
    metrics = {
        "test_events": int(te.sum()),
        "test_fraud": int(y[te].sum()),
        "roc_auc": float(roc_auc_score(y[te], p_te)),
        "pr_auc": float(average_precision_score(y[te], p_te)),
        **{f"{k}_at_threshold": v for k, v in at_threshold(y[te], p_te, threshold).items()},
        "best_iteration": best,
    }

    onx = onnxmltools.convert_lightgbm(
        clf, initial_types=[("features", FloatTensorType([None, len(f.names)]))], zipmap=False, target_opset=15
    )
    # onnxmltools names the graph with a random uuid: fix it so the same data gives the same bytes.
    onx.graph.name = f"{args.name}-{args.version}"
    # ...and lists the opset imports in set order, which Python's per-process string hashing
    # randomises (PYTHONHASHSEED): sort them, or one run in two writes other bytes.
    opsets = sorted(onx.opset_import, key=lambda o: (o.domain, o.version))
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_bytes = onx.SerializeToString()
    (args.out / "model.onnx").write_bytes(onnx_bytes)
    outputs = [o.name for o in onx.graph.output]
    prob_output = "probabilities" if "probabilities" in outputs else outputs[-1]
    xf = x[fit].astype(np.float64)
    period = lambda a, b, m: {"from": iso(a), "to": iso(b), "events": int(m.sum())}  # noqa: E731
    manifest = {
        "name": args.name,
        "version": args.version,
        "onnx": "model.onnx",
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "feature_names": f.names,
        "feature_spec": f.spec,
        "feature_norms": {"mean": xf.mean(axis=0).tolist(), "std": xf.std(axis=0).tolist()},
        "output": prob_output,
        "threshold": threshold,
        "target_flag_rate": args.flag_rate,
        "trained_at": iso(cutoff),
        "training_window": {"from": iso(start), "to": iso(train_to)},
        "split": {
            "label_cutoff": iso(cutoff),
            "label_delay_days": args.label_delay_days,
            "gap_days": args.gap_days,
            "fit": {**period(start, valid_from, fit), "fraud_known": int(y_cut[fit].sum())},
            "validation": {**period(valid_from, train_to, va), "fraud_known": int(y_cut[va].sum())},
            "test": {**period(test_from, end, te), "fraud": int(y[te].sum())},
        },
        "metrics": metrics,
        "trainer": {
            "lightgbm": lgb.__version__,
            "onnxmltools": onnxmltools.__version__,
            "pyarrow": pa.__version__,
            "params": params,
        },
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
