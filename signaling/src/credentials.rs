//! Passwords (argon2id), session tokens (random, stored hashed) and TURN REST credentials.
use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id (the crate's default parameters) and a fresh random salt.
/// Deliberately slow: call it off the async executor.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

/// Checks a password against a stored PHC string. Slow, like [`hash_password`].
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the username does not exist so that a
/// login attempt takes as long for unknown users as for wrong passwords.
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut secret);
        hash_password(&URL_SAFE_NO_PAD.encode(secret)).expect("hashing a random password")
    })
}

/// A new opaque session token (256 random bits, URL-safe base64) and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// What the database stores in place of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// TURN REST API credentials as coturn's `use-auth-secret` checks them:
/// username `"<expiry unix seconds>:<user id>"`, password base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &str, user_id: i64, expires_unix_secs: u64) -> (String, String) {
    let username = format!("{expires_unix_secs}:{user_id}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_salted_hash() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse", &a));
        assert!(!verify_password("correct horse", "not a hash"));
        assert!(!verify_password("anything", decoy_hash()));
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_hashes() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43);
        assert_eq!(h1, token_hash(&t1));
        assert_eq!(h1.len(), 32);
    }

    #[test]
    fn turn_credentials_match_the_turn_rest_reference() {
        // Independently computed: printf '1700000000:42' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let (user, pass) = turn_credentials("north", 42, 1_700_000_000);
        assert_eq!(user, "1700000000:42");
        assert_eq!(pass, "DWX3FI7DiPIpadEYQAZsnZBAagI=");
    }
}
