//! Parlor's signaling server as a library: the binary in `main.rs` only parses the command line.
pub mod hub;
