/// Everything that can go wrong with devices, files and codecs. Never a panic.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no {kind} device with id `{id}`")]
    DeviceNotFound { kind: &'static str, id: String },
    #[error("the {kind} device `{id}` is busy or cannot be opened: {reason}")]
    DeviceBusy {
        kind: &'static str,
        id: String,
        reason: String,
    },
    #[error("permission to use the {kind} device was denied")]
    PermissionDenied { kind: &'static str },
    #[error("unsupported format: {0}")]
    Unsupported(String),
    #[error("codec error: {0}")]
    Codec(String),
    #[error("bad input file: {0}")]
    BadFile(String),
    #[error("the source has ended")]
    Ended,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = MediaError> = std::result::Result<T, E>;
