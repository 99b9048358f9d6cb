//! The web app end to end in real browsers: `parlor-server` serves `ui/dist-web`, Debian's
//! Chromium and Firefox ESR register, chat and call through it with the `parlor` CLI, inside a
//! loopback-only network namespace (tests/interop/web-app.mjs drives the browser and reports).
//! Needs root (for `unshare -n`), `chromium`, `firefox-esr`, `sqlite3`, `npm ci` in tests/interop
//! and the web build (`npm run --prefix ui build`): the README's test command provides them all.
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary of the workspace, built next to this test by the workspace's test run.
fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace)",
        path.display()
    );
    path
}

fn run(browser: &str) -> Value {
    run_script(&format!("web-app.mjs --browser {browser}"))
}

/// Runs `script` (with its options) in a loopback-only namespace with the server, the CLI and
/// the web build it needs; returns the JSON line it printed last.
fn run_script(script: &str) -> Value {
    let interop = repository().join("tests/interop");
    let web_dir = repository().join("ui/dist-web");
    assert!(
        web_dir.join("index.html").exists(),
        "the web app is not built: run `npm run --prefix ui build`"
    );
    assert!(
        interop.join("node_modules/puppeteer-core").exists(),
        "run `npm ci` in tests/interop (scripts/test.sh does)"
    );
    let script = format!(
        "ip link set lo up && exec node {script} --server {} --cli {} --web-dir {}",
        sibling_binary("parlor-server").display(),
        env!("CARGO_BIN_EXE_parlor"),
        web_dir.display()
    );
    let output = Command::new("timeout")
        .args(["300", "unshare", "-n", "sh", "-c", &script])
        .current_dir(&interop)
        .output()
        .expect("run the browser script");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stderr}",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no result:\n{stderr}"));
    serde_json::from_str(line).expect("result JSON")
}

/// Chat both ways with markup kept as text, a call placed from each side with video and sound
/// arriving at both ends (the video in `codec`, as the CLI received it), and a guest who came in
/// through a link the owner made in the page: in that one room, chatting and taking a call.
fn check(result: &Value, codec: &str) {
    let chat = &result["chat"];
    assert_eq!(chat["shown"], true, "{chat}");
    assert_eq!(chat["markup_stays_text"], true, "{chat}");
    let cli_saw: Vec<&str> = chat["cli_saw"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(cli_saw.contains(&"hello from the browser"), "{cli_saw:?}");
    assert_eq!(
        result["csp_violations"].as_array().map(Vec::len),
        Some(0),
        "{result}"
    );
    let calls = result["calls"].as_array().unwrap();
    let callers: Vec<&str> = calls.iter().filter_map(|c| c["caller"].as_str()).collect();
    assert_eq!(callers, ["cli", "browser"]);
    for call in calls {
        let browser = &call["browser"];
        assert!(browser["frames"].as_u64().unwrap() > 10, "{call}");
        let heard = browser["heard_hz"].as_f64().unwrap();
        assert!((heard - 440.0).abs() < 20.0, "{call}");
        let peers = call["cli"]["peers"].as_object().unwrap();
        assert_eq!(peers.len(), 1, "{call}");
        let from_browser = peers.values().next().unwrap();
        assert!(
            from_browser["video_frames"].as_u64().unwrap() > 10,
            "{call}"
        );
        assert!(
            from_browser["audio_frames"].as_u64().unwrap() > 10,
            "{call}"
        );
        assert!(
            from_browser["audio_hz"].as_f64().unwrap_or(0.0) > 0.0,
            "{call}"
        );
        let inbound = call["cli"]["stats"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["inbound"]
            .as_array()
            .unwrap();
        let video: Vec<&Value> = inbound.iter().filter(|t| t["kind"] == "video").collect();
        assert!(!video.is_empty(), "{call}");
        assert!(video.iter().all(|t| t["mime_type"] == codec), "{call}");
    }

    // Search over what the page loaded; the quality badge from getStats; mute and camera off
    // and on again, without an error.
    assert!(
        result["search"]
            .as_str()
            .unwrap()
            .contains("hello from the browser"),
        "{result}"
    );
    assert!(!result["quality"].as_str().unwrap().is_empty(), "{result}");
    let controls = &result["controls"];
    assert_eq!(controls["off"]["muted"], true, "{controls}");
    assert_eq!(controls["off"]["local_video_tracks"], 0, "{controls}");
    assert_eq!(controls["on_again"]["local_video_tracks"], 1, "{controls}");
    assert!(controls["errors"].is_null(), "{controls}");

    // A call the restarted server no longer knew of is ended, and the page says why.
    let lost = result["lost"].as_str().unwrap_or_default();
    assert!(lost.contains("call was lost"), "{result}");

    let guest = &result["guest"];
    let link = guest["link"].as_str().unwrap();
    assert!(
        link.starts_with("http://127.0.0.1:") && link.contains("/join/"),
        "{link}"
    );
    let view = &guest["view"];
    assert_eq!(view["note"], true, "{guest}");
    assert_eq!(view["can_create_rooms"], false, "{guest}");
    assert_eq!(view["rooms"], 1, "{guest}");
    // The link is not left in the address bar once used.
    assert_eq!(view["address"], "/", "{guest}");
    assert_eq!(guest["cli_saw"], true, "{guest}");
    assert!(guest["browser"]["frames"].as_u64().unwrap() > 10, "{guest}");
    let peers = guest["cli"]["peers"].as_object().unwrap();
    let from_guest = peers.values().next().unwrap();
    assert!(from_guest["video_frames"].as_u64().unwrap() > 10, "{guest}");
    assert!(from_guest["audio_frames"].as_u64().unwrap() > 10, "{guest}");
}

#[test]
fn chromium_uses_the_web_app_with_the_cli() {
    check(&run("chromium"), "video/H264");
}

/// Debian's Firefox has no H.264: its calls with the CLI are in VP8.
#[test]
fn firefox_uses_the_web_app_with_the_cli() {
    check(&run("firefox"), "video/VP8");
}

/// Two browsers and the CLI in one mesh call: Chromium and Firefox each show both others'
/// video and hear the CLI's tone, Chromium hears Firefox's, and the CLI decodes Chromium in
/// H.264 and Firefox in VP8 at once.
#[test]
fn two_browsers_and_the_cli_in_one_call() {
    let result = run_script("web-mesh.mjs");
    for browser in ["chromium", "firefox"] {
        let seen = &result["seen"][browser];
        let frames = seen["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 2, "{seen}");
        assert!(frames.iter().all(|f| f.as_u64().unwrap() > 10), "{seen}");
        assert!(
            (seen["cli_tone_hz"].as_f64().unwrap() - 440.0).abs() < 20.0,
            "{seen}"
        );
    }
    let firefox_tone = result["seen"]["chromium"]["firefox_tone_hz"]
        .as_f64()
        .unwrap();
    assert!((firefox_tone - 1000.0).abs() < 20.0, "{result}");
    let cli = &result["cli"];
    let peers = cli["peers"].as_object().unwrap();
    assert_eq!(peers.len(), 2, "{cli}");
    for peer in peers.values() {
        assert!(peer["video_frames"].as_u64().unwrap() > 10, "{cli}");
        assert!(peer["audio_frames"].as_u64().unwrap() > 10, "{cli}");
    }
    let mut codecs: Vec<&str> = cli["stats"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|s| s["inbound"].as_array().unwrap())
        .filter(|t| t["kind"] == "video")
        .filter_map(|t| t["mime_type"].as_str())
        .collect();
    codecs.sort_unstable();
    assert_eq!(codecs, ["video/H264", "video/VP8"], "{cli}");
}
