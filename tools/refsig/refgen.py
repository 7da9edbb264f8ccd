#!/usr/bin/env python3
"""Independent reference signals for odm.

Written from ../shared/docs/odm-primer.md and ../shared/spec/serial-stream.md
alone: it shares no code, no model and no random numbers with odm-simulator,
so it checks the analysis (and the recording reader) against signals that
odm's own tests did not shape. See docs/reference-check.md.

Blood: `--slots` scatterers, each moving at a fixed fraction q of the
instantaneous maximum velocity v(t), q drawn from the velocity distribution
of a power-law profile v(r) = v_max (1 - (r/R)^n) (q = 1 - U^(n/2), U
uniform: n = 2 is a parabolic profile's flat spectrum; or, with `--q-power G`,
from the density (G+1) q^G, which for G > 0 no profile gives; with
`--beam-width B`, each scatterer also gets a place in the aorta's
cross-section and a power weight exp(-2 y^2 / B^2) for its lateral distance y
from a beam through the centre, B in aortic radii). Each has a complex
Gaussian amplitude that fades with a Gaussian correlation of sd `--tau-ms`
(speckle), so the spectrum is a continuum whose edge is k v(t):

    x(t) = sum_j a_j(t) exp(i q_j Phi(t)),   Phi(t) = 2 pi k int v dt,
    k = 2 f0 cos(theta) / c  (c = 1540 m/s),

plus white complex Gaussian noise (SNR = mean blood power during systole
over the noise power in the whole band), a wall echo 30 dB over the blood
whose shift swings +-60 Hz with the cardiac cycle, and 16-bit rounding.

Beats: a gamma-variate rise v = PV (t/tp) exp(1 - t/tp) (a straight foot and
a rounded peak at tp), then a fall to zero at FT, either cubic
PV (1 - s^2)(1 - 0.3 s) or a quarter cosine, s = (t - tp)/(FT - tp); a
reverse dip after FT. FT = FTc sqrt(cycle) (Bazett), cycle jitter, PV
modulated by breathing (5 s period). Optional: premature (ectopic) beats
with a compensatory pause (truth lines say `"ectopic": true`), and forward
flow in diastole that is back at zero 40 ms before the next onset. Truth: exact onset, peak, end, FT, PV,
SD (the integral of v over systole), cycle and HR, written beside the
recording as NAME.truth.jsonl with the beat field names of
analysis-output.md, and one `{"type":"impairment"}` line per diathermy
burst, clipping episode or gap.

Needs python3 and numpy.
"""
import argparse, json, struct, zlib, math
import numpy as np

C_CM_S = 154000.0


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


class Writer:
    """Frames of serial-stream.md into memory; `spans` maps each IQ frame's
    bytes to its samples."""

    def __init__(self, raw, seq0):
        self.buf = bytearray() if raw else bytearray(b"ODMREC1\n")
        self.seq = seq0
        self.spans = []

    def frame(self, kind, payload):
        body = struct.pack("<BBHH", 1, kind, self.seq & 0xFFFF, len(payload)) + payload
        self.buf += b"\xA5\x5A" + body + struct.pack("<I", crc(body))
        self.seq += 1

    def annotation(self, at, obj):
        self.frame(0x10, struct.pack("<Q", at) + json.dumps(obj).encode())

    def probe_info(self, fs, f0, angle_deg):
        p = struct.pack("<IIHBBII16s8s", fs, f0, int(round(angle_deg * 100)), 1, 0, 10, 0,
                        b"REF-PY-0001", b"refgen")
        self.frame(0x01, p)

    def iq(self, first, iq, flags=0):
        p = struct.pack("<QHH", first, len(iq) // 2, flags) + iq.astype("<i2").tobytes()
        start = len(self.buf)
        self.frame(0x02, p)
        self.spans.append((start, len(self.buf), first, len(iq) // 2))


def beat_shape(t, onset, tp, ft, pv, rev_cm_s, rev_s, fall_kind):
    """Velocity (cm/s) contributed by one beat at times t (s)."""
    v = np.zeros_like(t)
    x = t - onset
    r = (x >= 0) & (x < tp)
    v[r] = pv * (x[r] / tp) * np.exp(1.0 - x[r] / tp)
    f = (x >= tp) & (x < ft)
    s = (x[f] - tp) / (ft - tp)
    if fall_kind == "cubic":
        g = (1 - s * s) * (1 - 0.3 * s) / 1.0
    else:  # "cos": quarter cosine, finite slope at end
        g = np.cos(0.5 * np.pi * s)
    v[f] = pv * g
    d = (x >= ft) & (x < ft + rev_s)
    v[d] = -rev_cm_s * np.sin(np.pi * (x[d] - ft) / rev_s)
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    opt = ap.add_argument
    opt("--out", required=True, help="recording to write (NAME.odmrec; truth in NAME.truth.jsonl)")
    opt("--seconds", type=float, default=60, help="duration, s")
    opt("--seed", type=int, default=1, help="numpy random seed")
    opt("--fs", type=int, default=20000, help="complex sample rate, Hz")
    opt("--f0", type=int, default=4000000, help="carrier, Hz")
    opt("--angle", type=float, default=45.0, help="beam angle, degrees")
    opt("--hr", type=float, default=75, help="mean heart rate, 1/min")
    opt("--pv", type=float, default=90, help="mean peak velocity, cm/s")
    opt("--ftc-ms", type=float, default=340, help="Bazett-corrected flow time, ms")
    opt("--tp-frac", type=float, default=0.28, help="time to peak as a fraction of FT")
    opt("--profile-n", type=float, default=2, help="velocity profile exponent (2 parabolic, 6 blunt)")
    opt("--q-power", type=float, default=None,
        help="instead of a profile, draw q from the density (G+1) q^G, G > -1 (G = 2: 3q^2, few slow cells)")
    opt("--beam-width", type=float, default=None,
        help="a CW beam narrower than the aorta: scatterers weighted in power by exp(-2 y^2 / B^2), "
             "y their lateral distance from the beam's axis through the centre, B in aortic radii")
    opt("--snr-db", type=float, default=20, help="systolic blood power over whole-band noise, dB")
    opt("--slots", type=int, default=600, help="scatterers")
    opt("--tau-ms", type=float, default=20, help="speckle correlation time, ms")
    opt("--fade", default="gauss", choices=["gauss", "ar1"], help="speckle correlation shape")
    opt("--clutter-db", type=float, default=30, help="wall echo over the blood, dB")
    opt("--rev-cm-s", type=float, default=8, help="reverse dip after systole, cm/s")
    opt("--fall", default="cubic", choices=["cubic", "cos"], help="shape of the systolic fall")
    opt("--rr-jitter", type=float, default=0.02, help="cycle coefficient of variation")
    opt("--ectopic", type=float, default=0, help="probability that a beat is premature (ectopic)")
    opt("--ectopic-coupling", type=float, default=0.6, help="premature beat's interval over the cycle before it")
    opt("--diastolic-cm-s", type=float, default=0, help="peak of forward flow in diastole, cm/s")
    opt("--resp-depth", type=float, default=0.08, help="breathing modulation of PV (fraction)")
    opt("--diathermy", type=int, default=0, help="diathermy bursts (0.8-4 s, 15-35 dB, cut or gated)")
    opt("--clip", type=int, default=0, help="clipping episodes (0.2-1 s, x40 into the rails, flagged)")
    opt("--gaps", type=int, default=0, help="gaps (0.05-0.6 s of IQ blocks not written)")
    opt("--drift-db", type=float, default=0, help="slow swing of the blood's power (probe drift), dB")
    opt("--loss", type=int, default=0, help="episodes (3-8 s) of the probe turned away: blood -40 dB")
    opt("--tone", action="append", default=[], metavar="F_HZ:DB[:FROM_S]",
        help="a steady tone, dB over the blood's power (from FROM_S on; default the start)")
    opt("--damage", type=int, default=0, help="IQ frames with one bit flipped")
    opt("--garbage", type=float, default=0, help="bursts of junk bytes between frames, per recording")
    opt("--block", type=int, default=250, help="samples per IQ block (1-1000)")
    opt("--start-sample", type=int, default=0, help="index of the first sample (the counter's start)")
    opt("--seq-start", type=int, default=0, help="first frame seq")
    opt("--raw", action="store_true", help="a raw stream, as from the serial port (no file magic)")
    args = ap.parse_args()
    if args.q_power is not None and not args.q_power > -1:
        ap.error("--q-power must be > -1")
    if args.beam_width is not None and (args.q_power is not None or not args.beam_width > 0):
        ap.error("--beam-width must be > 0, and needs a profile (not --q-power)")
    rng = np.random.default_rng(args.seed)
    fs = args.fs
    n = int(args.seconds * fs)
    t = np.arange(n) / fs
    k = 2 * args.f0 * math.cos(math.radians(args.angle)) / C_CM_S  # Hz per cm/s

    # Beat schedule.
    beats = []
    on = 0.3 + rng.uniform(0, 0.2)

    def fit_cycle(b, cycle):
        """Give beat `b` the cycle `cycle`, its flow time no longer than
        three quarters of it (the shape scaled with it)."""
        ft = min(b["ft"], 0.75 * cycle)
        b.update(tp=b["tp"] * ft / b["ft"], ft=ft, cycle=cycle, rev_s=min(0.06, 0.5 * (cycle - ft)))

    while True:
        nominal = 60.0 / args.hr * (1 + args.rr_jitter * rng.standard_normal())
        cycle = nominal
        pv_scale = 1.0
        ectopic = args.ectopic > 0 and len(beats) >= 3 and not beats[-1]["ectopic"] and rng.uniform() < args.ectopic
        if ectopic:
            # A premature beat: it comes after `--ectopic-coupling` of the
            # previous beat's cycle, the ventricle less filled (smaller PV,
            # shorter FT), and a full compensatory pause follows it (the two
            # cycles around it add up to two ordinary ones).
            short = args.ectopic_coupling * beats[-1]["cycle"]
            on -= beats[-1]["cycle"] - short
            cycle = 2 * beats[-1]["cycle"] - short
            fit_cycle(beats[-1], short)
            nominal = short
            pv_scale = 0.7
        ft = args.ftc_ms / 1000 * math.sqrt(nominal) * (1 + 0.02 * rng.standard_normal())
        ft = min(ft, 0.75 * cycle)
        tp = ft * (args.tp_frac + 0.02 * rng.standard_normal())
        pv = pv_scale * args.pv * (1 + args.resp_depth * math.sin(2 * math.pi * on / 5.0)) * (1 + 0.02 * rng.standard_normal())
        rev_s = min(0.06, 0.5 * (cycle - ft))
        beats.append(dict(onset=on, tp=tp, ft=ft, pv=pv, cycle=cycle, rev_s=rev_s, ectopic=ectopic))
        on += cycle
        if on > args.seconds + 1:
            break
    v = np.zeros(n)
    for b in beats:
        lo = int(b["onset"] * fs)
        hi = min(n, int((b["onset"] + b["ft"] + b["rev_s"]) * fs) + 2)
        if lo >= n:
            break
        seg = slice(max(lo, 0), hi)
        v[seg] += beat_shape(t[seg], b["onset"], b["tp"], b["ft"], b["pv"], args.rev_cm_s, b["rev_s"], args.fall)
        if args.diastolic_cm_s:
            # Forward diastolic flow: a smooth bump of `--diastolic-cm-s`
            # from the end of the reverse dip to 40 ms before the next
            # onset, where v(t) is back at zero. Not part of the beat.
            a = b["onset"] + b["ft"] + b["rev_s"]
            e = b["onset"] + b["cycle"] - 0.04
            if e > a + 0.02:
                lo, hi = max(0, int(a * fs)), min(n, int(e * fs))
                v[lo:hi] += args.diastolic_cm_s * np.sin(np.pi * (t[lo:hi] - a) / (e - a)) ** 2
    phi = 2 * np.pi * k * np.cumsum(v) / fs

    # Scatterer slots.
    N = args.slots
    u = rng.uniform(size=N)
    if args.q_power is None:
        q = 1 - (1 - u) ** (args.profile_n / 2)
    else:
        q = u ** (1 / (args.q_power + 1))
    # Fading amplitudes at 1 kHz, linearly interpolated to the sample rate.
    ar_fs = 1000
    na = int(args.seconds * ar_fs) + 2
    amp = np.empty((N, na), np.complex64)
    f = np.fft.fftfreq(na, 1.0 / ar_fs)
    h = np.exp(-0.5 * (2 * np.pi * f * args.tau_ms / 1000) ** 2)
    for r0 in range(0, N, 50):
        r1 = min(N, r0 + 50)
        white = (rng.standard_normal((r1 - r0, na)) + 1j * rng.standard_normal((r1 - r0, na))) / math.sqrt(2)
        if args.fade == "ar1":
            # Exponential correlation: a Lorentzian line whose tails reach
            # far past the edge (an unphysical broadening, for comparison).
            rho = math.exp(-1.0 / (ar_fs * args.tau_ms / 1000))
            a = np.empty_like(white)
            a[:, 0] = white[:, 0]
            for i in range(1, na):
                a[:, i] = rho * a[:, i - 1] + white[:, i] * math.sqrt(1 - rho * rho)
        else:
            # Gaussian correlation (a Gaussian beam's speckle): white noise
            # smoothed by a Gaussian of sd tau (circularly).
            a = np.fft.ifft(np.fft.fft(white, axis=1) * h[None, :], axis=1)
        amp[r0:r1] = a / np.sqrt(np.mean(np.abs(a) ** 2))
    amp /= math.sqrt(N)
    if args.beam_width is not None:
        # Each scatterer sits at radius r (r^2 = 1 - u, area-uniform) and a
        # uniform angle in the cross-section; the beam's lateral profile
        # weights its power by exp(-2 y^2 / B^2).
        r = np.sqrt(1 - u)
        y = r * np.sin(rng.uniform(0, 2 * np.pi, size=N))
        amp *= np.exp(-(y / args.beam_width) ** 2)[:, None]
    blood = np.empty(n, complex)
    chunk = 4000
    ta = t * ar_fs
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        i0 = np.floor(ta[c0:c1]).astype(int)
        fr = ta[c0:c1] - i0
        a = amp[:, i0] * (1 - fr) + amp[:, i0 + 1] * fr
        blood[c0:c1] = np.sum(a * np.exp(1j * q[:, None] * phi[None, c0:c1]), axis=0)

    systole = np.zeros(n, bool)
    for b in beats:
        lo, hi = int(b["onset"] * fs), int((b["onset"] + b["ft"]) * fs)
        systole[max(lo, 0):min(hi, n)] = True
    p_blood = np.mean(np.abs(blood[systole]) ** 2)
    blood_rms = 150.0
    blood *= blood_rms / math.sqrt(p_blood)
    if args.drift_db:
        # The probe drifts: the blood's power swings +-drift dB over 23 s.
        blood *= 10 ** (args.drift_db / 20 * np.sin(2 * np.pi * t / 23.0))
    noise_p = blood_rms ** 2 / 10 ** (args.snr_db / 10)
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * math.sqrt(noise_p / 2)
    # Wall clutter: a strong echo whose Doppler shift swings +-60 Hz with the heart.
    fw = np.zeros(n)
    for b in beats:
        lo = int(b["onset"] * fs)
        hi = min(n, int((b["onset"] + b["cycle"]) * fs))
        if lo >= n:
            break
        x = t[max(lo, 0):hi] - b["onset"]
        fw[max(lo, 0):hi] = 60 * np.sin(2 * np.pi * x / b["cycle"])
    clutter = blood_rms * 10 ** (args.clutter_db / 20) * np.exp(1j * (2 * np.pi * np.cumsum(fw) / fs + 0.7))
    x = blood + noise + clutter
    for spec in args.tone:
        # A steady tone (a switching supply, another machine): F_HZ:DB
        # over the blood's power, switched on at FROM_S (default 0).
        fields = [float(v) for v in spec.split(":")]
        f_hz, db = fields[0], fields[1]
        on = t >= (fields[2] if len(fields) > 2 else 0.0)
        x += on * blood_rms * 10 ** (db / 20) * np.exp(1j * (2 * np.pi * f_hz * t + rng.uniform(0, 2 * np.pi)))
    # Impairments, at random times clear of the first 2 s.
    imp = []
    def slot(dur):
        for _ in range(1000):
            a = rng.uniform(2.0, args.seconds - dur - 1.0)
            if all(a + dur + 1.0 < i["start_s"] or a > i["end_s"] + 1.0 for i in imp):
                return a
        return None

    def episodes(count, shortest_s, longest_s):
        """`count` spans of random length at free random times, as
        (start s, length s, first sample, end sample)."""
        for _ in range(count):
            dur = rng.uniform(shortest_s, longest_s)
            a = slot(dur)
            if a is not None:
                yield a, dur, int(a * fs), int((a + dur) * fs)

    for a, dur, lo, hi in episodes(args.diathermy, 0.8, 4.0):
        lvl = rng.uniform(15, 35)
        burst = (rng.standard_normal(hi - lo) + 1j * rng.standard_normal(hi - lo)) * blood_rms * 10 ** (lvl / 20) / math.sqrt(2)
        # Cut mode is continuous; coag mode is gated at random 10-40 ms.
        if rng.uniform() < 0.5:
            gate = np.repeat(rng.uniform(size=(hi - lo) // 200 + 1) < 0.6, 200)[: hi - lo]
            burst *= gate
        x[lo:hi] += burst
        imp.append(dict(type="impairment", kind="diathermy", start_s=a, end_s=a + dur))
    for a, dur, lo, hi in episodes(args.clip, 0.2, 1.0):
        x[lo:hi] *= 40.0  # a gain step far past full scale
        imp.append(dict(type="impairment", kind="clipping", start_s=a, end_s=a + dur))
    for a, dur, lo, hi in episodes(args.loss, 3.0, 8.0):
        # The probe turned away from the aorta: the blood falls 40 dB within
        # 0.3 s, and comes back as fast.
        g = np.ones(hi - lo)
        r = int(0.3 * fs)
        g[:r] = np.linspace(1, 0.01, r)
        g[r:-r] = 0.01
        g[-r:] = np.linspace(0.01, 1, r)
        x[lo:hi] -= blood[lo:hi] * (1 - g)
        imp.append(dict(type="impairment", kind="loss", start_s=a, end_s=a + dur))
    for a, dur, _, _ in episodes(args.gaps, 0.05, 0.6):
        imp.append(dict(type="impairment", kind="gap", start_s=a, end_s=a + dur))
    iq = np.empty(2 * n)
    iq[0::2] = np.clip(np.round(x.real), -32768, 32767)
    iq[1::2] = np.clip(np.round(x.imag), -32768, 32767)

    s_off = args.start_sample
    w = Writer(args.raw, args.seq_start)
    w.annotation(s_off, {"type": "recording_started", "utc": "2026-12-02T07:00:00Z", "software": "refgen.py"})
    w.probe_info(fs, args.f0, args.angle)
    block = args.block
    next_info = fs
    gaps = [(int(i["start_s"] * fs), int(i["end_s"] * fs)) for i in imp if i["kind"] == "gap"]
    for s0 in range(0, n, block):
        if s0 >= next_info:
            w.probe_info(fs, args.f0, args.angle)
            next_info += fs
        s1 = min(n, s0 + block)
        if any(s0 < b and s1 > a for a, b in gaps):
            continue
        part = iq[2 * s0:2 * s1]
        clipped = bool(np.any(np.abs(part) >= 32767) or np.any(part <= -32768))
        w.iq(s_off + s0, part, 1 if clipped else 0)
        if args.garbage and rng.uniform() < args.garbage * block / n:
            # Line noise between frames, false syncs included.
            junk = bytearray(rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes())
            junk[: 2] = b"\xA5\x5A"
            w.buf += junk
    # Damage: flip one byte in each of `--damage` IQ frames; the frame's
    # samples are lost (a gap, to the analysis).
    damaged = set()
    for j in rng.choice(len(w.spans), size=min(args.damage, len(w.spans)), replace=False) if args.damage else []:
        damaged.add(int(j))
        a, b, first, cnt = w.spans[j]
        w.buf[int(rng.integers(a + 2, b))] ^= 1 << int(rng.integers(0, 8))
        imp.append(dict(type="impairment", kind="gap", start_s=first / fs, end_s=(first + cnt) / fs, damaged=True))
    with open(args.out, "wb") as f:
        f.write(w.buf)

    # Truth: exact beats whose next onset is inside the record.
    fine = 1e-5
    with open(args.out.rsplit(".", 1)[0] + ".truth.jsonl", "w") as tf:
        for i, b in enumerate(beats[:-1]):
            nxt = beats[i + 1]["onset"]
            if nxt > args.seconds:
                break
            tt = b["onset"] + np.arange(0, b["ft"], fine)
            vv = beat_shape(tt, b["onset"], b["tp"], b["ft"], b["pv"], 0, 1, args.fall)
            sd = float(np.sum(vv) * fine)
            t0 = s_off / fs
            rec = dict(type="beat", index=i, onset_s=t0 + b["onset"], peak_s=t0 + b["onset"] + b["tp"],
                       end_s=t0 + b["onset"] + b["ft"], next_onset_s=t0 + nxt, ft_ms=b["ft"] * 1000,
                       cycle_s=nxt - b["onset"], hr_bpm=60 / (nxt - b["onset"]), sd_cm=sd,
                       pv_cm_s=b["pv"], ma_cm_s2=b["pv"] / b["tp"])
            if b["ectopic"]:
                rec["ectopic"] = True
            tf.write(json.dumps(rec) + "\n")
        # What the receiver's counters must say (serial-stream.md): the
        # damaged frames are lost frames by seq, and their samples and the
        # gaps' are lost samples.
        lost = sum(c for (_, _, _, c), j in zip(w.spans, range(len(w.spans))) if j in damaged)
        lost += sum(len(range(s0, min(n, s0 + block))) for s0 in range(0, n, block)
                    if any(s0 < b and min(n, s0 + block) > a for a, b in gaps))
        tf.write(json.dumps(dict(type="stream", start_s=s_off / fs, end_s=(s_off + n) / fs,
                                 lost_frames=len(damaged), lost_samples=lost)) + "\n")
        for i in imp:
            if not i.get("damaged"):
                i["start_s"] += s_off / fs
                i["end_s"] += s_off / fs
            tf.write(json.dumps(i) + "\n")


if __name__ == "__main__":
    main()
