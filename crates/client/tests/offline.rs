//! The client against the real server (in-process, loopback, temporary SQLite): reconnecting,
//! the outbox across a server outage and an app restart, and catching up.
use std::time::Duration;

use parlor_client::connection::{ConnectionEvent, Credentials};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::store::Store;
use parlor_client::{outbox, ClientError, Connection, ConnectionState};
use parlor_protocol::{Reply, Request};

mod common;

use common::{server, Server};

const PATIENCE: Duration = Duration::from_secs(20);

fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts: Some(200),
        base: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    }
}

async fn connect(url: &str, credentials: Credentials) -> Connection {
    let server = parlor_client::ServerEndpoint::new(url, None).expect("server address");
    let connection = Connection::open(&server, credentials, policy());
    connection
        .wait_connected(PATIENCE)
        .await
        .expect("connected");
    connection
}

fn register(name: &str) -> Credentials {
    Credentials::Register {
        username: name.into(),
        display_name: name.into(),
        password: format!("password-{name}"),
        invite: None,
    }
}

async fn create_room(connection: &Connection, name: &str) -> i64 {
    match connection
        .request(Request::CreateRoom {
            name: name.into(),
            public: true,
        })
        .await
        .unwrap()
    {
        Reply::Room { room } => room.id,
        other => panic!("{other:?}"),
    }
}

async fn wait_state(connection: &Connection, want: impl Fn(&ConnectionState) -> bool) {
    let mut state = connection.watch_state();
    tokio::time::timeout(PATIENCE, state.wait_for(|s| want(s)))
        .await
        .expect("state in time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_server_restarts_and_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    let ann = connect(&url, register("ann")).await;
    assert!(matches!(
        ann.next_event().await,
        Some(ConnectionEvent::Connected { resumed: false, .. })
    ));
    create_room(&ann, "before").await;

    let (db, addr) = server.stop().await;
    wait_state(&ann, |s| matches!(s, ConnectionState::Reconnecting { .. })).await;
    assert!(
        matches!(
            ann.request(Request::ListRooms).await,
            Err(ClientError::Disconnected)
        ),
        "offline requests fail fast"
    );

    let server = Server::start(&db, addr).await;
    wait_state(&ann, |s| *s == ConnectionState::Connected).await;
    // Re-authenticated with the token, not the password.
    let mut dropped = false;
    loop {
        match tokio::time::timeout(PATIENCE, ann.next_event())
            .await
            .unwrap()
        {
            Some(ConnectionEvent::Dropped) => dropped = true,
            Some(ConnectionEvent::Connected { resumed, user, .. }) => {
                assert!(dropped, "the drop is told before the reconnect");
                assert!(resumed);
                assert_eq!(user.username, "ann");
                break;
            }
            Some(_) => continue,
            None => panic!("connection ended"),
        }
    }
    let Reply::Rooms { rooms } = ann.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert_eq!(rooms.len(), 1);
    ann.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_written_while_the_server_is_down_is_delivered_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    let ann = connect(&url, register("ann")).await;
    let bob = connect(&url, register("bob")).await;
    let room = create_room(&ann, "team").await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let token = ann.token().expect("a token after registering");
    let ann_db = dir.path().join("ann.db");
    let store = Store::open(&ann_db).await.unwrap();

    // The server goes down; Ann writes anyway.
    let (db, addr) = server.stop().await;
    let client_id = store
        .outbox_add(room, "written while the server was down")
        .await
        .unwrap();
    assert!(matches!(
        outbox::deliver(&ann, &store).await,
        Err(ClientError::Disconnected)
    ));
    assert_eq!(store.outbox().await.unwrap().len(), 1, "still pending");

    // Ann's app restarts: the outbox is still there.
    ann.close().await;
    store.close().await;
    let store = Store::open(&ann_db).await.unwrap();
    assert_eq!(store.outbox().await.unwrap()[0].client_id, client_id);

    // The server comes back; the restarted app reconnects with its token and delivers.
    let server = Server::start(&db, addr).await;
    let ann = connect(&server.url.clone(), Credentials::Token(token)).await;
    assert_eq!(outbox::deliver(&ann, &store).await.unwrap(), 1);
    assert!(store.outbox().await.unwrap().is_empty());
    assert_eq!(
        store.history(room, None, 10).await.unwrap()[0].text,
        "written while the server was down"
    );
    // Had the reply been lost and the send repeated, the server would return the original.
    let Reply::MessageSent { duplicate, .. } = ann
        .request(Request::SendMessage {
            room_id: room,
            client_id,
            text: "written while the server was down".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(duplicate);
    assert_eq!(
        outbox::deliver(&ann, &store).await.unwrap(),
        0,
        "nothing left to send"
    );

    // Bob, reconnected by himself, sees it exactly once.
    bob.wait_connected(PATIENCE).await.unwrap();
    let bob_store = Store::open(&dir.path().join("bob.db")).await.unwrap();
    outbox::sync_room(&bob, &bob_store, room).await.unwrap();
    let seen: Vec<String> = bob_store
        .history(room, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(seen, vec!["written while the server was down"]);
    ann.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_client_catches_up_and_finds_messages_by_search() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    let ann = connect(&url, register("ann")).await;
    let bob = connect(&url, register("bob")).await;
    let bob_token = bob.token().unwrap();
    let room = create_room(&ann, "team").await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    bob.close().await;

    let ann_store = Store::open(&dir.path().join("ann.db")).await.unwrap();
    for text in [
        "the deploy is green",
        "retro at three",
        "bring the quarterly numbers",
    ] {
        ann_store.outbox_add(room, text).await.unwrap();
    }
    assert_eq!(outbox::deliver(&ann, &ann_store).await.unwrap(), 3);

    let bob = connect(&url, Credentials::Token(bob_token)).await;
    let bob_store = Store::open(&dir.path().join("bob.db")).await.unwrap();
    assert_eq!(outbox::sync_room(&bob, &bob_store, room).await.unwrap(), 3);
    assert_eq!(
        outbox::sync_room(&bob, &bob_store, room).await.unwrap(),
        0,
        "nothing new"
    );
    let found = bob_store.search("quarter").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].text, "bring the quarterly numbers");
    ann.close().await;
    bob.close().await;
    server.stop().await;
}
