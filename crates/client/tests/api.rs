//! The typed client API and its event stream, against the real server on loopback: what a UI
//! sees of chat (unread counts, typing, presence, edits, deletions, read markers, outbox states)
//! and how the client catches every room up after its line drops.
mod common;

use std::path::Path;
use std::time::Duration;

use common::{server, Proxy};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::{Client, ClientEvent, ConnectionState, OutboxState};
use parlor_protocol::{ErrorCode, Presence, TimelineEntry};
use tokio::sync::broadcast;

/// Waits for the first event that `want` picks (a guard against hangs, not a speed check).
async fn expect<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut want: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = want(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended waiting for {what}: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what}"))
}

/// Waits until the outbox message `client_id` reaches a state `want` accepts.
async fn outbox_reaches(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    client_id: &str,
    want: impl Fn(&OutboxState) -> bool,
) {
    expect(events, what, |e| match e {
        ClientEvent::Outbox { message } if message.client_id == client_id => {
            want(&message.state).then_some(())
        }
        _ => None,
    })
    .await
}

async fn register(url: &str, dir: &Path, name: &str) -> Client {
    common::register(url, dir, name, patient()).await
}

/// Retries for long enough to ride out a cut line in these tests.
fn patient() -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts: Some(100),
        base: Duration::from_millis(50),
        max_delay: Duration::from_millis(300),
        ..ReconnectPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_tells_a_ui_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let (mut ann_events, mut bob_events) = (ann.subscribe(), bob.subscribe());
    let room = ann.create_room("general", true).await.unwrap().id;
    bob.join_room(room).await.unwrap();
    let joined = expect(&mut ann_events, "bob joining", |e| match e {
        ClientEvent::MemberJoined { room_id, user } if *room_id == room => Some(user.clone()),
        _ => None,
    })
    .await;
    assert_eq!(joined.display_name, "BOB");

    // A message goes pending, then sent; the other side sees it and an unread count.
    let pending = ann.send(room, "hello bob").await.unwrap();
    assert_eq!(pending.state, OutboxState::Pending);
    let seq = expect(&mut ann_events, "the message sent", |e| match e {
        ClientEvent::Outbox { message } if message.client_id == pending.client_id => {
            match message.state {
                OutboxState::Sent { seq } => Some(seq),
                _ => None,
            }
        }
        _ => None,
    })
    .await;
    expect(&mut bob_events, "the message arriving", |e| match e {
        ClientEvent::Timeline {
            entry: TimelineEntry::Message { message },
        } if message.seq == seq && message.text == "hello bob" => Some(()),
        _ => None,
    })
    .await;
    expect(&mut bob_events, "an unread badge", |e| match e {
        ClientEvent::Room { room: view } if view.room.id == room && view.unread == 1 => Some(()),
        _ => None,
    })
    .await;
    assert!(ann.outbox(room).await.unwrap().is_empty(), "sent, not kept");
    let ann_room = ann.rooms().await.unwrap();
    assert_eq!(ann_room[0].unread, 0, "one's own messages are not unread");

    bob.mark_read(room).await.unwrap();
    assert_eq!(bob.rooms().await.unwrap()[0].unread, 0);

    // Typing, then an edit and a deletion, each seen by the other side and in its store.
    ann.set_typing(room, true).await.unwrap();
    expect(&mut bob_events, "ann typing", |e| match e {
        ClientEvent::Typing {
            user_id, typing, ..
        } if *user_id == ann.me().id && *typing => Some(()),
        _ => None,
    })
    .await;
    ann.edit(room, seq, "hello, bob").await.unwrap();
    expect(&mut bob_events, "the edit", |e| match e {
        ClientEvent::Timeline {
            entry: TimelineEntry::Edit { target_seq, .. },
        } if *target_seq == seq => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(
        bob.history(room, None, 10).await.unwrap()[0].text,
        "hello, bob"
    );
    assert_eq!(bob.search("hello").await.unwrap().len(), 1);
    let refused = bob.edit(room, seq, "not yours").await.unwrap_err();
    assert!(
        matches!(&refused, parlor_client::ClientError::Refused(e) if e.code == ErrorCode::Forbidden),
        "{refused}"
    );
    ann.delete(room, seq).await.unwrap();
    expect(&mut bob_events, "the deletion", |e| match e {
        ClientEvent::Timeline {
            entry: TimelineEntry::Delete { target_seq, .. },
        } if *target_seq == seq => Some(()),
        _ => None,
    })
    .await;
    assert!(bob.history(room, None, 10).await.unwrap()[0].deleted);

    // Presence: members come with it, and going away is announced.
    let members = bob.members(room).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.presence == Presence::Online));
    ann.close().await;
    expect(&mut bob_events, "ann going offline", |e| match e {
        ClientEvent::Presence { user_id, presence } if *user_id == ann.me().id => {
            (*presence == Presence::Offline).then_some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(bob.presence(ann.me().id), Presence::Offline);

    // A message the server refuses for good is kept as failed, to retry or discard.
    let private = {
        let cat = register(&server.url, dir.path(), "cat").await;
        let room = cat.create_room("cat's den", false).await.unwrap().id;
        cat.close().await;
        room
    };
    let doomed = bob.send(private, "let me in").await.unwrap();
    let error = expect(&mut bob_events, "the refusal", |e| match e {
        ClientEvent::Outbox { message } if message.client_id == doomed.client_id => {
            match &message.state {
                OutboxState::Failed { error } => Some(error.clone()),
                _ => None,
            }
        }
        _ => None,
    })
    .await;
    assert!(error.contains("not_member"), "{error}");
    assert!(matches!(
        bob.outbox(private).await.unwrap()[0].state,
        OutboxState::Failed { .. }
    ));
    bob.discard(&doomed.client_id).await.unwrap();
    assert!(bob.outbox(private).await.unwrap().is_empty());
    assert!(
        bob.send(room, "   ").await.is_err(),
        "blank text is refused here"
    );
    bob.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_line_drops_a_client_catches_up_every_room_and_sends_its_outbox_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let proxy = Proxy::start(server.addr).await;
    let ann = register(&proxy.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let rooms = [
        ann.create_room("one", true).await.unwrap().id,
        ann.create_room("two", true).await.unwrap().id,
    ];
    for room in rooms {
        bob.join_room(room).await.unwrap();
    }
    let mut events = ann.subscribe();

    proxy.cut();
    expect(&mut events, "the reconnecting state", |e| match e {
        ClientEvent::Connection(ConnectionState::Reconnecting { .. }) => Some(()),
        _ => None,
    })
    .await;
    // While ann is away: bob writes in both rooms, and ann writes one of her own.
    for (i, room) in rooms.iter().enumerate() {
        for n in 0..3 {
            bob.send(*room, &format!("room {i} message {n}"))
                .await
                .unwrap();
        }
    }
    let queued = ann.send(rooms[0], "written offline").await.unwrap();
    assert_eq!(queued.state, OutboxState::Pending);
    // Bob's six messages are on the server before ann comes back.
    let mut bob_events = bob.subscribe();
    while bob
        .outbox(rooms[0])
        .await
        .unwrap()
        .into_iter()
        .chain(bob.outbox(rooms[1]).await.unwrap())
        .next()
        .is_some()
    {
        let _ = tokio::time::timeout(Duration::from_millis(200), bob_events.recv()).await;
    }

    proxy.restore();
    expect(&mut events, "the re-sync", |e| {
        matches!(e, ClientEvent::Synced).then_some(())
    })
    .await;
    for (i, room) in rooms.iter().enumerate() {
        let texts = texts(&ann, *room).await;
        for n in 0..3 {
            assert!(
                texts.contains(&format!("room {i} message {n}")),
                "room {i}: {texts:?}"
            );
        }
    }
    let unread: Vec<i64> = {
        let mut views = ann.rooms().await.unwrap();
        views.sort_by_key(|v| v.room.id);
        views.iter().map(|v| v.unread).collect()
    };
    assert_eq!(unread, vec![3, 3]);
    // The offline message went out exactly once.
    bob.sync(rooms[0]).await.unwrap();
    let copies = bob
        .history(rooms[0], None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.text == "written offline")
        .count();
    assert_eq!(copies, 1);
    assert!(ann.outbox(rooms[0]).await.unwrap().is_empty());
    ann.close().await;
    bob.close().await;
    drop(proxy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_renamed_left_deleted_and_opened_directly() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let (mut ann_events, mut bob_events) = (ann.subscribe(), bob.subscribe());

    // A direct room appears on both sides.
    let direct = ann.open_direct("bob").await.unwrap();
    assert_eq!(direct.kind, parlor_protocol::RoomKind::Direct);
    assert_eq!(
        ann.open_direct("bob").await.unwrap().id,
        direct.id,
        "one per pair"
    );
    expect(&mut bob_events, "the direct room", |e| match e {
        ClientEvent::Rooms { rooms } => rooms.iter().any(|r| r.room.id == direct.id).then_some(()),
        ClientEvent::Room { room } => (room.room.id == direct.id).then_some(()),
        _ => None,
    })
    .await;

    // Public rooms are found by name, joined, renamed, left and deleted.
    let room = ann.create_room("design reviews", true).await.unwrap().id;
    let found = bob.find_rooms("design").await.unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), vec![room]);
    bob.join_room(room).await.unwrap();
    ann.rename_room(room, "design").await.unwrap();
    expect(&mut bob_events, "the new name", |e| match e {
        ClientEvent::Room { room: view } if view.room.id == room => {
            (view.room.name == "design").then_some(())
        }
        _ => None,
    })
    .await;
    let refused = bob.rename_room(room, "mine now").await.unwrap_err();
    assert!(matches!(refused, parlor_client::ClientError::Refused(_)));
    bob.leave_room(room).await.unwrap();
    expect(&mut ann_events, "bob leaving", |e| match e {
        ClientEvent::MemberLeft { room_id, user_id } if *room_id == room => {
            (*user_id == bob.me().id).then_some(())
        }
        _ => None,
    })
    .await;
    assert!(!bob.rooms().await.unwrap().iter().any(|r| r.room.id == room));
    let refused = bob.send(room, "still here?").await.unwrap();
    outbox_reaches(
        &mut bob_events,
        "a refusal for a room left",
        &refused.client_id,
        |s| matches!(s, OutboxState::Failed { .. }),
    )
    .await;
    bob.join_room(room).await.unwrap();
    ann.delete_room(room).await.unwrap();
    expect(&mut bob_events, "the room removed", |e| match e {
        ClientEvent::RoomRemoved { room_id } => (*room_id == room).then_some(()),
        _ => None,
    })
    .await;
    assert!(bob.history(room, None, 10).await.unwrap().is_empty());
    ann.close().await;
    bob.close().await;
    server.stop().await;
}

/// The owner's guest links through the client API (what the app's dialog calls): made with a
/// lifetime and a number of uses, listed without codes, revoked; a member who is not the owner
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_makes_lists_and_revokes_guest_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let bob = register(&server.url, dir.path(), "bob").await;
    let room = ann.create_room("design", true).await.unwrap().id;
    bob.join_room(room).await.unwrap();

    let link = ann.create_guest_link(room, Some(2), Some(3)).await.unwrap();
    assert!(
        link.code.as_deref().is_some_and(|c| c.len() >= 40),
        "{link:?}"
    );
    assert_eq!(link.expires_at - link.created_at, 2 * 3_600_000);
    assert_eq!(link.uses_left, Some(3));
    let any = ann.create_guest_link(room, None, None).await.unwrap();
    assert_eq!(any.uses_left, None);

    let listed = ann.guest_links(room).await.unwrap();
    assert_eq!(
        listed.iter().map(|l| l.id).collect::<Vec<_>>(),
        [any.id, link.id]
    );
    assert!(listed.iter().all(|l| l.code.is_none() && !l.revoked));

    let revoked = ann.revoke_guest_link(room, link.id).await.unwrap();
    assert!(revoked.revoked);
    assert!(ann
        .guest_links(room)
        .await
        .unwrap()
        .iter()
        .any(|l| l.id == link.id && l.revoked));

    for refused in [
        bob.create_guest_link(room, None, None).await.map(|_| ()),
        bob.guest_links(room).await.map(|_| ()),
        bob.revoke_guest_link(room, any.id).await.map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(parlor_client::ClientError::Refused(ref e)) if e.code == parlor_protocol::ErrorCode::Forbidden),
            "{refused:?}"
        );
    }
    ann.close().await;
    bob.close().await;
    server.stop().await;
}

/// What the client shows of a room from its local store alone.
async fn texts(client: &Client, room: i64) -> Vec<String> {
    client
        .history(room, None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_started_with_the_server_down_shows_its_last_state_and_sends_its_queue_once_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let url = server.url.clone();
    let ann = register(&url, dir.path(), "ann").await;
    let bob = register(&url, dir.path(), "bob").await;
    let room = ann.create_room("team", true).await.unwrap().id;
    bob.join_room(room).await.unwrap();
    let mut events = ann.subscribe();
    let before = ann.send(room, "before the outage").await.unwrap();
    outbox_reaches(
        &mut events,
        "the first message sent",
        &before.client_id,
        |s| matches!(s, OutboxState::Sent { .. }),
    )
    .await;
    let token = ann.token().expect("a token");
    ann.close().await;
    bob.close().await;
    let (db, addr) = server.stop().await;

    // The app starts again with the server down: it opens on its last state at once.
    let endpoint = parlor_client::ServerEndpoint::new(&url, None).unwrap();
    let ann = Client::resume(&endpoint, &dir.path().join("ann"), token, patient())
        .await
        .expect("an offline start is not an error");
    let mut events = ann.subscribe();
    assert_ne!(ann.connection_state(), ConnectionState::Connected);
    assert_eq!(ann.me().username, "ann");
    let rooms = ann.rooms().await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].room.name, "team");
    assert_eq!(texts(&ann, room).await, ["before the outage"]);
    assert_eq!(ann.search("outage").await.unwrap().len(), 1);
    let queued = ann.send(room, "written while offline").await.unwrap();
    assert_eq!(queued.state, OutboxState::Pending);
    assert_eq!(
        ann.outbox(room).await.unwrap(),
        std::slice::from_ref(&queued)
    );

    // The server comes back: the queued message is sent, and only once.
    let server = common::Server::start(&db, addr).await;
    outbox_reaches(
        &mut events,
        "the queued message sent",
        &queued.client_id,
        |s| matches!(s, OutboxState::Sent { .. }),
    )
    .await;
    expect(&mut events, "the re-sync", |e| {
        matches!(e, ClientEvent::Synced).then_some(())
    })
    .await;
    assert!(ann.outbox(room).await.unwrap().is_empty());
    assert_eq!(
        texts(&ann, room).await,
        ["before the outage", "written while offline"]
    );
    let bob = Client::connect(
        &endpoint,
        &dir.path().join("bob-again"),
        parlor_client::Credentials::Login {
            username: "bob".into(),
            password: "password-123".into(),
        },
        patient(),
    )
    .await
    .unwrap();
    bob.sync(room).await.unwrap();
    assert_eq!(
        texts(&bob, room).await,
        ["before the outage", "written while offline"]
    );
    ann.close().await;
    bob.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_start_with_a_revoked_token_ends_the_session_once_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let token = ann.token().unwrap();
    ann.logout().await.unwrap();

    let endpoint = parlor_client::ServerEndpoint::new(&server.url, None).unwrap();
    let ann = Client::resume(&endpoint, &dir.path().join("ann"), token, patient())
        .await
        .expect("the store opens before the server is asked");
    // The UI subscribes late, after the refusal came: the first subscriber still hears of it.
    for _ in 0..2000 {
        if ann.connection_state().is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        ann.connection_state().is_final(),
        "the token was never refused"
    );
    let mut events = ann.subscribe();
    expect(&mut events, "the session ended", |e| {
        matches!(e, ClientEvent::SessionEnded { .. }).then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_goes_silent_is_noticed_and_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir.path().join("server.db")).await;
    let proxy = Proxy::start(server.addr).await;
    // Short deadlines so the test need not wait the default 25 s; the rule is the same.
    let policy = ReconnectPolicy {
        ping_after: Duration::from_millis(300),
        dead_after: Duration::from_secs(1),
        ..patient()
    };
    let ann = common::register(&proxy.url, dir.path(), "ann", policy).await;
    let mut events = ann.subscribe();
    // The route dies without a word: no FIN, no RST, nothing arrives.
    proxy.stall();
    expect(&mut events, "the silent link given up", |e| match e {
        ClientEvent::Connection(ConnectionState::Reconnecting { .. }) => Some(()),
        _ => None,
    })
    .await;
    proxy.restore();
    expect(&mut events, "connected again", |e| match e {
        ClientEvent::Connection(ConnectionState::Connected) => Some(()),
        _ => None,
    })
    .await;
    ann.create_room("after", true).await.unwrap();
    ann.close().await;
    server.stop().await;
}

/// The server with its per-socket request rate raised, to write a large room quickly.
async fn roomy_server(db: &Path) -> common::Server {
    let mut settings = parlor_signaling::config::Settings::for_database(db);
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.rate_per_sec = 100_000;
    settings.rate_burst = 100_000;
    common::Server::start_with(settings).await
}

/// Sends `count` messages "message N" (N from `from`) as fast as the server takes them.
async fn write_many(connection: &parlor_client::Connection, room: i64, from: usize, count: usize) {
    for n in from..from + count {
        connection
            .request(parlor_protocol::Request::SendMessage {
                room_id: room,
                client_id: format!("bulk-{n}"),
                text: format!("message {n}"),
            })
            .await
            .unwrap();
    }
}

/// Every message of `room` as the reader sees it scrolling back from the newest, `page` at a
/// time, oldest first.
async fn scroll_to_the_beginning(client: &Client, room: i64, page: u32) -> Vec<String> {
    let mut seen: Vec<parlor_protocol::Message> = client.history(room, None, page).await.unwrap();
    // Bounded: a room of N messages takes N / page pages.
    for _ in 0..10_000 {
        let older = client.history(room, Some(seen[0].seq), page).await.unwrap();
        if older.is_empty() {
            break;
        }
        seen.splice(0..0, older);
    }
    seen.into_iter().map(|m| m.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_room_opens_at_its_newest_page_and_fills_older_pages_as_the_reader_scrolls() {
    let dir = tempfile::tempdir().unwrap();
    let server = roomy_server(&dir.path().join("server.db")).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let room = ann.create_room("archive", true).await.unwrap().id;
    let writer = parlor_client::Connection::open(
        &parlor_client::ServerEndpoint::new(&server.url, None).unwrap(),
        parlor_client::Credentials::Token(ann.token().unwrap()),
        patient(),
    );
    writer
        .wait_connected(Duration::from_secs(20))
        .await
        .unwrap();
    let total = 1500;
    write_many(&writer, room, 0, total).await;
    // An old message edited: its page, fetched later, must show the edit.
    let mut history = ann.history(room, None, 5000).await.unwrap();
    let third = history.remove(2);
    assert_eq!(third.text, "message 2");
    ann.edit(room, third.seq, "message 2, edited")
        .await
        .unwrap();

    // Bob joins: one page, not the whole timeline.
    let bob = register(&server.url, dir.path(), "bob").await;
    bob.join_room(room).await.unwrap();
    let held = bob.store().history(room, None, 5000).await.unwrap();
    assert!(
        held.len() <= 200,
        "joining fetched {} messages of {total}",
        held.len()
    );
    assert_eq!(held.last().unwrap().text, format!("message {}", total - 1));
    let newest = bob.history(room, None, 50).await.unwrap();
    assert_eq!(newest.len(), 50);
    assert_eq!(newest[0].text, format!("message {}", total - 50));

    // Scrolling back fills the gap page by page: every message once, in order.
    let mut expected: Vec<String> = (0..total).map(|n| format!("message {n}")).collect();
    expected[2] = "message 2, edited".into();
    assert_eq!(scroll_to_the_beginning(&bob, room, 80).await, expected);
    assert!(bob.store().gap_below(room, None).await.unwrap().is_none());

    // Away for a while: catching up takes the newest page again and leaves a gap behind it,
    // which scrolling fills.
    let bob_token = bob.token().unwrap();
    bob.close().await;
    write_many(&writer, room, total, 1200).await;
    let bob = Client::resume(
        &parlor_client::ServerEndpoint::new(&server.url, None).unwrap(),
        &dir.path().join("bob"),
        bob_token,
        patient(),
    )
    .await
    .unwrap();
    bob.sync(room).await.unwrap();
    let held = bob.store().history(room, None, 10_000).await.unwrap();
    assert!(
        held.len() <= total + 200,
        "catching up fetched {} of 1200 new messages",
        held.len() - total
    );
    expected.extend((total..total + 1200).map(|n| format!("message {n}")));
    assert_eq!(scroll_to_the_beginning(&bob, room, 200).await, expected);
    ann.close().await;
    bob.close().await;
    writer.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_waits_out_the_servers_rate_limit_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        parlor_signaling::config::Settings::for_database(&dir.path().join("server.db"));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.rate_per_sec = 5;
    settings.rate_burst = 5;
    let server = common::Server::start_with(settings).await;
    let ann = register(&server.url, dir.path(), "ann").await;
    let room = ann.create_room("small", true).await.unwrap().id;
    // Use up the socket's allowance, then sync: the refusal is waited out, not returned.
    let mut refused = false;
    for _ in 0..20 {
        if let Err(parlor_client::ClientError::Refused(e)) = ann.find_rooms("x").await {
            assert_eq!(e.code, ErrorCode::RateLimited);
            refused = true;
            break;
        }
    }
    assert!(refused, "the allowance was never used up");
    ann.sync(room).await.expect("sync waits for the allowance");
    ann.close().await;
    server.stop().await;
}
