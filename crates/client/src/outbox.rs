//! Delivering the outbox and catching up on rooms: what a client does after every (re)connect.
use parlor_protocol::{ErrorCode, Message, Reply, Request, RoomId, TimelineEntry};

use crate::connection::Connection;
use crate::store::Store;
use crate::ClientError;

/// Sends every pending outbox message, oldest first. Stops at the first transport failure
/// (they stay pending, to be retried with the same client id); a refusal that retrying cannot
/// fix marks the message failed. Returns how many were delivered.
pub async fn deliver(connection: &Connection, store: &Store) -> Result<usize, ClientError> {
    deliver_reporting(connection, store, |_| {}).await
}

/// What became of one outbox message.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent { client_id: String, message: Message },
    Failed { client_id: String, error: String },
}

/// [`deliver`], telling `report` about each message sent or refused.
pub async fn deliver_reporting(
    connection: &Connection,
    store: &Store,
    mut report: impl FnMut(Delivery),
) -> Result<usize, ClientError> {
    let mut delivered = 0;
    for outgoing in store.outbox().await? {
        if outgoing.state != "pending" {
            continue;
        }
        store.outbox_attempted(&outgoing.client_id).await?;
        let request = Request::SendMessage {
            room_id: outgoing.room_id,
            client_id: outgoing.client_id.clone(),
            text: outgoing.text.clone(),
        };
        match connection.request(request).await {
            // A duplicate is the original, sent before a crash or a dropped reply: also done.
            Ok(Reply::MessageSent { message, .. }) => {
                store
                    .outbox_delivered(&outgoing.client_id, &message)
                    .await?;
                delivered += 1;
                report(Delivery::Sent {
                    client_id: outgoing.client_id.clone(),
                    message,
                });
            }
            Ok(other) => return Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
            Err(ClientError::Refused(e)) if permanent(e.code) => {
                store
                    .outbox_failed(&outgoing.client_id, &e.to_string())
                    .await?;
                report(Delivery::Failed {
                    client_id: outgoing.client_id.clone(),
                    error: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(delivered)
}

fn permanent(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotMember
            | ErrorCode::NotFound
            | ErrorCode::Forbidden
            | ErrorCode::Invalid
            | ErrorCode::TooLarge
    )
}

/// Brings one room's local copy up to date from the last applied position.
pub async fn sync_room(
    connection: &Connection,
    store: &Store,
    room: RoomId,
) -> Result<usize, ClientError> {
    sync_room_reporting(connection, store, room, |_| {}).await
}

/// [`sync_room`], handing each applied entry to `applied`.
pub async fn sync_room_reporting(
    connection: &Connection,
    store: &Store,
    room: RoomId,
    mut applied_entry: impl FnMut(&TimelineEntry),
) -> Result<usize, ClientError> {
    let mut applied = 0;
    loop {
        let since = store.synced_seq(room).await?;
        match connection
            .request(Request::Sync {
                room_id: room,
                since_seq: since,
                limit: None,
            })
            .await?
        {
            Reply::Sync {
                entries, has_more, ..
            } => {
                for entry in &entries {
                    store.apply(entry).await?;
                    applied_entry(entry);
                }
                applied += entries.len();
                if !has_more || entries.is_empty() {
                    return Ok(applied);
                }
            }
            other => return Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }
}
