//! Delivering the outbox and catching up on rooms: what a client does after every (re)connect.
use parlor_protocol::{ErrorCode, Message, Reply, Request, RoomId, Seq, TimelineEntry};

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

/// A room this far behind (in timeline entries) opens at its newest page instead of replaying
/// its timeline from where it was: the rest is left as a gap, fetched as the reader scrolls
/// back. A first join of a room with years of history, or a long absence, then costs one page,
/// not a hundred requests (which the server's rate limit would refuse partway).
pub const CATCH_UP_LIMIT: Seq = 1000;

/// Messages fetched per page of backward history (the server's cap).
const HISTORY_PAGE: u32 = 200;

/// How often a request refused as rate-limited is tried again before the refusal stands.
const RATE_LIMITED_RETRIES: u32 = 5;

/// Sends `request`; when the server says `rate_limited`, waits as long as it asks and tries
/// again, a few times.
async fn request_patiently(
    connection: &Connection,
    request: Request,
) -> Result<Reply, ClientError> {
    let mut tries = 0;
    loop {
        match connection.request(request.clone()).await {
            Err(ClientError::Refused(e))
                if e.code == ErrorCode::RateLimited && tries < RATE_LIMITED_RETRIES =>
            {
                tries += 1;
                let wait = std::time::Duration::from_millis(e.retry_after_ms.unwrap_or(1000));
                tracing::debug!("rate limited; trying again in {wait:?}");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// [`sync_room`], handing each applied entry to `applied`.
pub async fn sync_room_reporting(
    connection: &Connection,
    store: &Store,
    room: RoomId,
    mut applied_entry: impl FnMut(&TimelineEntry),
) -> Result<usize, ClientError> {
    let mut applied = 0;
    let mut first = true;
    loop {
        let since = store.synced_seq(room).await?;
        let reply = request_patiently(
            connection,
            Request::Sync {
                room_id: room,
                since_seq: since,
                limit: None,
            },
        )
        .await?;
        let Reply::Sync {
            entries,
            has_more,
            last_seq,
        } = reply
        else {
            return Err(ClientError::Protocol(format!("unexpected reply {reply:?}")));
        };
        if first && has_more && last_seq - since > CATCH_UP_LIMIT {
            // Far behind: take the newest page, leave the rest as a gap, and sync on from the
            // page (edits of older messages come with them when their page is fetched).
            let (messages, older) = fetch_history(connection, room, None).await?;
            store
                .take_newest_page(room, since, &messages, older)
                .await?;
            applied += messages.len();
            for message in messages {
                applied_entry(&TimelineEntry::Message { message });
            }
            first = false;
            continue;
        }
        first = false;
        for entry in &entries {
            store.apply(entry).await?;
            applied_entry(entry);
        }
        applied += entries.len();
        if !has_more || entries.is_empty() {
            return Ok(applied);
        }
    }
}

async fn fetch_history(
    connection: &Connection,
    room: RoomId,
    before: Option<Seq>,
) -> Result<(Vec<Message>, bool), ClientError> {
    match request_patiently(
        connection,
        Request::History {
            room_id: room,
            before_seq: before,
            limit: Some(HISTORY_PAGE),
        },
    )
    .await?
    {
        Reply::History { messages, has_more } => Ok((messages, has_more)),
        other => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
    }
}

/// The newest `limit` messages before `before`, oldest first, fetching older pages from the
/// server into the gaps they fall in. Offline, what is held here (across gaps) is returned.
pub async fn history(
    connection: &Connection,
    store: &Store,
    room: RoomId,
    before: Option<Seq>,
    limit: u32,
) -> Result<Vec<Message>, ClientError> {
    // Each round fills one page into the nearest gap; a few rounds cover any `limit` asked.
    for _ in 0..=limit / HISTORY_PAGE + 1 {
        let (messages, gap) = store.history_to_gap(room, before, limit).await?;
        let Some(gap) = gap.filter(|_| messages.len() < limit as usize) else {
            return Ok(messages);
        };
        match fetch_history(connection, room, Some(gap.before)).await {
            Ok((page, has_more)) => store.fill_gap(room, gap, &page, has_more).await?,
            Err(ClientError::Disconnected | ClientError::Timeout) => break,
            Err(e) => return Err(e),
        }
    }
    store.history(room, before, limit).await
}
