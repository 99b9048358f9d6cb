use serde::{Deserialize, Serialize};

use crate::model::*;

/// Successful answers, each sent with the `id` of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Reply {
    /// Done; nothing to return.
    Ok,
    Pong,
    /// Answer to `register`, `login` and `guest_join`: the socket is now authenticated as
    /// `user`.
    Session {
        user: User,
        token: String,
        expires_at: Millis,
        /// For a guest, the one room they may use; absent for an account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guest_room_id: Option<RoomId>,
    },
    /// Answer to `create_invite`. The code is shown once: the server keeps only its hash.
    Invite {
        code: String,
        uses: u32,
        expires_at: Millis,
    },
    /// Answer to `authenticate`.
    Authenticated {
        user: User,
        expires_at: Millis,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guest_room_id: Option<RoomId>,
    },
    /// Answer to `create_room_invite` (with its code) and `revoke_room_invite`.
    RoomInvite {
        invite: RoomInvite,
    },
    RoomInvites {
        invites: Vec<RoomInvite>,
    },
    Room {
        room: Room,
    },
    Rooms {
        rooms: Vec<RoomSummary>,
    },
    PublicRooms {
        rooms: Vec<Room>,
    },
    Members {
        members: Vec<Member>,
    },
    /// Answer to `send_message`; `duplicate` is true when the client id was seen before and
    /// `message` is the original.
    MessageSent {
        message: Message,
        duplicate: bool,
    },
    /// Answer to `edit_message` and `delete_message`: the timeline entry recording the change.
    TimelineEntry {
        entry: TimelineEntry,
    },
    History {
        messages: Vec<Message>,
        has_more: bool,
    },
    Sync {
        entries: Vec<TimelineEntry>,
        has_more: bool,
        last_seq: Seq,
    },
    IceServers {
        ice_servers: Vec<IceServer>,
        /// Seconds the credentials stay valid; absent when no TURN secret is configured.
        ttl_secs: Option<u64>,
    },
    CallJoined {
        call: CallInfo,
    },
}
