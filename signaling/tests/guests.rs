//! Guests against the real server: a room's owner makes a link, someone without an account
//! comes in through it with a display name, takes part in that room (chat and calls) and in
//! nothing else, and their session ends with the link. Every refusal is tried.
mod common;

use common::{create_room, send, Client, TestServer};
use parlor_protocol::{ErrorCode, Event, Reply, Request, RoomInvite};

const CHECK_MS: &str = "200";

async fn make_link(owner: &mut Client, room: i64, uses: Option<u32>) -> RoomInvite {
    match owner
        .request(Request::CreateRoomInvite {
            room_id: room,
            uses,
            expires_in_hours: None,
        })
        .await
        .expect("create room invite")
    {
        Reply::RoomInvite { invite } => invite,
        other => panic!("unexpected {other:?}"),
    }
}

/// A socket that came in through `code`, with the room it may use.
async fn guest(server: &TestServer, code: &str, name: &str) -> (Client, i64) {
    let mut client = Client::connect(server).await;
    match client
        .request(Request::GuestJoin {
            code: code.into(),
            display_name: name.into(),
        })
        .await
        .expect("guest join")
    {
        Reply::Session {
            user,
            token,
            guest_room_id: Some(room),
            ..
        } => {
            assert_eq!(user.display_name, name.trim());
            assert!(user.username.starts_with("guest-"), "{user:?}");
            client.user = Some(user);
            client.token = Some(token);
            (client, room)
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn guest_refused(server: &TestServer, code: &str, name: &str, want: ErrorCode) -> String {
    let mut client = Client::connect(server).await;
    client
        .refused(
            Request::GuestJoin {
                code: code.into(),
                display_name: name.into(),
            },
            want,
        )
        .await
        .message
}

#[tokio::test]
async fn a_guest_chats_and_calls_in_the_one_room_of_their_link() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "design", false).await;
    send(&mut ann, room, "a-1", "before the guest came").await;
    let link = make_link(&mut ann, room, None).await;
    let code = link.code.clone().expect("the code comes with the new link");
    assert_eq!(link.room_id, room);
    assert_eq!(link.uses_left, None);
    assert!(!link.revoked);
    let day = 24 * 3_600_000;
    assert!(
        (link.expires_at - link.created_at - day).abs() < 1000,
        "{link:?}"
    );

    let (mut gus, guest_room) = guest(&server, &code, "  Gus from Acme ").await;
    assert_eq!(guest_room, room);
    let gus_id = gus.id();
    // The owner sees the guest arrive.
    ann.event_matching("member_joined", |e| {
        matches!(e, Event::MemberJoined { room_id, user } if *room_id == room && user.id == gus_id)
    })
    .await;

    // The room is theirs to read and write in.
    let Reply::Rooms { rooms } = gus.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert_eq!(rooms.iter().map(|r| r.room.id).collect::<Vec<_>>(), [room]);
    let Reply::History { messages, .. } = gus
        .request(Request::History {
            room_id: room,
            before_seq: None,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(messages[0].text, "before the guest came");
    send(&mut gus, room, "g-1", "hello from a guest").await;
    ann.event_matching("the guest's message", |e| {
        matches!(e, Event::Timeline { entry: parlor_protocol::TimelineEntry::Message { message } } if message.author_id == gus_id)
    })
    .await;

    // And its call: the guest joins what the owner started, and signaling flows both ways.
    ann.request(Request::CallJoin { room_id: room })
        .await
        .unwrap();
    gus.event_matching("call_started", |e| matches!(e, Event::CallStarted { .. }))
        .await;
    let Reply::CallJoined { call } = gus
        .request(Request::CallJoin { room_id: room })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(call.participants.len(), 2);
    ann.request(Request::CallOffer {
        room_id: room,
        to: gus_id,
        sdp: "v=0\r\n".into(),
    })
    .await
    .unwrap();
    gus.event_matching("the offer", |e| matches!(e, Event::CallOffer { .. }))
        .await;

    // A guest is not an account: no password to log in with.
    let mut login = Client::connect(&server).await;
    let username = gus.user.clone().unwrap().username;
    login
        .refused(
            Request::Login {
                username,
                password: String::new(),
            },
            ErrorCode::Unauthorized,
        )
        .await;
    // But their token brings them back, still a guest of the same room.
    let mut again = Client::connect(&server).await;
    let reply = again
        .request(Request::Authenticate {
            token: gus.token.clone().unwrap(),
        })
        .await
        .unwrap();
    assert!(
        matches!(reply, Reply::Authenticated { guest_room_id: Some(r), .. } if r == room),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_guest_can_do_nothing_beyond_their_room() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "design", true).await;
    let other = create_room(&mut bob, "elsewhere", true).await;
    let code = make_link(&mut ann, room, None).await.code.unwrap();
    let (mut gus, _) = guest(&server, &code, "Gus").await;
    let gus_name = gus.user.clone().unwrap().username;

    for request in [
        Request::CreateRoom {
            name: "mine".into(),
            public: true,
        },
        Request::FindRooms { query: "".into() },
        Request::JoinRoom { room_id: other },
        Request::LeaveRoom { room_id: room },
        Request::OpenDirect {
            username: "ann".into(),
        },
        Request::AddMember {
            room_id: room,
            username: "bob".into(),
        },
        Request::ChangePassword {
            old_password: "x".into(),
            new_password: "a long new password".into(),
        },
        Request::CreateInvite {
            uses: None,
            expires_in_days: None,
        },
        Request::CreateRoomInvite {
            room_id: room,
            uses: None,
            expires_in_hours: None,
        },
        Request::ListRoomInvites { room_id: room },
        Request::RenameRoom {
            room_id: room,
            name: "taken over".into(),
        },
    ] {
        let what = request.type_name();
        let error = gus.refused(request, ErrorCode::Forbidden).await;
        assert!(error.message.contains("guest"), "{what}: {error:?}");
    }
    // Another room's messages and call: not a member.
    gus.refused(
        Request::SendMessage {
            room_id: other,
            client_id: "g-1".into(),
            text: "hi".into(),
        },
        ErrorCode::NotMember,
    )
    .await;
    gus.refused(Request::CallJoin { room_id: other }, ErrorCode::NotMember)
        .await;

    // Nobody can pull a guest into another room or a direct conversation.
    bob.refused(
        Request::AddMember {
            room_id: other,
            username: gus_name.clone(),
        },
        ErrorCode::NotFound,
    )
    .await;
    bob.refused(
        Request::OpenDirect { username: gus_name },
        ErrorCode::NotFound,
    )
    .await;
}

#[tokio::test]
async fn only_the_owner_makes_sees_and_revokes_links_and_bad_links_let_nobody_in() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let mut cat = Client::register(&server, "cat").await;
    let room = create_room(&mut ann, "design", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();

    // A member who is not the owner, and someone not in the room.
    bob.refused(
        Request::CreateRoomInvite {
            room_id: room,
            uses: None,
            expires_in_hours: None,
        },
        ErrorCode::Forbidden,
    )
    .await;
    cat.refused(
        Request::CreateRoomInvite {
            room_id: room,
            uses: None,
            expires_in_hours: None,
        },
        ErrorCode::NotMember,
    )
    .await;
    bob.refused(
        Request::ListRoomInvites { room_id: room },
        ErrorCode::Forbidden,
    )
    .await;
    // A direct conversation has no owner to make one.
    let Reply::Room { room: direct } = ann
        .request(Request::OpenDirect {
            username: "cat".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    ann.refused(
        Request::CreateRoomInvite {
            room_id: direct.id,
            uses: None,
            expires_in_hours: None,
        },
        ErrorCode::Forbidden,
    )
    .await;
    // Out of range.
    for (uses, hours) in [
        (Some(0), None),
        (Some(1001), None),
        (None, Some(0)),
        (None, Some(721)),
    ] {
        ann.refused(
            Request::CreateRoomInvite {
                room_id: room,
                uses,
                expires_in_hours: hours,
            },
            ErrorCode::Invalid,
        )
        .await;
    }

    // A link for one guest lets in one.
    let single = make_link(&mut ann, room, Some(1)).await;
    let code = single.code.clone().unwrap();
    guest(&server, &code, "First").await;
    let message = guest_refused(&server, &code, "Second", ErrorCode::Forbidden).await;
    assert!(message.contains("used up"), "{message}");
    // An unknown code, and a bad name (nothing used up by it).
    guest_refused(&server, "no-such-code", "Someone", ErrorCode::Forbidden).await;
    let open = make_link(&mut ann, room, Some(5)).await;
    let open_code = open.code.clone().unwrap();
    guest_refused(&server, &open_code, "   ", ErrorCode::Invalid).await;
    guest_refused(&server, &open_code, "two\nlines", ErrorCode::Invalid).await;
    // Already signed in.
    ann.refused(
        Request::GuestJoin {
            code: open_code.clone(),
            display_name: "Ann again".into(),
        },
        ErrorCode::Conflict,
    )
    .await;

    // The owner lists them (no codes: the server keeps hashes), the used one with none left.
    let Reply::RoomInvites { invites } = ann
        .request(Request::ListRoomInvites { room_id: room })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(invites.len(), 2);
    assert!(invites.iter().all(|i| i.code.is_none()));
    let listed_single = invites.iter().find(|i| i.id == single.id).unwrap();
    assert_eq!(listed_single.uses_left, Some(0));
    assert_eq!(
        invites.iter().find(|i| i.id == open.id).unwrap().uses_left,
        Some(5),
        "refused joins used nothing"
    );

    // Revoking: only the owner, only a link of that room.
    bob.refused(
        Request::RevokeRoomInvite {
            room_id: room,
            invite_id: open.id,
        },
        ErrorCode::Forbidden,
    )
    .await;
    let mine = create_room(&mut cat, "cats", true).await;
    cat.refused(
        Request::RevokeRoomInvite {
            room_id: mine,
            invite_id: open.id,
        },
        ErrorCode::NotFound,
    )
    .await;
    let Reply::RoomInvite { invite } = ann
        .request(Request::RevokeRoomInvite {
            room_id: room,
            invite_id: open.id,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(invite.revoked);
    let message = guest_refused(&server, &open_code, "Late", ErrorCode::Forbidden).await;
    assert!(message.contains("revoked"), "{message}");
}

#[tokio::test]
async fn a_guest_session_ends_with_its_link() {
    let server = TestServer::start(&["--session-check-ms", CHECK_MS]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "design", false).await;

    // Revoked: the guests it let in are signed out at once and leave the room.
    let link = make_link(&mut ann, room, None).await;
    let (mut gus, _) = guest(&server, link.code.as_deref().unwrap(), "Gus").await;
    let gus_id = gus.id();
    let token = gus.token.clone().unwrap();
    ann.request(Request::RevokeRoomInvite {
        room_id: room,
        invite_id: link.id,
    })
    .await
    .unwrap();
    let (code, _) = gus.closed().await;
    assert_eq!(code, Some(4001));
    assert!(gus
        .pending_events()
        .any(|e| matches!(e, Event::SessionRevoked)));
    ann.event_matching("the guest leaves", |e| {
        matches!(e, Event::MemberLeft { room_id, user_id } if *room_id == room && *user_id == gus_id)
    })
    .await;
    let mut back = Client::connect(&server).await;
    back.refused(Request::Authenticate { token }, ErrorCode::Unauthorized)
        .await;

    // Expired: the session had the link's expiry, and the server's check closes it. (Time
    // passing, as the database sees it.)
    let link = make_link(&mut ann, room, None).await;
    let (mut hal, _) = guest(&server, link.code.as_deref().unwrap(), "Hal").await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite:{}", server.db.display()))
        .await
        .unwrap();
    let session_expiry: i64 =
        sqlx::query_scalar("SELECT expires_at FROM sessions WHERE user_id = ?")
            .bind(hal.id())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        session_expiry, link.expires_at,
        "a guest's session ends with the link"
    );
    sqlx::query("UPDATE room_invites SET expires_at = 1 WHERE id = ?")
        .bind(link.id)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = 1 WHERE user_id = ?")
        .bind(hal.id())
        .execute(&db)
        .await
        .unwrap();
    let (code, _) = hal.closed().await;
    assert_eq!(code, Some(4001));
    let message = guest_refused(
        &server,
        link.code.as_deref().unwrap(),
        "Ivy",
        ErrorCode::Forbidden,
    )
    .await;
    assert!(message.contains("expired"), "{message}");

    // An open socket does not stretch a guest's session past its link, as it does an account's.
    let link = make_link(&mut ann, room, None).await;
    let (jo, _) = guest(&server, link.code.as_deref().unwrap(), "Jo").await;
    sqlx::query("UPDATE sessions SET expires_at = ? WHERE user_id = ?")
        .bind(link.expires_at)
        .bind(jo.id())
        .execute(&db)
        .await
        .unwrap();
    // Two checks' worth of time: wait for the owner's session, slid by the same checks.
    let ann_before: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE user_id = ?")
        .bind(ann.id())
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = ? WHERE user_id = ?")
        .bind(ann_before - 29 * 86_400_000)
        .bind(ann.id())
        .execute(&db)
        .await
        .unwrap();
    common::wait_for(|| async {
        let now: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE user_id = ?")
            .bind(ann.id())
            .fetch_one(&db)
            .await
            .unwrap();
        (now > ann_before - 29 * 86_400_000).then_some(())
    })
    .await;
    let jo_now: i64 = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE user_id = ?")
        .bind(jo.id())
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(jo_now, link.expires_at);
    db.close().await;
}

#[tokio::test]
async fn deleting_the_room_ends_its_guests_sessions() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "design", false).await;
    let code = make_link(&mut ann, room, None).await.code.unwrap();
    let (mut gus, _) = guest(&server, &code, "Gus").await;
    ann.request(Request::DeleteRoom { room_id: room })
        .await
        .unwrap();
    let (close, _) = gus.closed().await;
    assert_eq!(close, Some(4001));
    let message = guest_refused(&server, &code, "Late", ErrorCode::Forbidden).await;
    assert!(message.contains("unknown"), "{message}");
}
