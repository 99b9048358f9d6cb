//! The `parlor` command-line client, as processes, against the real server (in-process).
use std::path::Path;

mod common;

use common::{parlor, server, stdout_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cli_clients_chat() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let (ann, bob) = (dir.path().join("ann"), dir.path().join("bob"));

    stdout_json(&parlor(&ann, &server.url, "ann-password", &["register", "ann"]).await);
    stdout_json(&parlor(&bob, &server.url, "bob-password", &["register", "bob"]).await);
    let room = stdout_json(&parlor(&ann, &server.url, "", &["create-room", "general"]).await)
        ["room"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    stdout_json(&parlor(&bob, &server.url, "", &["join", &room]).await);

    // Bob tails while Ann sends: once tail says it is listening, nothing sent is missed.
    let mut tail = common::parlor_command(&bob, &server.url, "", &["tail", "--for", "30"], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn parlor tail");
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tail.stdout.take().unwrap()));
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let listening = line.contains(r#""type":"listening""#);
        seen.push(line);
        if listening {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("listening")),
        "tail ended before it listened: {seen:?}"
    );
    let sent = stdout_json(
        &parlor(
            &ann,
            &server.url,
            "",
            &["send", &room, "hello", "from", "the", "CLI"],
        )
        .await,
    );
    assert_eq!(sent["sent"]["text"], "hello from the CLI");
    // Read until the message comes (or tail's own --for ends it).
    let mut arrived = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(line);
        if seen.last().unwrap().contains("hello from the CLI") {
            arrived = true;
            break;
        }
    }
    assert!(arrived, "tail printed: {seen:?}");
    tail.kill().await.unwrap();

    // And the other way round, read with history; search finds it.
    stdout_json(&parlor(&bob, &server.url, "", &["send", &room, "hi ann"]).await);
    let history = parlor(&ann, &server.url, "", &["history", &room]).await;
    let texts: Vec<String> = String::from_utf8_lossy(&history.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, vec!["hello from the CLI", "hi ann"]);
    let found = parlor(&bob, &server.url, "", &["search", "hello"]).await;
    assert!(String::from_utf8_lossy(&found.stdout).contains("hello from the CLI"));
    let rooms = stdout_json(&parlor(&ann, &server.url, "", &["rooms"]).await);
    assert_eq!(rooms["rooms"][0]["unread"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let (ann, eve) = (dir.path().join("ann"), dir.path().join("eve"));
    stdout_json(&parlor(&ann, &server.url, "ann-password", &["register", "ann"]).await);
    let room = stdout_json(
        &parlor(
            &ann,
            &server.url,
            "",
            &["create-room", "secret", "--private"],
        )
        .await,
    )["room"]["id"]
        .as_i64()
        .unwrap()
        .to_string();

    let wrong = parlor(&eve, &server.url, "not-her-password", &["login", "ann"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    let not_logged_in = parlor(&eve, &server.url, "", &["rooms"]).await;
    assert_eq!(not_logged_in.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_logged_in.stderr).contains("not logged in"));

    stdout_json(&parlor(&eve, &server.url, "eve-password", &["register", "eve"]).await);
    let refused = parlor(&eve, &server.url, "", &["send", &room, "let me in"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not_member"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A source name that means nothing says which would do, before anything is joined.
    for (flag, value, forms) in [
        (
            "--video",
            "webcam",
            "test-pattern, camera, camera:ID or file:PATH.y4m",
        ),
        (
            "--audio",
            "tone:loud",
            "tone:HZ, test-tone, mic, mic:ID or file:PATH.wav",
        ),
    ] {
        let bad = parlor(&ann, &server.url, "", &["call", &room, flag, value]).await;
        assert_eq!(bad.status.code(), Some(2));
        let said = String::from_utf8_lossy(&bad.stderr);
        assert!(
            said.contains(&format!("`{value}`")) && said.contains(forms),
            "{said}"
        );
    }

    // With the server gone, a send is queued (exit 3) and goes out with the next command.
    let url = server.url.clone();
    server.stop().await;
    let queued = parlor(&ann, &url, "", &["send", &room, "queued while down"]).await;
    assert_eq!(
        queued.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    assert!(String::from_utf8_lossy(&queued.stdout).contains("queued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_cli_clients_in_a_mesh_call_receive_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let names = ["ann", "bob", "cat"];
    let tones = ["440", "660", "880"];
    let mut ids = Vec::new();
    for name in names {
        let out = stdout_json(
            &parlor(
                &dir.path().join(name),
                &server.url,
                "password-123",
                &["register", name],
            )
            .await,
        );
        ids.push(out["user"]["id"].as_i64().unwrap());
    }
    let room = stdout_json(
        &parlor(
            &dir.path().join("ann"),
            &server.url,
            "",
            &["create-room", "call"],
        )
        .await,
    )["room"]["id"]
        .as_i64()
        .unwrap()
        .to_string();
    for name in &names[1..] {
        stdout_json(&parlor(&dir.path().join(name), &server.url, "", &["join", &room]).await);
    }
    let mut calls = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (data, url, room, tone) = (
            dir.path().join(name),
            server.url.clone(),
            room.clone(),
            tones[i],
        );
        let stats = dir.path().join(format!("{name}.json"));
        // Ann also records what she receives.
        let record: Vec<String> = if i == 0 {
            [("--record-video", "ann.y4m"), ("--record-audio", "ann.wav")]
                .iter()
                .flat_map(|(flag, file)| {
                    [
                        flag.to_string(),
                        dir.path().join(file).to_string_lossy().into_owned(),
                    ]
                })
                .collect()
        } else {
            Vec::new()
        };
        calls.push(tokio::spawn(async move {
            let audio = format!("tone:{tone}");
            let mut args = vec![
                "call",
                &room,
                "--video",
                "test-pattern",
                "--audio",
                &audio,
                "--duration",
                "8",
                "--bind",
                "127.0.0.1",
                "--stats-json",
                stats.to_str().unwrap(),
            ];
            args.extend(record.iter().map(String::as_str));
            let out = parlor(&data, &url, "", &args).await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(stats).unwrap())
                .unwrap()
        }));
        // Stagger the joins a little, as people do.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let mut reports = Vec::new();
    for call in calls {
        reports.push(call.await.unwrap());
    }
    for (i, report) in reports.iter().enumerate() {
        for (j, other) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let peer = &report["peers"][other.to_string()];
            assert!(
                peer["video_frames"].as_u64().unwrap_or(0) > 30,
                "{} from {}: {peer}",
                names[i],
                names[j]
            );
            assert!(peer["stamped_frames"].as_u64().unwrap_or(0) > 30, "{peer}");
            let hz = peer["audio_hz"].as_f64().unwrap_or(0.0);
            let want: f64 = tones[j].parse().unwrap();
            assert!(
                (hz - want).abs() < 5.0,
                "{} heard {hz} Hz from {}, expected {want}",
                names[i],
                names[j]
            );
        }
    }
    // Ann's recordings hold the first participant she heard, readable as files.
    let recorded = &reports[0]["recorded"];
    let video_from = recorded["video_from"].as_i64().expect("video recorded");
    assert!(ids[1..].contains(&video_from), "{recorded}");
    let frames = recorded["video_frames"].as_u64().unwrap();
    assert!(frames > 30, "{recorded}");
    let path = dir.path().join("ann.y4m");
    let mut clip = parlor_media::y4m::Y4mSource::open(&path, false).unwrap();
    let format = parlor_media::VideoSource::format(&clip);
    // The file holds exactly the frames counted (the source plays back in real time, so
    // only the first second is decoded and checked for the sender's stamps).
    let header = std::fs::read(&path)
        .unwrap()
        .iter()
        .position(|&b| b == b'\n')
        .unwrap()
        + 1;
    let frame_bytes = 6 + format.width * format.height * 3 / 2;
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        (header + frames as usize * frame_bytes) as u64
    );
    for _ in 0..30 {
        let frame = parlor_media::VideoSource::next_frame(&mut clip).unwrap();
        assert!(parlor_media::pattern::read_stamp(&frame).is_some());
    }
    let audio_from = recorded["audio_from"].as_i64().expect("audio recorded");
    let want: f64 = tones[ids.iter().position(|&id| id == audio_from).unwrap()]
        .parse()
        .unwrap();
    let (samples, channels, rate) =
        parlor_media::wav::read_all(&dir.path().join("ann.wav")).unwrap();
    assert_eq!(rate, 48_000);
    let mono: Vec<i16> = samples.iter().step_by(channels as usize).copied().collect();
    assert!(
        mono.len() > 48_000,
        "over a second of audio: {}",
        mono.len()
    );
    let hz =
        parlor_media::analysis::dominant_frequency(&mono[mono.len() / 2..], rate, 100.0, 2000.0)
            .unwrap_or(0.0);
    assert!((hz - want).abs() < 5.0, "recorded {hz} Hz, sent {want}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor"))
        .args(["--json", "--data-dir"])
        .arg(dir.path())
        .arg("devices")
        .env_remove("PARLOR_SERVER")
        .output()
        .await
        .unwrap();
    let value = stdout_json(&out);
    for key in ["microphones", "speakers", "cameras"] {
        assert!(value[key].is_array(), "{value}");
    }
}

async fn registered(dir: &Path, url: &str, name: &str) -> i64 {
    stdout_json(&parlor(&dir.join(name), url, "password-123", &["register", name]).await)["user"]
        ["id"]
        .as_i64()
        .unwrap()
}

async fn room_with(dir: &Path, url: &str, owner: &str, members: &[&str]) -> String {
    let room = stdout_json(&parlor(&dir.join(owner), url, "", &["create-room", "r"]).await)["room"]
        ["id"]
        .as_i64()
        .unwrap()
        .to_string();
    for m in members {
        stdout_json(&parlor(&dir.join(m), url, "", &["join", &room]).await);
    }
    room
}

/// A `parlor call` in progress: its events as they are printed, and its report at the end.
struct Call {
    events: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    report: tokio::task::JoinHandle<serde_json::Value>,
}

impl Call {
    /// Waits until the call prints that a link connected (a guard against hangs, not a speed
    /// check).
    async fn link_connected(&mut self) {
        let wait = async {
            while let Some(event) = self.events.recv().await {
                if event["type"] == "link" && event["data"]["state"] == "connected" {
                    return;
                }
            }
            panic!("the call ended before a link connected");
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .expect("a link connected");
    }

    /// The first thing this call prints about `user` leaving: `participant_left`, or
    /// `participant_away` when their connection dropped.
    async fn first_departure_of(&mut self, user: i64) -> String {
        let wait = async {
            while let Some(event) = self.events.recv().await {
                let kind = event["type"].as_str().unwrap_or_default();
                if ["participant_left", "participant_away"].contains(&kind)
                    && event["data"]["user_id"] == user
                {
                    return kind.to_owned();
                }
            }
            panic!("the call ended before user {user} left it");
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .expect("a departure")
    }

    async fn report(self) -> serde_json::Value {
        self.report.await.unwrap()
    }
}

fn call(dir: &Path, url: &str, name: &str, room: &str, seconds: &str, tone: &str) -> Call {
    let data = dir.join(name);
    let stats = data.join(format!("call-{room}.json"));
    let tone = format!("tone:{tone}");
    let args = [
        "call",
        room,
        "--audio",
        &tone,
        "--duration",
        seconds,
        "--bind",
        "127.0.0.1",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    let mut child = common::parlor_command(&data, url, "", &args, &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn parlor call");
    let stdout = child.stdout.take().unwrap();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let report = tokio::spawn(async move {
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(event) = serde_json::from_str(&line) {
                let _ = tx.send(event);
            }
        }
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap()
    });
    Call { events, report }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_already_in_another_call_answers_busy() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    registered(dir.path(), &url, "ann").await;
    let bob = registered(dir.path(), &url, "bob").await;
    registered(dir.path(), &url, "cat").await;
    let first = room_with(dir.path(), &url, "bob", &["cat"]).await;
    let second = room_with(dir.path(), &url, "ann", &["bob"]).await;
    // Bob and Cat are in a call; then Ann rings Bob from another room.
    let mut bob_call = call(dir.path(), &url, "bob", &first, "8", "440");
    let cat_call = call(dir.path(), &url, "cat", &first, "8", "660");
    bob_call.link_connected().await;
    let ann_report = call(dir.path(), &url, "ann", &second, "3", "880")
        .report()
        .await;
    let busy: Vec<i64> = ann_report["busy"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    assert_eq!(busy, vec![bob], "{ann_report}");
    // Bob stayed in his call throughout.
    let bob_report = bob_call.report().await;
    cat_call.report().await;
    let from_cat = bob_report["peers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .cloned()
        .unwrap_or_default();
    assert!(
        from_cat["video_frames"].as_u64().unwrap_or(0) > 20,
        "{bob_report}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leaves_and_another_joins_late() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    let ann = registered(dir.path(), &url, "ann").await;
    registered(dir.path(), &url, "bob").await;
    let cat = registered(dir.path(), &url, "cat").await;
    let room = room_with(dir.path(), &url, "ann", &["bob", "cat"]).await;
    // Ann stays 4 s; Bob 14 s; Cat comes in once Ann has gone.
    let ann_call = call(dir.path(), &url, "ann", &room, "4", "440");
    let mut bob_call = call(dir.path(), &url, "bob", &room, "14", "660");
    bob_call.link_connected().await;
    let ann_report = ann_call.report().await;
    // Ann's process hung up before it exited: Bob hears she left, not that her line dropped
    // (which would keep her place, and the call, for the server's grace period).
    assert_eq!(bob_call.first_departure_of(ann).await, "participant_left");
    let cat_report = call(dir.path(), &url, "cat", &room, "4", "880")
        .report()
        .await;
    let bob_report = bob_call.report().await;
    // Bob received Ann before she left and Cat after she came. (Frequencies are checked in the
    // mesh test; here the point is who was connected to whom.)
    for who in [ann, cat] {
        let peer = &bob_report["peers"][who.to_string()];
        assert!(
            peer["video_frames"].as_u64().unwrap_or(0) > 10,
            "{who}: {peer}"
        );
        assert!(
            peer["audio_frames"].as_u64().unwrap_or(0) > 10,
            "{who}: {peer}"
        );
    }
    // Ann and Cat never overlapped.
    assert!(
        ann_report["peers"][cat.to_string()].is_null(),
        "{ann_report}"
    );
    assert!(
        cat_report["peers"][ann.to_string()].is_null(),
        "{cat_report}"
    );
    server.stop().await;
}

/// A server that registers only with an invite: `parlor register --invite` uses one, and
/// without it the CLI says why and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_on_an_invite_only_server_takes_the_invite_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let mut settings = parlor_signaling::config::Settings::for_database(&db);
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.registration = parlor_signaling::config::Registration::Invite;
    let server = common::Server::start_with(settings).await;
    // An administrator's invite, made on the running server's database as `parlor-server
    // admin invite` makes it.
    let store = parlor_signaling::store::Store::open(&db).await.unwrap();
    let (code, _) = {
        let mut w = store.writer().await;
        let now = parlor_signaling::store::now_millis();
        parlor_signaling::service::create_invite(&mut w, None, 1, 7, now).await
    }
    .unwrap();
    store.close().await;

    let ann = dir.path().join("ann");
    let refused = parlor(&ann, &server.url, "ann-password", &["register", "ann"]).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("invite code"), "{said}");
    // A code that starts with '-' (one in 64 do) is the invite's value, not an unknown flag:
    // the server, not the argument parser, refuses this one.
    let dashed = parlor(
        &ann,
        &server.url,
        "ann-password",
        &["register", "ann", "--invite", "-6notacode"],
    )
    .await;
    assert_eq!(dashed.status.code(), Some(1));
    let said = String::from_utf8_lossy(&dashed.stderr);
    assert!(said.contains("invite code"), "{said}");
    let joined = stdout_json(
        &parlor(
            &ann,
            &server.url,
            "ann-password",
            &["register", "ann", "--invite", &code],
        )
        .await,
    );
    assert_eq!(joined["user"]["username"], "ann");
}

/// A call whose every link fails to be set up says so and exits non-zero. Ann's media cannot
/// bind (`::2` is no address of this machine; nothing is sent anywhere), so her link to Bob is
/// never created. Before, the step failure went to a log nobody saw, the report was empty and
/// the exit status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_set_up_any_link_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    registered(dir.path(), &url, "ann").await;
    // Bob is in the call (through the library, so the test knows he is) before Ann joins.
    let bob = common::register(&url, dir.path(), "bob", Default::default()).await;
    let room = bob.create_room("r", false).await.unwrap().id;
    bob.add_member(room, "ann").await.unwrap();
    let bob_call = bob
        .join_call(
            room,
            parlor_client::call_session::CallOptions {
                rtc: parlor_rtc::RtcConfig::loopback(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ann = common::parlor_command(
        &dir.path().join("ann"),
        &url,
        "",
        &[
            "call",
            &room.to_string(),
            "--duration",
            "2",
            "--bind",
            "::2",
        ],
        &[],
    )
    .output()
    .await
    .expect("run parlor call");
    let stdout = String::from_utf8_lossy(&ann.stdout);
    let stderr = String::from_utf8_lossy(&ann.stderr);
    assert_eq!(ann.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no link connected"),
        "the reason is said: {stderr}"
    );
    let failed: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["type"] == "failed")
        .collect();
    assert!(
        failed
            .iter()
            .any(|event| event["data"]["user_id"] == bob.me().id),
        "a failed event names the link to Bob: {stdout}"
    );
    // Each failed step is said on stderr as it happens, once.
    let said = stderr.matches("call step failed (link to user ").count();
    assert_eq!(said, failed.len(), "{stderr}");
    bob_call.leave().await.unwrap();
    bob.close().await;
    server.stop().await;
}

/// `parlor guest-link` gives the address to share (the server's web app at `/join/CODE`), the
/// code in it lets a guest in, `guest-links` counts what is left, only the owner may make one,
/// and `revoke-guest-link` signs the guest out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_links_from_the_cli() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    registered(dir.path(), &server.url, "ann").await;
    registered(dir.path(), &server.url, "bob").await;
    let room = room_with(dir.path(), &server.url, "ann", &["bob"]).await;
    let ann = dir.path().join("ann");

    let made = stdout_json(
        &parlor(
            &ann,
            &server.url,
            "",
            &["guest-link", &room, "--hours", "2", "--uses", "3"],
        )
        .await,
    );
    let url = made["url"].as_str().unwrap();
    let web = server.url.replace("ws://", "http://").replace("/ws", "");
    let code = url
        .strip_prefix(&format!("{web}/join/"))
        .unwrap_or_else(|| panic!("{url} is not on {web}"));
    assert_eq!(made["invite"]["code"], code);
    assert_eq!(made["invite"]["uses_left"], 3);
    let invite_id = made["invite"]["id"].as_i64().unwrap().to_string();

    // The code lets a guest into the room.
    let (mut guest, _) = tokio_tungstenite::connect_async(server.url.as_str())
        .await
        .unwrap();
    let join = serde_json::json!({"v": 1, "id": 1, "type": "guest_join",
        "data": {"code": code, "display_name": "Gus"}});
    guest.send(Message::text(join.to_string())).await.unwrap();
    let reply = loop {
        match guest.next().await.unwrap().unwrap() {
            Message::Text(text) => {
                let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["id"] == 1 {
                    break frame;
                }
            }
            _ => continue,
        }
    };
    assert_eq!(reply["type"], "session", "{reply}");
    assert_eq!(reply["data"]["guest_room_id"].to_string(), room);

    let listed = stdout_json(&parlor(&ann, &server.url, "", &["guest-links", &room]).await);
    assert_eq!(listed["invites"][0]["uses_left"], 2, "{listed}");
    assert!(listed["invites"][0].get("code").is_none(), "{listed}");

    let refused = parlor(
        &dir.path().join("bob"),
        &server.url,
        "",
        &["guest-link", &room],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("forbidden") && stderr.contains("owner"),
        "{stderr}"
    );

    let revoked = stdout_json(
        &parlor(
            &ann,
            &server.url,
            "",
            &["revoke-guest-link", &room, &invite_id],
        )
        .await,
    );
    assert_eq!(revoked["invite"]["revoked"], true);
    let close = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), guest.next())
            .await
            .expect("the guest's socket closes")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close, Some(4001));
}
