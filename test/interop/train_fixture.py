"""Writes a small features file of replay's Arrow contract for the train.py tests (test/unit/train.test.ts).

    train_fixture.py OUT MODE   MODE: ok | late (every FRAUD label arrives after the cutoff) | badcol

Prints {"fit_fraud_known": n, "fit_fraud_all": m} as JSON: the fit-period frauds whose label arrived
by the cutoff, and all of them, for the split the test asks train.py for (test 7 d, gap 4 d, valid 4 d).
"""

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

DAY = 86_400_000


def main() -> None:
    out, mode = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(3)
    n, days, start = 12_000, 30, 1_767_225_600_000
    t = np.sort(start + rng.integers(0, days * DAY, n)).astype(np.int64)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(3 * x[:, 0] - 6)))).astype(np.int8)
    delay = np.where(rng.random(n) < 0.25, 40 * DAY, 2 * DAY + rng.integers(0, DAY, n))
    end = int(t.max())
    if mode == "late":
        delay = (end + DAY) - t
    labelled = np.where(y == 1, t + delay, 0).astype(np.int64)
    names = ["f_signal", "f_noise_a", "f_noise_b", "f_noise_c"]
    fields = [
        pa.field("event_id", pa.string()),
        pa.field("event_time", pa.int64()),
        pa.field("event_type", pa.string()),
        pa.field("label", pa.int8()),
        pa.field("labelled_at" if mode != "badcol" else "labeled_at", pa.int64()),
    ] + [pa.field(nm, pa.float32()) for nm in names]
    schema = pa.schema(fields, metadata={"feature_spec": "sha256:fixture", "feature_names": json.dumps(names)})
    cols = [
        pa.array([f"e{i}" for i in range(n)]),
        pa.array(t),
        pa.array(["PAYMENT"] * n),
        pa.array(y),
        pa.array([int(v) if f else None for v, f in zip(labelled, y == 1)], pa.int64()),
    ] + [pa.array(x[:, j]) for j in range(4)]
    with ipc.new_file(out, schema) as w:
        w.write_table(pa.Table.from_arrays(cols, schema=schema))
    cutoff = end - 7 * DAY
    fit = t < cutoff - 4 * DAY - 4 * DAY
    print(json.dumps({
        "fit_fraud_known": int(((y == 1) & fit & (labelled <= cutoff)).sum()),
        "fit_fraud_all": int(((y == 1) & fit).sum()),
    }))


if __name__ == "__main__":
    main()
