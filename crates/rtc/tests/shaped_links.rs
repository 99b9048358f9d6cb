//! Calls across shaped links, inside a network namespace whose loopback `scripts/shaped-link.sh`
//! shapes like a real link: a 640x480 one-way call between two Parlor peers
//! (`parlor-rtc-bench --link-call`), and the same from `parlor-rtc-peer` into Debian's Chromium
//! (`tests/interop/chromium-peer.mjs --receive-only`).
//!
//! Needs root (for `unshare -n`), `tc`, `nft`, `chromium` and `npm ci` in tests/interop — the
//! README's test command provides them.
//! What is checked is function, not speed: video keeps arriving, the estimate comes under a
//! cap, what is sent stays under it, and the estimate climbs again when the link widens. The
//! figures themselves are printed, and compared with Chromium in the benchmark.
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `command` (in `dir`) inside a namespace shaped as `profile`, for at most `limit`
/// seconds, and returns the last JSON line it printed.
fn run_shaped(
    profile: &str,
    command: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
    limit: u64,
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/shaped-link.sh");
    let output = Command::new("timeout")
        .arg(limit.to_string())
        .arg(script)
        .args([profile, "--"])
        .args(command)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("run scripts/shaped-link.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{profile}: exit {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("{profile}: no JSON result in\n{stdout}"));
    serde_json::from_str(line).expect("the result is JSON")
}

/// Runs a call of `seconds` on `profile` and returns the bench's figures.
fn call(profile: &str, seconds: u64, env: &[(&str, &str)]) -> Value {
    let seconds_arg = seconds.to_string();
    let bench = env!("CARGO_BIN_EXE_parlor-rtc-bench");
    let command = [bench, "--link-call", &seconds_arg, "--json"];
    let figures = run_shaped(profile, &command, Path::new("."), env, seconds + 60);
    eprintln!("{profile}: {figures}");
    figures
}

fn per_second(figures: &Value, key: &str) -> Vec<f64> {
    match key {
        "frames" => figures["frames_per_second"]
            .as_array()
            .expect("frames_per_second")
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect(),
        field => figures["estimates_kbps"]
            .as_array()
            .expect("estimates_kbps")
            .iter()
            .map(|point| point[field].as_f64().unwrap())
            .collect(),
    }
}

/// Video arrives in every 2-second window from `from` on.
fn video_keeps_arriving(profile: &str, frames: &[f64], from: usize) {
    for (window, pair) in frames[from..].chunks(2).enumerate() {
        let count: f64 = pair.iter().sum();
        assert!(
            count > 0.0,
            "{profile}: no frame in the 2 s from {} s: {frames:?}",
            from + 2 * window
        );
    }
}

/// The longest run of consecutive seconds in which more was sent than `cap_kbps`.
fn longest_run_over(sent: &[f64], cap_kbps: f64) -> usize {
    sent.split(|kbps| *kbps <= cap_kbps)
        .map(<[f64]>::len)
        .max()
        .unwrap_or(0)
}

/// Issue 9's bar: what is sent (one figure a second, kbit/s) is over the cap for at most one
/// second at a time, in `seconds`. A congestion controller finds a link's capacity by passing
/// it, and a link that narrows under a call is passed until the feedback says so; more than a
/// second of either is a queue the call's own frames wait in.
fn sent_over_the_cap_at_most_a_second(
    profile: &str,
    sent: &[f64],
    seconds: std::ops::Range<usize>,
    cap_kbps: f64,
) {
    let seconds = seconds.start..seconds.end.min(sent.len());
    let longest = longest_run_over(&sent[seconds.clone()], cap_kbps);
    assert!(
        longest <= 1,
        "{profile}: sent more than {cap_kbps} kbit/s for {longest} s in a row in seconds \
         {seconds:?}: {sent:?}"
    );
}

/// What is sent (one figure a second, kbit/s) never exceeds the cap by more than the link's
/// queue absorbs, over any run of seconds from `from` on (sending more than that is what loses
/// packets to our own traffic), and is over it for at most a second at a time.
fn sent_stays_under_the_cap(
    profile: &str,
    sent: &[f64],
    from: usize,
    cap_kbps: f64,
    queue_ms: f64,
) {
    let queue_kbit = cap_kbps * queue_ms / 1000.0;
    // The largest excess over any run of consecutive seconds (Kadane).
    let (mut run, mut worst, mut worst_end) = (0.0_f64, 0.0_f64, from);
    for (second, kbps) in sent.iter().enumerate().skip(from) {
        run = (run + kbps - cap_kbps).max(0.0);
        if run > worst {
            (worst, worst_end) = (run, second);
        }
    }
    eprintln!(
        "{profile}: most sent above the cap: {worst:.0} kbit (the queue holds {queue_kbit:.0}); \
         longest run over the cap: {} s",
        longest_run_over(&sent[from..], cap_kbps)
    );
    assert!(
        worst <= queue_kbit,
        "{profile}: sent {worst:.0} kbit more than the {cap_kbps} kbit/s link carries, by second \
         {worst_end}; its {queue_ms} ms queue holds {queue_kbit:.0}: {sent:?}"
    );
    sent_over_the_cap_at_most_a_second(profile, sent, from..sent.len(), cap_kbps);
}

/// The call's seconds (indices of its per-second figures) that the link was narrow throughout,
/// from the link changes `scripts/shaped-link.sh` logged to `log` and the call's start.
fn narrow_seconds(figures: &Value, log: &Path) -> std::ops::Range<usize> {
    let started = figures["started_at_unix_s"]
        .as_f64()
        .expect("started_at_unix_s");
    let changes = std::fs::read_to_string(log).expect("the link's log");
    let at = |change: &str| {
        changes
            .lines()
            .find_map(|line| line.strip_prefix(change))
            .and_then(|time| time.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no '{change}' in the link's log: {changes:?}"))
            - started
    };
    let (narrowed, widened) = (at("narrowed"), at("widened"));
    assert!(
        narrowed >= 0.0 && widened > narrowed + 2.0,
        "the link narrowed {narrowed:.1} s and widened {widened:.1} s into the call"
    );
    // Second k covers [k, k + 1) of the call.
    narrowed.ceil() as usize..widened.floor() as usize
}

/// `kbps` (one figure a second) stays under `cap_kbps` over every two consecutive seconds from
/// `from` on (single seconds wobble with the sampling and the token bucket's burst).
fn stays_under(profile: &str, what: &str, kbps: &[f64], from: usize, cap_kbps: f64) {
    for (second, pair) in kbps[from..].windows(2).enumerate() {
        let average = (pair[0] + pair[1]) / 2.0;
        assert!(
            average <= cap_kbps,
            "{profile}: {what} {average} kbit/s over seconds {}-{} on a {cap_kbps} kbit/s link: {kbps:?}",
            from + second,
            from + second + 1
        );
    }
}

/// The estimate comes down to the link's rate at some second in `seconds`. Within 5 %: the
/// token bucket counts IP and UDP headers, which the estimate (of RTP packets) does not, and an
/// estimate a few kbit/s over the cap while the sender uses less than it is held there, not
/// overloading anything (one CI run held at 305 on the 300 kbit/s link, sending 218).
fn estimate_comes_under(
    profile: &str,
    estimate: &[f64],
    seconds: std::ops::Range<usize>,
    cap: f64,
) {
    let seconds = seconds.start..seconds.end.min(estimate.len());
    let link_rate = cap * 1.05;
    assert!(
        estimate[seconds.clone()].iter().any(|&kbps| kbps <= link_rate),
        "{profile}: the estimate never came down to {cap} kbit/s (+5 %) in {seconds:?}: {estimate:?}"
    );
}

/// The estimate after `after` is at least twice its lowest during `narrow`.
fn estimate_climbs_back(
    profile: &str,
    estimate: &[f64],
    narrow: std::ops::Range<usize>,
    after: usize,
) {
    let lowest = estimate[narrow]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let highest = estimate[after..].iter().copied().fold(0.0, f64::max);
    assert!(
        highest >= 2.0 * lowest,
        "{profile}: the estimate did not climb after the link widened: {estimate:?}"
    );
}

#[test]
fn calls_hold_up_on_lossy_narrow_and_changing_links() {
    // 3 % of UDP packets lost each way.
    let figures = call("loss3", 15, &[]);
    video_keeps_arriving("loss3", &per_second(&figures, "frames"), 5);
    // The losses were repaired by resends, and the sender's stats say so.
    let feedback = &figures["sender_feedback"];
    for count in [
        "nack_count",
        "retransmitted_packets_sent",
        "retransmitted_bytes_sent",
    ] {
        assert!(
            feedback[count].as_u64().is_some_and(|n| n > 0),
            "loss3: the sender's {count} is not above 0: {feedback}"
        );
    }

    // 600 kbit/s with a 300 ms queue, and the same loss.
    let figures = call("cap600-loss3", 20, &[]);
    video_keeps_arriving("cap600-loss3", &per_second(&figures, "frames"), 5);
    estimate_comes_under(
        "cap600-loss3",
        &per_second(&figures, "estimate"),
        5..19,
        600.0,
    );
    // The trace's `received`: RTP payload the receiver got each second, a little less than
    // what the link carried.
    let received = per_second(&figures, "received");
    stays_under("cap600-loss3", "arrived", &received, 5, 600.0);
    sent_stays_under_the_cap(
        "cap600-loss3",
        &per_second(&figures, "sent"),
        5,
        600.0,
        300.0,
    );

    // 2 Mbit/s narrowed to 300 kbit/s from 8 s to 20 s of the namespace's life (the call's
    // own clock starts a second or two later), then 2 Mbit/s again.
    let link_log = std::env::temp_dir().join(format!("parlor-drop300-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&link_log);
    let figures = call(
        "drop300",
        30,
        &[
            ("PARLOR_DROP_AT", "8"),
            ("PARLOR_DROP_FOR", "12"),
            ("PARLOR_LINK_LOG", link_log.to_str().unwrap()),
        ],
    );
    let narrow = narrow_seconds(&figures, &link_log);
    let _ = std::fs::remove_file(&link_log);
    video_keeps_arriving("drop300", &per_second(&figures, "frames"), 5);
    let estimate = per_second(&figures, "estimate");
    estimate_comes_under("drop300", &estimate, 8..19, 300.0);
    estimate_climbs_back("drop300", &estimate, 8..19, 24);
    // Its first second on the narrow link may still be over: the feedback that says so takes
    // a few hundred milliseconds to come back and act.
    sent_over_the_cap_at_most_a_second("drop300", &per_second(&figures, "sent"), narrow, 300.0);
}

/// A mesh call's sender with one peer behind a thin link (`mesh-thin`: 300 kbit/s to and from
/// 127.0.0.3; the other peer's link unshaped): the thin link gets an encoder of its own and
/// does not hold the other back. With one encoder for both (before), both peers got 320x240
/// at about 190 kbit/s.
#[test]
fn in_a_mesh_a_thin_link_does_not_hold_the_others_back() {
    let bench = env!("CARGO_BIN_EXE_parlor-rtc-bench");
    let command = [bench, "--mesh-call", "20", "--json"];
    let figures = run_shaped("mesh-thin", &command, Path::new("."), &[], 80);
    eprintln!("mesh-thin: {figures}");
    let receiver = |address: &str| {
        figures["receivers"]
            .as_array()
            .expect("receivers")
            .iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("no receiver at {address}: {figures}"))
            .clone()
    };
    let (wide, thin) = (receiver("127.0.0.2"), receiver("127.0.0.3"));
    // The unshaped link: the whole picture, at more than the thin link could carry at all.
    assert_eq!(
        (wide["width"].as_u64(), wide["height"].as_u64()),
        (Some(640), Some(480)),
        "the wide link got a smaller picture: {wide}"
    );
    let wide_kbps = wide["received_kbps"].as_f64().expect("received_kbps");
    assert!(
        wide_kbps > 300.0,
        "the wide link held to the thin one's rate: {wide}"
    );
    // The thin link: video keeps arriving, at what it can carry.
    let frames: Vec<f64> = thin["frames_per_second"]
        .as_array()
        .expect("frames_per_second")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    video_keeps_arriving("mesh-thin, the thin link", &frames, 5);
    let thin_kbps = thin["received_kbps"].as_f64().expect("received_kbps");
    assert!(
        thin_kbps < 300.0,
        "more arrived than the thin link carries: {thin}"
    );
}

/// The DTLS server's flight 4 (ServerHello to ServerHelloDone, one datagram) is lost once: the
/// handshake must send it again and the call connect, between two Parlor peers and from Parlor
/// into Chromium. Before the vendored rtc-dtls fix, neither call ever connected (one call in
/// about thirty on the 3 % loss link).
#[test]
fn a_call_connects_when_the_dtls_servers_first_flight_is_lost() {
    let figures = call("lose-server-hello", 4, &[]);
    let frames: f64 = per_second(&figures, "frames").iter().sum();
    assert!(frames > 0.0, "lose-server-hello: no video: {figures}");

    let call = call_into_chromium("lose-server-hello", 4, &[]);
    let frames: f64 = call.frames.iter().sum();
    assert!(
        frames > 0.0,
        "lose-server-hello into Chromium: no video: {:?}",
        call.frames
    );
}

/// A one-way call from `parlor-rtc-peer` into Chromium, second by second.
struct IntoChromium {
    /// Frames Chromium decoded in each second.
    frames: Vec<f64>,
    /// Our estimate and what we sent (all media), kbit/s.
    estimate: Vec<f64>,
    sent: Vec<f64>,
}

fn call_into_chromium(profile: &str, seconds: u64, env: &[(&str, &str)]) -> IntoChromium {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let interop = root.join("tests/interop");
    assert!(
        interop.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/interop (scripts/test.sh does)"
    );
    let seconds_arg = seconds.to_string();
    let command = [
        "node",
        "chromium-peer.mjs",
        "--chromium-role",
        "answer",
        "--receive-only",
        "--peer",
        env!("CARGO_BIN_EXE_parlor-rtc-peer"),
        "--duration",
        &seconds_arg,
    ];
    // How far ICE and the DTLS handshake got, for a call that never connects: the page logs
    // its states, and the peer its handshake.
    let log = [("RUST_LOG", "warn,rtc_ice=info,rtc_dtls=debug")];
    let env: Vec<_> = env.iter().chain(&log).copied().collect();
    let result = run_shaped(profile, &command, &interop, &env, seconds + 90);
    let numbers = |values: &Value| -> Vec<f64> {
        values
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| v.as_f64().unwrap_or(0.0))
            .collect()
    };
    let frames = numbers(&result["chromium"]["frames_per_second"]);
    let ours = result["ours"]["per_second"].as_array().expect("per_second");
    let estimate = ours
        .iter()
        .map(|s| s["estimate_kbps"].as_f64().unwrap_or(0.0))
        .collect();
    let sent = ours
        .iter()
        .map(|s| s["sent_kbps"].as_f64().unwrap_or(0.0))
        .collect();
    eprintln!(
        "{profile} into Chromium: frames {frames:?}\nestimate {estimate:?}\nsent {sent:?}\n\
         Chromium's inbound video: {}",
        result["chromium"]["inbound"]["video"]
    );
    IntoChromium {
        frames,
        estimate,
        sent,
    }
}

#[test]
fn calls_into_chromium_hold_up_on_lossy_narrow_and_changing_links() {
    let call = call_into_chromium("loss3", 15, &[]);
    video_keeps_arriving("loss3 into Chromium", &call.frames, 5);

    let call = call_into_chromium("cap600-loss3", 20, &[]);
    video_keeps_arriving("cap600-loss3 into Chromium", &call.frames, 5);
    estimate_comes_under("cap600-loss3 into Chromium", &call.estimate, 5..19, 600.0);
    sent_stays_under_the_cap("cap600-loss3 into Chromium", &call.sent, 5, 600.0, 300.0);

    // Chromium takes a few seconds to start inside the namespace before the call's clock
    // starts: the drop is scheduled later than in the Parlor pair's test. When the link narrows, what is in flight overflows the queue and resends come too late
    // to send. Chromium asks for the lost packets again and again, and for a keyframe only
    // after 3 s without a decodable frame: it showed nothing for 3-4 s until the sender
    // answered a resend too late with a keyframe (`retransmissions`).
    let call = drop300_into_chromium();
    video_keeps_arriving("drop300 into Chromium", &call.frames, 5);
    estimate_comes_under("drop300 into Chromium", &call.estimate, 8..22, 300.0);
    estimate_climbs_back("drop300 into Chromium", &call.estimate, 8..22, 26);
}

fn drop300_into_chromium() -> IntoChromium {
    // Long enough after the widening (at about 22 s) for the estimate to double from 200
    // kbit/s at GCC's 8 % a second, with room for one halving on the way (seen once, 3 s after
    // the widening).
    call_into_chromium(
        "drop300",
        40,
        &[("PARLOR_DROP_AT", "12"), ("PARLOR_DROP_FOR", "12")],
    )
}
