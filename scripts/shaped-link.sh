#!/usr/bin/env bash
# Runs a command inside a new network namespace whose loopback is shaped like a real link, so
# that nothing outside the namespace is touched and nothing inside can reach another host.
#
#   scripts/shaped-link.sh PROFILE -- COMMAND [ARGS...]
#
# Profiles (the kernel here has no netem; a token bucket and nftables drops work):
#   clean        no shaping
#   loss3        3 % of UDP packets dropped, each way
#   cap600       600 kbit/s token bucket with a 300 ms queue, no random loss
#   cap600-loss3 600 kbit/s token bucket with a 300 ms queue, plus 3 % UDP loss
#   drop300      2 Mbit/s, narrowed to 300 kbit/s from 10 s to 30 s after the start, then
#                2 Mbit/s again (both times: PARLOR_DROP_AT, PARLOR_DROP_FOR, in seconds)
#   mesh-thin    only what goes to or from 127.0.0.3 is shaped: 300 kbit/s with a 300 ms queue
#                (one peer of a mesh on a thin link, the others on a fast one; parlor-rtc-bench
#                --mesh-call puts its second receiver there)
#   mesh-tiers   as mesh-thin, and 127.0.0.4 (the third receiver) on 100 kbit/s with a 300 ms
#                queue: three links three tiers apart, the most encoders a codec gets
#   lose-server-hello  no shaping, but the first datagram carrying a DTLS ServerHello (the
#                server's flight 4) is lost: the handshake has to retransmit it
#
# Everything in the namespace shares `lo`, so a cap is shared by both directions (and by
# signaling); a one-way call puts nearly all of its bytes in one direction anyway.
set -euo pipefail
profile="${1:?usage: shaped-link.sh PROFILE -- COMMAND...}"
shift
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "no command given" >&2; exit 2; }

if [ "${PARLOR_IN_SHAPED_NS:-}" != "$profile" ]; then
  command -v nft >/dev/null || { echo "needs nftables (apt-get install nftables)" >&2; exit 2; }
  command -v tc >/dev/null || { echo "needs iproute2 (apt-get install iproute2)" >&2; exit 2; }
  PARLOR_IN_SHAPED_NS="$profile" exec unshare -n -- "$0" "$profile" -- "$@"
fi

ip link set lo up
# The nftables chain every drop rule goes in: what this namespace sends.
output_chain() {
  nft add table inet parlor_shape
  nft add chain inet parlor_shape out '{ type filter hook output priority 0; }'
}
log_link_change() {
  if [ -n "${PARLOR_LINK_LOG:-}" ]; then
    echo "$1 $(date +%s.%N)" >> "$PARLOR_LINK_LOG"
  fi
}
drop_udp() {
  output_chain
  nft add rule inet parlor_shape out meta l4proto udp numgen random mod 100 \< "$1" drop
}
case "$profile" in
  clean) ;;
  loss3) drop_udp 3 ;;
  cap600)
    tc qdisc add dev lo root tbf rate 600kbit burst 15k latency 300ms
    ;;
  cap600-loss3)
    tc qdisc add dev lo root tbf rate 600kbit burst 15k latency 300ms
    drop_udp 3
    ;;
  drop300)
    tc qdisc add dev lo root tbf rate 2mbit burst 15k latency 300ms
    # A schedule of the link, not a wait for anything: the link changes at these times
    # whatever the call is doing, as a real one would.
    # Each change is logged (`narrowed|widened <Unix time>`) to PARLOR_LINK_LOG if it is set,
    # so a test can tell which of the call's seconds the link was narrow for.
    (
      sleep "${PARLOR_DROP_AT:-10}"
      tc qdisc change dev lo root tbf rate 300kbit burst 15k latency 300ms
      log_link_change narrowed
      sleep "${PARLOR_DROP_FOR:-20}"
      tc qdisc change dev lo root tbf rate 2mbit burst 15k latency 300ms
      log_link_change widened
    ) &
    ;;
  mesh-thin|mesh-tiers)
    # Unshaped by default; a class for each thin peer, its queue 300 ms at its rate.
    tc qdisc add dev lo root handle 1: htb default 10
    tc class add dev lo parent 1: classid 1:10 htb rate 10gbit quantum 60000
    thin_peer() { # ADDRESS CLASS RATE_KBIT
      tc class add dev lo parent 1: classid "1:$2" htb rate "${3}kbit" ceil "${3}kbit"
      tc qdisc add dev lo parent "1:$2" bfifo limit $(( $3 * 1000 / 8 * 3 / 10 ))
      for end in src dst; do
        tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip "$end" "$1/32" flowid "1:$2"
      done
    }
    thin_peer 127.0.0.3 20 300
    if [ "$profile" = mesh-tiers ]; then thin_peer 127.0.0.4 30 100; fi
    ;;
  lose-server-hello)
    # UDP payload byte 0: DTLS content type 22 (handshake); byte 13: handshake type 2
    # (ServerHello). `limit … burst 1` matches the first such datagram only.
    output_chain
    nft add rule inet parlor_shape out meta l4proto udp @th,64,8 22 @th,168,8 2 \
      limit rate 1/hour burst 1 packets counter drop
    # A run in which no ServerHello was lost did not test what it claims to: fail it.
    set +e
    "$@"
    status=$?
    set -e
    # Listed first, then searched: `nft … | grep -q` under pipefail fails whenever grep quits
    # at the match before nft has written the rest (SIGPIPE), which read as "not dropped".
    listing=$(nft list chain inet parlor_shape out)
    if ! grep -q 'counter packets 1 ' <<<"$listing"; then
      echo "lose-server-hello: no ServerHello was dropped:" >&2
      echo "$listing" >&2
      exit 3
    fi
    exit "$status"
    ;;
  *) echo "unknown profile: $profile" >&2; exit 2 ;;
esac
exec "$@"
