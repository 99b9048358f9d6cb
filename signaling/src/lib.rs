//! Parlor's signaling server as a library: the binary in `main.rs` only parses the command line.
pub mod admin;
pub mod client_address;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod error;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod service;
pub mod socket_guard;
pub mod store;
#[cfg(feature = "test-pki")]
pub mod test_pki;
pub mod throttle;
pub mod validate;
