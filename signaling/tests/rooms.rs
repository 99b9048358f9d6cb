//! Room lifecycle, permissions, direct rooms, discovery, membership and presence.
mod common;

use common::*;
use parlor_protocol::{ErrorCode, Event, IceCandidate, Presence, Reply, Request, Role, RoomKind};

#[tokio::test]
async fn room_lifecycle_with_permissions() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "  Design  ", true).await;

    // Bob finds the public room by part of its name and joins; Ann hears of it.
    let Reply::PublicRooms { rooms } = bob
        .request(Request::FindRooms {
            query: "esig".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].name, "Design");
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let joined = ann
        .event_matching("member_joined", |e| matches!(e, Event::MemberJoined { .. }))
        .await;
    assert!(
        matches!(joined, Event::MemberJoined { room_id, user } if room_id == room && user.username == "bob")
    );
    // Joining again is harmless.
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();

    // Only the owner renames or deletes.
    bob.refused(
        Request::RenameRoom {
            room_id: room,
            name: "Mine".into(),
        },
        ErrorCode::Forbidden,
    )
    .await;
    bob.refused(Request::DeleteRoom { room_id: room }, ErrorCode::Forbidden)
        .await;
    ann.request(Request::RenameRoom {
        room_id: room,
        name: "Design team".into(),
    })
    .await
    .unwrap();
    let renamed = bob
        .event_matching("room_updated", |e| matches!(e, Event::RoomUpdated { .. }))
        .await;
    assert!(matches!(renamed, Event::RoomUpdated { room: r } if r.name == "Design team"));

    // Members with roles and presence.
    let Reply::Members { members } = bob
        .request(Request::ListMembers { room_id: room })
        .await
        .unwrap()
    else {
        panic!()
    };
    let roles: Vec<(String, Role, Presence)> = members
        .iter()
        .map(|m| (m.user.username.clone(), m.role, m.presence))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("ann".into(), Role::Owner, Presence::Online),
            ("bob".into(), Role::Member, Presence::Online)
        ]
    );

    // The owner cannot leave; a member can, and then is no longer in.
    ann.refused(Request::LeaveRoom { room_id: room }, ErrorCode::Forbidden)
        .await;
    bob.request(Request::LeaveRoom { room_id: room })
        .await
        .unwrap();
    ann.event_matching("member_left", |e| matches!(e, Event::MemberLeft { .. }))
        .await;
    bob.refused(Request::ListMembers { room_id: room }, ErrorCode::NotMember)
        .await;

    // Delete: members are told; the room is gone for everyone.
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    ann.request(Request::DeleteRoom { room_id: room })
        .await
        .unwrap();
    let deleted = bob
        .event_matching("room_deleted", |e| matches!(e, Event::RoomDeleted { .. }))
        .await;
    assert_eq!(deleted, Event::RoomDeleted { room_id: room });
    ann.refused(Request::ListMembers { room_id: room }, ErrorCode::NotFound)
        .await;
    bob.refused(Request::JoinRoom { room_id: room }, ErrorCode::NotFound)
        .await;
    let Reply::Rooms { rooms } = ann.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert!(rooms.is_empty());
}

#[tokio::test]
async fn private_rooms_need_the_owner_to_add_members() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let mut cat = Client::register(&server, "cat").await;
    let room = create_room(&mut ann, "secret", false).await;
    let Reply::PublicRooms { rooms } = bob
        .request(Request::FindRooms {
            query: "secret".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(rooms.is_empty(), "private rooms are not listed");
    bob.refused(Request::JoinRoom { room_id: room }, ErrorCode::Forbidden)
        .await;
    ann.refused(
        Request::AddMember {
            room_id: room,
            username: "nobody".into(),
        },
        ErrorCode::NotFound,
    )
    .await;
    ann.request(Request::AddMember {
        room_id: room,
        username: "bob".into(),
    })
    .await
    .unwrap();
    let added = bob
        .event_matching("member_joined", |e| matches!(e, Event::MemberJoined { .. }))
        .await;
    assert!(matches!(added, Event::MemberJoined { room_id, .. } if room_id == room));
    // A member who is not the owner cannot add others.
    bob.refused(
        Request::AddMember {
            room_id: room,
            username: "cat".into(),
        },
        ErrorCode::Forbidden,
    )
    .await;
    cat.refused(Request::ListMembers { room_id: room }, ErrorCode::NotMember)
        .await;
}

#[tokio::test]
async fn find_rooms_treats_wildcards_literally() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    create_room(&mut ann, "100% fun", true).await;
    create_room(&mut ann, "100 fun", true).await;
    let Reply::PublicRooms { rooms } = ann
        .request(Request::FindRooms { query: "0%".into() })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["100% fun"]
    );
}

#[tokio::test]
async fn direct_rooms_are_found_again_not_duplicated() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let Reply::Room { room: first } = ann
        .request(Request::OpenDirect {
            username: "bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(first.kind, RoomKind::Direct);
    bob.event_matching("member_joined", |e| matches!(e, Event::MemberJoined { .. }))
        .await;
    let Reply::Room { room: again } = ann
        .request(Request::OpenDirect {
            username: "bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let Reply::Room { room: from_bob } = bob
        .request(Request::OpenDirect {
            username: "ann".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(first.id, again.id);
    assert_eq!(first.id, from_bob.id);
    ann.refused(
        Request::OpenDirect {
            username: "ann".into(),
        },
        ErrorCode::Invalid,
    )
    .await;
    ann.refused(
        Request::OpenDirect {
            username: "zed".into(),
        },
        ErrorCode::NotFound,
    )
    .await;
    bob.refused(
        Request::LeaveRoom { room_id: first.id },
        ErrorCode::Forbidden,
    )
    .await;
    send(&mut ann, first.id, "d1", "hi bob").await;
    bob.event_matching("timeline", |e| matches!(e, Event::Timeline { .. }))
        .await;
}

#[tokio::test]
async fn every_room_scoped_operation_is_refused_to_a_non_member() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut eve = Client::register(&server, "eve").await;
    let room = create_room(&mut ann, "private", false).await;
    let message = send(&mut ann, room, "m1", "for members only").await;
    ann.request(Request::CallJoin { room_id: room })
        .await
        .unwrap();
    let ann_id = ann.id();
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: None,
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    let requests = vec![
        Request::RenameRoom {
            room_id: room,
            name: "x".into(),
        },
        Request::DeleteRoom { room_id: room },
        Request::LeaveRoom { room_id: room },
        Request::AddMember {
            room_id: room,
            username: "eve".into(),
        },
        Request::ListMembers { room_id: room },
        Request::SendMessage {
            room_id: room,
            client_id: "e1".into(),
            text: "hi".into(),
        },
        Request::EditMessage {
            room_id: room,
            seq: message.seq,
            text: "mine".into(),
        },
        Request::DeleteMessage {
            room_id: room,
            seq: message.seq,
        },
        Request::History {
            room_id: room,
            before_seq: None,
            limit: None,
        },
        Request::Sync {
            room_id: room,
            since_seq: 0,
            limit: None,
        },
        Request::MarkRead {
            room_id: room,
            seq: 1,
        },
        Request::Typing {
            room_id: room,
            typing: true,
        },
        Request::CallJoin { room_id: room },
        Request::CallLeave { room_id: room },
        Request::CallDecline { room_id: room },
        Request::CallBusy { room_id: room },
        Request::CallOffer {
            room_id: room,
            to: ann_id,
            sdp: "v=0".into(),
        },
        Request::CallAnswer {
            room_id: room,
            to: ann_id,
            sdp: "v=0".into(),
        },
        Request::CallIce {
            room_id: room,
            to: ann_id,
            candidate,
        },
    ];
    for request in requests {
        eve.refused(request, ErrorCode::NotMember).await;
    }
    // Nothing of the room leaked to Eve, and nothing changed for Ann.
    eve.no_event_matching(std::time::Duration::from_millis(100), |_| true)
        .await;
    let Reply::History { messages, .. } = ann
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
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text, "for members only");
    assert_eq!(
        server
            .metric("parlor_errors_total{code=\"not_member\"}")
            .await,
        19.0
    );
}

#[tokio::test]
async fn presence_reaches_only_people_sharing_a_room() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let mut cat = Client::register(&server, "cat").await;
    let room = create_room(&mut ann, "pair", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let bob_id = bob.id();
    bob.close().await;
    let event = ann
        .event_matching("presence", |e| matches!(e, Event::Presence { .. }))
        .await;
    assert_eq!(
        event,
        Event::Presence {
            user_id: bob_id,
            presence: Presence::Offline
        }
    );
    let bob = Client::login(&server, "bob").await;
    let event = ann
        .event_matching("presence", |e| matches!(e, Event::Presence { .. }))
        .await;
    assert_eq!(
        event,
        Event::Presence {
            user_id: bob_id,
            presence: Presence::Online
        }
    );
    drop(bob);
    cat.no_event_matching(std::time::Duration::from_millis(200), |e| {
        matches!(e, Event::Presence { .. })
    })
    .await;
}
