//! Encoding and decoding of whole frames. Pure functions over text: no I/O, no panics on any input.
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{ErrorBody, ErrorCode, Event, Reply, Request, PROTOCOL_VERSION};

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    /// Echoed in the reply. Clients that do not care about the reply may omit it.
    pub id: Option<u64>,
    pub request: Request,
}

/// A decoded server frame, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Reply { id: u64, reply: Reply },
    Error { id: Option<u64>, error: ErrorBody },
    Event(Event),
}

/// Why a frame could not be decoded, with the request id when it could still be read so the
/// error reply can be matched to the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

impl DecodeError {
    fn invalid(id: Option<u64>, message: impl Into<String>) -> Self {
        DecodeError {
            id,
            code: ErrorCode::Invalid,
            message: message.into(),
        }
    }

    pub fn into_body(self) -> ErrorBody {
        ErrorBody::new(self.code, self.message)
    }
}

/// The fields every frame shares, read leniently so that as much as possible survives a bad frame.
struct Envelope {
    id: Option<u64>,
    kind: String,
    data: Option<Value>,
}

fn read_envelope(text: &str) -> Result<Envelope, DecodeError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::invalid(None, format!("malformed JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::invalid(None, "a frame must be a JSON object"));
    };
    let id =
        match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().ok_or_else(|| {
                DecodeError::invalid(None, "`id` must be a non-negative integer")
            })?),
        };
    match object.remove("v") {
        None => return Err(DecodeError::invalid(id, "missing protocol version `v`")),
        Some(v) if v.as_u64() == Some(PROTOCOL_VERSION as u64) => {}
        Some(v) => {
            return Err(DecodeError {
                id,
                code: ErrorCode::UnsupportedVersion,
                message: format!(
                    "protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            })
        }
    }
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(DecodeError::invalid(id, "`type` must be a string")),
        None => return Err(DecodeError::invalid(id, "missing `type`")),
    };
    let data = match object.remove("data") {
        None | Some(Value::Null) => None,
        Some(data) => Some(data),
    };
    Ok(Envelope { id, kind, data })
}

/// Deserializes an adjacently tagged enum from `type` and `data`. Unknown fields in `data` are
/// ignored, so that a newer client's extra fields do not break an older server; for a variant
/// that carries no data, that makes any `data` object mean "no data".
fn decode_tagged<T: serde::de::DeserializeOwned>(
    kind: &str,
    data: Option<Value>,
) -> Result<T, serde_json::Error> {
    let with = |data: Option<Value>| {
        let mut object = Map::new();
        object.insert("type".into(), Value::String(kind.to_owned()));
        if let Some(data) = data {
            object.insert("data".into(), data);
        }
        serde_json::from_value::<T>(Value::Object(object))
    };
    match data {
        Some(Value::Object(map)) => {
            with(Some(Value::Object(map))).or_else(|first| with(None).map_err(|_| first))
        }
        other => with(other),
    }
}

/// Decodes a client → server frame.
pub fn decode_request(text: &str) -> Result<RequestFrame, DecodeError> {
    let Envelope { id, kind, data } = read_envelope(text)?;
    if !Request::TYPES.contains(&kind.as_str()) {
        return Err(DecodeError::invalid(
            id,
            format!("unknown message type `{kind}`"),
        ));
    }
    let request = decode_tagged::<Request>(&kind, data)
        .map_err(|e| DecodeError::invalid(id, format!("bad `data` for `{kind}`: {e}")))?;
    Ok(RequestFrame { id, request })
}

/// Decodes a server → client frame: an error, a reply (has an `id`) or an event (has none).
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, DecodeError> {
    let Envelope { id, kind, data } = read_envelope(text)?;
    if kind == "error" {
        let error: ErrorBody = serde_json::from_value(data.unwrap_or(Value::Null))
            .map_err(|e| DecodeError::invalid(id, format!("bad error body: {e}")))?;
        return Ok(ServerFrame::Error { id, error });
    }
    match id {
        Some(id) => decode_tagged::<Reply>(&kind, data)
            .map(|reply| ServerFrame::Reply { id, reply })
            .map_err(|e| DecodeError::invalid(Some(id), format!("bad reply `{kind}`: {e}"))),
        None => decode_tagged::<Event>(&kind, data)
            .map(ServerFrame::Event)
            .map_err(|e| DecodeError::invalid(None, format!("bad event `{kind}`: {e}"))),
    }
}

#[derive(Serialize)]
struct Outgoing<'a, T: Serialize> {
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum ErrorTag<'a> {
    Error(&'a ErrorBody),
}

fn encode<T: Serialize>(id: Option<u64>, body: &T) -> String {
    let frame = Outgoing {
        v: PROTOCOL_VERSION,
        id,
        body,
    };
    // Serializing these types cannot fail: every map key is a string and no Serialize impl errors.
    serde_json::to_string(&frame).expect("protocol types always serialize")
}

pub fn encode_request(id: Option<u64>, request: &Request) -> String {
    encode(id, request)
}

pub fn encode_reply(id: u64, reply: &Reply) -> String {
    encode(Some(id), reply)
}

/// An error frame always has an `id` member: the request's, or `null` when the request could
/// not be read (the document promises this; a frame without `id` would read as an event).
#[derive(Serialize)]
struct OutgoingError<'a> {
    v: u32,
    id: Option<u64>,
    #[serde(flatten)]
    body: ErrorTag<'a>,
}

pub fn encode_error(id: Option<u64>, error: &ErrorBody) -> String {
    let frame = OutgoingError {
        v: PROTOCOL_VERSION,
        id,
        body: ErrorTag::Error(error),
    };
    serde_json::to_string(&frame).expect("protocol types always serialize")
}

pub fn encode_event(event: &Event) -> String {
    encode(None, event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn error_frames_always_carry_an_id_member() {
        let error = ErrorBody::new(ErrorCode::Invalid, "not JSON");
        let unreadable: Value = serde_json::from_str(&encode_error(None, &error)).unwrap();
        assert_eq!(unreadable.get("id"), Some(&Value::Null), "{unreadable}");
        let answered: Value = serde_json::from_str(&encode_error(Some(4), &error)).unwrap();
        assert_eq!(answered["id"], 4);
        assert!(matches!(
            decode_server_frame(&encode_error(None, &error)).unwrap(),
            ServerFrame::Error { id: None, .. }
        ));
        // Events still have none.
        let event: Value =
            serde_json::from_str(&encode_event(&Event::RoomDeleted { room_id: 3 })).unwrap();
        assert_eq!(event.get("id"), None, "{event}");
    }

    #[test]
    fn request_round_trips_through_text() {
        let request = Request::SendMessage {
            room_id: 3,
            client_id: "c-1".into(),
            text: "hello".into(),
        };
        let text = encode_request(Some(9), &request);
        assert_eq!(
            text,
            r#"{"v":1,"id":9,"type":"send_message","data":{"room_id":3,"client_id":"c-1","text":"hello"}}"#
        );
        let frame = decode_request(&text).unwrap();
        assert_eq!(frame.id, Some(9));
        assert_eq!(frame.request, request);
    }

    /// What a browser's `candidate.toJSON()` gives, sent as the document says, keeps its mid,
    /// m-line index and fragment (they used to be dropped as unknown members, and the far
    /// browser's `addIceCandidate` then refused a candidate with neither); what is relayed is
    /// in the same shape, so it goes straight into `addIceCandidate`.
    #[test]
    fn ice_candidates_travel_in_the_browsers_own_shape() {
        let browser = r#"{"v":1,"id":5,"type":"call_ice","data":{"room_id":3,"to":6,"candidate":
            {"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
             "sdpMid":"1","sdpMLineIndex":1,"usernameFragment":"x9Yq"}}}"#;
        let expected = IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("1".into()),
            sdp_mline_index: Some(1),
            username_fragment: Some("x9Yq".into()),
        };
        let Request::CallIce { candidate, .. } = decode_request(browser).unwrap().request else {
            panic!("not call_ice");
        };
        assert_eq!(candidate, expected);
        // The spelling of earlier versions of the document is still read.
        let older = browser
            .replace("sdpMid", "sdp_mid")
            .replace("sdpMLineIndex", "sdp_mline_index")
            .replace("usernameFragment", "username_fragment");
        let Request::CallIce { candidate, .. } = decode_request(&older).unwrap().request else {
            panic!("not call_ice");
        };
        assert_eq!(candidate, expected);

        let relayed: Value = serde_json::from_str(&encode_event(&Event::CallIce {
            room_id: 3,
            call_id: "c".into(),
            from: 2,
            candidate: expected,
        }))
        .unwrap();
        assert_eq!(
            relayed["data"]["candidate"],
            serde_json::json!({
                "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
                "sdpMid": "1",
                "sdpMLineIndex": 1,
                "usernameFragment": "x9Yq"
            })
        );
    }

    #[test]
    fn unit_requests_accept_missing_null_or_empty_data() {
        for text in [
            r#"{"v":1,"id":1,"type":"list_rooms"}"#,
            r#"{"v":1,"id":1,"type":"list_rooms","data":null}"#,
            r#"{"v":1,"id":1,"type":"list_rooms","data":{}}"#,
        ] {
            assert_eq!(
                decode_request(text).unwrap().request,
                Request::ListRooms,
                "{text}"
            );
        }
    }

    #[test]
    fn every_listed_type_name_matches_the_enum() {
        // A request of each type, encoded, must decode and report the same type name.
        let samples = sample_requests();
        let names: Vec<&str> = samples.iter().map(Request::type_name).collect();
        assert_eq!(
            names,
            Request::TYPES,
            "TYPES and the samples must list every variant in order"
        );
        for request in samples {
            let text = encode_request(Some(1), &request);
            let kind: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(kind["type"], request.type_name());
            assert_eq!(decode_request(&text).unwrap().request, request);
        }
    }

    #[test]
    fn malformed_json_is_invalid_without_id() {
        let err = decode_request("{not json").unwrap_err();
        assert_eq!(err.code, ErrorCode::Invalid);
        assert_eq!(err.id, None);
        assert!(err.message.contains("malformed JSON"));
    }

    #[test]
    fn non_object_frames_are_invalid() {
        for text in ["[]", "42", "\"x\"", "null"] {
            assert_eq!(decode_request(text).unwrap_err().code, ErrorCode::Invalid);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_with_data_or_without() {
        let frame = decode_request(
            r#"{"v":1,"id":2,"type":"send_message","trace":"x","data":{"room_id":3,"client_id":"c","text":"hi","priority":"high"}}"#,
        )
        .unwrap();
        assert!(matches!(
            frame.request,
            Request::SendMessage { room_id: 3, .. }
        ));
        let frame = decode_request(r#"{"v":1,"id":3,"type":"ping","data":{"nonce":1}}"#).unwrap();
        assert_eq!(frame.request, Request::Ping);
        // Data that is not an object, for a request without data, is still refused.
        let err = decode_request(r#"{"v":1,"id":4,"type":"ping","data":[1]}"#).unwrap_err();
        assert_eq!((err.id, err.code), (Some(4), ErrorCode::Invalid));
    }

    #[test]
    fn a_repeated_key_takes_its_last_value_as_in_javascript() {
        let frame = decode_request(r#"{"v":1,"id":1,"id":2,"type":"ping"}"#).unwrap();
        assert_eq!(frame.id, Some(2));
    }

    #[test]
    fn unknown_type_keeps_the_id() {
        let err = decode_request(r#"{"v":1,"id":5,"type":"launch_rockets"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::Invalid);
        assert_eq!(err.id, Some(5));
        assert!(err
            .message
            .contains("unknown message type `launch_rockets`"));
    }

    #[test]
    fn bad_data_names_the_type_and_keeps_the_id() {
        let err = decode_request(r#"{"v":1,"id":6,"type":"send_message","data":{"room_id":"x"}}"#)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Invalid);
        assert_eq!(err.id, Some(6));
        assert!(err.message.contains("send_message"), "{}", err.message);
    }

    #[test]
    fn wrong_or_missing_version_is_refused() {
        let err = decode_request(r#"{"v":2,"id":1,"type":"ping"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedVersion);
        assert_eq!(err.id, Some(1));
        let err = decode_request(r#"{"id":1,"type":"ping"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::Invalid);
    }

    #[test]
    fn bad_id_is_invalid() {
        for text in [
            r#"{"v":1,"id":-1,"type":"ping"}"#,
            r#"{"v":1,"id":"7","type":"ping"}"#,
            r#"{"v":1,"id":1.5,"type":"ping"}"#,
        ] {
            assert_eq!(
                decode_request(text).unwrap_err().code,
                ErrorCode::Invalid,
                "{text}"
            );
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let reply = Reply::MessageSent {
            message: Message {
                room_id: 1,
                seq: 2,
                client_id: "a".into(),
                author_id: 3,
                text: "hi".into(),
                sent_at: 4,
                edited_at: None,
                deleted: false,
            },
            duplicate: false,
        };
        assert_eq!(
            decode_server_frame(&encode_reply(8, &reply)).unwrap(),
            ServerFrame::Reply { id: 8, reply }
        );
        assert_eq!(
            decode_server_frame(&encode_reply(8, &Reply::Ok)).unwrap(),
            ServerFrame::Reply {
                id: 8,
                reply: Reply::Ok
            }
        );
        let error = ErrorBody::new(ErrorCode::NotMember, "not a member of room 4");
        assert_eq!(
            decode_server_frame(&encode_error(Some(3), &error)).unwrap(),
            ServerFrame::Error {
                id: Some(3),
                error: error.clone()
            }
        );
        assert_eq!(
            decode_server_frame(&encode_error(None, &error)).unwrap(),
            ServerFrame::Error { id: None, error }
        );
        let event = Event::Presence {
            user_id: 3,
            presence: Presence::Online,
        };
        let text = encode_event(&event);
        assert_eq!(
            text,
            r#"{"v":1,"type":"presence","data":{"user_id":3,"presence":"online"}}"#
        );
        assert_eq!(
            decode_server_frame(&text).unwrap(),
            ServerFrame::Event(event)
        );
        assert_eq!(
            decode_server_frame(&encode_event(&Event::SessionRevoked)).unwrap(),
            ServerFrame::Event(Event::SessionRevoked)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz target in fuzz/ goes much further.
        let seeds = [
            r#"{"v":1,"id":1,"type":"call_ice","data":{"room_id":1,"to":2,"candidate":{"candidate":"x"}}}"#,
            r#"{"v":1,"type":"timeline","data":{"entry":{"kind":"edit"}}}"#,
        ];
        for seed in seeds {
            for cut in 0..seed.len() {
                let _ = decode_request(&seed[..cut]);
                let _ = decode_server_frame(&seed[..cut]);
            }
        }
    }

    pub(crate) fn sample_requests() -> Vec<Request> {
        let candidate = IceCandidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        };
        vec![
            Request::Register {
                username: "ann".into(),
                display_name: "Ann".into(),
                password: "pw123456".into(),
                invite: Some("code".into()),
            },
            Request::Login {
                username: "ann".into(),
                password: "pw123456".into(),
            },
            Request::Authenticate { token: "t".into() },
            Request::GuestJoin {
                code: "c".into(),
                display_name: "Gus".into(),
            },
            Request::Logout,
            Request::ChangePassword {
                old_password: "a".into(),
                new_password: "b".into(),
            },
            Request::Ping,
            Request::CreateInvite {
                uses: Some(3),
                expires_in_days: None,
            },
            Request::CreateRoom {
                name: "r".into(),
                public: true,
            },
            Request::RenameRoom {
                room_id: 1,
                name: "s".into(),
            },
            Request::DeleteRoom { room_id: 1 },
            Request::ListRooms,
            Request::FindRooms { query: "r".into() },
            Request::JoinRoom { room_id: 1 },
            Request::LeaveRoom { room_id: 1 },
            Request::AddMember {
                room_id: 1,
                username: "bob".into(),
            },
            Request::ListMembers { room_id: 1 },
            Request::CreateRoomInvite {
                room_id: 1,
                uses: Some(2),
                expires_in_hours: None,
            },
            Request::ListRoomInvites { room_id: 1 },
            Request::RevokeRoomInvite {
                room_id: 1,
                invite_id: 2,
            },
            Request::OpenDirect {
                username: "bob".into(),
            },
            Request::SendMessage {
                room_id: 1,
                client_id: "c".into(),
                text: "t".into(),
            },
            Request::EditMessage {
                room_id: 1,
                seq: 2,
                text: "t".into(),
            },
            Request::DeleteMessage { room_id: 1, seq: 2 },
            Request::History {
                room_id: 1,
                before_seq: Some(9),
                limit: Some(50),
            },
            Request::Sync {
                room_id: 1,
                since_seq: 0,
                limit: None,
            },
            Request::MarkRead { room_id: 1, seq: 2 },
            Request::Typing {
                room_id: 1,
                typing: true,
            },
            Request::GetIceServers,
            Request::CallJoin { room_id: 1 },
            Request::CallLeave { room_id: 1 },
            Request::CallDecline { room_id: 1 },
            Request::CallBusy { room_id: 1 },
            Request::CallOffer {
                room_id: 1,
                to: 2,
                sdp: "v=0".into(),
            },
            Request::CallAnswer {
                room_id: 1,
                to: 2,
                sdp: "v=0".into(),
            },
            Request::CallIce {
                room_id: 1,
                to: 2,
                candidate,
            },
        ]
    }
}
