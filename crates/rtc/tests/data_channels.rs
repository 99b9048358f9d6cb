//! Data channels between two real peer connections on loopback.
mod common;

use common::*;
use parlor_rtc::{DataChannelEvent, DataChannelOptions, Message, PeerEvent};

async fn next_message(channel: &parlor_rtc::DataChannel) -> Message {
    loop {
        match tokio::time::timeout(PATIENCE, channel.next_event())
            .await
            .expect("in time")
        {
            Some(DataChannelEvent::Message(m)) => return m,
            Some(DataChannelEvent::Open) | Some(DataChannelEvent::BufferedAmountLow) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_binary_and_a_mebibyte_both_ways() {
    let channel = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let slot = channel.clone();
    let (a, mut b) = connected_pair(|a, _b| async move {
        let options = DataChannelOptions {
            large_messages: true,
            ..DataChannelOptions::default()
        };
        let dc = a.create_data_channel("chat", options).await.unwrap();
        *slot.lock().await = Some(dc);
    })
    .await;
    let a_dc = channel.lock().await.take().unwrap();
    let b_dc = next_matching(&mut b.events, "data channel", |e| match e {
        PeerEvent::DataChannel(dc) => Some(dc),
        _ => None,
    })
    .await;
    assert_eq!(b_dc.label(), "chat");
    a_dc.wait_open().await.expect("open on a");

    a_dc.send_text("hello from a").await.unwrap();
    assert_eq!(
        next_message(&b_dc).await,
        Message::Text("hello from a".into())
    );
    b_dc.send_text("héllo from b ✓").await.unwrap();
    assert_eq!(
        next_message(&a_dc).await,
        Message::Text("héllo from b ✓".into())
    );
    a_dc.send_binary(&[0, 1, 2, 255]).await.unwrap();
    assert_eq!(
        next_message(&b_dc).await,
        Message::Binary(vec![0, 1, 2, 255])
    );

    let big: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    b_dc.send_binary(&big).await.unwrap();
    assert_eq!(next_message(&a_dc).await, Message::Binary(big.clone()));
    a_dc.send_binary(&big).await.unwrap();
    assert_eq!(next_message(&b_dc).await, Message::Binary(big));

    // Closing one side closes the other.
    a_dc.close().await.unwrap();
    loop {
        match tokio::time::timeout(PATIENCE, b_dc.next_event())
            .await
            .expect("in time")
        {
            Some(DataChannelEvent::Closed) | None => break,
            _ => {}
        }
    }
    assert!(matches!(
        a_dc.send_text("late").await,
        Err(parlor_rtc::RtcError::DataChannelClosed)
    ));
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
    assert_eq!(a.pc.running_tasks(), 0);
    assert_eq!(b.pc.running_tasks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_channels_refuse_oversized_messages_clearly() {
    let channel = std::sync::Arc::new(tokio::sync::Mutex::new(None));
    let slot = channel.clone();
    let (a, mut b) = connected_pair(|a, _b| async move {
        let dc = a
            .create_data_channel("plain", DataChannelOptions::default())
            .await
            .unwrap();
        *slot.lock().await = Some(dc);
    })
    .await;
    let a_dc = channel.lock().await.take().unwrap();
    let b_dc = next_matching(&mut b.events, "data channel", |e| match e {
        PeerEvent::DataChannel(dc) => Some(dc),
        _ => None,
    })
    .await;
    a_dc.wait_open().await.unwrap();
    let too_big = vec![7u8; 300 * 1024];
    assert!(matches!(
        a_dc.send_binary(&too_big).await,
        Err(parlor_rtc::RtcError::MessageTooLarge { size: 307200, .. })
    ));
    // The channel is still fine, and 256 KiB (the browser limit) goes through.
    let max = vec![9u8; 256 * 1024];
    a_dc.send_binary(&max).await.unwrap();
    assert_eq!(next_message(&b_dc).await, Message::Binary(max));
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sdp_and_candidates_are_errors() {
    let (pc, _events) = peer().await;
    for sdp in [
        "",
        "not sdp at all",
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio x",
    ] {
        let result = pc
            .set_remote_description(parlor_rtc::SessionDescription {
                sdp_type: parlor_rtc::SdpType::Offer,
                sdp: sdp.into(),
            })
            .await;
        assert!(
            matches!(result, Err(parlor_rtc::RtcError::Sdp(_))),
            "{sdp:?}: {result:?}"
        );
    }
    let candidate = parlor_rtc::IceCandidate {
        candidate: "candidate:garbage".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    assert!(pc.add_ice_candidate(candidate).await.is_err());
    pc.close().await.unwrap();
}

/// Every local candidate names the mid of the offer's first section, the bundle's transport
/// (webrtc-rs itself says ""), in the browser's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_candidates_carry_the_bundles_mid() {
    let (pc, mut events) = peer().await;
    pc.create_data_channel("chat", DataChannelOptions::default())
        .await
        .unwrap();
    let offer = pc.create_offer().await.unwrap();
    let first_mid = offer
        .sdp
        .lines()
        .find_map(|line| line.strip_prefix("a=mid:"))
        .expect("the offer names a mid")
        .to_owned();
    pc.set_local_description(offer).await.unwrap();
    let candidate = next_matching(&mut events, "a local candidate", |e| match e {
        PeerEvent::IceCandidate(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(candidate.sdp_mid.as_deref(), Some(first_mid.as_str()));
    assert_eq!(candidate.sdp_mline_index, Some(0));
    let json = serde_json::to_value(&candidate).unwrap();
    assert_eq!(json["sdpMid"], first_mid.as_str(), "{json}");
    pc.close().await.unwrap();
}

/// Candidates that reach a connection before the description they belong to (signaling can
/// overtake itself) are kept and applied with it: here every one of the offerer's candidates
/// is given to the answerer before its offer, and the two connect. This is the one place
/// early candidates wait; the call machine passes them straight on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_given_before_the_description_are_applied_with_it() {
    let (a, mut a_events) = peer().await;
    let (b, b_events) = peer().await;
    a.create_data_channel("chat", DataChannelOptions::default())
        .await
        .unwrap();
    let offer = a.create_offer().await.unwrap();
    a.set_local_description(offer.clone()).await.unwrap();
    a.wait_gathering_complete(PATIENCE).await.unwrap();
    let mut early = Vec::new();
    while let Ok(event) = a_events.try_recv() {
        if let PeerEvent::IceCandidate(candidate) = event {
            early.push(candidate);
        }
    }
    assert!(!early.is_empty(), "the offerer gathered candidates");
    for candidate in early {
        b.add_ice_candidate(candidate)
            .await
            .expect("kept until the offer comes");
    }
    // B's candidates never reach a: only a's, given early, let the two find each other (b's
    // checks to them make b known to a).
    let _unsent = b_events;
    b.set_remote_description(offer).await.unwrap();
    let answer = b.create_answer().await.unwrap();
    b.set_local_description(answer.clone()).await.unwrap();
    a.set_remote_description(answer).await.unwrap();
    a.wait_connected(PATIENCE).await.expect("a connected");
    b.wait_connected(PATIENCE).await.expect("b connected");
    a.close().await.unwrap();
    b.close().await.unwrap();
}
