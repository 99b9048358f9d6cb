//! Parlor's headless client (first part): a connection to the signaling server that reconnects
//! by itself, and the offline-first local store with its outbox. The typed client API, calls
//! and the `parlor` CLI build on these.

pub mod call;
pub mod call_session;
pub mod connection;
pub mod error;
pub mod outbox;
pub mod reconnect;
pub mod store;

pub use connection::{Connection, ConnectionState};
pub use error::ClientError;
