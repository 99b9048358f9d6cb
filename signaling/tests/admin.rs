//! Running a server for a team: registration policies and invites, `parlor-server admin` on
//! the database of a running server, sessions ended in the database closing open sockets, the
//! sign-in throttles, and backups taken during traffic.
mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use parlor_protocol::{ErrorCode, Event, Reply, Request};
use tokio::io::AsyncWriteExt;

/// The sessions of open sockets are checked this often in these tests (10 s by default).
const CHECK_MS: &str = "100";

/// Runs `parlor-server admin ARGS` (or another subcommand) on `db`; returns its output, or
/// its error output when it fails.
async fn server_cli(db: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor-server"))
        .args(args)
        .arg("--database")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn parlor-server");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(PATIENCE * 3, child.wait_with_output())
        .await
        .expect("admin command finished in time")
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    if out.status.success() {
        Ok(text(out.stdout))
    } else {
        Err(text(out.stderr))
    }
}

async fn admin(db: &Path, args: &[&str]) -> String {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    server_cli(db, &full, None)
        .await
        .unwrap_or_else(|e| panic!("admin {args:?} failed: {e}"))
}

/// The value after `prefix` on the line that starts with it.
fn line_after<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {output:?}"))
        .trim()
}

fn register(name: &str, invite: Option<&str>) -> Request {
    Request::Register {
        username: name.into(),
        display_name: name.into(),
        password: format!("password-{name}"),
        invite: invite.map(Into::into),
    }
}

fn login(name: &str, password: &str) -> Request {
    Request::Login {
        username: name.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn closed_registration_takes_accounts_made_by_the_administrator() {
    let server = TestServer::start(&["--registration", "closed"]).await;
    let mut stranger = Client::connect(&server).await;
    let refused = stranger
        .refused(register("mallory", None), ErrorCode::Forbidden)
        .await;
    assert!(refused.message.contains("closed"), "{}", refused.message);

    let made = admin(
        &server.db,
        &["add-user", "carol", "--display-name", "Carol K"],
    )
    .await;
    let password = line_after(&made, "password:");
    let mut carol = Client::connect(&server).await;
    match carol.request(login("Carol", password)).await.unwrap() {
        Reply::Session { user, .. } => assert_eq!(user.display_name, "Carol K"),
        other => panic!("unexpected {other:?}"),
    }

    // A password chosen by the administrator, from standard input; a short one is refused
    // and creates nothing.
    let short = server_cli(
        &server.db,
        &["admin", "add-user", "dave", "--password-stdin"],
        Some("short\n"),
    )
    .await
    .unwrap_err();
    assert!(short.contains("at least 8"), "{short}");
    server_cli(
        &server.db,
        &["admin", "add-user", "dave", "--password-stdin"],
        Some("dave's long password\n"),
    )
    .await
    .unwrap();
    let mut dave = Client::connect(&server).await;
    dave.request(login("dave", "dave's long password"))
        .await
        .unwrap();
    let listed = admin(&server.db, &["users"]).await;
    assert!(
        listed.contains("carol") && listed.contains("dave"),
        "{listed}"
    );
}

#[tokio::test]
async fn an_invite_lets_as_many_people_register_as_it_has_uses() {
    let server = TestServer::start(&["--registration", "invite"]).await;
    let mut ann = Client::connect(&server).await;
    ann.refused(register("ann", None), ErrorCode::Forbidden)
        .await;
    let made = admin(&server.db, &["invite", "--uses", "2"]).await;
    let code = made.lines().last().unwrap().trim().to_owned();
    ann.request(register("ann", Some(&code))).await.unwrap();

    // A name already taken does not use the invite up...
    let mut again = Client::connect(&server).await;
    again
        .refused(register("ANN", Some(&code)), ErrorCode::Conflict)
        .await;
    // ...so it still has its second use, and then none.
    again.request(register("bob", Some(&code))).await.unwrap();
    let mut third = Client::connect(&server).await;
    let used_up = third
        .refused(register("cat", Some(&code)), ErrorCode::Forbidden)
        .await;
    assert!(used_up.message.contains("used up"), "{}", used_up.message);
    third
        .refused(register("cat", Some("not-a-code")), ErrorCode::Forbidden)
        .await;

    // A revoked invite is refused too.
    let made = admin(&server.db, &["invite"]).await;
    let code = made.lines().last().unwrap().trim().to_owned();
    let listed = admin(&server.db, &["invites"]).await;
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no invite listed: {listed}"))
        .to_owned();
    admin(&server.db, &["revoke-invite", &id]).await;
    third
        .refused(register("cat", Some(&code)), ErrorCode::Forbidden)
        .await;
}

#[tokio::test]
async fn administrators_create_invites_from_a_client_and_others_cannot() {
    let server = TestServer::start(&["--registration", "invite"]).await;
    let made = admin(&server.db, &["add-user", "root", "--admin"]).await;
    let password = line_after(&made, "password:").to_owned();
    let mut root = Client::connect(&server).await;
    root.request(login("root", &password)).await.unwrap();
    let ask = Request::CreateInvite {
        uses: Some(1),
        expires_in_days: Some(1),
    };
    let Reply::Invite { code, uses, .. } = root.request(ask.clone()).await.unwrap() else {
        panic!("no invite");
    };
    assert_eq!(uses, 1);
    Client::connect(&server)
        .await
        .request(register("fay", Some(&code)))
        .await
        .unwrap();
    root.refused(
        Request::CreateInvite {
            uses: Some(0),
            expires_in_days: None,
        },
        ErrorCode::Invalid,
    )
    .await;

    // Not an administrator, or no longer one.
    let mut fay = Client::login(&server, "fay").await;
    fay.refused(ask.clone(), ErrorCode::Forbidden).await;
    admin(&server.db, &["remove-admin", "root"]).await;
    root.refused(ask, ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn disabling_an_account_closes_its_open_sockets_and_keeps_it_out() {
    let server = TestServer::start(&["--session-check-ms", CHECK_MS]).await;
    let mut ann = Client::register(&server, "ann").await;
    let token = ann.token.clone().unwrap();
    let mut bob = Client::register(&server, "bob").await;

    admin(&server.db, &["disable", "ann"]).await;
    // The running server notices the revoked session and closes the socket, telling it why.
    let (code, _) = ann.closed().await;
    assert_eq!(code, Some(4001));
    assert!(ann
        .pending_events()
        .any(|e| matches!(e, Event::SessionRevoked)));
    bob.request(Request::Ping).await.unwrap();

    let mut again = Client::connect(&server).await;
    again
        .refused(
            Request::Authenticate {
                token: token.clone(),
            },
            ErrorCode::Unauthorized,
        )
        .await;
    let disabled = again
        .refused(login("ann", "password-ann"), ErrorCode::Forbidden)
        .await;
    assert!(
        disabled.message.contains("disabled"),
        "{}",
        disabled.message
    );
    // Only someone with the password learns that the account exists and is disabled.
    again
        .refused(login("ann", "wrong password"), ErrorCode::Unauthorized)
        .await;

    admin(&server.db, &["enable", "ann"]).await;
    Client::login(&server, "ann").await;
    // Its old session stays revoked.
    Client::connect(&server)
        .await
        .refused(Request::Authenticate { token }, ErrorCode::Unauthorized)
        .await;
}

#[tokio::test]
async fn a_session_that_expires_while_its_socket_is_open_closes_it() {
    let server = TestServer::start(&["--session-check-ms", CHECK_MS]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let ann_id = ann.id();
    // Time passing 30 days, as the database sees it.
    let db = sqlx::SqlitePool::connect(&format!("sqlite:{}", server.db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = 1 WHERE user_id = ?")
        .bind(ann_id)
        .execute(&db)
        .await
        .unwrap();
    let (code, _) = ann.closed().await;
    assert_eq!(code, Some(4001));

    // An open socket is a use of its session: bob's, checked the same way, is slid forward
    // once its expiry has fallen behind (here: a day away instead of 30).
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 86_400_000;
    sqlx::query("UPDATE sessions SET expires_at = ? WHERE user_id = ?")
        .bind(before)
        .bind(bob.id())
        .execute(&db)
        .await
        .unwrap();
    let slid = wait_for(|| async {
        let now: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE user_id = ?")
            .bind(bob.id())
            .fetch_one(&db)
            .await
            .unwrap();
        (now > before).then_some(now)
    })
    .await;
    assert!(slid > before);
    bob.request(Request::Ping).await.unwrap();
    db.close().await;
}

#[tokio::test]
async fn a_password_reset_signs_the_account_out_and_the_new_password_works() {
    let server = TestServer::start(&["--session-check-ms", CHECK_MS]).await;
    let mut ann = Client::register(&server, "ann").await;
    let reset = admin(&server.db, &["reset-password", "ann"]).await;
    let password = line_after(&reset, "password:").to_owned();
    assert_eq!(ann.closed().await.0, Some(4001));
    let mut again = Client::connect(&server).await;
    again
        .refused(login("ann", "password-ann"), ErrorCode::Unauthorized)
        .await;
    again.request(login("ann", &password)).await.unwrap();
}

#[tokio::test]
async fn a_deleted_account_s_messages_stay_and_its_name_is_free() {
    let server = TestServer::start(&["--session-check-ms", CHECK_MS]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "team", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let bob_id = bob.id();
    bob.request(Request::SendMessage {
        room_id: room,
        client_id: "b1".into(),
        text: "hello from bob".into(),
    })
    .await
    .unwrap();

    let deleted = admin(&server.db, &["delete-user", "bob"]).await;
    assert!(deleted.contains("deleted bob"), "{deleted}");
    assert_eq!(bob.closed().await.0, Some(4001));
    let twice = server_cli(&server.db, &["admin", "delete-user", "bob"], None)
        .await
        .unwrap_err();
    assert!(twice.contains("no user `bob`"), "{twice}");
    // The history others see is unchanged; the name is free; the old password opens nothing.
    let entries = timeline_since(&mut ann, room, 0).await;
    assert_eq!(entries.len(), 1);
    let mut again = Client::connect(&server).await;
    again
        .refused(login("bob", "password-bob"), ErrorCode::Unauthorized)
        .await;
    let newcomer = Client::register(&server, "bob").await;
    assert_ne!(
        newcomer.id(),
        bob_id,
        "a deleted account's id is not reused"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_the_password_is_then_not_checked() {
    let server = TestServer::start(&["--login-failures-per-account", "3"]).await;
    drop(Client::register(&server, "ann").await);
    let mut guesser = Client::connect(&server).await;
    for guess in ["one", "two", "three"] {
        guesser
            .refused(login("ann", guess), ErrorCode::Unauthorized)
            .await;
    }
    let throttled = guesser
        .refused(login("ANN", "password-ann"), ErrorCode::RateLimited)
        .await;
    let wait = throttled.retry_after_ms.expect("says how long to wait");
    assert!(wait > 0 && wait <= 60_000, "{wait}");
    // Another account is not affected.
    drop(Client::register(&server, "bob").await);
    guesser
        .request(login("bob", "password-bob"))
        .await
        .expect("bob signs in");
}

#[tokio::test]
async fn registrations_and_failed_sign_ins_are_throttled_per_address() {
    let server = TestServer::start(&[
        "--registrations-per-address",
        "2",
        "--sign-in-failures-per-address",
        "2",
    ])
    .await;
    let mut c = Client::connect(&server).await;
    drop(Client::register(&server, "ann").await);
    drop(Client::register(&server, "bob").await);
    let refused = c
        .refused(register("cat", None), ErrorCode::RateLimited)
        .await;
    assert!(refused.retry_after_ms.is_some());
    for token in ["bad-1", "bad-2"] {
        c.refused(
            Request::Authenticate {
                token: token.into(),
            },
            ErrorCode::Unauthorized,
        )
        .await;
    }
    // Both kinds of failure share the address's allowance.
    c.refused(login("ann", "password-ann"), ErrorCode::RateLimited)
        .await;
}

/// A socket through a reverse proxy, which names the client in X-Forwarded-For.
async fn connect_forwarded_for(server: &TestServer, client: &str) -> Client {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    Client::from_socket(socket)
}

async fn fail_to_authenticate(client: &mut Client, code: ErrorCode) {
    client
        .refused(
            Request::Authenticate {
                token: "not-a-token".into(),
            },
            code,
        )
        .await;
}

/// Behind a trusted proxy each client has its own allowance; a header from anyone else is not
/// believed, so a client cannot escape its limit by claiming other addresses.
#[tokio::test]
async fn the_per_address_limits_follow_x_forwarded_for_only_from_a_trusted_proxy() {
    let limit = ["--sign-in-failures-per-address", "2"];
    let proxied = TestServer::start(&[limit[0], limit[1], "--trusted-proxy", "127.0.0.1"]).await;
    let mut mallory = connect_forwarded_for(&proxied, "203.0.113.66").await;
    fail_to_authenticate(&mut mallory, ErrorCode::Unauthorized).await;
    fail_to_authenticate(&mut mallory, ErrorCode::Unauthorized).await;
    fail_to_authenticate(&mut mallory, ErrorCode::RateLimited).await;
    // A new socket from the same client is still limited; another client is not.
    let mut again = connect_forwarded_for(&proxied, "10.0.0.1, 203.0.113.66").await;
    fail_to_authenticate(&mut again, ErrorCode::RateLimited).await;
    let mut alice = connect_forwarded_for(&proxied, "198.51.100.5").await;
    fail_to_authenticate(&mut alice, ErrorCode::Unauthorized).await;

    let direct = TestServer::start(&limit).await;
    for claimed in ["203.0.113.1", "203.0.113.2"] {
        let mut c = connect_forwarded_for(&direct, claimed).await;
        fail_to_authenticate(&mut c, ErrorCode::Unauthorized).await;
    }
    let mut c = connect_forwarded_for(&direct, "203.0.113.3").await;
    fail_to_authenticate(&mut c, ErrorCode::RateLimited).await;
}

/// Messages acknowledged before a backup starts are all in it, though the server kept storing
/// messages while it was taken; the backup restores into a working server.
#[tokio::test]
async fn a_backup_taken_during_traffic_restores_every_acknowledged_message() {
    let server = TestServer::start(&["--rate-per-sec", "10000", "--rate-burst", "10000"]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "team", true).await;
    let send = |n: u32| Request::SendMessage {
        room_id: room,
        client_id: format!("m{n}"),
        text: format!("message {n}"),
    };
    let mut acknowledged = Vec::new();
    for n in 0..200 {
        if let Reply::MessageSent { message, .. } = ann.request(send(n)).await.unwrap() {
            acknowledged.push(message.seq);
        }
    }
    // Traffic goes on while the backup runs: a second client keeps sending, bounded in count.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let file_arg = file.to_str().unwrap().to_owned();
    let db = server.db.clone();
    let mut bob = Client::register(&server, "bob").await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let traffic = tokio::spawn(async move {
        for n in 0..300 {
            bob.request(Request::SendMessage {
                room_id: room,
                client_id: format!("b{n}"),
                text: "during the backup".into(),
            })
            .await
            .unwrap();
        }
    });
    let report = server_cli(&db, &["backup", &file_arg], None).await.unwrap();
    assert!(report.contains("users"), "{report}");
    traffic.await.unwrap();
    // A second backup to the same file is refused, leaving the first intact.
    let again = server_cli(&db, &["backup", &file_arg], None)
        .await
        .unwrap_err();
    assert!(again.contains("exists"), "{again}");

    // Restore: a server started on the copy has every acknowledged message.
    let restored_db = dir.path().join("restored.db");
    std::fs::copy(&file, &restored_db).unwrap();
    let restored = TestServer::start_on(&restored_db, "127.0.0.1:0", &[]).await;
    let mut ann = Client::login(&restored, "ann").await;
    let seqs: Vec<i64> = timeline_since(&mut ann, room, 0)
        .await
        .iter()
        .map(|entry| entry.seq())
        .collect();
    for seq in &acknowledged {
        assert!(seqs.contains(seq), "acknowledged message {seq} missing");
    }
}

#[tokio::test]
async fn admin_commands_name_what_is_wrong() {
    let server = TestServer::start(&[]).await;
    let err = server_cli(&server.db, &["admin", "disable", "nobody"], None)
        .await
        .unwrap_err();
    assert!(err.contains("no user `nobody`"), "{err}");
    let err = server_cli(&server.db, &["admin", "revoke-invite", "99"], None)
        .await
        .unwrap_err();
    assert!(err.contains("no open invite 99"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = server_cli(&missing, &["admin", "users"], None)
        .await
        .unwrap_err();
    assert!(err.contains("no database"), "{err}");
    assert!(
        !missing.exists(),
        "an admin command does not create a database"
    );
}

/// One address holds at most `--sockets-per-address` sockets: the next upgrade is refused with
/// 429 (it would otherwise take descriptors the server needs for everyone else), and a socket
/// that closes gives its place back.
#[tokio::test]
async fn one_address_holds_a_bounded_number_of_sockets() {
    let server = TestServer::start(&["--sockets-per-address", "2"]).await;
    let first = Client::register(&server, "ann").await;
    let _second = Client::connect(&server).await;
    let refused = tokio_tungstenite::connect_async(server.url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a third socket from one address: {other:?}"),
    }
    first.close().await;
    let third =
        wait_for(|| async { tokio_tungstenite::connect_async(server.url()).await.ok() }).await;
    drop(third);
}
