//! Plain data carried inside requests, replies and events.
use serde::{Deserialize, Serialize};

pub type UserId = i64;
pub type RoomId = i64;
/// Position in a room's timeline. Strictly increasing per room, assigned by the server.
pub type Seq = i64;
/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Anyone can find it and join.
    Public,
    /// Members are added by the owner.
    Private,
    /// Exactly two members; created with `open_direct`.
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub kind: RoomKind,
    pub owner_id: Option<UserId>,
    pub created_at: Millis,
}

/// A link that lets people without an account into one room as guests (`/join/CODE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInvite {
    pub id: i64,
    pub room_id: RoomId,
    /// Only in the reply to `create_room_invite`: the server keeps a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Guests it may still let in; `null`: any number until it expires.
    pub uses_left: Option<u32>,
    pub revoked: bool,
}

/// A room as the caller sees it in `list_rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: Room,
    pub role: Role,
    /// Messages by others after the caller's read marker, not counting deleted ones.
    pub unread: i64,
    pub last_read_seq: Seq,
    /// Highest sequence number in the room's timeline (0 when empty).
    pub last_seq: Seq,
    pub last_message: Option<Message>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: User,
    pub role: Role,
    pub presence: Presence,
    pub last_read_seq: Seq,
}

/// A chat message in its current state (edits applied; text emptied when deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub room_id: RoomId,
    pub seq: Seq,
    /// The id the sending client chose; unique per author and room.
    pub client_id: String,
    pub author_id: UserId,
    pub text: String,
    pub sent_at: Millis,
    pub edited_at: Option<Millis>,
    pub deleted: bool,
}

/// One entry of a room's timeline, as returned by `sync` and pushed as events.
/// Edits and deletions take their own sequence number and name the message they change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineEntry {
    Message {
        message: Message,
    },
    Edit {
        room_id: RoomId,
        seq: Seq,
        target_seq: Seq,
        author_id: UserId,
        text: String,
        at: Millis,
    },
    Delete {
        room_id: RoomId,
        seq: Seq,
        target_seq: Seq,
        by: UserId,
        at: Millis,
    },
}

impl TimelineEntry {
    pub fn room_id(&self) -> RoomId {
        match self {
            TimelineEntry::Message { message } => message.room_id,
            TimelineEntry::Edit { room_id, .. } | TimelineEntry::Delete { room_id, .. } => *room_id,
        }
    }

    pub fn seq(&self) -> Seq {
        match self {
            TimelineEntry::Message { message } => message.seq,
            TimelineEntry::Edit { seq, .. } | TimelineEntry::Delete { seq, .. } => *seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallParticipant {
    pub user_id: UserId,
    pub joined_at: Millis,
    /// False while the participant's socket is gone and the grace period runs.
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    pub room_id: RoomId,
    pub call_id: String,
    pub started_at: Millis,
    pub participants: Vec<CallParticipant>,
    pub max_participants: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The participant hung up.
    Left,
    /// The participant's socket dropped and did not come back within the grace period.
    ConnectionLost,
    /// The participant left the room (or the room was deleted).
    RemovedFromRoom,
}

/// A trickled ICE candidate in the browser's own `RTCIceCandidateInit` shape (`sdpMid`,
/// `sdpMLineIndex`, `usernameFragment`): what `candidate.toJSON()` gives is sent as it is, and
/// what arrives goes straight into `addIceCandidate`. The snake_case spellings of earlier
/// versions of this document are still read; only the browser's are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(
        default,
        rename = "sdpMid",
        alias = "sdp_mid",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mid: Option<String>,
    #[serde(
        default,
        rename = "sdpMLineIndex",
        alias = "sdp_mline_index",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(
        default,
        rename = "usernameFragment",
        alias = "username_fragment",
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// One ICE server, shaped like the browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
