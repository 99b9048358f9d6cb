use serde::{Deserialize, Serialize};

/// Stable error codes. Clients switch on these; the message is for humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not authenticated, bad credentials, or an expired / revoked token.
    Unauthorized,
    /// The room exists but the caller is not a member of it.
    NotMember,
    /// The caller is a member but lacks the right (e.g. renaming a room it does not own).
    Forbidden,
    /// No such user, room, message, call or call participant.
    NotFound,
    /// The request clashes with current state (username taken, already in the call elsewhere).
    Conflict,
    /// Malformed frame, unknown type, or a field out of range.
    Invalid,
    /// The frame or a field in it is bigger than the protocol allows.
    TooLarge,
    /// Too many requests; slow down.
    RateLimited,
    /// The room's call already has the maximum number of participants.
    CallFull,
    /// The frame's protocol version is not one the server speaks.
    UnsupportedVersion,
    /// The server failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Unauthorized,
        ErrorCode::NotMember,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Invalid,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::CallFull,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotMember => "not_member",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::CallFull => "call_full",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `data` of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// With `rate_limited` (from a sign-in throttle or the request rate): how long until the
    /// same request may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// A `rate_limited` refusal that says when to try again: `wait` in whole milliseconds,
    /// rounded up, so that a client waiting as long as it is told is never early (truncated, a
    /// 1.7 ms wait read as 1, and the retry after it was refused again).
    pub fn retry_after(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let ms = wait.as_nanos().div_ceil(1_000_000);
        ErrorBody {
            retry_after_ms: Some(u64::try_from(ms).unwrap_or(u64::MAX).max(1)),
            ..ErrorBody::new(ErrorCode::RateLimited, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_is_never_told_to_come_early() {
        let told = |wait: std::time::Duration| {
            ErrorBody::retry_after("slow down", wait)
                .retry_after_ms
                .expect("a wait")
        };
        assert_eq!(told(std::time::Duration::from_micros(1_700)), 2);
        assert_eq!(told(std::time::Duration::from_millis(50)), 50);
        assert_eq!(told(std::time::Duration::from_nanos(50_000_001)), 51);
        assert_eq!(told(std::time::Duration::ZERO), 1, "never 'now'");
    }

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }
}
