//! docs/protocol.md must show a valid example of every message: each ```json block is decoded
//! with the real decoders, and every request, reply and event type must appear.
use std::collections::BTreeSet;

use parlor_protocol::{decode_request, decode_server_frame, Request, ServerFrame};

const REPLY_TYPES: &[&str] = &[
    "ok",
    "pong",
    "session",
    "authenticated",
    "invite",
    "room_invite",
    "room_invites",
    "room",
    "rooms",
    "public_rooms",
    "members",
    "message_sent",
    "timeline_entry",
    "history",
    "sync",
    "ice_servers",
    "call_joined",
];

const EVENT_TYPES: &[&str] = &[
    "timeline",
    "room_updated",
    "room_deleted",
    "member_joined",
    "member_left",
    "presence",
    "typing",
    "read_marker",
    "call_started",
    "call_ongoing",
    "call_participant_joined",
    "call_participant_left",
    "call_participant_disconnected",
    "call_participant_reconnected",
    "call_resumed",
    "call_ended",
    "call_declined",
    "call_busy",
    "call_offer",
    "call_answer",
    "call_ice",
    "session_revoked",
];

fn json_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```json") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => block.push_str(line),
            (None, _) => {}
        }
    }
    blocks
}

fn type_of(frame: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(frame).unwrap();
    value["type"].as_str().unwrap().to_owned()
}

#[test]
fn every_example_decodes_and_every_message_is_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let blocks = json_blocks(&doc);
    assert!(blocks.len() > 60, "found only {} examples", blocks.len());

    let (mut requests, mut replies, mut events) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for block in &blocks {
        // Requests always carry an id in these examples; frames without one are events.
        let has_id = serde_json::from_str::<serde_json::Value>(block)
            .unwrap()
            .get("id")
            .is_some();
        if has_id {
            if let Ok(frame) = decode_request(block) {
                requests.insert(frame.request.type_name().to_owned());
                continue;
            }
        }
        match decode_server_frame(block) {
            Ok(ServerFrame::Reply { .. }) => {
                replies.insert(type_of(block));
            }
            Ok(ServerFrame::Event(_)) => {
                events.insert(type_of(block));
            }
            Ok(ServerFrame::Error { .. }) => {}
            Err(e) => panic!("example does not decode ({e}):\n{block}"),
        }
    }
    let missing = |all: &[&str], seen: &BTreeSet<String>| -> Vec<String> {
        all.iter()
            .filter(|t| !seen.contains(**t))
            .map(|t| t.to_string())
            .collect()
    };
    assert_eq!(
        missing(Request::TYPES, &requests),
        Vec::<String>::new(),
        "requests without an example"
    );
    assert_eq!(
        missing(REPLY_TYPES, &replies),
        Vec::<String>::new(),
        "replies without an example"
    );
    assert_eq!(
        missing(EVENT_TYPES, &events),
        Vec::<String>::new(),
        "events without an example"
    );
    // And nothing documented that the code does not know.
    for seen in replies.iter() {
        assert!(REPLY_TYPES.contains(&seen.as_str()), "unknown reply {seen}");
    }
}
