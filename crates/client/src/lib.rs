//! Parlor's headless client: a connection to the signaling server that reconnects by itself,
//! the offline-first local store with its outbox, mesh calls, and on top of them the typed
//! [`Client`] API with one event stream that the desktop app and the `parlor` CLI use.

pub mod account;
pub mod call;
pub mod call_session;
pub mod client;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod outbox;
pub mod reconnect;
pub mod recorder;
pub mod store;

pub use client::{Client, ClientEvent, OutboxState, OutboxView};
pub use connection::{Connection, ConnectionState, Credentials};
pub use endpoint::{ServerEndpoint, TlsError};
pub use error::ClientError;
