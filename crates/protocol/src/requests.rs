use serde::{Deserialize, Serialize};

use crate::model::*;

/// Everything a client can ask. Serialized as `"type"` + `"data"` in a [`crate::RequestFrame`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Request {
    // --- session (allowed before authentication) ---
    Register {
        username: String,
        display_name: String,
        password: String,
        /// The invite code, on a server whose registration policy is `invite`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invite: Option<String>,
    },
    Login {
        username: String,
        password: String,
    },
    Authenticate {
        token: String,
    },
    /// Someone without an account enters the one room a room invite is for, as a guest.
    GuestJoin {
        code: String,
        display_name: String,
    },
    // --- session (authenticated) ---
    Logout,
    ChangePassword {
        old_password: String,
        new_password: String,
    },
    Ping,
    /// Server administrators only: a code that lets someone register.
    CreateInvite {
        /// How many accounts it may create. [default: 1, at most 1000]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uses: Option<u32>,
        /// Days until it expires. [default: 7, at most 365]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_days: Option<u32>,
    },
    // --- rooms ---
    CreateRoom {
        name: String,
        #[serde(default)]
        public: bool,
    },
    RenameRoom {
        room_id: RoomId,
        name: String,
    },
    DeleteRoom {
        room_id: RoomId,
    },
    ListRooms,
    FindRooms {
        query: String,
    },
    JoinRoom {
        room_id: RoomId,
    },
    LeaveRoom {
        room_id: RoomId,
    },
    AddMember {
        room_id: RoomId,
        username: String,
    },
    ListMembers {
        room_id: RoomId,
    },
    /// The room's owner makes a guest link to it.
    CreateRoomInvite {
        room_id: RoomId,
        /// How many guests it may let in. [default: any number, else at most 1000]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uses: Option<u32>,
        /// Hours until it expires. [default: 24, at most 720]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_hours: Option<u32>,
    },
    ListRoomInvites {
        room_id: RoomId,
    },
    /// Ends the link and the sessions of the guests who came in through it.
    RevokeRoomInvite {
        room_id: RoomId,
        invite_id: i64,
    },
    OpenDirect {
        username: String,
    },
    // --- messages ---
    SendMessage {
        room_id: RoomId,
        client_id: String,
        text: String,
    },
    EditMessage {
        room_id: RoomId,
        seq: Seq,
        text: String,
    },
    DeleteMessage {
        room_id: RoomId,
        seq: Seq,
    },
    History {
        room_id: RoomId,
        #[serde(default)]
        before_seq: Option<Seq>,
        #[serde(default)]
        limit: Option<u32>,
    },
    Sync {
        room_id: RoomId,
        since_seq: Seq,
        #[serde(default)]
        limit: Option<u32>,
    },
    MarkRead {
        room_id: RoomId,
        seq: Seq,
    },
    Typing {
        room_id: RoomId,
        typing: bool,
    },
    // --- calls ---
    GetIceServers,
    CallJoin {
        room_id: RoomId,
    },
    CallLeave {
        room_id: RoomId,
    },
    CallDecline {
        room_id: RoomId,
    },
    CallBusy {
        room_id: RoomId,
    },
    CallOffer {
        room_id: RoomId,
        to: UserId,
        sdp: String,
    },
    CallAnswer {
        room_id: RoomId,
        to: UserId,
        sdp: String,
    },
    CallIce {
        room_id: RoomId,
        to: UserId,
        candidate: IceCandidate,
    },
}

impl Request {
    /// Every request `type`, so a decoder can tell "unknown type" from "bad data".
    pub const TYPES: &'static [&'static str] = &[
        "register",
        "login",
        "authenticate",
        "guest_join",
        "logout",
        "change_password",
        "ping",
        "create_invite",
        "create_room",
        "rename_room",
        "delete_room",
        "list_rooms",
        "find_rooms",
        "join_room",
        "leave_room",
        "add_member",
        "list_members",
        "create_room_invite",
        "list_room_invites",
        "revoke_room_invite",
        "open_direct",
        "send_message",
        "edit_message",
        "delete_message",
        "history",
        "sync",
        "mark_read",
        "typing",
        "get_ice_servers",
        "call_join",
        "call_leave",
        "call_decline",
        "call_busy",
        "call_offer",
        "call_answer",
        "call_ice",
    ];

    /// The `type` name this request is sent as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Register { .. } => "register",
            Request::Login { .. } => "login",
            Request::Authenticate { .. } => "authenticate",
            Request::GuestJoin { .. } => "guest_join",
            Request::Logout => "logout",
            Request::ChangePassword { .. } => "change_password",
            Request::Ping => "ping",
            Request::CreateInvite { .. } => "create_invite",
            Request::CreateRoom { .. } => "create_room",
            Request::RenameRoom { .. } => "rename_room",
            Request::DeleteRoom { .. } => "delete_room",
            Request::ListRooms => "list_rooms",
            Request::FindRooms { .. } => "find_rooms",
            Request::JoinRoom { .. } => "join_room",
            Request::LeaveRoom { .. } => "leave_room",
            Request::AddMember { .. } => "add_member",
            Request::ListMembers { .. } => "list_members",
            Request::CreateRoomInvite { .. } => "create_room_invite",
            Request::ListRoomInvites { .. } => "list_room_invites",
            Request::RevokeRoomInvite { .. } => "revoke_room_invite",
            Request::OpenDirect { .. } => "open_direct",
            Request::SendMessage { .. } => "send_message",
            Request::EditMessage { .. } => "edit_message",
            Request::DeleteMessage { .. } => "delete_message",
            Request::History { .. } => "history",
            Request::Sync { .. } => "sync",
            Request::MarkRead { .. } => "mark_read",
            Request::Typing { .. } => "typing",
            Request::GetIceServers => "get_ice_servers",
            Request::CallJoin { .. } => "call_join",
            Request::CallLeave { .. } => "call_leave",
            Request::CallDecline { .. } => "call_decline",
            Request::CallBusy { .. } => "call_busy",
            Request::CallOffer { .. } => "call_offer",
            Request::CallAnswer { .. } => "call_answer",
            Request::CallIce { .. } => "call_ice",
        }
    }

    /// Requests a socket may send before it has authenticated.
    pub fn allowed_before_auth(&self) -> bool {
        matches!(
            self,
            Request::Register { .. }
                | Request::Login { .. }
                | Request::Authenticate { .. }
                | Request::GuestJoin { .. }
                | Request::Ping
        )
    }

    /// Requests a guest may send: those about the room they were let into (membership is
    /// checked as for anyone) and about their own session. Nothing that reaches another room,
    /// another person or the server's accounts.
    pub fn allowed_for_guest(&self) -> bool {
        matches!(
            self,
            Request::Ping
                | Request::Logout
                | Request::Authenticate { .. }
                | Request::ListRooms
                | Request::ListMembers { .. }
                | Request::SendMessage { .. }
                | Request::EditMessage { .. }
                | Request::DeleteMessage { .. }
                | Request::History { .. }
                | Request::Sync { .. }
                | Request::MarkRead { .. }
                | Request::Typing { .. }
                | Request::GetIceServers
                | Request::CallJoin { .. }
                | Request::CallLeave { .. }
                | Request::CallDecline { .. }
                | Request::CallBusy { .. }
                | Request::CallOffer { .. }
                | Request::CallAnswer { .. }
                | Request::CallIce { .. }
        )
    }
}
