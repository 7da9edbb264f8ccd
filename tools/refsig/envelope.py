#!/usr/bin/env python3
"""The envelope's error against refgen.py's true v(t), by velocity band and
by edge (rising, falling, near the peak).

    ODM_REC=R.odmrec ODM_OUT=R.env cargo test --release -p odm-dsp \\
        --test explore dump_recording_envelope -- --ignored
    envelope.py R.truth.jsonl R.env [--fall cubic|cos]

The fall shape must be the one the recording was generated with.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refgen import beat_shape  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth")
    ap.add_argument("envelope")
    ap.add_argument("--fall", default="cubic", choices=["cubic", "cos"])
    a = ap.parse_args()
    with open(a.truth, encoding="utf-8") as f:
        truth = [d for d in map(json.loads, f) if d.get("type") == "beat"]
    env = np.loadtxt(a.envelope)
    t, v = env[:, 0], env[:, 1]

    def true_v(tt):
        out = np.zeros_like(tt)
        for b in truth:
            ft, tp = b["end_s"] - b["onset_s"], b["peak_s"] - b["onset_s"]
            out += beat_shape(tt, b["onset_s"], tp, ft, b["pv_cm_s"], 0, 1, a.fall)
        return out

    tv = true_v(t)
    slope = (true_v(t + 1e-3) - true_v(t - 1e-3)) / 2e-3 / 1000  # cm/s per ms
    ok = (t > 1) & (t < truth[-1]["next_onset_s"])
    print("true v, cm/s | median error, cm/s (points): all | rising | falling | near the peak")
    for lo in range(0, int(tv.max()) + 10, 10):
        m = ok & (tv >= lo) & (tv < lo + 10) & (tv > 2)
        parts = [m, m & (slope > 0.3), m & (slope < -0.3), m & (np.abs(slope) <= 0.3)]
        cells = [f"{np.median(v[s] - tv[s]):+6.2f} ({s.sum():4d})" if s.sum() else "     -       " for s in parts]
        print(f"{lo:3d}-{lo + 10:<3d}      | " + " | ".join(cells))


if __name__ == "__main__":
    main()
