//! A relay-only call through a real coturn (apt package `coturn`) started by the test on
//! loopback with `use-auth-secret`, using the time-limited credentials our server issues.
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{parlor, stdout_json, Server};

const SECRET: &str = "parlor-test-secret";
const PASSWORD: &str = "password-123";

struct Turn(Child);

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// coturn on a free loopback port; returns it with the port. A port free when looked at can be
/// taken before coturn binds it, and coturn does not exit then: it retries the bind for ever
/// (a loaded CI run waited out its 10 s on one). Its log says so, and it is started again on
/// another port.
fn start_turn(log_dir: &std::path::Path) -> (Turn, u16) {
    for attempt in 0..5 {
        let port = free_udp_port();
        let log = log_dir.join(format!("turn-{attempt}.log"));
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--relay-ip",
                "127.0.0.1",
            ])
            .args([
                "--listening-port",
                &port.to_string(),
                "--min-port",
                "49160",
                "--max-port",
                "49260",
            ])
            .args([
                "--use-auth-secret",
                "--static-auth-secret",
                SECRET,
                "--realm",
                "parlor.test",
            ])
            .args([
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--fingerprint",
            ])
            .arg("--log-file")
            .arg(&log)
            .arg("--simple-log")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (apt package coturn) must be installed");
        let mut turn = Turn(child);
        match wait_until_answering(&mut turn, port, &log) {
            Answered::Yes => return (turn, port),
            Answered::PortTaken => eprintln!("port {port} was taken before coturn bound it"),
        }
    }
    panic!("coturn found no free port in 5 tries");
}

enum Answered {
    Yes,
    PortTaken,
}

/// Waits until coturn answers a STUN Binding request on `port`, or its log says it cannot bind
/// it.
fn wait_until_answering(turn: &mut Turn, port: u16, log: &std::path::Path) -> Answered {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let transaction: [u8; 12] = std::array::from_fn(|i| i as u8 ^ 0x5a);
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&transaction);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut reply = [0u8; 512];
    while std::time::Instant::now() < deadline {
        if let Some(status) = turn.0.try_wait().unwrap() {
            panic!("turnserver exited ({status}) before answering on port {port}");
        }
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains("Cannot bind")) {
            return Answered::PortTaken;
        }
        socket.send_to(&request, ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut reply) {
            // A Binding success response (0x0101) to our transaction.
            if n >= 20 && reply[..2] == [0x01, 0x01] && reply[8..20] == transaction {
                return Answered::Yes;
            }
        }
    }
    panic!("turnserver did not answer STUN on 127.0.0.1:{port} within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_call_goes_through_coturn_with_server_issued_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (_turn, turn_port) = start_turn(dir.path());
    let mut settings =
        parlor_signaling::config::Settings::for_database(&dir.path().join("server.db"));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.turn_urls = vec![format!("turn:127.0.0.1:{turn_port}?transport=udp")];
    settings.turn_secret = Some(SECRET.into());
    let server = Server::start_with(settings).await;
    let url = server.url.clone();

    let (ann, bob) = (dir.path().join("ann"), dir.path().join("bob"));
    let ann_id = stdout_json(&parlor(&ann, &url, PASSWORD, &["register", "ann"]).await)["user"]
        ["id"]
        .as_i64()
        .unwrap();
    let bob_id = stdout_json(&parlor(&bob, &url, PASSWORD, &["register", "bob"]).await)["user"]
        ["id"]
        .as_i64()
        .unwrap();
    let room = stdout_json(&parlor(&ann, &url, PASSWORD, &["create-room", "relayed"]).await)
        ["room"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    stdout_json(&parlor(&bob, &url, PASSWORD, &["join", &room]).await);

    let call = |data: std::path::PathBuf, tone: &'static str| {
        let (url, room) = (url.clone(), room.clone());
        tokio::spawn(async move {
            let stats = data.join("call.json");
            let audio = format!("tone:{tone}");
            let args = [
                "call",
                &room,
                "--relay-only",
                "--bind",
                "127.0.0.1",
                "--duration",
                "8",
                "--audio",
                &audio,
                "--stats-json",
                stats.to_str().unwrap(),
            ];
            let out = parlor(&data, &url, PASSWORD, &args).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(stats).unwrap())
                .unwrap()
        })
    };
    let a = call(ann.clone(), "440");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = call(bob.clone(), "660");
    let (a, b) = (a.await.unwrap(), b.await.unwrap());

    for (report, other, hz) in [(&a, bob_id, 660.0), (&b, ann_id, 440.0)] {
        let peer = &report["peers"][other.to_string()];
        assert!(peer["video_frames"].as_u64().unwrap_or(0) > 20, "{report}");
        let heard = peer["audio_hz"].as_f64().unwrap_or(0.0);
        assert!((heard - hz).abs() < 5.0, "heard {heard} Hz");
        let pair = &report["stats"][other.to_string()]["selected_pair"];
        assert_eq!(
            pair["local_type"], "relay",
            "the media went through the relay: {}",
            report["stats"]
        );
    }
    server.stop().await;
}
