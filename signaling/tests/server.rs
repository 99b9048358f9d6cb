//! The process itself: start-up line, TLS, graceful shutdown.
mod common;

use std::sync::Arc;

use common::*;
use parlor_protocol::{Reply, Request, ServerFrame};

#[tokio::test]
async fn prints_its_real_address_and_serves_health_on_it() {
    let server = TestServer::start(&[]).await;
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    assert_eq!(host, "127.0.0.1");
    assert_ne!(port, "0", "the real port, not the requested 0");
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/nope").await.0, 404);
}

#[tokio::test]
async fn sigterm_closes_sockets_with_going_away_and_flushes_the_database() {
    let mut server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "r", true).await;
    send(&mut ann, room, "1", "flushed").await;
    let db = server.db.clone();
    let (stop, closed) = tokio::join!(server.stop(), ann.closed());
    let () = stop;
    assert_eq!(closed.0, Some(1001));
    // The WAL was checkpointed into the main file and removed.
    let wal = db.with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=ro", db.display()))
        .await
        .unwrap();
    let text: String = sqlx::query_scalar("SELECT text FROM timeline")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(text, "flushed");
}

/// Every message stored before a SIGTERM was acknowledged: queued replies go out before the
/// socket's close frame, and a request being handled finishes first.
#[tokio::test]
async fn sigterm_acknowledges_every_message_it_stored() {
    let mut server = TestServer::start(&["--rate-per-sec", "1000", "--rate-burst", "1000"]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "r", true).await;
    // Pipelined, as a client flushing its outbox does: none waits for its reply.
    for n in 0..300u64 {
        let request = Request::SendMessage {
            room_id: room,
            client_id: format!("c-{n}"),
            text: format!("message {n}"),
        };
        ann.send_text(parlor_protocol::encode_request(Some(10_000 + n), &request))
            .await;
    }
    let db = server.db.clone();
    let read_replies = async {
        let mut acknowledged = std::collections::HashSet::new();
        while let Ok(frame) = ann.next_frame_or_close().await {
            if let ServerFrame::Reply {
                reply: Reply::MessageSent { message, .. },
                ..
            } = frame
            {
                acknowledged.insert(message.client_id);
            }
        }
        acknowledged
    };
    let ((), acknowledged) = tokio::join!(server.stop(), read_replies);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=ro", db.display()))
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT client_id FROM timeline")
        .fetch_all(&pool)
        .await
        .unwrap();
    let unacknowledged: Vec<&String> = stored
        .iter()
        .filter(|c| !acknowledged.contains(*c))
        .collect();
    assert!(
        unacknowledged.is_empty(),
        "{} of {} stored messages were never acknowledged: {unacknowledged:?}",
        unacknowledged.len(),
        stored.len()
    );
}

#[tokio::test]
async fn serves_wss_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let server = TestServer::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;
    let port = server.addr.rsplit_once(':').unwrap().1;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{port}/ws");
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))),
    )
    .await
    .expect("TLS WebSocket");
    let mut client = Client::from_socket(socket);
    client.request(Request::Ping).await.unwrap();

    // Plain ws:// on the TLS port does not work.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn refuses_to_start_with_bad_settings() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor-server"))
        .args(["--listen", "127.0.0.1:0", "--max-call-participants", "1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-call-participants"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor-server"))
        .args(["--listen", "127.0.0.1:0", "--sockets-per-address", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sockets-per-address"));
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor-server"))
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(dir.path().join("x.db"))
        .args([
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
}
