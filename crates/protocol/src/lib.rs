//! Parlor's wire protocol: every message that crosses the signaling WebSocket.
//!
//! Frames are JSON objects sent in WebSocket text frames:
//!
//! * client → server requests: `{"v":1,"id":7,"type":"send_message","data":{…}}`
//! * server → client replies:  `{"v":1,"id":7,"type":"message_sent","data":{…}}`
//! * server → client errors:   `{"v":1,"id":7,"type":"error","data":{"code":"not_member","message":"…"}}`
//! * server → client events:   `{"v":1,"type":"message","data":{…}}` (no `id`)
//!
//! The crate has no I/O: [`decode_request`] and [`decode_server_frame`] are pure functions over text,
//! which is what the fuzz targets and both ends use. `docs/protocol.md` documents every message.

mod codec;
mod error;
mod events;
mod model;
mod replies;
mod requests;

pub use codec::{
    decode_request, decode_server_frame, encode_error, encode_event, encode_reply, encode_request,
    DecodeError, RequestFrame, ServerFrame,
};
pub use error::{ErrorBody, ErrorCode};
pub use events::Event;
pub use model::*;
pub use replies::Reply;
pub use requests::Request;

/// The protocol version this crate speaks; every frame carries it as `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame, in bytes, the server processes. Bigger frames are answered with `too_large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest message text, in bytes of UTF-8.
pub const MAX_MESSAGE_TEXT_BYTES: usize = 16 * 1024;

/// Most messages returned by one `history` or `sync` page.
pub const MAX_PAGE: u32 = 200;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
