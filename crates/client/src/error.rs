use parlor_protocol::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request; `code` says why.
    #[error("refused: {0}")]
    Refused(ErrorBody),
    /// No connection right now (the request was not sent, or its answer was lost with the socket).
    #[error("not connected")]
    Disconnected,
    /// Gave up reconnecting after the policy's attempts.
    #[error("gave up reconnecting after {0} attempts")]
    GaveUp(u32),
    #[error("the server sent something unexpected: {0}")]
    Protocol(String),
    #[error("local store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("local store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("timed out")]
    Timeout,
    /// Refused here before reaching the server (empty message, already in a call, ...).
    #[error("{0}")]
    Invalid(String),
    /// The call this handle controlled is over.
    #[error("the call has ended")]
    CallEnded,
    /// A capture device or media file could not be used.
    #[error("media: {0}")]
    Media(#[from] parlor_media::MediaError),
    /// The RTC engine refused a step of a call (a description it could not apply, a track it
    /// could not add, ...).
    #[error("rtc: {0}")]
    Rtc(#[from] parlor_rtc::RtcError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server cannot be used over TLS (its certificate is not trusted, or the CA file is
    /// unusable).
    #[error(transparent)]
    Tls(#[from] crate::endpoint::TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A media or RTC failure keeps its own error as the source, so the app can tell a missing
    /// device from a refused description without reading messages.
    #[test]
    fn media_and_rtc_errors_keep_their_source() {
        let missing = parlor_media::MediaError::DeviceNotFound {
            kind: "camera",
            id: "usb-1".into(),
        };
        let error = ClientError::from(missing);
        assert_eq!(error.to_string(), "media: no camera device with id `usb-1`");
        let source = error.source().expect("a source");
        assert!(matches!(
            source.downcast_ref::<parlor_media::MediaError>(),
            Some(parlor_media::MediaError::DeviceNotFound { kind: "camera", .. })
        ));

        let error = ClientError::from(parlor_rtc::RtcError::Permission("camera".into()));
        let source = error.source().expect("a source");
        assert!(matches!(
            source.downcast_ref::<parlor_rtc::RtcError>(),
            Some(parlor_rtc::RtcError::Permission(_))
        ));
    }
}
