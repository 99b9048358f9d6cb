/// Errors of the RTC layer, by the kinds Ktor's client distinguishes.
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    /// A capture or playback device is missing, busy or failed.
    #[error("device: {0}")]
    Device(#[from] parlor_media::MediaError),
    #[error("permission denied: {0}")]
    Permission(String),
    /// A session description that could not be parsed or applied.
    #[error("invalid SDP: {0}")]
    Sdp(String),
    /// A bad ICE candidate, or ICE that could not be set up.
    #[error("ICE: {0}")]
    Ice(String),
    #[error("the data channel is closed")]
    DataChannelClosed,
    /// A data-channel message over the channel's limit (see `DataChannelOptions::large_messages`).
    #[error("a {size}-byte message exceeds this channel's {max}-byte limit")]
    MessageTooLarge { size: usize, max: usize },
    #[error("the peer connection is closed")]
    Closed,
    /// Anything else the WebRTC stack reported.
    #[error("WebRTC: {0}")]
    Internal(String),
}

impl From<webrtc::error::Error> for RtcError {
    fn from(e: webrtc::error::Error) -> Self {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("datachannel") && lower.contains("closed") {
            RtcError::DataChannelClosed
        } else if lower.contains("closed") && lower.contains("peer") {
            RtcError::Closed
        } else {
            RtcError::Internal(text)
        }
    }
}
