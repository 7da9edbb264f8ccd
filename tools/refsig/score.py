#!/usr/bin/env python3
"""Score `odm analyse` output against a truth file (refgen.py's, or
`odm simulate`'s).

    score.py TRUTH.jsonl ANALYSIS.jsonl [--row LABEL] [--check]

Matching: a truth beat is found when an accepted beat's onset is within
50 ms of it; truth beats whose cycle starts under 0.5 s from the start or
ends under 0.5 s from the end are not scored, nor premature beats (truth
`"ectopic": true`: accepting them is the analyser's choice), nor (with
impairments) those within 0.2 s of one. Errors are analysed - truth: onset, end (ms), FT (ms),
SD, PV and MA (%), HR (1/min, p95 of |error|). With impairments in the truth,
an accepted beat whose systole overlaps diathermy or clipping, or whose
cycle overlaps a gap, is counted as accepted inside.

--row prints a markdown table row; --check exits 1 unless the issue's goals
for a clean signal at >= 15 dB hold (sensitivity and PPV >= 0.995, median
|onset|, |FT| <= 5 ms, median |SD|, |PV| <= 3 %, HR p95 <= 1/min) and,
with impairments, none accepted inside and >= 97 % of the clear beats
found, and the receiver's lost_frames and lost_samples as the truth's
stream line states them.
"""
import argparse
import json
import statistics
import sys


def lines(path, kind):
    with open(path, encoding="utf-8") as f:
        return [d for d in map(json.loads, f) if d.get("type") == kind]


def median(x):
    return statistics.median(x) if x else float("nan")


def p95(x):
    x = sorted(x)
    return x[int(round(0.95 * (len(x) - 1)))] if x else float("nan")


def score(truth_path, out_path):
    truth = lines(truth_path, "beat")
    imps = lines(truth_path, "impairment")
    out = lines(out_path, "beat")
    summary = lines(out_path, "summary")
    span = lines(truth_path, "stream")
    if span:
        t0, t1 = span[0]["start_s"], span[0]["end_s"]
    else:
        t0, t1 = 0.0, summary[0]["duration_s"] if summary else max(b["next_onset_s"] for b in out)
    acc = [b for b in out if b["accepted"]]

    def clear(t):
        return all(t["next_onset_s"] + 0.2 < i["start_s"] or t["onset_s"] - 0.2 > i["end_s"] for i in imps)

    # Premature beats are beats, but whether they are accepted is the
    # analyser's choice (analysis-output.md): they are not scored.
    elig = [t for t in truth if t["onset_s"] >= t0 + 0.5 and t["next_onset_s"] <= t1 - 0.5 and clear(t)
            and not t.get("ectopic")]

    def nearest(t):
        best = min(acc, key=lambda b: abs(b["onset_s"] - t["onset_s"]), default=None)
        return best if best and abs(best["onset_s"] - t["onset_s"]) < 0.05 else None

    pairs = [(t, b) for t in elig for b in [nearest(t)] if b]
    scored = [b for b in acc if b["onset_s"] >= t0 + 0.45 and b["next_onset_s"] <= t1 - 0.45]
    if imps:
        scored = [b for b in scored if clear(b)]
    true_pos = sum(1 for b in scored if any(abs(b["onset_s"] - t["onset_s"]) < 0.05 for t in truth))

    def errs(f):
        return [f(t, b) for t, b in pairs if f(t, b) is not None]

    def diff(field, scale):
        return lambda t, b: None if b[field] is None else (b[field] - t[field]) * scale

    def rel(field):
        return lambda t, b: None if b[field] is None else 100 * (b[field] / t[field] - 1)

    inside = []
    for b in acc:
        for i in imps:
            if i["kind"] == "loss":
                # No flow to see: no beat may start well inside the loss.
                if i["start_s"] + 0.3 < b["onset_s"] < i["end_s"] - 0.3:
                    inside.append((i["kind"], b["onset_s"]))
                continue
            hi = b["next_onset_s"] if i["kind"] == "gap" else (b["end_s"] if b["end_s"] is not None else b["next_onset_s"])
            if b["onset_s"] < i["end_s"] and hi > i["start_s"]:
                inside.append((i["kind"], b["onset_s"]))
    reasons = {}
    for b in out:
        if not b["accepted"]:
            reasons[b["reject_reason"]] = reasons.get(b["reject_reason"], 0) + 1
    r = dict(
        eligible=len(elig),
        sens=len(pairs) / max(1, len(elig)),
        ppv=true_pos / max(1, len(scored)),
        onset=errs(diff("onset_s", 1000)),
        end=errs(diff("end_s", 1000)),
        ft=errs(diff("ft_ms", 1)),
        sd=errs(rel("sd_cm")),
        pv=errs(rel("pv_cm_s")),
        ma=errs(rel("ma_cm_s2")),
        hr=[abs(e) for e in errs(diff("hr_bpm", 1))],
        inside=inside,
        reasons=reasons,
        impairments=len(imps),
        counters=[],
    )
    if span and summary:
        for k in ("lost_frames", "lost_samples"):
            if k in span[0] and summary[0].get(k) != span[0][k]:
                r["counters"].append(f"{k} {summary[0].get(k)}, truth {span[0][k]}")
    return r


def cell(x):
    return f"{median([abs(e) for e in x]):.1f} ({median(x):+.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth")
    ap.add_argument("analysis")
    ap.add_argument("--row", metavar="LABEL")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    r = score(a.truth, a.analysis)
    rej = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items())) or "—"
    if r["counters"]:
        rej += "; counters wrong: " + ", ".join(r["counters"])
    if a.row is not None:
        print(f"| {a.row} | {r['eligible']} | {r['sens']:.3f} | {r['ppv']:.3f} | {cell(r['onset'])} | {cell(r['end'])} "
              f"| {cell(r['ft'])} | {cell(r['sd'])} | {cell(r['pv'])} | {cell(r['ma'])} | {p95(r['hr']):.2f} | {len(r['inside'])} | {rej} |")
    else:
        print(f"beats {r['eligible']} sens {r['sens']:.3f} ppv {r['ppv']:.3f} onset {cell(r['onset'])} ms "
              f"end {cell(r['end'])} ms FT {cell(r['ft'])} ms SD {cell(r['sd'])} % PV {cell(r['pv'])} % "
              f"MA {cell(r['ma'])} % HR p95 {p95(r['hr']):.2f} /min; accepted inside impairments {len(r['inside'])}; rejected: {rej}")
    if a.check:
        fails = []
        if r["eligible"] < 10:
            fails.append(f"only {r['eligible']} scored beats")
        if r["sens"] < 0.995 and not r["impairments"]:
            fails.append(f"sensitivity {r['sens']:.3f}")
        if r["impairments"] and r["sens"] < 0.97:
            fails.append(f"clear beats found {r['sens']:.3f}")
        if r["ppv"] < 0.995:
            fails.append(f"PPV {r['ppv']:.3f}")
        for name, x, lim in [("onset", r["onset"], 5), ("FT", r["ft"], 5), ("SD", r["sd"], 3), ("PV", r["pv"], 3)]:
            if not median([abs(e) for e in x]) <= lim:
                fails.append(f"median |{name} error| {median([abs(e) for e in x]):.2f} > {lim}")
        if not p95(r["hr"]) <= 1.0:
            fails.append(f"HR p95 {p95(r['hr']):.2f} > 1")
        fails += r["counters"]
        if r["inside"]:
            fails.append(f"accepted inside impairments: {r['inside']}")
        if fails:
            print("FAIL: " + "; ".join(fails), file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
