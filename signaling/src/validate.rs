//! Field rules shared by the handlers. Each returns a clear `invalid` or `too_large` refusal.
use parlor_protocol::{ErrorCode, MAX_MESSAGE_TEXT_BYTES, MIN_PASSWORD_CHARS};

use crate::error::{Error, Result};

pub fn username(name: &str) -> Result<()> {
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Error::invalid(
            "a username has 3 to 32 characters: letters, digits, `_`, `.` or `-`",
        ))
    }
}

pub fn display_name(name: &str) -> Result<()> {
    let chars = name.trim().chars().count();
    if (1..=64).contains(&chars) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::invalid(
            "a display name has 1 to 64 characters and no control characters",
        ))
    }
}

pub fn password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    // Bounds the work an attacker can make argon2 do per request.
    if password.len() > 1024 {
        return Err(Error::refused(
            ErrorCode::TooLarge,
            "a password has at most 1024 bytes",
        ));
    }
    Ok(())
}

pub fn room_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if (1..=100).contains(&chars) && !trimmed.chars().any(char::is_control) {
        Ok(trimmed.to_owned())
    } else {
        Err(Error::invalid(
            "a room name has 1 to 100 characters and no control characters",
        ))
    }
}

pub fn client_id(id: &str) -> Result<()> {
    if (1..=64).contains(&id.len()) && !id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Error::invalid(
            "a client id has 1 to 64 bytes and no control characters",
        ))
    }
}

pub fn message_text(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid("a message cannot be empty"));
    }
    if text.len() > MAX_MESSAGE_TEXT_BYTES {
        return Err(Error::refused(
            ErrorCode::TooLarge,
            format!("a message has at most {MAX_MESSAGE_TEXT_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub fn search_query(query: &str) -> Result<()> {
    if query.len() > 100 {
        return Err(Error::refused(
            ErrorCode::TooLarge,
            "a search has at most 100 bytes",
        ));
    }
    Ok(())
}

pub fn page_limit(limit: Option<u32>, default: u32) -> Result<u32> {
    match limit {
        None => Ok(default),
        Some(0) => Err(Error::invalid("limit must be at least 1")),
        Some(n) => Ok(n.min(parlor_protocol::MAX_PAGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_the_ordinary_and_refuse_the_odd() {
        assert!(username("ann_b.c-1").is_ok());
        assert!(username("an").is_err());
        assert!(username("ann bob").is_err());
        assert!(username("ånn").is_err());
        assert!(password("12345678").is_ok());
        assert!(password("1234567").is_err());
        assert!(password(&"x".repeat(2000)).is_err());
        assert_eq!(room_name("  General ").unwrap(), "General");
        assert!(room_name("   ").is_err());
        assert!(message_text(" \n").is_err());
        assert!(message_text(&"x".repeat(16 * 1024)).is_ok());
        let too_big = message_text(&"x".repeat(16 * 1024 + 1)).unwrap_err();
        assert_eq!(too_big.to_body().code, ErrorCode::TooLarge);
        assert_eq!(page_limit(Some(1000), 50).unwrap(), 200);
        assert!(page_limit(Some(0), 50).is_err());
    }

    /// The rules docs/protocol.md states for display names and blank text.
    #[test]
    fn display_names_and_blank_text_follow_the_documented_rules() {
        assert!(display_name("  Ann Lee ").is_ok());
        assert!(display_name(&format!(" {} ", "é".repeat(64))).is_ok());
        assert!(display_name(&"é".repeat(65)).is_err());
        for blank in ["", "   ", "\u{3000}"] {
            assert!(display_name(blank).is_err(), "{blank:?}");
        }
        assert!(display_name("Ann\nLee").is_err(), "no line breaks");
        assert!(display_name("Ann\u{7}").is_err());
        assert!(
            display_name("Ann\u{202E}").is_ok(),
            "bidi overrides are accepted"
        );
        // White space is Unicode's: no-break and ideographic spaces count, zero-width ones not.
        for blank in ["\u{a0}", "\u{3000}\t\r\n", "\u{2028}"] {
            assert!(message_text(blank).is_err(), "{blank:?}");
        }
        assert!(message_text("\u{200B}").is_ok());
        assert!(message_text("bell \u{7}").is_ok());
    }
}
