use parlor_protocol::{ErrorBody, ErrorCode};

/// A request's failure: either a refusal the client should see as-is, or a server fault that is
/// logged and reported as `internal`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Refused(#[from] ErrorBody),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("hashing a password: {0}")]
    Hashing(#[from] argon2::password_hash::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Refused(ErrorBody::new(code, message))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::refused(ErrorCode::Forbidden, message)
    }

    /// What the client is told. Server faults are not described beyond "internal".
    pub fn to_body(&self) -> ErrorBody {
        match self {
            Error::Refused(body) => body.clone(),
            Error::Database(_) | Error::Hashing(_) | Error::Internal(_) => {
                ErrorBody::new(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

impl From<crate::hub::HubError> for Error {
    fn from(e: crate::hub::HubError) -> Self {
        Error::Refused(e.into())
    }
}
