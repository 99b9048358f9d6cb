//! Registration, login, tokens, logout, password changes, and what an unauthenticated socket may do.
mod common;

use common::*;
use parlor_protocol::{ErrorCode, Event, Reply, Request};

#[tokio::test]
async fn health_and_metrics_answer() {
    let server = TestServer::start(&[]).await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["database"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let _client = Client::register(&server, "ann").await;
    assert_eq!(server.metric("parlor_connections").await, 1.0);
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("parlor_errors_total{code=\"not_member\"} 0"),
        "{body}"
    );
    assert!(body.contains("parlor_active_calls 0"));
}

#[tokio::test]
async fn register_login_logout_and_revoked_token_is_refused() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let first_token = ann.token.clone().unwrap();
    assert_eq!(ann.user.as_ref().unwrap().display_name, "ANN");

    // Password login from a second device gives a different token.
    let ann2 = Client::login(&server, "ann").await;
    let second_token = ann2.token.clone().unwrap();
    assert_ne!(first_token, second_token);

    // The token authenticates a fresh socket.
    let mut resumed = Client::resume(&server, &first_token).await;
    resumed.request(Request::ListRooms).await.unwrap();

    // Logout revokes the token: the reply arrives, then the socket is closed normally...
    assert_eq!(ann.request(Request::Logout).await.unwrap(), Reply::Ok);
    assert_eq!(ann.closed().await.0, Some(1000));
    // ...the other socket on the same session is told and closed...
    let (code, _) = resumed.closed().await;
    assert_eq!(code, Some(4001));
    // ...and the token no longer works, while the other session still does.
    let mut again = Client::connect(&server).await;
    again
        .refused(
            Request::Authenticate { token: first_token },
            ErrorCode::Unauthorized,
        )
        .await;
    Client::resume(&server, &second_token).await;
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_bad_registrations_are_refused() {
    let server = TestServer::start(&[]).await;
    Client::register(&server, "ann").await;
    let mut c = Client::connect(&server).await;
    let wrong = c
        .refused(
            Request::Login {
                username: "ann".into(),
                password: "not-her-password".into(),
            },
            ErrorCode::Unauthorized,
        )
        .await;
    let unknown = c
        .refused(
            Request::Login {
                username: "nobody".into(),
                password: "whatever-123".into(),
            },
            ErrorCode::Unauthorized,
        )
        .await;
    assert_eq!(
        wrong.message, unknown.message,
        "no hint whether the user exists"
    );
    // Usernames are unique regardless of case.
    c.refused(
        Request::Register {
            username: "ANN".into(),
            display_name: "x".into(),
            password: "long-enough".into(),
            invite: None,
        },
        ErrorCode::Conflict,
    )
    .await;
    c.refused(
        Request::Register {
            username: "bob".into(),
            display_name: "Bob".into(),
            password: "short".into(),
            invite: None,
        },
        ErrorCode::Invalid,
    )
    .await;
    c.refused(
        Request::Register {
            username: "b b".into(),
            display_name: "Bob".into(),
            password: "long-enough".into(),
            invite: None,
        },
        ErrorCode::Invalid,
    )
    .await;
    c.refused(
        Request::Register {
            username: "bob".into(),
            display_name: "Bob\nSmith".into(),
            password: "long-enough".into(),
            invite: None,
        },
        ErrorCode::Invalid,
    )
    .await;
    // The socket is still usable after all that, and a display name is stored trimmed.
    let reply = c
        .request(Request::Register {
            username: "bob".into(),
            display_name: "  Bob Smith ".into(),
            password: "long-enough".into(),
            invite: None,
        })
        .await
        .unwrap();
    let Reply::Session { user, .. } = reply else {
        panic!("not a session: {reply:?}")
    };
    assert_eq!(user.display_name, "Bob Smith");
}

#[tokio::test]
async fn passwords_are_stored_salted_with_argon2id() {
    let server = TestServer::start(&[]).await;
    let ann = Client::register(&server, "ann").await;
    let token = ann.token.clone().unwrap();
    Client::register(&server, "bob").await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=ro", server.db.display()))
        .await
        .unwrap();
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM users ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")));
    assert!(!hashes.iter().any(|h| h.contains("password-ann")));
    // The token is not stored, only its hash.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(stored
        .iter()
        .all(|h| h.len() == 32 && h != token.as_bytes()));
}

#[tokio::test]
async fn changing_the_password_revokes_the_other_sessions() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut laptop = Client::login(&server, "ann").await;
    let laptop_token = laptop.token.clone().unwrap();
    ann.refused(
        Request::ChangePassword {
            old_password: "wrong-password".into(),
            new_password: "new-password-1".into(),
        },
        ErrorCode::Unauthorized,
    )
    .await;
    ann.request(Request::ChangePassword {
        old_password: "password-ann".into(),
        new_password: "new-password-1".into(),
    })
    .await
    .unwrap();
    assert_eq!(laptop.event().await, Event::SessionRevoked);
    assert_eq!(laptop.closed().await.0, Some(4001));
    // This session survives; the old password and the laptop's token do not.
    ann.request(Request::ListRooms).await.unwrap();
    let mut c = Client::connect(&server).await;
    c.refused(
        Request::Authenticate {
            token: laptop_token,
        },
        ErrorCode::Unauthorized,
    )
    .await;
    c.refused(
        Request::Login {
            username: "ann".into(),
            password: "password-ann".into(),
        },
        ErrorCode::Unauthorized,
    )
    .await;
    c.request(Request::Login {
        username: "ann".into(),
        password: "new-password-1".into(),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unauthenticated_sockets_may_only_authenticate_and_are_closed_after_the_timeout() {
    let server = TestServer::start(&["--auth-timeout-ms", "700"]).await;
    let mut c = Client::connect(&server).await;
    c.refused(Request::ListRooms, ErrorCode::Unauthorized).await;
    c.refused(Request::CallJoin { room_id: 1 }, ErrorCode::Unauthorized)
        .await;
    c.refused(
        Request::Authenticate {
            token: "made-up".into(),
        },
        ErrorCode::Unauthorized,
    )
    .await;
    c.request(Request::Ping).await.unwrap();
    let (code, reason) = c.closed().await;
    assert_eq!(code, Some(4002));
    assert_eq!(reason, "authentication timeout");

    // An authenticated socket is not closed by that timer.
    let mut ann = Client::register(&server, "ann").await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    ann.request(Request::Ping).await.unwrap();
}

#[tokio::test]
async fn a_socket_cannot_authenticate_twice() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let token = ann.token.clone().unwrap();
    ann.refused(Request::Authenticate { token }, ErrorCode::Conflict)
        .await;
}
