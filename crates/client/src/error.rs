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
    Media(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server cannot be used over TLS (its certificate is not trusted, or the CA file is
    /// unusable).
    #[error(transparent)]
    Tls(#[from] crate::endpoint::TlsError),
}
