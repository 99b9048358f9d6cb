#!/usr/bin/env bash
# Call setup between parlor-rtc-peer (the engine of `parlor call` and the app) and Debian's
# Chromium, N calls in each offer direction, each in a fresh loopback-only namespace. Prints
# p50 / p95 / max and the calls over a second, for:
#   - we offer:        from our offer reaching Chromium to Chromium's connectionState
#                      "connected" (Chromium's clock);
#   - Chromium offers: from Chromium's offer reaching us to our "connected" (our clock).
# Both are offer in → answerer connected: they leave out the page's own start (getUserMedia)
# and the signaling hop of the offer, and include ICE, DTLS and the answer's trip back.
#
#   scripts/call-setup.sh [N]          (default 20)
#
# Needs root (unshare), chromium and `npm ci --prefix tests/interop`; builds parlor-rtc-peer
# (or takes PARLOR_RTC_PEER, a built one, e.g. an earlier build's).
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor/target}"
peer="${PARLOR_RTC_PEER:-}"
if [ -z "$peer" ]; then
  cargo build --release --quiet -p parlor-rtc --bin parlor-rtc-peer
  peer="$CARGO_TARGET_DIR/release/parlor-rtc-peer"
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for _ in $(seq "$calls"); do
  for role in answer offer; do
    line=$(cd tests/interop && timeout 90 unshare -n sh -c \
      "ip link set lo up && exec node chromium-peer.mjs --chromium-role $role --peer $peer --duration 1.5" \
      2>/dev/null | tail -1) || true
    echo "$role ${line:-null}" >> "$results"
  done
done

node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
  const times = { answer: [], offer: [] };
  let failed = 0;
  for (const line of lines) {
    const space = line.indexOf(" ");
    const role = line.slice(0, space);
    const result = JSON.parse(line.slice(space + 1));
    const ms = !result ? null
      : role === "answer" ? result.chromium.connected_after_offer_ms
      : result.ours.connected_ms;
    if (ms == null) failed++; else times[role].push(ms);
  }
  const at = (xs, q) => xs[Math.min(xs.length - 1, Math.round(q * (xs.length - 1)))];
  for (const [role, name] of [["answer", "we offer"], ["offer", "Chromium offers"]]) {
    const xs = times[role].sort((a, b) => a - b);
    if (!xs.length) { console.log(`${name}: no call connected`); continue; }
    const over = xs.filter((x) => x > 1000).length;
    console.log(`${name}: ${xs.length} calls, offer in -> connected p50 ${at(xs, 0.5).toFixed(0)} ms, ` +
      `p95 ${at(xs, 0.95).toFixed(0)} ms, max ${xs[xs.length - 1].toFixed(0)} ms, over 1 s: ${over}`);
  }
  if (failed) { console.log(`${failed} calls did not connect`); process.exitCode = 1; }
' "$results"
