#!/usr/bin/env bash
# Parlor and Chromium side by side on the same shaped links, in one run: for each profile a
# 640x480 one-way Parlor call (parlor-rtc-bench --link-call) and a Chromium page-to-page call
# (tests/interop/chromium-pair.mjs, H.264 forced, Chromium's defaults otherwise), one after the
# other, each in a fresh namespace of scripts/shaped-link.sh. Prints received frame rate,
# freezes, the last received size, the received rate against the cap, Parlor / Chromium, and
# each one's latency from capture to the frame's hand-off at the receiver (Parlor: handed to the
# display after its render timing; Chromium: presented by the <video> element, which adds up to
# a display refresh).
#
#   scripts/compare-links.sh [SECONDS] [PROFILE...]     (default: 30 s; loss3 cap600-loss3 drop300)
#
# For drop300, give it 50 s or more to see the recovery after the link widens (at 30 s).
# PARLOR_VIDEO=vp8: both pairs in VP8 (the codec Debian's Firefox calls us in) instead of H.264.
#
# Needs root (unshare), chromium, and `npm ci --prefix tests/interop`; builds the bench
# (or takes PARLOR_BENCH, a built parlor-rtc-bench, e.g. an earlier build's).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(loss3 cap600-loss3 drop300)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
bench="${PARLOR_BENCH:-}"
if [ -z "$bench" ]; then
  cargo build --release --quiet -p parlor-rtc --bin parlor-rtc-bench
  bench="$CARGO_TARGET_DIR/release/parlor-rtc-bench"
fi

case "${PARLOR_VIDEO:-h264}" in
  vp8) codec=VP8; vp8_flag=--vp8 ;;
  h264) codec=H264; vp8_flag= ;;
  *) echo "PARLOR_VIDEO is h264 or vp8" >&2; exit 2 ;;
esac

cap_of() {
  case "$1" in
    cap600*) echo 600 ;;
    drop300) echo 300 ;;  # while narrowed
    *) echo 0 ;;
  esac
}

for profile in "${profiles[@]}"; do
  parlor=$(scripts/shaped-link.sh "$profile" -- "$bench" --link-call "$seconds" --json $vp8_flag | grep '^{')
  browser=$(scripts/shaped-link.sh "$profile" -- node tests/interop/chromium-pair.mjs --seconds "$seconds" --codec "$codec" | grep '^{')
  node -e '
    const [profile, cap, parlor, chromium] = process.argv.slice(1);
    const p = JSON.parse(parlor), c = JSON.parse(chromium);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const rx = (f) => f.estimates_kbps.map((t) => t.received);
    // The highest two-second average of what arrived, after the first 5 s.
    const peak2 = (f) => Math.max(...rx(f).slice(5).map((v, i, a) => (v + (a[i + 1] ?? v)) / 2));
    const row = (name, f) => `  ${name.padEnd(9)} ${f.fps.toFixed(1).padStart(5)} fps  ` +
      `${String(f.freezes).padStart(3)} freezes (${f.freeze_seconds.toFixed(1)} s)  ` +
      `last ${f.received_width}x${f.received_height}  received ${mean(rx(f)).toFixed(0)} kbit/s, ` +
      `highest 2 s ${peak2(f).toFixed(0)}` + (cap > 0 ? ` (cap ${cap})` : "");
    console.log(`${profile}, ${p.frames_per_second.length} s, 640x480 one-way, at the receiver ` +
      `(Parlor in ${p.video_codec}, Chromium in ${c.codec}):`);
    console.log(row("Parlor", p));
    console.log(row("Chromium", c));
    // drop300: how long after the link widened again the received rate was back to 90 % of
    // what it was before the drop. The schedule of the link starts before the clock of each call, so
    // the drop is found in the figures (the first second under 60 % of the rate before it) and
    // the widening put PARLOR_DROP_FOR (20) seconds after it.
    const recovery = (f) => {
      const r = rx(f);
      const before = mean(r.slice(3, 8));
      const drop = r.findIndex((v, i) => i >= 8 && v < 0.6 * before);
      if (drop < 0) return "no drop seen";
      const widened = drop + Number(process.env.PARLOR_DROP_FOR || 20);
      const back = r.findIndex((v, i) => i >= widened && (v + (r[i + 1] ?? v)) / 2 >= 0.9 * before);
      return back < 0
        ? `not back to 90 % of ${before.toFixed(0)} kbit/s within the call`
        : `back to 90 % of ${before.toFixed(0)} kbit/s ${back - widened} s after the widening`;
    };
    if (profile === "drop300") {
      console.log(`  after the drop: Parlor ${recovery(p)}; Chromium ${recovery(c)}`);
    }
    const ratio = p.fps / Math.max(c.fps, 1e-9);
    console.log(`  Parlor / Chromium: frame rate ${ratio.toFixed(2)}, freezes ${p.freezes} vs ${c.freezes}`);
    const ms = (v) => (v == null ? "?" : v.toFixed(0));
    console.log(`  latency p50 / p95: Parlor ${ms(p.latency_p50_ms)} / ${ms(p.latency_p95_ms)} ms ` +
      "(capture -> frame handed to the display), Chromium " +
      `${ms(c.latency_p50_ms)} / ${ms(c.latency_p95_ms)} ms (capture -> frame presented by the ` +
      "<video> element, requestVideoFrameCallback)");
  ' "$profile" "$(cap_of "$profile")" "$parlor" "$browser"
done
