//! `wss://` end to end: the real server serving TLS with a certificate from a private CA, and
//! the `Client` API and the `parlor` CLI trusting that CA through a CA file or through the
//! system's trust store, or refusing a server whose CA they do not know, with a clear error
//! and no retry loop.
mod common;

use std::time::Duration;

use common::{parlor, parlor_with_env, stdout_json, tls_server, TestPki};
use parlor_client::connection::ConnectionState;
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::{
    Client, ClientError, ClientEvent, Connection, Credentials, ServerEndpoint, TlsError,
};
use parlor_protocol::TimelineEntry;

fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts: Some(50),
        base: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    }
}

fn register(name: &str) -> Credentials {
    Credentials::Register {
        username: name.into(),
        display_name: name.into(),
        password: "password-123".into(),
        invite: None,
    }
}

#[tokio::test]
async fn the_client_api_chats_over_wss_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "team");
    let server = tls_server(&dir.path().join("server.db"), &pki).await;
    let endpoint = ServerEndpoint::new(&server.url, Some(&pki.ca)).unwrap();
    assert!(endpoint.is_secure());
    assert!(endpoint.health().await.unwrap(), "https health check");

    let alice = Client::connect(
        &endpoint,
        &dir.path().join("a"),
        register("alice"),
        policy(),
    )
    .await
    .expect("alice over wss");
    let bob = Client::connect(&endpoint, &dir.path().join("b"), register("bob"), policy())
        .await
        .expect("bob over wss");
    let room = alice.create_room("tls", true).await.unwrap();
    bob.join_room(room.id).await.unwrap();
    let mut events = bob.subscribe();
    alice.send(room.id, "sealed").await.unwrap();
    let entry = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(ClientEvent::Timeline { entry }) = events.recv().await {
                break entry;
            }
        }
    })
    .await
    .expect("bob hears alice over wss");
    let TimelineEntry::Message { message } = entry else {
        panic!("{entry:?}")
    };
    assert_eq!(message.text, "sealed");
    alice.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_from_an_unknown_ca_is_refused_once_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let team = TestPki::new(dir.path(), "team");
    let other = TestPki::new(dir.path(), "other");
    let server = tls_server(&dir.path().join("server.db"), &team).await;

    // Neither the system store nor the wrong CA file knows the team's CA.
    for ca_file in [None, Some(other.ca.as_path())] {
        let endpoint = ServerEndpoint::new(&server.url, ca_file).unwrap();
        let health = endpoint.health().await;
        assert!(
            matches!(health, Err(TlsError::NotTrusted(_))),
            "health with {ca_file:?}: {health:?}"
        );
        let error = Client::connect(&endpoint, &dir.path().join("x"), register("x"), policy())
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(error, ClientError::Tls(TlsError::NotTrusted(_))),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("certificate not trusted"),
            "{error}"
        );

        // The connection itself stops in a final state instead of retrying.
        let connection = Connection::open(&endpoint, register("y"), policy());
        let mut state = connection.watch_state();
        let last = state
            .wait_for(ConnectionState::is_final)
            .await
            .unwrap()
            .clone();
        assert!(
            matches!(&last, ConnectionState::CertificateNotTrusted { reason } if reason.contains("authority")),
            "{last:?}"
        );
        let error = connection.wait_connected(Duration::from_secs(5)).await;
        assert!(
            matches!(error, Err(ClientError::Tls(TlsError::NotTrusted(_)))),
            "{error:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_cli_trusts_a_ca_file_the_environment_or_the_system_store() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "team");
    let server = tls_server(&dir.path().join("server.db"), &pki).await;
    let ca = pki.ca.to_str().unwrap();

    // --ca-file
    let carol = dir.path().join("carol");
    let out = parlor(
        &carol,
        &server.url,
        "password-123",
        &["--ca-file", ca, "register", "carol"],
    )
    .await;
    assert_eq!(stdout_json(&out)["user"]["username"], "carol");
    let out = parlor(
        &carol,
        &server.url,
        "password-123",
        &["--ca-file", ca, "create-room", "secure"],
    )
    .await;
    let room = stdout_json(&out)["room"]["id"].as_i64().expect("room id");

    // PARLOR_CA_FILE
    let out = parlor_with_env(
        &carol,
        &server.url,
        "",
        &["send", &room.to_string(), "over", "wss"],
        &[("PARLOR_CA_FILE", &pki.ca)],
    )
    .await;
    assert!(stdout_json(&out)["sent"]["seq"].as_i64().is_some());

    // The system's trust store: on Linux the CA bundle, which SSL_CERT_FILE names.
    let out = parlor_with_env(
        &carol,
        &server.url,
        "",
        &["history", &room.to_string()],
        &[("SSL_CERT_FILE", &pki.ca)],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("over wss"));

    // No CA: refused with exit code 4 and the reason; a `send` stays queued, not lost.
    let out = parlor(
        &carol,
        &server.url,
        "",
        &["send", &room.to_string(), "kept"],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate not trusted"), "{stderr}");
    let out = parlor(
        &carol,
        &server.url,
        "",
        &["--ca-file", ca, "history", &room.to_string()],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept"),
        "the queued message went out once the CA was trusted: {out:?}"
    );

    // A CA file that cannot be used is a usage error, before anything is sent.
    let missing = dir.path().join("missing.pem");
    let out = parlor(
        &dir.path().join("dave"),
        &server.url,
        "password-123",
        &["--ca-file", missing.to_str().unwrap(), "register", "dave"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the CA file"));
    server.stop().await;
}
