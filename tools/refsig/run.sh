#!/usr/bin/env bash
# Regenerates docs/reference-check.md: odm analyse against refgen.py's
# independent reference signals (needs python3 with numpy; about 15 min on
# two cores). Usage: tools/refsig/run.sh [WORKDIR]; with RESCORE=1 the
# recordings and analyses already in WORKDIR are scored again; with
# ONLY=REGEX only the rows whose names match are generated again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/refsig/python.sh
. "$here/python.sh"
root="$(cd "$here/../.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
secs=40
(cd "$root" && cargo build --release -q -p odm-cli)
odm="$root/target/release/odm"
export odm work secs here RESCORE ONLY py

one() {
    # one NAME LABEL -- refgen args
    local name="$1" label="$2"; shift 3
    if [ -z "${RESCORE:-}" ] && [[ "$name" =~ ${ONLY:-.} ]]; then
        "$py" "$here/refgen.py" --out "$work/$name.odmrec" --seconds "$secs" "$@" >/dev/null
        # Rows named n_* are analysed without the strong-tone notch (on by
        # default since 2026-12-02), to show what it does.
        local opts=()
        [[ "$name" == n_* ]] && opts=(--no-notch-strong-tones)
        "$odm" analyse "${opts[@]}" "$work/$name.odmrec" >"$work/$name.jsonl" 2>/dev/null
    fi
    "$py" "$here/score.py" "$work/$name.truth.jsonl" "$work/$name.jsonl" --row "$label" >"$work/$name.row"
}
export -f one

jobs=()
grid=()
for n in 6 2; do for hr in 45 75 140; do for snr in 30 15 8; do
    name="grid_n${n}_hr${hr}_snr${snr}"
    grid+=("$name")
    jobs+=("$name|n=$n, ${snr} dB, ${hr}/min|--profile-n $n --hr $hr --snr-db $snr --seed $((100 + n * 10 + hr / 10 + snr))")
done; done; done
vary=(
  "v_cos_n2_45|quarter-cosine fall, n=2, 45/min|--fall cos --profile-n 2 --hr 45 --snr-db 15 --seed 201"
  "v_cos_n6_140|quarter-cosine fall, n=6, 140/min|--fall cos --profile-n 6 --hr 140 --snr-db 15 --seed 202"
  "v_tp40|peak at 40 % of FT, n=2|--tp-frac 0.4 --profile-n 2 --snr-db 15 --seed 203"
  "v_fs8k|8 kHz, PV 70 cm/s|--fs 8000 --pv 70 --profile-n 6 --snr-db 15 --seed 204"
  "v_fs48k|48 kHz|--fs 48000 --profile-n 6 --snr-db 15 --seed 205"
  "v_pv150|PV 150 cm/s|--pv 150 --profile-n 6 --snr-db 15 --seed 206"
  "v_pv45|PV 45 cm/s|--pv 45 --profile-n 6 --snr-db 15 --seed 207"
  "v_pv45_n2|PV 45 cm/s, n=2|--pv 45 --profile-n 2 --snr-db 15 --seed 424"
  "v_pv36|PV 36 cm/s|--pv 36 --profile-n 6 --snr-db 15 --seed 421"
  "v_pv36_n2|PV 36 cm/s, n=2, 20 dB|--pv 36 --profile-n 2 --snr-db 20 --seed 403"
  "v_pv30|PV 30 cm/s|--pv 30 --profile-n 6 --snr-db 15 --seed 401"
  "v_pv30_cos|PV 30 cm/s, quarter-cosine fall|--pv 30 --fall cos --profile-n 6 --snr-db 15 --seed 402"
  "v_ang60|beam at 60°|--angle 60 --profile-n 6 --snr-db 15 --seed 208"
  "v_rev25|reverse dip 25 cm/s|--rev-cm-s 25 --profile-n 6 --snr-db 15 --seed 209"
  "v_clutter40|wall echo 40 dB over the blood (the default 30)|--clutter-db 40 --profile-n 6 --snr-db 15 --seed 1003"
  "v_slots100|100 scatterers|--slots 100 --profile-n 2 --snr-db 15 --seed 210"
  "v_tau5|speckle 5 ms (wider lines)|--tau-ms 5 --profile-n 2 --snr-db 15 --seed 211"
  "v_ar1|exponential speckle, 30 ms|--fade ar1 --tau-ms 30 --profile-n 6 --snr-db 15 --seed 212"
  "v_snr3|3 dB|--profile-n 6 --snr-db 3 --seed 213"
  "v_q2|density 3q² (few slow cells; no profile gives it), 15 dB|--q-power 2 --snr-db 15 --seed 431"
  "v_q2_8|density 3q², 8 dB|--q-power 2 --snr-db 8 --seed 431"
  "v_beam_n2|a beam narrower than the aorta (power × exp(−2y²/B²), B = 0.3 R), n=2|--beam-width 0.3 --profile-n 2 --snr-db 15 --seed 432"
  "v_beam_n6|the same beam, n=6, 8 dB|--beam-width 0.3 --profile-n 6 --snr-db 8 --seed 433"
  "v_tone_above|a tone at 4.5 kHz (122 cm/s, over the peaks), as strong as the blood|--tone=4500:0 --profile-n 2 --snr-db 20 --seed 216"
  "v_tone_in|a tone at 2 kHz (54 cm/s), 20 dB under the blood|--tone=2000:-20 --profile-n 2 --snr-db 20 --seed 217"
  "v_tone_low|a tone at 1 kHz (27 cm/s), 10 dB under the blood|--tone=1000:-10 --profile-n 2 --snr-db 20 --seed 218"
  "v_tone_strong|a tone at 1 kHz (27 cm/s), as strong as the blood|--tone=1000:0 --profile-n 2 --snr-db 20 --seed 219"
  "n_tone_strong|the same, without the notch (\`--no-notch-strong-tones\`)|--tone=1000:0 --profile-n 2 --snr-db 20 --seed 219"
  "n_tone_low|a tone at 1 kHz, 10 dB under the blood, without the notch|--tone=1000:-10 --profile-n 2 --snr-db 20 --seed 218"
  "v_tone_dia|a tone at 1 kHz (27 cm/s), as strong as the blood, and 3 diathermy bursts|--tone=1000:0 --diathermy 3 --profile-n 2 --snr-db 20 --seed 305"
  "v_tone_mid|a tone at 1 kHz (27 cm/s), as strong as the blood, switched on at 15 s|--tone=1000:0:15 --profile-n 2 --snr-db 20 --seed 220"
  "v_tones_pv|two tones 5 dB under the blood, at 1.5 and 3 kHz (41 and 82 cm/s: the second at the peaks)|--tone=1500:-5 --tone=3000:-5 --profile-n 6 --snr-db 20 --seed 506"
  "v_hr40|40/min|--hr 40 --profile-n 6 --snr-db 15 --seed 221"
  "v_hr180|180/min|--hr 180 --profile-n 6 --snr-db 15 --seed 222"
  "v_hr180_n2|180/min, n=2, 20 dB|--hr 180 --profile-n 2 --snr-db 20 --seed 223"
  "v_ectopic|10 % premature beats (coupling 0.6, compensatory pause; not scored)|--ectopic 0.1 --profile-n 6 --snr-db 15 --seed 224"
  "v_ectopic_n2|10 % premature beats, n=2, 110/min, 20 dB|--ectopic 0.1 --hr 110 --profile-n 2 --snr-db 20 --seed 225"
  "v_diastolic|forward flow in diastole, 10 cm/s|--diastolic-cm-s 10 --profile-n 6 --snr-db 15 --seed 226"
  "v_diastolic_n2|forward flow in diastole, 15 cm/s, n=2, 60/min, 20 dB|--diastolic-cm-s 15 --hr 60 --profile-n 2 --snr-db 20 --seed 227"
  "v_diastolic30|forward flow in diastole, 30 cm/s, n=2, 60/min, 20 dB|--diastolic-cm-s 30 --hr 60 --profile-n 2 --snr-db 20 --seed 227"
  "v_diastolic40|forward flow in diastole, 40 cm/s, PV 70 cm/s, 60/min (humps over half the peaks)|--diastolic-cm-s 40 --pv 70 --hr 60 --profile-n 6 --snr-db 15 --seed 823"
  "v_diastolic30_140|forward flow in diastole, 30 cm/s, 140/min (a known limit)|--diastolic-cm-s 30 --hr 140 --profile-n 6 --snr-db 15 --seed 606"
  "v_resp50|deep breathing: PV ±50 %, n=2 (small beats at the trough)|--resp-depth 0.5 --profile-n 2 --snr-db 15 --seed 503"
  "v_drift|probe drift: blood power ±10 dB over 23 s, 15 dB|--drift-db 10 --profile-n 6 --snr-db 15 --seed 214"
  "v_drift2|probe drift ±12 dB, 20 dB, n=2, 110/min|--drift-db 12 --profile-n 2 --hr 110 --snr-db 20 --seed 215"
)
imps=(
  "i_1|impairments, seed 301|--diathermy 3 --clip 2 --gaps 3 --profile-n 6 --snr-db 15 --seed 301"
  "i_2|impairments, seed 302|--diathermy 3 --clip 2 --gaps 3 --profile-n 2 --snr-db 15 --seed 302"
  "i_3|impairments, 140/min|--diathermy 3 --clip 2 --gaps 3 --profile-n 6 --hr 140 --snr-db 8 --seed 303"
  "i_loss|2 losses of the signal (3–8 s, −40 dB)|--loss 2 --profile-n 6 --snr-db 15 --seed 304"
  "i_damage|raw stream: 8 damaged frames, junk, counter offset|--raw --damage 8 --garbage 30 --block 37 --start-sample 123456789012 --seq-start 65500 --profile-n 6 --snr-db 15 --seed 305"
)
for j in "${jobs[@]}" "${vary[@]}" "${imps[@]}"; do
    IFS='|' read -r name label args <<<"$j"
    printf '%s\0' "one $name '$label' -- $args"
done | xargs -0 -P "$(nproc)" -I{} bash -c '{}'

header='| signal | beats | sens | PPV | onset \|e\| ms (bias) | end \|e\| ms (bias) | FT \|e\| ms (bias) | SD \|e\| % (bias) | PV \|e\| % (bias) | MA \|e\| % (bias) | HR p95 /min | accepted inside impairments | rejected |
|---|---|---|---|---|---|---|---|---|---|---|---|---|'
rows() { for j in "$@"; do cat "$work/${j%%|*}.row"; done; }
out="$root/docs/reference-check.md"
{
cat "$here/reference-check.head.md"
echo
echo "Generated by \`tools/refsig/run.sh\` with $("$odm" --version), ${secs} s per row, numpy $("$py" -c 'import numpy; print(numpy.__version__)')."
echo
echo "## The goals' grid"
echo
echo "$header"
rows "${jobs[@]}"
echo
echo "## Other signals (n = 6 blunt or n = 2 flat profile, 75/min unless named)"
echo
echo "$header"
rows "${vary[@]}"
echo
echo "## Impairments"
echo
echo "The first three rows: 3 diathermy bursts, 2 clipping episodes and 3 gaps in 40 s. A loss of the signal counts a beat as inside when its onset lies more than 0.3 s inside the loss (the blood fades in 0.3 s). Beats within 0.2 s of an impairment are not scored. The raw stream has no file magic, as captured from a serial port; a mismatch of its lost frames or samples with the ones the writer dropped would be named in the last column."
echo
echo "$header"
rows "${imps[@]}"
} >"$out"
echo "wrote $out (work files in $work)"
