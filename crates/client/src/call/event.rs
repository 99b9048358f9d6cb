//! What the call machine tells a UI. Every change of call state a user can see is one of these;
//! the app and the CLI show them and decide nothing.
use parlor_protocol::{CallInfo, RoomId, UserId};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum CallEvent {
    /// Someone started a call in `call.room_id`: ring. Accept by joining, or decline.
    Ringing {
        call: CallInfo,
        by: UserId,
    },
    /// The ring for `room_id` is over: answered (here or on another device), declined, the
    /// call ended, or nobody answered in time (`missed`).
    RingStopped {
        room_id: RoomId,
        missed: bool,
    },
    /// We are in the call; `call` lists who was in it when we joined.
    Joined {
        call: CallInfo,
    },
    ParticipantJoined {
        user_id: UserId,
    },
    ParticipantLeft {
        user_id: UserId,
    },
    /// `user_id`'s signaling dropped; the server keeps their place for its grace period, and
    /// their media, which does not go through the server, may well go on.
    ParticipantAway {
        user_id: UserId,
    },
    /// `user_id` came back within the grace period.
    ParticipantBack {
        user_id: UserId,
    },
    /// The peer connection to `user_id` changed state.
    Link {
        user_id: UserId,
        state: parlor_rtc::ConnectionState,
    },
    /// Media from `user_id` started arriving (`kind` is `audio` or `video`).
    RemoteTrack {
        user_id: UserId,
        kind: String,
    },
    /// `user_id` offered `kind` media (`audio` or `video`) only in codecs Parlor does not have
    /// (`offered`: a browser without H.264 offers VP8 and VP9): that part is refused, the rest
    /// of the call goes on.
    MediaRefused {
        user_id: UserId,
        kind: String,
        offered: Vec<String>,
    },
    Busy {
        user_id: UserId,
    },
    Declined {
        user_id: UserId,
    },
    /// A step of the call failed (a link could not be set up or negotiated): with `user_id`,
    /// that link's; the rest of the call goes on, and the step is tried again where it can be.
    Failed {
        user_id: Option<UserId>,
        error: String,
    },
    /// What we send now: the microphone's sound, the camera's picture (off when muted, when
    /// turned off, or when there is none).
    Media {
        microphone: bool,
        camera: bool,
    },
    /// Our connection to the server dropped. The call goes on (media is direct) while the
    /// client reconnects; the server keeps our place for its grace period.
    SignalingLost,
    /// The server took us back into the call after a reconnect.
    Resumed,
    /// The call is over for us, and why.
    Ended {
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// We hung up.
    HungUp,
    /// The server ended the call (its last participant left).
    Ended,
    /// The other side of a 1:1 call hung up.
    OtherLeft,
    /// Nobody answered our 1:1 call within the ring timeout.
    NoAnswer,
    /// The other side of our 1:1 call declined it.
    Declined,
    /// The other side of our 1:1 call was in another call.
    Busy,
    /// Our place was lost while we were away: the server let it go after its grace period, or
    /// restarted.
    Lost,
    /// The room is gone (deleted, or we left it).
    RoomGone,
}

impl EndReason {
    /// The call did not happen, or was cut off: not something the user chose.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            EndReason::NoAnswer | EndReason::Declined | EndReason::Busy | EndReason::Lost
        )
    }

    /// In words, for a log or a terminal.
    pub fn describe(self) -> &'static str {
        match self {
            EndReason::HungUp => "hung up",
            EndReason::Ended => "the call ended",
            EndReason::OtherLeft => "the other side hung up",
            EndReason::NoAnswer => "nobody answered",
            EndReason::Declined => "declined",
            EndReason::Busy => "busy in another call",
            EndReason::Lost => "the connection to the server was lost for too long",
            EndReason::RoomGone => "the room is gone",
        }
    }
}
