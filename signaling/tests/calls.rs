//! Call signaling among real clients: join, relay, leave, decline, busy, drops and reconnects.
mod common;

use std::time::Duration;

use common::*;
use parlor_protocol::{ErrorCode, Event, IceCandidate, LeaveReason, Reply, Request};

/// Registers `names`, puts them all in one public room created by the first, returns both.
async fn room_of(server: &TestServer, names: &[&str]) -> (Vec<Client>, i64) {
    let mut clients = Vec::new();
    for name in names {
        clients.push(Client::register(server, name).await);
    }
    let room = create_room(&mut clients[0], "call room", true).await;
    for client in clients.iter_mut().skip(1) {
        client
            .request(Request::JoinRoom { room_id: room })
            .await
            .unwrap();
    }
    (clients, room)
}

async fn join(client: &mut Client, room: i64) -> parlor_protocol::CallInfo {
    match client
        .request(Request::CallJoin { room_id: room })
        .await
        .unwrap()
    {
        Reply::CallJoined { call } => call,
        other => panic!("unexpected {other:?}"),
    }
}

fn participants(call: &parlor_protocol::CallInfo) -> Vec<i64> {
    call.participants.iter().map(|p| p.user_id).collect()
}

/// A browser written from the document sends `candidate.toJSON()` as it is; the far side
/// must get its mid, m-line index and fragment (without them a browser's `addIceCandidate`
/// refuses the candidate), whichever spelling the sender used.
#[tokio::test]
async fn a_browsers_candidate_reaches_the_far_side_whole() {
    let server = TestServer::start(&[]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob"]).await;
    join(&mut c[0], room).await;
    join(&mut c[1], room).await;
    let to = c[0].id();
    for (id, [mid, index, fragment]) in [
        (901, ["sdpMid", "sdpMLineIndex", "usernameFragment"]),
        (902, ["sdp_mid", "sdp_mline_index", "username_fragment"]),
    ] {
        c[1].send_text(format!(
            r#"{{"v":1,"id":{id},"type":"call_ice","data":{{"room_id":{room},"to":{to},"candidate":{{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host","{mid}":"1","{index}":1,"{fragment}":"x9Yq"}}}}}}"#
        ))
        .await;
        c[1].reply_to(id).await.expect("the candidate is taken");
        let ice = c[0]
            .event_matching("ice", |e| matches!(e, Event::CallIce { .. }))
            .await;
        let Event::CallIce { candidate, .. } = ice else {
            unreachable!()
        };
        assert_eq!(
            candidate,
            IceCandidate {
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
                sdp_mid: Some("1".into()),
                sdp_mline_index: Some(1),
                username_fragment: Some("x9Yq".into()),
            },
            "sent as {mid}"
        );
    }
}

#[tokio::test]
async fn three_clients_join_relay_and_leave() {
    let server = TestServer::start(&[]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob", "cat"]).await;
    let ids: Vec<i64> = c.iter().map(Client::id).collect();

    // Ann starts: Bob and Cat are rung.
    let call = join(&mut c[0], room).await;
    assert_eq!(participants(&call), vec![ids[0]]);
    for i in [1, 2] {
        let ring = c[i]
            .event_matching("call_started", |e| matches!(e, Event::CallStarted { .. }))
            .await;
        assert!(
            matches!(ring, Event::CallStarted { by, ref call } if by == ids[0] && call.room_id == room)
        );
    }
    assert_eq!(server.metric("parlor_active_calls").await, 1.0);

    // Bob joins and gets the current participants; the others hear of it.
    let call = join(&mut c[1], room).await;
    assert_eq!(participants(&call), vec![ids[0], ids[1]]);
    for i in [0, 2] {
        c[i].event_matching(
            "participant_joined",
            |e| matches!(e, Event::CallParticipantJoined { user_id, .. } if *user_id == ids[1]),
        )
        .await;
    }
    let call = join(&mut c[2], room).await;
    assert_eq!(participants(&call).len(), 3);

    // Offer, answer and candidates reach only the named participant.
    c[0].request(Request::CallOffer {
        room_id: room,
        to: ids[1],
        sdp: "v=0 offer-from-ann".into(),
    })
    .await
    .unwrap();
    let offer = c[1]
        .event_matching("offer", |e| matches!(e, Event::CallOffer { .. }))
        .await;
    assert!(
        matches!(offer, Event::CallOffer { from, ref sdp, .. } if from == ids[0] && sdp == "v=0 offer-from-ann")
    );
    c[1].request(Request::CallAnswer {
        room_id: room,
        to: ids[0],
        sdp: "v=0 answer-from-bob".into(),
    })
    .await
    .unwrap();
    let answer = c[0]
        .event_matching("answer", |e| matches!(e, Event::CallAnswer { .. }))
        .await;
    assert!(
        matches!(answer, Event::CallAnswer { from, ref sdp, .. } if from == ids[1] && sdp == "v=0 answer-from-bob")
    );
    let candidate = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some("abcd".into()),
    };
    c[2].request(Request::CallIce {
        room_id: room,
        to: ids[0],
        candidate: candidate.clone(),
    })
    .await
    .unwrap();
    let ice = c[0]
        .event_matching("ice", |e| matches!(e, Event::CallIce { .. }))
        .await;
    assert!(
        matches!(ice, Event::CallIce { from, candidate: ref got, .. } if from == ids[2] && *got == candidate)
    );
    c[2].no_event_matching(Duration::from_millis(100), |e| {
        matches!(
            e,
            Event::CallOffer { .. } | Event::CallAnswer { .. } | Event::CallIce { .. }
        )
    })
    .await;
    c[1].no_event_matching(Duration::from_millis(1), |e| {
        matches!(e, Event::CallIce { .. })
    })
    .await;

    // Signaling someone who is not in the call fails.
    let mut dan = Client::register(&server, "dan").await;
    dan.request(Request::JoinRoom { room_id: room })
        .await
        .unwrap();
    c[0].refused(
        Request::CallOffer {
            room_id: room,
            to: dan.id(),
            sdp: "v=0".into(),
        },
        ErrorCode::NotFound,
    )
    .await;
    dan.refused(
        Request::CallOffer {
            room_id: room,
            to: ids[0],
            sdp: "v=0".into(),
        },
        ErrorCode::Forbidden,
    )
    .await;
    c[0].refused(
        Request::CallOffer {
            room_id: room,
            to: ids[1],
            sdp: " ".into(),
        },
        ErrorCode::Invalid,
    )
    .await;

    // Leaving: members hear it; the last one out ends the call.
    c[2].request(Request::CallLeave { room_id: room })
        .await
        .unwrap();
    c[0].event_matching("left", |e| {
        matches!(e, Event::CallParticipantLeft { user_id, reason: LeaveReason::Left, .. } if *user_id == ids[2])
    })
    .await;
    c[0].request(Request::CallLeave { room_id: room })
        .await
        .unwrap();
    c[1].request(Request::CallLeave { room_id: room })
        .await
        .unwrap();
    dan.event_matching("call_ended", |e| matches!(e, Event::CallEnded { .. }))
        .await;
    assert_eq!(server.metric("parlor_active_calls").await, 0.0);
    c[1].refused(Request::CallLeave { room_id: room }, ErrorCode::NotFound)
        .await;
}

#[tokio::test]
async fn decline_and_busy_reach_the_caller() {
    let server = TestServer::start(&[]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob", "cat"]).await;
    let (bob, cat) = (c[1].id(), c[2].id());
    c[1].refused(Request::CallDecline { room_id: room }, ErrorCode::NotFound)
        .await;
    join(&mut c[0], room).await;
    c[1].event_matching("ring", |e| matches!(e, Event::CallStarted { .. }))
        .await;
    c[1].request(Request::CallDecline { room_id: room })
        .await
        .unwrap();
    c[2].request(Request::CallBusy { room_id: room })
        .await
        .unwrap();
    let declined = c[0]
        .event_matching("declined", |e| matches!(e, Event::CallDeclined { .. }))
        .await;
    assert!(matches!(declined, Event::CallDeclined { user_id, .. } if user_id == bob));
    let busy = c[0]
        .event_matching("busy", |e| matches!(e, Event::CallBusy { .. }))
        .await;
    assert!(matches!(busy, Event::CallBusy { user_id, .. } if user_id == cat));
    c[0].refused(Request::CallDecline { room_id: room }, ErrorCode::Invalid)
        .await;
}

#[tokio::test]
async fn a_dropped_socket_hangs_up_after_the_grace_period() {
    let server = TestServer::start(&["--call-grace-ms", "400"]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob"]).await;
    let bob_id = c[1].id();
    join(&mut c[0], room).await;
    join(&mut c[1], room).await;
    let bob = c.pop().unwrap();
    bob.drop_connection();
    c[0].event_matching(
        "disconnected",
        |e| matches!(e, Event::CallParticipantDisconnected { user_id, .. } if *user_id == bob_id),
    )
    .await;
    let left = c[0]
        .event_matching("left", |e| matches!(e, Event::CallParticipantLeft { .. }))
        .await;
    assert!(matches!(
        left,
        Event::CallParticipantLeft { user_id, reason: LeaveReason::ConnectionLost, .. } if user_id == bob_id
    ));
    // Bob comes back too late: the call goes on without him and he is told it is ongoing.
    let mut bob = Client::login(&server, "bob").await;
    let ongoing = bob
        .event_matching("ongoing", |e| matches!(e, Event::CallOngoing { .. }))
        .await;
    let Event::CallOngoing { call } = ongoing else {
        unreachable!()
    };
    assert_eq!(participants(&call), vec![c[0].id()]);
}

#[tokio::test]
async fn reconnecting_within_the_grace_period_keeps_the_call() {
    let server = TestServer::start(&["--call-grace-ms", "5000"]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob"]).await;
    let bob_id = c[1].id();
    let bob_token = c[1].token.clone().unwrap();
    let call = join(&mut c[0], room).await;
    join(&mut c[1], room).await;
    c.pop().unwrap().drop_connection();
    c[0].event_matching("disconnected", |e| {
        matches!(e, Event::CallParticipantDisconnected { .. })
    })
    .await;

    let mut bob = Client::resume(&server, &bob_token).await;
    let resumed = bob
        .event_matching("resumed", |e| matches!(e, Event::CallResumed { .. }))
        .await;
    let Event::CallResumed { call: again } = resumed else {
        unreachable!()
    };
    assert_eq!(again.call_id, call.call_id);
    assert_eq!(participants(&again), vec![c[0].id(), bob_id]);
    assert!(again.participants.iter().all(|p| p.connected));
    c[0].event_matching(
        "reconnected",
        |e| matches!(e, Event::CallParticipantReconnected { user_id, .. } if *user_id == bob_id),
    )
    .await;
    // Signaling reaches the new socket (an ICE restart would go this way).
    c[0].request(Request::CallOffer {
        room_id: room,
        to: bob_id,
        sdp: "v=0 restart".into(),
    })
    .await
    .unwrap();
    bob.event_matching("offer", |e| matches!(e, Event::CallOffer { .. }))
        .await;
    c[0].no_event_matching(Duration::from_millis(100), |e| {
        matches!(e, Event::CallParticipantLeft { .. })
    })
    .await;
}

#[tokio::test]
async fn the_seventh_participant_gets_call_full() {
    let server = TestServer::start(&[]).await;
    let names = [
        "user1", "user2", "user3", "user4", "user5", "user6", "user7",
    ];
    let (mut c, room) = room_of(&server, &names).await;
    for client in c.iter_mut().take(6) {
        join(client, room).await;
    }
    let full = c[6]
        .refused(Request::CallJoin { room_id: room }, ErrorCode::CallFull)
        .await;
    assert!(full.message.contains('6'), "{}", full.message);
    // When someone leaves, there is room again.
    c[0].request(Request::CallLeave { room_id: room })
        .await
        .unwrap();
    join(&mut c[6], room).await;
}

#[tokio::test]
async fn members_connecting_hear_of_the_ongoing_call() {
    let server = TestServer::start(&[]).await;
    let (mut c, room) = room_of(&server, &["ann", "bob"]).await;
    c.pop().unwrap().close().await;
    join(&mut c[0], room).await;
    let mut bob = Client::login(&server, "bob").await;
    let ongoing = bob
        .event_matching("ongoing", |e| matches!(e, Event::CallOngoing { .. }))
        .await;
    assert!(matches!(ongoing, Event::CallOngoing { call } if call.room_id == room));
    // And someone outside the room hears nothing of it.
    let mut eve = Client::register(&server, "eve").await;
    eve.no_event_matching(Duration::from_millis(100), |e| {
        matches!(e, Event::CallOngoing { .. })
    })
    .await;
}

#[tokio::test]
async fn ice_servers_come_with_turn_rest_credentials() {
    let server = TestServer::start(&[
        "--stun-url",
        "stun:127.0.0.1:3478",
        "--turn-url",
        "turn:127.0.0.1:3478?transport=udp",
        "--turn-secret",
        "s3cret",
        "--turn-ttl-secs",
        "600",
    ])
    .await;
    let mut ann = Client::register(&server, "ann").await;
    let Reply::IceServers {
        ice_servers,
        ttl_secs,
    } = ann.request(Request::GetIceServers).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(ttl_secs, Some(600));
    assert_eq!(ice_servers.len(), 2);
    assert_eq!(ice_servers[0].urls, vec!["stun:127.0.0.1:3478"]);
    let turn = &ice_servers[1];
    let username = turn.username.as_deref().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, ann.id().to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        expiry > now + 590 && expiry <= now + 601,
        "expiry {expiry} vs now {now}"
    );
    // Check the password the way coturn does, with an independent HMAC-SHA1 (openssl).
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '%s' '{username}' | openssl dgst -sha1 -hmac s3cret -binary | base64"
        ))
        .output()
        .expect("openssl");
    assert_eq!(
        turn.credential.as_deref().unwrap(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

#[tokio::test]
async fn no_ice_servers_by_default() {
    let server = TestServer::start(&[]).await;
    let mut ann = Client::register(&server, "ann").await;
    assert_eq!(
        ann.request(Request::GetIceServers).await.unwrap(),
        Reply::IceServers {
            ice_servers: vec![],
            ttl_secs: None
        }
    );
}
