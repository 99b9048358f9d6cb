//! Two `parlor-rtc-peer` processes on loopback, signaling relayed between their stdio.
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

fn spawn(role: &str, tone: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_parlor-rtc-peer"))
        .args([
            "--role",
            role,
            "--tone",
            tone,
            "--width",
            "320",
            "--height",
            "240",
            "--duration",
            "4",
            "--large-messages",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn parlor-rtc-peer")
}

/// Forwards signaling lines from `child`'s stdout to `to`; returns its result line.
fn pump(
    child: &mut Child,
    to: mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<Option<Value>> {
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let value: Value = serde_json::from_str(&line).expect("JSON lines");
            if let Some(result) = value.get("result") {
                return Some(result.clone());
            }
            let _ = to.send(line);
        }
        None
    })
}

fn feed(child: &mut Child) -> mpsc::UnboundedSender<String> {
    let mut stdin = child.stdin.take().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tx
}

fn check(result: &Value, heard_hz: f64, from: &str) {
    assert!(result["error"].is_null(), "{result}");
    assert!(result["connected_ms"].as_f64().is_some(), "{result}");
    assert!(result["video_frames"].as_u64().unwrap() >= 30, "{result}");
    assert!(result["stamped_frames"].as_u64().unwrap() >= 30, "{result}");
    assert_eq!(result["stamps_in_order"], true);
    assert_eq!(result["video_width"], 320);
    let hz = result["audio_hz"].as_f64().expect("audio decoded");
    assert!(
        (hz - heard_hz).abs() < 5.0,
        "heard {hz} Hz, expected {heard_hz}"
    );
    let messages: Vec<&str> = result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&format!("hello from {from}").as_str()),
        "{messages:?}"
    );
    assert!(messages.contains(&"binary [1, 2, 3, 255]"), "{messages:?}");
    // The 1 MiB message arrived whole: same length and checksum as sent.
    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sum = big
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_mul(31).wrapping_add(b as u32));
    let expected = format!("binary {} bytes, checksum {sum:08x}", big.len());
    assert!(messages.contains(&expected.as_str()), "{messages:?}");
    let stats = &result["stats"];
    assert!(stats["selected_pair"]["local_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1"));
    assert!(stats["inbound"].as_array().unwrap().len() == 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_exchange_video_audio_and_data() {
    let mut offerer = spawn("offer", "440");
    let mut answerer = spawn("answer", "660");
    let to_answerer = feed(&mut answerer);
    let to_offerer = feed(&mut offerer);
    let offerer_result = pump(&mut offerer, to_answerer);
    let answerer_result = pump(&mut answerer, to_offerer);
    let (a, b) = tokio::time::timeout(Duration::from_secs(90), async {
        (
            offerer_result.await.unwrap(),
            answerer_result.await.unwrap(),
        )
    })
    .await
    .expect("both peers finish");
    let (a, b) = (a.expect("offerer result"), b.expect("answerer result"));
    check(&a, 660.0, "answer");
    check(&b, 440.0, "offer");
    assert!(offerer.wait().await.unwrap().success());
    assert!(answerer.wait().await.unwrap().success());
}

/// A peer that resolves mDNS, as the app does, on a machine whose only interface cannot
/// multicast (a loopback-only namespace stands in for a container or a VPN-only laptop):
/// webrtc-rs cannot join the mDNS group ("No such device"), and the peer must go on without
/// mDNS instead of failing to exist. Before, it never got as far as an offer. Needs root for
/// `unshare -n`, as the browser tests do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_goes_on_without_mdns_where_no_interface_can_multicast() {
    let peer = env!("CARGO_BIN_EXE_parlor-rtc-peer");
    let script =
        format!("ip link set lo up && exec '{peer}' --role offer --mdns --no-video --no-audio");
    let mut child = Command::new("timeout")
        .args(["60", "unshare", "-n", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn parlor-rtc-peer in a namespace");
    let stdout = child.stdout.take().unwrap();
    let first = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("read")
        .unwrap_or_default();
    // `timeout` passes SIGTERM on to the peer (a SIGKILL would leave the peer behind).
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = child.wait().await;
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    let _ = child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await;
    let line: Value = serde_json::from_str(&first)
        .unwrap_or_else(|_| panic!("no JSON line from the peer: {first:?}\n{stderr}"));
    assert_eq!(
        line["description"]["type"], "offer",
        "the peer did not get as far as an offer: {line}\n{stderr}"
    );
    assert!(
        stderr.contains("trying without it"),
        "the fallback is said in the log: {stderr}"
    );
}
