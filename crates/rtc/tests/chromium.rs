//! Interop with real browsers: Debian's Chromium (driven by playwright-core) and Firefox ESR
//! (by puppeteer-core over WebDriver BiDi), inside a loopback-only network namespace, against
//! `parlor-rtc-peer`, in both offer directions. Needs root (for `unshare -n`), `chromium`,
//! `firefox-esr`, `sqlite3` (Firefox's stored permissions) and `npm ci` in tests/interop — the
//! README's test command provides them all.
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

fn run(chromium_role: &str) -> Value {
    run_with(chromium_role, "")
}

/// `options`: more of chromium-peer.mjs's options, as they go on its command line.
fn run_with(chromium_role: &str, options: &str) -> Value {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/interop (scripts/test.sh does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is not installed (apt package chromium)"
    );
    assert!(
        !options.contains("firefox") || std::path::Path::new("/usr/bin/firefox-esr").exists(),
        "firefox-esr is not installed (apt package firefox-esr)"
    );
    let script = format!(
        "ip link set lo up && exec node chromium-peer.mjs --chromium-role {chromium_role} --peer {} --duration 4 {options}",
        env!("CARGO_BIN_EXE_parlor-rtc-peer")
    );
    let output = Command::new("timeout")
        .args(["180", "unshare", "-n", "sh", "-c", &script])
        .current_dir(&dir)
        .output()
        .expect("run the interop script");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop script failed ({}):\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no result:\n{stderr}"));
    serde_json::from_str(line).expect("result JSON")
}

/// Audio both ways and the data channel both ways, whatever happened to video.
fn check_audio_and_data(result: &Value) {
    let chromium = &result["chromium"];
    let ours = &result["ours"];
    assert!(ours["error"].is_null(), "{ours}");
    assert_eq!(chromium["inbound"]["audio"]["codec"], "audio/opus");
    assert!(
        chromium["inbound"]["audio"]["totalSamplesReceived"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{chromium}"
    );
    assert!(ours["audio_frames"].as_u64().unwrap() > 0, "{ours}");
    let theirs: Vec<&str> = chromium["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        theirs.iter().any(|m| m.starts_with("hello from ")),
        "{theirs:?}"
    );
    assert!(theirs.contains(&"binary 1,2,3,255"), "{theirs:?}");
    let mine: Vec<&str> = ours["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(mine.contains(&"hello from chromium"), "{mine:?}");
    assert!(mine.contains(&"binary [9, 8, 7]"), "{mine:?}");
}

fn check(result: &Value) {
    check_video_in(result, "video/H264");
}

/// Audio, data and video both ways, the video in `codec` (as Chromium names it).
fn check_video_in(result: &Value, codec: &str) {
    check_audio_and_data(result);
    let chromium = &result["chromium"];
    let ours = &result["ours"];
    // Chromium decoded our H.264, and we decoded Chromium's.
    assert_eq!(chromium["inbound"]["video"]["codec"], codec, "{chromium}");
    assert!(
        chromium["inbound"]["video"]["framesDecoded"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{chromium}"
    );
    assert!(ours["video_frames"].as_u64().unwrap() > 0, "{ours}");
    assert!(ours["video_width"].as_u64().unwrap() > 0);
}

#[test]
fn chromium_offers_and_we_answer() {
    check(&run("offer"));
}

#[test]
fn we_offer_and_chromium_answers() {
    check(&run("answer"));
}

/// A browser with none of our video codecs is played by Chromium offering and accepting video
/// in VP9 only. Video cannot flow either way, but the call's audio and data channel must:
/// before, an offer like that failed our answer whole ("RTPSender created with no codecs").
fn check_without_common_video(result: &Value) {
    check_audio_and_data(result);
    let chromium = &result["chromium"];
    let ours = &result["ours"];
    assert_eq!(ours["video_frames"].as_u64(), Some(0), "{ours}");
    assert!(
        chromium["inbound"]["video"]["framesDecoded"].is_null(),
        "{chromium}"
    );
}

#[test]
fn a_browser_offering_none_of_our_video_codecs_still_talks_with_us() {
    check_without_common_video(&run_with("offer", "--video-codecs VP9"));
}

#[test]
fn a_browser_accepting_none_of_our_video_codecs_still_talks_with_us() {
    check_without_common_video(&run_with("answer", "--video-codecs VP9"));
}

/// A browser without H.264 (Debian's Firefox has none) is played by Chromium offering and
/// accepting video in VP8 and VP9 only: video goes both ways in VP8.
#[test]
fn a_browser_without_h264_offers_and_we_answer_in_vp8() {
    check_video_in(&run_with("offer", "--video-codecs VP8,VP9"), "video/VP8");
}

#[test]
fn we_offer_and_a_browser_without_h264_answers_in_vp8() {
    check_video_in(&run_with("answer", "--video-codecs VP8,VP9"), "video/VP8");
}

/// Debian's Firefox ESR itself (through WebDriver BiDi; it has no H.264): VP8 and Opus both
/// ways, and the data channel, in both offer directions.
#[test]
fn firefox_offers_and_we_answer_in_vp8() {
    check_video_in(&run_with("offer", "--browser firefox"), "video/VP8");
}

#[test]
fn we_offer_and_firefox_answers_in_vp8() {
    check_video_in(&run_with("answer", "--browser firefox"), "video/VP8");
}
