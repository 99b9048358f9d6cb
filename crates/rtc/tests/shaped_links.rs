//! Calls across shaped links: a 640x480 one-way call (`parlor-rtc-bench --link-call`) inside a
//! network namespace whose loopback `scripts/shaped-link.sh` shapes like a real link.
//!
//! Needs root (for `unshare -n`), `tc` and `nft` — the README's test command installs them.
//! What is checked is function, not speed: video keeps arriving, the estimate comes under a
//! cap, what is sent stays under it, and the estimate climbs again when the link widens. The
//! figures themselves are printed, and compared with Chromium in the benchmark.
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs a call of `seconds` on `profile` and returns the bench's figures.
fn call(profile: &str, seconds: u64, env: &[(&str, &str)]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/shaped-link.sh");
    let limit = (seconds + 60).to_string();
    let output = Command::new("timeout")
        .arg(limit)
        .arg(script)
        .args([profile, "--", env!("CARGO_BIN_EXE_parlor-rtc-bench")])
        .args(["--link-call", &seconds.to_string(), "--json"])
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
        .find(|line| line.starts_with('{'))
        .unwrap_or_else(|| panic!("{profile}: no figures in\n{stdout}"));
    let figures: Value = serde_json::from_str(line).expect("figures are JSON");
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
fn video_keeps_arriving(profile: &str, figures: &Value, from: usize) {
    let frames = per_second(figures, "frames");
    for (window, pair) in frames[from..].chunks(2).enumerate() {
        let count: f64 = pair.iter().sum();
        assert!(
            count > 0.0,
            "{profile}: no frame in the 2 s from {} s: {frames:?}",
            from + 2 * window
        );
    }
}

/// What arrives stays under `cap_kbps` over every two consecutive seconds from `from` on (the
/// trace's `received`: RTP payload the receiver got each second, a little less than what the
/// link carried; single seconds wobble with the sampling and the token bucket's burst).
fn sent_stays_under(profile: &str, figures: &Value, from: usize, cap_kbps: f64) {
    let received = per_second(figures, "received");
    for (second, pair) in received[from..].windows(2).enumerate() {
        let kbps = (pair[0] + pair[1]) / 2.0;
        assert!(
            kbps <= cap_kbps,
            "{profile}: {kbps} kbit/s over seconds {}-{} on a {cap_kbps} kbit/s link: {received:?}",
            from + second,
            from + second + 1
        );
    }
}

fn estimate_comes_under(profile: &str, figures: &Value, seconds: std::ops::Range<usize>, cap: f64) {
    let estimate = per_second(figures, "estimate");
    let seconds = seconds.start..seconds.end.min(estimate.len());
    assert!(
        estimate[seconds.clone()].iter().any(|&kbps| kbps <= cap),
        "{profile}: the estimate never came under {cap} kbit/s in {seconds:?}: {estimate:?}"
    );
}

#[test]
fn calls_hold_up_on_lossy_narrow_and_changing_links() {
    // 3 % of UDP packets lost each way.
    let figures = call("loss3", 15, &[]);
    video_keeps_arriving("loss3", &figures, 5);

    // 600 kbit/s with a 300 ms queue, and the same loss.
    let figures = call("cap600-loss3", 20, &[]);
    video_keeps_arriving("cap600-loss3", &figures, 5);
    estimate_comes_under("cap600-loss3", &figures, 5..19, 600.0);
    sent_stays_under("cap600-loss3", &figures, 5, 600.0);

    // 2 Mbit/s narrowed to 300 kbit/s from 8 s to 20 s of the namespace's life (the call's
    // own clock starts a second or two later), then 2 Mbit/s again.
    let figures = call(
        "drop300",
        30,
        &[("PARLOR_DROP_AT", "8"), ("PARLOR_DROP_FOR", "12")],
    );
    video_keeps_arriving("drop300", &figures, 5);
    estimate_comes_under("drop300", &figures, 8..19, 300.0);
    let estimate = per_second(&figures, "estimate");
    let narrow = estimate[8..19]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let after = estimate[24..].iter().copied().fold(0.0, f64::max);
    assert!(
        after >= 2.0 * narrow,
        "drop300: the estimate did not climb after the link widened: {estimate:?}"
    );
}
