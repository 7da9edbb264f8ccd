#!/bin/sh
# Regenerates every reference recording of this folder with `odm simulate`.
# Run from the repository root: sh recordings/make-recordings.sh [path/to/odm]
# The output is byte-for-byte reproducible (fixed seeds and --utc).
set -eu
ODM=${1:-target/debug/odm}
R=recordings
U=2026-01-01T00:00:00Z
"$ODM" simulate --out $R/clean-75bpm.odmrec --duration 30 --seed 101 --utc $U \
    --age 55 --sex male --height-cm 175 --weight-kg 80
"$ODM" simulate --out $R/noisy-8db.odmrec --duration 30 --seed 102 --utc $U --snr-db 8
"$ODM" simulate --out $R/diathermy-8khz.odmrec --duration 45 --seed 103 --utc $U \
    --diathermy --sample-rate-hz 8000 --block-len 80
"$ODM" simulate --out $R/gaps.odmrec --duration 30 --seed 104 --utc $U --gaps
"$ODM" simulate --out $R/tachycardia-140bpm.odmrec --duration 30 --seed 105 --utc $U \
    --hr 140 --sv-ml 55 --ectopics
"$ODM" simulate --out $R/fluid-challenge-8khz.odmrec --duration 60 --seed 106 --utc $U \
    --sample-rate-hz 8000 --block-len 80 --sv-ml 60 \
    --age 70 --sex female --height-cm 160 --weight-kg 65 \
    --bolus-at 30 --bolus-ml 250 --bolus-sv-change-pct 15
"$ODM" simulate --out $R/phantom-50cms-gain7pct-8khz.odmrec --duration 10 --seed 107 --utc $U \
    --sample-rate-hz 8000 --block-len 80 --phantom-cm-s 50 --probe-gain-error 0.07 \
    --probe-serial SIM-CAL-0001
