#!/usr/bin/env bash
# Two-way calls, Parlor and Chromium side by side on the same shaped links, in one run: for each
# profile a 640x480 video call both ways between two parlor-rtc-peer processes
# (tests/interop/parlor-two-way.mjs) and between two Chromium pages (H.264 forced,
# tests/interop/chromium-two-way.mjs), one after the other, each in a fresh namespace of
# scripts/shaped-link.sh. Every profile's cap is shared by both directions there (one `lo`), as
# on a half-duplex link or two calls behind one narrow uplink: what matters is how the two
# directions share it. Prints, for each side, the frame rate it received, freezes, the width the
# other side's picture arrived at, and what it sent.
#
#   scripts/compare-two-way.sh [SECONDS] [PROFILE...]     (default: 20 s; clean cap600)
#
# Needs root (unshare), chromium, and `npm ci --prefix tests/interop`; builds parlor-rtc-peer
# (or takes PARLOR_RTC_PEER).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(clean cap600)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
peer="${PARLOR_RTC_PEER:-}"
if [ -z "$peer" ]; then
  cargo build --release --quiet -p parlor-rtc --bin parlor-rtc-peer
  peer="$CARGO_TARGET_DIR/release/parlor-rtc-peer"
fi

# One pair's call on a profile: its JSON line on stdout. The pair's own output on stderr (peers'
# warnings, the browser's) is kept out of the table, and shown only when the call gave no
# figures, with the reason the harness gave; the other profiles still run.
failed=0
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
call() {
  local profile=$1 name=$2
  shift 2
  local line
  line=$(scripts/shaped-link.sh "$profile" -- "$@" 2>"$errors" | grep '^{' || true)
  if [ -z "$line" ]; then
    echo "$profile: the $name pair gave no figures:" >&2
    tail -n 20 "$errors" | sed 's/^/  /' >&2
    return 1
  fi
  echo "$line"
}

for profile in "${profiles[@]}"; do
  parlor=$(call "$profile" Parlor node tests/interop/parlor-two-way.mjs --peer "$peer" --seconds "$seconds") &&
    browser=$(call "$profile" Chromium node tests/interop/chromium-two-way.mjs --seconds "$seconds") ||
    { failed=1; continue; }
  node -e '
    const [profile, seconds, parlor, chromium] = process.argv.slice(1);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    console.log(`${profile}, ${seconds} s, 640x480 both ways:`);
    for (const [name, f] of [["Parlor", JSON.parse(parlor)], ["Chromium", JSON.parse(chromium)]]) {
      for (const side of ["offerer", "answerer"]) {
        const s = f[side];
        const sent = s.sent_per_second.slice(1).map((p) => p.sent);
        console.log(`  ${name.padEnd(9)} ${side.padEnd(9)} received ${s.fps.toFixed(1).padStart(5)} fps, ` +
          `${String(s.freezes).padStart(2)} freezes (${s.freeze_seconds.toFixed(1)} s), last ${s.received_width} wide; ` +
          `sent ${mean(sent).toFixed(0)} kbit/s on average, at ` +
          [...new Set(s.sent_per_second.map((p) => p.width).filter(Boolean))].join(" -> ") + " wide");
      }
    }
  ' "$profile" "$seconds" "$parlor" "$browser"
done
exit $failed
