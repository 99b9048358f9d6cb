//! Messages: send, fan-out, edit, delete, history, sync, deduplication, read markers, restarts.
mod common;

use common::*;
use parlor_protocol::{ErrorCode, Event, Reply, Request, TimelineEntry};

fn timeline_message(event: &Event) -> Option<&parlor_protocol::Message> {
    match event {
        Event::Timeline {
            entry: TimelineEntry::Message { message },
        } => Some(message),
        _ => None,
    }
}

#[tokio::test]
async fn send_edit_delete_history_and_sync_between_two_clients() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "chat", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();

    let first = send(&mut ann, room, "a-1", "hello bob").await;
    let second = send(&mut ann, room, "a-2", "second").await;
    assert!(second.seq > first.seq, "sequence numbers increase");
    assert!(first.sent_at > 0);
    let seen = bob
        .event_matching("message", |e| timeline_message(e).is_some())
        .await;
    assert_eq!(timeline_message(&seen), Some(&first));
    let seen = bob
        .event_matching("message", |e| timeline_message(e).is_some())
        .await;
    assert_eq!(timeline_message(&seen), Some(&second));
    let reply = send(&mut bob, room, "b-1", "hi ann").await;
    let seen = ann
        .event_matching("message", |e| timeline_message(e).is_some())
        .await;
    assert_eq!(timeline_message(&seen), Some(&reply));

    // Edit: author only; both see the edit event carrying the target's sequence number.
    bob.refused(
        Request::EditMessage {
            room_id: room,
            seq: first.seq,
            text: "hijack".into(),
        },
        ErrorCode::Forbidden,
    )
    .await;
    let Reply::TimelineEntry { entry } = ann
        .request(Request::EditMessage {
            room_id: room,
            seq: first.seq,
            text: "hello, Bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        matches!(&entry, TimelineEntry::Edit { target_seq, text, .. } if *target_seq == first.seq && text == "hello, Bob")
    );
    let edit = bob
        .event_matching("edit", |e| {
            matches!(
                e,
                Event::Timeline {
                    entry: TimelineEntry::Edit { .. }
                }
            )
        })
        .await;
    assert_eq!(
        edit,
        Event::Timeline {
            entry: entry.clone()
        }
    );

    // Delete: by the author, or by the owner (Ann deletes Bob's message).
    bob.refused(
        Request::DeleteMessage {
            room_id: room,
            seq: second.seq,
        },
        ErrorCode::Forbidden,
    )
    .await;
    ann.request(Request::DeleteMessage {
        room_id: room,
        seq: reply.seq,
    })
    .await
    .unwrap();
    let deletion = bob
        .event_matching("delete", |e| {
            matches!(
                e,
                Event::Timeline {
                    entry: TimelineEntry::Delete { .. }
                }
            )
        })
        .await;
    assert!(
        matches!(deletion, Event::Timeline { entry: TimelineEntry::Delete { target_seq, .. } } if target_seq == reply.seq)
    );
    ann.refused(
        Request::DeleteMessage {
            room_id: room,
            seq: reply.seq,
        },
        ErrorCode::Conflict,
    )
    .await;
    ann.refused(
        Request::EditMessage {
            room_id: room,
            seq: 9999,
            text: "x".into(),
        },
        ErrorCode::NotFound,
    )
    .await;

    // History shows current state: the edit applied, the deleted message emptied.
    let Reply::History { messages, has_more } = bob
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
    assert!(!has_more);
    let shown: Vec<(&str, bool)> = messages
        .iter()
        .map(|m| (m.text.as_str(), m.deleted))
        .collect();
    assert_eq!(
        shown,
        vec![("hello, Bob", false), ("second", false), ("", true)]
    );
    assert!(messages[0].edited_at.is_some());

    // Sync since the first message replays everything after it, edits and deletions included.
    let Reply::Sync {
        entries,
        has_more,
        last_seq,
    } = bob
        .request(Request::Sync {
            room_id: room,
            since_seq: first.seq,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(!has_more);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| match e {
            TimelineEntry::Message { .. } => "message",
            TimelineEntry::Edit { .. } => "edit",
            TimelineEntry::Delete { .. } => "delete",
        })
        .collect();
    assert_eq!(kinds, vec!["message", "message", "edit", "delete"]);
    assert_eq!(entries.last().unwrap().seq(), last_seq);
    let seqs: Vec<i64> = entries.iter().map(TimelineEntry::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn retrying_with_the_same_client_id_returns_the_original() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "chat", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let request = Request::SendMessage {
        room_id: room,
        client_id: "retry-me".into(),
        text: "once".into(),
    };
    let Reply::MessageSent {
        message: original,
        duplicate,
    } = ann.request(request.clone()).await.unwrap()
    else {
        panic!()
    };
    assert!(!duplicate);
    let Reply::MessageSent {
        message: again,
        duplicate,
    } = ann.request(request).await.unwrap()
    else {
        panic!()
    };
    assert!(duplicate);
    assert_eq!(again, original);
    // Bob saw it once.
    bob.event_matching("message", |e| timeline_message(e).is_some())
        .await;
    bob.no_event_matching(std::time::Duration::from_millis(200), |e| {
        timeline_message(e).is_some()
    })
    .await;
    // The same client id from another author is a different message.
    let theirs = send(&mut bob, room, "retry-me", "mine").await;
    assert_ne!(theirs.seq, original.seq);
    assert_eq!(server.metric("parlor_messages_total").await, 2.0);
}

/// A retry that arrives after the message was deleted gets the deleted original back: the
/// text is not stored a second time (docs/protocol.md, send_message).
#[tokio::test]
async fn a_resend_of_a_deleted_message_returns_it_deleted_and_stores_nothing() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "chat", false).await;
    // Control characters are kept exactly as sent.
    let text = "line one\nline two\tand a bell \u{7}";
    let original = send(&mut ann, room, "gone-soon", text).await;
    assert_eq!(original.text, text);
    ann.request(Request::DeleteMessage {
        room_id: room,
        seq: original.seq,
    })
    .await
    .unwrap();
    let Reply::MessageSent { message, duplicate } = ann
        .request(Request::SendMessage {
            room_id: room,
            client_id: "gone-soon".into(),
            text: text.into(),
        })
        .await
        .unwrap()
    else {
        panic!("not message_sent")
    };
    assert!(
        duplicate && message.deleted && message.text.is_empty(),
        "{message:?}"
    );
    assert_eq!(message.seq, original.seq);
    assert_eq!(server.metric("parlor_messages_total").await, 1.0);
}

#[tokio::test]
async fn a_message_sent_just_before_the_connection_drops_is_kept_once() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let token = ann.token.clone().unwrap();
    let room = create_room(&mut ann, "chat", true).await;
    // Send and drop the socket without waiting for the reply.
    ann.send_text(parlor_protocol::encode_request(
        Some(99),
        &Request::SendMessage {
            room_id: room,
            client_id: "in-flight".into(),
            text: "did it arrive?".into(),
        },
    ))
    .await;
    ann.drop_connection();
    // The client does not know whether it arrived, so after reconnecting it sends again.
    let mut ann = Client::resume(&server, &token).await;
    let Reply::MessageSent { message, .. } = ann
        .request(Request::SendMessage {
            room_id: room,
            client_id: "in-flight".into(),
            text: "did it arrive?".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(message.text, "did it arrive?");
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
    assert_eq!(messages.len(), 1, "exactly once");
}

#[tokio::test]
async fn offline_client_catches_up_with_sync_and_unread_counts() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let bob_token = bob.token.clone().unwrap();
    let room = create_room(&mut ann, "chat", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let seen = send(&mut ann, room, "1", "before").await;
    bob.request(Request::MarkRead {
        room_id: room,
        seq: seen.seq,
    })
    .await
    .unwrap();
    bob.close().await;

    for i in 0..5 {
        send(
            &mut ann,
            room,
            &format!("offline-{i}"),
            &format!("while away {i}"),
        )
        .await;
    }
    let mut bob = Client::resume(&server, &bob_token).await;
    let Reply::Rooms { rooms } = bob.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].unread, 5);
    assert_eq!(rooms[0].last_read_seq, seen.seq);
    assert_eq!(rooms[0].last_message.as_ref().unwrap().text, "while away 4");
    let Reply::Sync {
        entries, last_seq, ..
    } = bob
        .request(Request::Sync {
            room_id: room,
            since_seq: seen.seq,
            limit: None,
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(entries.len(), 5);
    bob.request(Request::MarkRead {
        room_id: room,
        seq: last_seq,
    })
    .await
    .unwrap();
    // A read marker never moves back.
    bob.request(Request::MarkRead {
        room_id: room,
        seq: 1,
    })
    .await
    .unwrap();
    let Reply::Rooms { rooms } = bob.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert_eq!(rooms[0].unread, 0);
    assert_eq!(rooms[0].last_read_seq, last_seq);
    // Ann's own messages never count as unread for her.
    let Reply::Rooms { rooms } = ann.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    assert_eq!(rooms[0].unread, 0);
}

#[tokio::test]
async fn history_pages_backwards_at_most_200_at_a_time() {
    let server = TestServer::start(&["--rate-per-sec", "10000", "--rate-burst", "10000"]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "busy", true).await;
    for i in 0..250 {
        send(&mut ann, room, &format!("m{i}"), &format!("message {i}")).await;
    }
    let Reply::History { messages, has_more } = ann
        .request(Request::History {
            room_id: room,
            before_seq: None,
            limit: Some(1000),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(messages.len(), 200, "capped at 200");
    assert!(has_more);
    assert_eq!(messages.last().unwrap().text, "message 249");
    assert_eq!(messages.first().unwrap().text, "message 50");
    let before = messages.first().unwrap().seq;
    let Reply::History { messages, has_more } = ann
        .request(Request::History {
            room_id: room,
            before_seq: Some(before),
            limit: Some(200),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(messages.len(), 50);
    assert!(!has_more);
    assert_eq!(messages.first().unwrap().text, "message 0");
    ann.refused(
        Request::History {
            room_id: room,
            before_seq: None,
            limit: Some(0),
        },
        ErrorCode::Invalid,
    )
    .await;
}

#[tokio::test]
async fn empty_and_oversized_text_is_refused() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let room = create_room(&mut ann, "chat", true).await;
    ann.refused(
        Request::SendMessage {
            room_id: room,
            client_id: "e".into(),
            text: "  \n ".into(),
        },
        ErrorCode::Invalid,
    )
    .await;
    ann.refused(
        Request::SendMessage {
            room_id: room,
            client_id: "big".into(),
            text: "x".repeat(16 * 1024 + 1),
        },
        ErrorCode::TooLarge,
    )
    .await;
    ann.refused(
        Request::SendMessage {
            room_id: room,
            client_id: "".into(),
            text: "hi".into(),
        },
        ErrorCode::Invalid,
    )
    .await;
    let max = send(&mut ann, room, "max", &"é".repeat(8 * 1024)).await;
    assert_eq!(max.text.len(), 16 * 1024);
    ann.refused(
        Request::SendMessage {
            room_id: 424242,
            client_id: "x".into(),
            text: "hi".into(),
        },
        ErrorCode::NotFound,
    )
    .await;
}

#[tokio::test]
async fn a_restarted_server_still_has_everything() {
    let mut server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let ann_token = ann.token.clone().unwrap();
    let room = create_room(&mut ann, "durable", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    let Reply::Room { room: direct } = ann
        .request(Request::OpenDirect {
            username: "bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let kept = send(&mut ann, room, "k1", "keep me").await;
    send(&mut bob, room, "k2", "and me").await;
    ann.request(Request::EditMessage {
        room_id: room,
        seq: kept.seq,
        text: "keep me, edited".into(),
    })
    .await
    .unwrap();
    bob.request(Request::MarkRead {
        room_id: room,
        seq: kept.seq,
    })
    .await
    .unwrap();
    drop(ann);
    drop(bob);

    server.restart().await;

    // The old token still works; rooms, members, messages, edits, read markers and dedup survive.
    let mut ann = Client::resume(&server, &ann_token).await;
    let mut bob = Client::login(&server, "bob").await;
    let Reply::Rooms { rooms } = bob.request(Request::ListRooms).await.unwrap() else {
        panic!()
    };
    let mut ids: Vec<i64> = rooms.iter().map(|r| r.room.id).collect();
    ids.sort();
    assert_eq!(ids, {
        let mut v = vec![room, direct.id];
        v.sort();
        v
    });
    let durable = rooms.iter().find(|r| r.room.id == room).unwrap();
    assert_eq!(durable.last_read_seq, kept.seq);
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
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["keep me, edited", "and me"]);
    let Reply::MessageSent { duplicate, message } = ann
        .request(Request::SendMessage {
            room_id: room,
            client_id: "k1".into(),
            text: "keep me".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(duplicate);
    assert_eq!(message.seq, kept.seq);
    // Sequence numbers continue after the restart instead of starting over.
    let next = send(&mut ann, room, "k3", "after restart").await;
    assert!(next.seq > kept.seq + 2);
    // Membership checks still apply after the restart.
    let mut cat = Client::register(&server, "cat").await;
    cat.refused(
        Request::History {
            room_id: room,
            before_seq: None,
            limit: None,
        },
        ErrorCode::NotMember,
    )
    .await;
}

#[tokio::test]
async fn typing_is_relayed_not_stored_and_rate_limited() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    let mut bob = Client::register(&server, "bob").await;
    let room = create_room(&mut ann, "chat", true).await;
    bob.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    ann.request(Request::Typing {
        room_id: room,
        typing: true,
    })
    .await
    .unwrap();
    let typing = bob
        .event_matching("typing", |e| matches!(e, Event::Typing { .. }))
        .await;
    assert_eq!(
        typing,
        Event::Typing {
            room_id: room,
            user_id: ann.id(),
            typing: true
        }
    );
    ann.request(Request::Typing {
        room_id: room,
        typing: false,
    })
    .await
    .unwrap();
    ann.request(Request::Typing {
        room_id: room,
        typing: true,
    })
    .await
    .unwrap();
    ann.refused(
        Request::Typing {
            room_id: room,
            typing: true,
        },
        ErrorCode::RateLimited,
    )
    .await;
    let entries = timeline_since(&mut bob, room, 0).await;
    assert!(entries.is_empty(), "typing leaves no trace in the timeline");
}
