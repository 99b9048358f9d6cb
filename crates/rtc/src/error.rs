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
    /// By the library's error variant (its messages are for people, not for matching).
    fn from(e: webrtc::error::Error) -> Self {
        use webrtc::error::Error as E;
        match e {
            E::ErrDataChannelClosed => RtcError::DataChannelClosed,
            E::ErrConnectionClosed => RtcError::Closed,
            other => RtcError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::error::Error as E;

    #[test]
    fn the_librarys_errors_are_mapped_by_variant() {
        assert!(matches!(
            RtcError::from(E::ErrDataChannelClosed),
            RtcError::DataChannelClosed
        ));
        assert!(matches!(
            RtcError::from(E::ErrConnectionClosed),
            RtcError::Closed
        ));
        // A data channel not open yet is not a closed one.
        assert!(matches!(
            RtcError::from(E::ErrDataChannelNotOpen),
            RtcError::Internal(text) if text.contains("not open")
        ));
    }
}
