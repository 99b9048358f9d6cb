//! Bad input: each gets a clear error, keeps the socket usable where it can, and never harms the
//! server or anyone else's session.
mod common;

use std::time::Duration;

use common::*;
use parlor_protocol::{ErrorCode, Event, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

/// Sends raw text and returns the error frame that answers it.
async fn error_for(client: &mut Client, text: &str) -> (Option<u64>, parlor_protocol::ErrorBody) {
    client.send_text(text.to_owned()).await;
    loop {
        match client.next_frame().await {
            ServerFrame::Error { id, error } => return (id, error),
            ServerFrame::Event(_) => continue,
            other => panic!("expected an error for {text:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_frames_get_invalid_and_the_socket_stays_usable() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let cases: &[(&str, Option<u64>, ErrorCode, &str)] = &[
        ("{not json", None, ErrorCode::Invalid, "malformed JSON"),
        ("[1,2,3]", None, ErrorCode::Invalid, "JSON object"),
        (
            r#"{"v":1,"id":4,"type":"launch_rockets"}"#,
            Some(4),
            ErrorCode::Invalid,
            "unknown message type",
        ),
        (
            r#"{"v":1,"id":5,"type":"send_message","data":{"room_id":"one"}}"#,
            Some(5),
            ErrorCode::Invalid,
            "send_message",
        ),
        (
            r#"{"v":1,"id":6}"#,
            Some(6),
            ErrorCode::Invalid,
            "missing `type`",
        ),
        (
            r#"{"v":9,"id":7,"type":"ping"}"#,
            Some(7),
            ErrorCode::UnsupportedVersion,
            "not supported",
        ),
        (
            r#"{"id":8,"type":"ping"}"#,
            Some(8),
            ErrorCode::Invalid,
            "version",
        ),
        ("", None, ErrorCode::Invalid, "malformed JSON"),
        ("\u{0}\u{1}", None, ErrorCode::Invalid, "malformed JSON"),
    ];
    for (text, id, code, fragment) in cases {
        let (got_id, error) = error_for(&mut ann, text).await;
        assert_eq!(got_id, *id, "{text}");
        assert_eq!(error.code, *code, "{text}");
        assert!(
            error.message.contains(fragment),
            "{text}: {}",
            error.message
        );
    }
    ann.send_message(Message::Binary(vec![1, 2, 3].into()))
        .await;
    let ServerFrame::Error { error, .. } = ann.next_frame().await else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::Invalid);
    assert!(error.message.contains("binary"));
    // Still usable.
    create_room(&mut ann, "still works", true).await;
    assert!(server.metric("parlor_errors_total{code=\"invalid\"}").await >= 9.0);
}

#[tokio::test]
async fn oversized_frames_get_too_large_and_huge_ones_close_the_socket() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "r", true).await;
    let big = format!(
        r#"{{"v":1,"id":1,"type":"send_message","data":{{"room_id":{room},"client_id":"c","text":"{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    let (_, error) = error_for(&mut ann, &big).await;
    assert_eq!(error.code, ErrorCode::TooLarge);
    assert!(error.message.contains("65536"), "{}", error.message);
    create_room(&mut ann, "still works", true).await;

    // Far beyond any sane frame: the transport refuses it and closes with 1009.
    let mut bob = Client::register(&server, "bob").await;
    // The server may close while this is still being written, so the send itself may fail.
    let _ = bob.try_send_text("y".repeat(2 * 1024 * 1024)).await;
    let (code, _) = bob.closed().await;
    assert!(matches!(code, Some(1009) | None), "closed with {code:?}");
    // Nobody else noticed.
    create_room(&mut ann, "unaffected", true).await;
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn flooding_gets_rate_limited_then_closed() {
    let server = TestServer::start(&[
        "--rate-per-sec",
        "5",
        "--rate-burst",
        "10",
        "--rate-abuse-limit",
        "20",
    ])
    .await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    // 200 pings at once. About ten pass (the burst, less what registering used, plus whatever
    // refills meanwhile); the rest are refused until 20 refusals in a row close the socket.
    for id in 100..300u64 {
        ann.send_text(format!(r#"{{"v":1,"id":{id},"type":"ping"}}"#))
            .await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        match tokio::time::timeout(PATIENCE, ann.next_frame_or_close())
            .await
            .expect("in time")
        {
            Ok(ServerFrame::Reply { .. }) => pongs += 1,
            Ok(ServerFrame::Error { id, error }) => {
                assert_eq!(error.code, ErrorCode::RateLimited);
                assert!(id.is_some(), "the refused request's id is echoed");
                limited += 1;
            }
            Ok(ServerFrame::Event(_)) => {}
            Err(code) => break code,
        }
    };
    assert!(pongs >= 9, "pongs {pongs}");
    assert!(limited >= 19, "limited {limited}");
    assert!(
        pongs + limited < 200,
        "closed before the whole flood was served"
    );
    assert_eq!(code, Some(4008));
    assert!(
        server
            .metric("parlor_errors_total{code=\"rate_limited\"}")
            .await
            >= 19.0
    );
    // A well-behaved client is unaffected.
    bob.request(parlor_protocol::Request::Ping).await.unwrap();
}

/// The bucket is the user's, not the socket's: reconnecting does not refill it.
#[tokio::test]
async fn reconnecting_does_not_reset_the_rate_limit() {
    let server = TestServer::start(&["--rate-per-sec", "1", "--rate-burst", "10"]).await;
    let ann = Client::register(&server, "ann").await;
    let token = ann.token.clone().expect("a token");
    let started = std::time::Instant::now();
    let mut served = 0u32;
    for socket in 0..5u64 {
        let mut again = Client::resume(&server, &token).await;
        for n in 0..10u64 {
            let id = 1000 + socket * 100 + n;
            again
                .send_text(format!(r#"{{"v":1,"id":{id},"type":"ping"}}"#))
                .await;
        }
        for _ in 0..10 {
            match again.next_frame().await {
                ServerFrame::Reply { .. } => served += 1,
                ServerFrame::Error { error, .. } => {
                    assert_eq!(error.code, ErrorCode::RateLimited)
                }
                ServerFrame::Event(_) => {}
            }
        }
        again.close().await;
    }
    // One bucket: its burst, plus one a second for as long as this took. Five sockets with a
    // bucket each would have served all 50.
    let refilled = started.elapsed().as_secs() as u32 + 1;
    assert!(
        served <= 10 + refilled,
        "{served} pings served in {:?}",
        started.elapsed()
    );
    assert!(served >= 9, "the user's burst is still served ({served})");
    // Another user has a bucket of their own.
    let mut bob = Client::register(&server, "bob").await;
    bob.request(parlor_protocol::Request::Ping).await.unwrap();
}

#[tokio::test]
async fn a_brief_burst_is_refused_but_not_punished() {
    let server = TestServer::start(&["--rate-per-sec", "20", "--rate-burst", "5"]).await;
    let mut ann = Client::register(&server, "ann").await;
    for id in 1..=10u64 {
        ann.send_text(format!(r#"{{"v":1,"id":{id},"type":"ping"}}"#))
            .await;
    }
    let (mut limited, mut retry_after_ms) = (0, 0);
    for _ in 0..10 {
        if let ServerFrame::Error { error, .. } = ann.next_frame().await {
            assert_eq!(error.code, ErrorCode::RateLimited);
            limited += 1;
            retry_after_ms = error.retry_after_ms.expect("a refusal says when to retry");
        }
    }
    assert!(limited >= 1, "a burst over the bucket is refused");
    // Waiting as long as the refusal said is enough: the socket was not punished.
    tokio::time::sleep(Duration::from_millis(retry_after_ms)).await;
    ann.request(parlor_protocol::Request::Ping).await.unwrap();
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout() {
    let server =
        TestServer::start(&["--ping-interval-ms", "150", "--idle-timeout-ms", "600"]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    // Ann neither reads nor writes, so she answers no ping; Bob keeps talking for ~1 s.
    for _ in 0..10 {
        bob.request(parlor_protocol::Request::Ping).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, reason) = ann.closed().await;
    assert_eq!(code, Some(4003));
    assert_eq!(reason, "idle timeout");
    // Bob read (and so answered pings) the whole time, and is still connected.
    bob.request(parlor_protocol::Request::Ping).await.unwrap();
}

#[tokio::test]
async fn garbage_from_one_client_never_disturbs_another() {
    let server = TestServer::start(&["--rate-per-sec", "10000", "--rate-burst", "10000"]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "r", true).await;
    bob.request(parlor_protocol::Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    // A deterministic stream of mangled frames built from real ones.
    let seeds = [
        format!(r#"{{"v":1,"id":1,"type":"send_message","data":{{"room_id":{room},"client_id":"x","text":"t"}}}}"#),
        format!(r#"{{"v":1,"id":2,"type":"call_ice","data":{{"room_id":{room},"to":1,"candidate":{{"candidate":"c"}}}}}}"#),
        r#"{"v":1,"id":3,"type":"history","data":{"room_id":-1,"before_seq":-9223372036854775808,"limit":4294967295}}"#.to_owned(),
        r#"{"v":1,"id":4,"type":"sync","data":{"room_id":9223372036854775807,"since_seq":-1}}"#.to_owned(),
    ];
    let mut sent = 0;
    let mut state: u64 = 0x9E3779B97F4A7C15;
    for seed in &seeds {
        for _ in 0..50 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = seed.clone().into_bytes();
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8 & 0x7f;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            bob.send_text(text).await;
            sent += 1;
        }
    }
    // Everything the server answered was a well-formed frame (next_frame checks), in order, and
    // the connection survived to answer a final marker request.
    assert_eq!(sent, 200);
    bob.send_text(r#"{"v":1,"id":999999,"type":"ping"}"#.to_owned())
        .await;
    loop {
        if let ServerFrame::Reply { id: 999999, .. } = bob.next_frame().await {
            break;
        }
    }
    send(&mut ann, room, "after", "still here").await;
    bob.event_matching("message", |e| matches!(e, Event::Timeline { .. }))
        .await;
}
