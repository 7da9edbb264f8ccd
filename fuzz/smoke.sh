#!/usr/bin/env bash
# A short fuzzing pass for CI, on the stable toolchain and without cargo-fuzz.
#
# Builds every target with the same coverage instrumentation cargo-fuzz asks
# LLVM for (sancov: inline 8-bit counters, PC table, compare tracing), plus
# debug assertions and overflow checks (cargo fuzz's `-a`), but without
# AddressSanitizer, which needs a nightly-only flag. Then, for each target:
#
#   1. replays its seeds (fuzz/seeds/<target>) and every input that once
#      failed it (fuzz/regressions/<target>), so a harness that has gone stale
#      against the code it checks fails here rather than four stops later;
#   2. fuzzes from the seeds for FUZZ_SECONDS (default 20) seconds.
#
# A failing input is written to $FUZZ_OUT/artifacts/<target>/ and the script
# exits non-zero. The corpus grown in step 2 is thrown away: this is a smoke
# test, not a campaign (docs/fuzzing.md has the long runs).
#
# Usage: fuzz/smoke.sh [target ...]     (default: all five)
# Environment: FUZZ_SECONDS, FUZZ_OUT (scratch, default a fresh temp dir),
#              CARGO_TARGET_DIR (default fuzz/target/smoke).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
out="${FUZZ_OUT:-$(mktemp -d)}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/smoke}"
# Instrument the targets only: with --target, build scripts and proc macros
# are built for the host without these flags.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decoder recording_reader calibration uptake_bundle pipeline)
fi

echo "fuzz smoke: building ${targets[*]} for $triple"
cargo build --release --locked --target "$triple" \
    $(printf -- '--bin %s ' "${targets[@]}")
bin="$CARGO_TARGET_DIR/$triple/release"

# Per-target options, as in docs/fuzzing.md's long runs.
options_for() {
    case "$1" in
        uptake_bundle) echo "-max_len=8192" ;;
        pipeline) echo "-rss_limit_mb=4096" ;;
        *) echo "" ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    mkdir -p "$out/artifacts/$t" "$out/corpus/$t"
    inputs=("seeds/$t")
    [ -d "regressions/$t" ] && inputs+=("regressions/$t")
    # shellcheck disable=SC2046
    if ! "$bin/$t" $(options_for "$t") -artifact_prefix="$out/artifacts/$t/" \
        -runs=0 "${inputs[@]}" >"$out/$t.replay.log" 2>&1; then
        echo "fuzz smoke: $t FAILED on a seed or regression input:"
        tail -n 30 "$out/$t.replay.log"
        status=1
        continue
    fi
    # shellcheck disable=SC2046
    if ! "$bin/$t" $(options_for "$t") -artifact_prefix="$out/artifacts/$t/" \
        -max_total_time="$seconds" -print_final_stats=1 \
        "$out/corpus/$t" "${inputs[@]}" >"$out/$t.fuzz.log" 2>&1; then
        echo "fuzz smoke: $t FAILED while fuzzing; input in $out/artifacts/$t/:"
        tail -n 30 "$out/$t.fuzz.log"
        status=1
        continue
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.fuzz.log")"
    edges="$(grep -o 'cov: [0-9]*' "$out/$t.fuzz.log" | tail -n 1 | cut -d' ' -f2)"
    echo "fuzz smoke: $t ok: seeds and regressions replayed, ${runs:-?} inputs in ${seconds} s, ${edges:-?} edges"
done
exit "$status"
