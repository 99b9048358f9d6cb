use serde::{Deserialize, Serialize};

use crate::model::*;

/// What the server pushes without being asked. Events carry no `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// A new message, an edit or a deletion in a room the receiver is a member of.
    Timeline {
        entry: TimelineEntry,
    },
    RoomUpdated {
        room: Room,
    },
    RoomDeleted {
        room_id: RoomId,
    },
    /// Someone joined (or was added to) a room; also sent to the new member's other sockets.
    MemberJoined {
        room_id: RoomId,
        user: User,
    },
    MemberLeft {
        room_id: RoomId,
        user_id: UserId,
    },
    /// A user sharing a room with the receiver came online or went offline.
    Presence {
        user_id: UserId,
        presence: Presence,
    },
    Typing {
        room_id: RoomId,
        user_id: UserId,
        typing: bool,
    },
    /// The receiver's read marker moved (sent to the receiver's other sockets).
    ReadMarker {
        room_id: RoomId,
        seq: Seq,
    },
    /// A call started in one of the receiver's rooms: ring.
    CallStarted {
        call: CallInfo,
        by: UserId,
    },
    /// Sent right after authentication for each of the receiver's rooms with a call in progress.
    CallOngoing {
        call: CallInfo,
    },
    CallParticipantJoined {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
    },
    CallParticipantLeft {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
        reason: LeaveReason,
    },
    /// A participant's socket dropped; it has the grace period to come back.
    CallParticipantDisconnected {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
    },
    CallParticipantReconnected {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
    },
    /// The receiver reconnected within the grace period and is still in this call.
    CallResumed {
        call: CallInfo,
    },
    CallEnded {
        room_id: RoomId,
        call_id: String,
    },
    CallDeclined {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
    },
    CallBusy {
        room_id: RoomId,
        call_id: String,
        user_id: UserId,
    },
    CallOffer {
        room_id: RoomId,
        call_id: String,
        from: UserId,
        sdp: String,
    },
    CallAnswer {
        room_id: RoomId,
        call_id: String,
        from: UserId,
        sdp: String,
    },
    CallIce {
        room_id: RoomId,
        call_id: String,
        from: UserId,
        candidate: IceCandidate,
    },
    /// The session behind this socket was revoked (logout elsewhere, password change);
    /// the server closes the socket right after.
    SessionRevoked,
}
