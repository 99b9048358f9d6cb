//! The local store: rooms, messages (edits and deletions applied), full-text search, and the
//! outbox. SQLite through sqlx, constant statements with bound parameters only.
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use parlor_protocol::{
    Member, Message, Role, Room, RoomId, RoomKind, Seq, TimelineEntry, User, UserId,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

use crate::ClientError;

/// A message not yet accepted by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub client_id: String,
    pub room_id: RoomId,
    pub text: String,
    pub created_at: i64,
    pub attempts: i64,
    /// `pending` (will be sent) or `failed` (the server refused it for good).
    pub state: String,
    pub last_error: Option<String>,
}

/// A room as the sidebar shows it, from the local copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoomView {
    pub room: Room,
    /// Messages by others after the read marker, not counting deleted ones.
    pub unread: i64,
    pub last_read_seq: Seq,
    pub last_message: Option<Message>,
}

pub struct Store {
    pool: SqlitePool,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Turns free text into an FTS5 query that matches all its words as prefixes, with every
/// user character quoted (FTS5 syntax in user input would otherwise be an error or a trick).
fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

impl Store {
    pub async fn open(path: &Path) -> Result<Store, ClientError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // One connection: the client is the only writer and the load is small.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/client").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn upsert_room(&self, room: &Room) -> Result<(), ClientError> {
        sqlx::query(
            "INSERT INTO rooms (id, name, kind, owner_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, owner_id = excluded.owner_id",
        )
        .bind(room.id)
        .bind(&room.name)
        .bind(serde_json::to_value(room.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
        .bind(room.owner_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a room and everything in it (deleted, or no longer a member).
    pub async fn forget_room(&self, room: RoomId) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM messages WHERE room_id = ?",
            "DELETE FROM members WHERE room_id = ?",
            "DELETE FROM gaps WHERE room_id = ?",
            "DELETE FROM outbox WHERE room_id = ?",
            "DELETE FROM rooms WHERE id = ?",
        ] {
            sqlx::query(statement).bind(room).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every known room with its unread count and last message, most recently active first.
    pub async fn rooms(&self, me: UserId) -> Result<Vec<RoomView>, ClientError> {
        self.room_views(me, None).await
    }

    pub async fn room(&self, me: UserId, room: RoomId) -> Result<Option<RoomView>, ClientError> {
        Ok(self.room_views(me, Some(room)).await?.pop())
    }

    async fn room_views(
        &self,
        me: UserId,
        only: Option<RoomId>,
    ) -> Result<Vec<RoomView>, ClientError> {
        // Rooms first seen through a timeline entry have no kind until the room list arrives.
        let rows = sqlx::query(
            "SELECT id, name, kind, owner_id, last_read_seq FROM rooms
              WHERE kind != '' AND (?1 IS NULL OR id = ?1)",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let id: RoomId = row.get("id");
            let kind: String = row.get("kind");
            let room = Room {
                id,
                name: row.get("name"),
                kind: serde_json::from_value(serde_json::Value::String(kind))
                    .unwrap_or(RoomKind::Private),
                owner_id: row.get("owner_id"),
                created_at: 0,
            };
            views.push(RoomView {
                room,
                unread: self.unread(id, me).await?,
                last_read_seq: row.get("last_read_seq"),
                last_message: self.history(id, None, 1).await?.pop(),
            });
        }
        views.sort_by_key(|v| {
            std::cmp::Reverse(v.last_message.as_ref().map(|m| m.sent_at).unwrap_or(0))
        });
        Ok(views)
    }

    /// Messages by others after the read marker, not counting deleted ones.
    pub async fn unread(&self, room: RoomId, me: UserId) -> Result<i64, ClientError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages m JOIN rooms r ON r.id = m.room_id
              WHERE m.room_id = ? AND m.seq > r.last_read_seq AND m.author_id != ? AND m.deleted = 0",
        )
        .bind(room)
        .bind(me)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Moves the read marker forward (never back: markers from other devices may arrive late).
    pub async fn set_read_marker(&self, room: RoomId, seq: Seq) -> Result<(), ClientError> {
        sqlx::query("UPDATE rooms SET last_read_seq = MAX(last_read_seq, ?) WHERE id = ?")
            .bind(seq)
            .bind(room)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest message position in a room's local copy (0 when empty).
    pub async fn last_message_seq(&self, room: RoomId) -> Result<Seq, ClientError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room_id = ?")
                .bind(room)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Replaces a room's member list with the server's.
    pub async fn set_members(&self, room: RoomId, members: &[Member]) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM members WHERE room_id = ?")
            .bind(room)
            .execute(&mut *tx)
            .await?;
        for m in members {
            insert_member(&mut tx, room, &m.user, m.role).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_member(&self, room: RoomId, user: &User) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        insert_member(&mut tx, room, user, Role::Member).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_member(&self, room: RoomId, user: UserId) -> Result<(), ClientError> {
        sqlx::query("DELETE FROM members WHERE room_id = ? AND user_id = ?")
            .bind(room)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A room's members as last seen, by display name.
    pub async fn members(&self, room: RoomId) -> Result<Vec<(User, Role)>, ClientError> {
        let rows = sqlx::query(
            "SELECT user_id, username, display_name, role FROM members WHERE room_id = ?
              ORDER BY display_name COLLATE NOCASE, user_id",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let role: String = r.get("role");
                (
                    User {
                        id: r.get("user_id"),
                        username: r.get("username"),
                        display_name: r.get("display_name"),
                    },
                    if role == "owner" {
                        Role::Owner
                    } else {
                        Role::Member
                    },
                )
            })
            .collect())
    }

    pub async fn room_ids(&self) -> Result<Vec<RoomId>, ClientError> {
        Ok(sqlx::query_scalar("SELECT id FROM rooms ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// The highest timeline position applied for a room (0 when unknown).
    pub async fn synced_seq(&self, room: RoomId) -> Result<Seq, ClientError> {
        Ok(
            sqlx::query_scalar("SELECT synced_seq FROM rooms WHERE id = ?")
                .bind(room)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Applies one timeline entry (message, edit or deletion). Idempotent.
    pub async fn apply(&self, entry: &TimelineEntry) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        let (room, seq) = match entry {
            TimelineEntry::Message { message } => {
                insert_message(&mut tx, message).await?;
                (message.room_id, message.seq)
            }
            TimelineEntry::Edit {
                room_id,
                seq,
                target_seq,
                text,
                at,
                ..
            } => {
                sqlx::query("UPDATE messages SET text = ?, edited_at = ? WHERE room_id = ? AND seq = ? AND deleted = 0")
                    .bind(text)
                    .bind(at)
                    .bind(room_id)
                    .bind(target_seq)
                    .execute(&mut *tx)
                    .await?;
                (*room_id, *seq)
            }
            TimelineEntry::Delete {
                room_id,
                seq,
                target_seq,
                ..
            } => {
                sqlx::query(
                    "UPDATE messages SET text = '', deleted = 1 WHERE room_id = ? AND seq = ?",
                )
                .bind(room_id)
                .bind(target_seq)
                .execute(&mut *tx)
                .await?;
                (*room_id, *seq)
            }
        };
        sqlx::query(
            "INSERT INTO rooms (id, name, kind) VALUES (?, '', '') ON CONFLICT (id) DO NOTHING",
        )
        .bind(room)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE rooms SET synced_seq = MAX(synced_seq, ?) WHERE id = ?")
            .bind(seq)
            .bind(room)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The nearest gap below `before` (exclusive; `None` for the newest): the next stretch a
    /// reader scrolling back from there would fall into.
    pub async fn gap_below(
        &self,
        room: RoomId,
        before: Option<Seq>,
    ) -> Result<Option<Gap>, ClientError> {
        let row: Option<(Seq, Seq)> = sqlx::query_as(
            "SELECT after_seq, before_seq FROM gaps WHERE room_id = ? AND before_seq <= ?
              ORDER BY before_seq DESC LIMIT 1",
        )
        .bind(room)
        .bind(before.unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(after, before)| Gap { after, before }))
    }

    /// Stores a page of messages fetched into `gap` (the newest messages before its upper
    /// end) and shrinks the gap to what is still missing below them, in one transaction.
    /// `has_more` is the server's word that older messages exist.
    pub async fn fill_gap(
        &self,
        room: RoomId,
        gap: Gap,
        messages: &[Message],
        has_more: bool,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM gaps WHERE room_id = ? AND before_seq = ?")
            .bind(room)
            .bind(gap.before)
            .execute(&mut *tx)
            .await?;
        insert_page(&mut tx, room, gap.after, messages, has_more).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a room's newest page (fetched instead of replaying a timeline far behind) with
    /// everything between `after` (the last position held) and the page as a gap, and syncs on
    /// from the page, in one transaction.
    pub async fn take_newest_page(
        &self,
        room: RoomId,
        after: Seq,
        messages: &[Message],
        has_more: bool,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        insert_page(&mut tx, room, after, messages, has_more).await?;
        if let Some(newest) = messages.iter().map(|m| m.seq).max() {
            // As `apply` does: a room synced before it was listed gets its row.
            sqlx::query(
                "INSERT INTO rooms (id, name, kind) VALUES (?, '', '') ON CONFLICT (id) DO NOTHING",
            )
            .bind(room)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE rooms SET synced_seq = MAX(synced_seq, ?) WHERE id = ?")
                .bind(newest)
                .bind(room)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::history`] that stops at the nearest gap below `before`: what is held here
    /// without a hole in it.
    pub async fn history_to_gap(
        &self,
        room: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<(Vec<Message>, Option<Gap>), ClientError> {
        let gap = self.gap_below(room, before).await?;
        let mut messages = self.history(room, before, limit).await?;
        if let Some(gap) = gap {
            messages.retain(|m| m.seq >= gap.before);
        }
        Ok((messages, gap))
    }

    /// Messages of a room, oldest first, the newest `limit` before `before` (exclusive).
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<Seq>,
        limit: u32,
    ) -> Result<Vec<Message>, ClientError> {
        let rows = sqlx::query(
            "SELECT room_id, seq, client_id, author_id, text, sent_at, edited_at, deleted FROM messages
              WHERE room_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut messages: Vec<Message> = rows.iter().map(message_from_row).collect();
        messages.reverse();
        Ok(messages)
    }

    /// Messages of a room, oldest first, the oldest `limit` after `after` (exclusive): for a
    /// reader who scrolled back (or jumped to a search result) and now reads forward.
    pub async fn history_after(
        &self,
        room: RoomId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, ClientError> {
        let rows = sqlx::query(
            "SELECT room_id, seq, client_id, author_id, text, sent_at, edited_at, deleted FROM messages
              WHERE room_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
        )
        .bind(room)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// Messages whose text contains all the words of `query` (as word prefixes), newest first.
    pub async fn search(&self, query: &str) -> Result<Vec<Message>, ClientError> {
        self.search_limited(query, 50).await
    }

    pub async fn search_limited(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, ClientError> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT m.room_id, m.seq, m.client_id, m.author_id, m.text, m.sent_at, m.edited_at, m.deleted
               FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
              WHERE messages_fts MATCH ? AND m.deleted = 0
              ORDER BY m.sent_at DESC LIMIT ?",
        )
        .bind(fts)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// Queues a message for sending; returns its client id. Survives restarts.
    pub async fn outbox_add(&self, room: RoomId, text: &str) -> Result<String, ClientError> {
        let client_id = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        sqlx::query(
            "INSERT INTO outbox (client_id, room_id, text, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&client_id)
        .bind(room)
        .bind(text)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(client_id)
    }

    /// Messages waiting to be sent (or refused), oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutgoingMessage>, ClientError> {
        let rows = sqlx::query(
            "SELECT client_id, room_id, text, created_at, attempts, state, last_error FROM outbox ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutgoingMessage {
                client_id: r.get("client_id"),
                room_id: r.get("room_id"),
                text: r.get("text"),
                created_at: r.get("created_at"),
                attempts: r.get("attempts"),
                state: r.get("state"),
                last_error: r.get("last_error"),
            })
            .collect())
    }

    pub(crate) async fn outbox_attempted(&self, client_id: &str) -> Result<(), ClientError> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE client_id = ?")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The server accepted the message: it leaves the outbox and joins the history, in one step.
    pub(crate) async fn outbox_delivered(
        &self,
        client_id: &str,
        message: &Message,
    ) -> Result<(), ClientError> {
        let mut tx = self.pool.begin().await?;
        insert_message(&mut tx, message).await?;
        sqlx::query("DELETE FROM outbox WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One outbox message, if still there.
    pub async fn outbox_message(
        &self,
        client_id: &str,
    ) -> Result<Option<OutgoingMessage>, ClientError> {
        Ok(self
            .outbox()
            .await?
            .into_iter()
            .find(|m| m.client_id == client_id))
    }

    /// Puts a failed message back in line to be sent (same client id: never a duplicate).
    pub async fn outbox_retry(&self, client_id: &str) -> Result<bool, ClientError> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', last_error = NULL WHERE client_id = ? AND state = 'failed'",
        )
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up on a failed message.
    pub async fn outbox_discard(&self, client_id: &str) -> Result<bool, ClientError> {
        let done = sqlx::query("DELETE FROM outbox WHERE client_id = ? AND state = 'failed'")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn outbox_failed(
        &self,
        client_id: &str,
        error: &str,
    ) -> Result<(), ClientError> {
        sqlx::query("UPDATE outbox SET state = 'failed', last_error = ? WHERE client_id = ?")
            .bind(error)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Messages after `after` and before `before` (both exclusive) that are not held locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub after: Seq,
    pub before: Seq,
}

/// Inserts a page of messages fetched from the server and, when older ones exist below it
/// (`has_more`), records them as a gap down to `after`.
async fn insert_page(
    tx: &mut sqlx::SqliteConnection,
    room: RoomId,
    after: Seq,
    messages: &[Message],
    has_more: bool,
) -> Result<(), ClientError> {
    for message in messages {
        insert_message(tx, message).await?;
    }
    let oldest = messages.iter().map(|m| m.seq).min();
    if let Some(oldest) = oldest.filter(|seq| has_more && *seq > after + 1) {
        sqlx::query("INSERT OR IGNORE INTO gaps (room_id, after_seq, before_seq) VALUES (?, ?, ?)")
            .bind(room)
            .bind(after)
            .bind(oldest)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

async fn insert_message(tx: &mut sqlx::SqliteConnection, m: &Message) -> Result<(), ClientError> {
    sqlx::query(
        "INSERT INTO messages (room_id, seq, client_id, author_id, text, sent_at, edited_at, deleted)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (room_id, seq) DO UPDATE SET text = excluded.text, edited_at = excluded.edited_at, deleted = excluded.deleted",
    )
    .bind(m.room_id)
    .bind(m.seq)
    .bind(&m.client_id)
    .bind(m.author_id)
    .bind(&m.text)
    .bind(m.sent_at)
    .bind(m.edited_at)
    .bind(m.deleted)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_member(
    tx: &mut sqlx::SqliteConnection,
    room: RoomId,
    user: &User,
    role: Role,
) -> Result<(), ClientError> {
    sqlx::query(
        "INSERT INTO members (room_id, user_id, username, display_name, role) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (room_id, user_id) DO UPDATE SET username = excluded.username,
             display_name = excluded.display_name",
    )
    .bind(room)
    .bind(user.id)
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(match role {
        Role::Owner => "owner",
        Role::Member => "member",
    })
    .execute(tx)
    .await?;
    Ok(())
}

fn message_from_row(r: &sqlx::sqlite::SqliteRow) -> Message {
    Message {
        room_id: r.get("room_id"),
        seq: r.get("seq"),
        client_id: r.get("client_id"),
        author_id: r.get("author_id"),
        text: r.get("text"),
        sent_at: r.get("sent_at"),
        edited_at: r.get("edited_at"),
        deleted: r.get("deleted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: i64, text: &str) -> TimelineEntry {
        TimelineEntry::Message {
            message: Message {
                room_id: 1,
                seq,
                client_id: format!("c{seq}"),
                author_id: 7,
                text: text.into(),
                sent_at: seq * 1000,
                edited_at: None,
                deleted: false,
            },
        }
    }

    #[tokio::test]
    async fn timeline_entries_apply_idempotently_and_search_follows_edits_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).await.unwrap();
        store
            .apply(&message(1, "the quarterly report is ready"))
            .await
            .unwrap();
        store.apply(&message(2, "lunch?")).await.unwrap();
        store.apply(&message(2, "lunch?")).await.unwrap();
        assert_eq!(store.history(1, None, 10).await.unwrap().len(), 2);
        assert_eq!(store.synced_seq(1).await.unwrap(), 2);
        assert_eq!(
            store.search("quarter").await.unwrap().len(),
            1,
            "prefix match"
        );
        store
            .apply(&TimelineEntry::Edit {
                room_id: 1,
                seq: 3,
                target_seq: 1,
                author_id: 7,
                text: "the annual report".into(),
                at: 5,
            })
            .await
            .unwrap();
        assert!(
            store.search("quarterly").await.unwrap().is_empty(),
            "the edit replaced the indexed text"
        );
        assert_eq!(store.search("annual report").await.unwrap()[0].seq, 1);
        store
            .apply(&TimelineEntry::Delete {
                room_id: 1,
                seq: 4,
                target_seq: 1,
                by: 7,
                at: 6,
            })
            .await
            .unwrap();
        assert!(
            store.search("annual").await.unwrap().is_empty(),
            "deleted messages are not found"
        );
        assert_eq!(store.synced_seq(1).await.unwrap(), 4);
        // FTS syntax in user input is just text.
        assert!(store.search("\"unbalanced AND (").await.unwrap().is_empty());
        assert!(store.search("   ").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_outbox_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let store = Store::open(&path).await.unwrap();
        let id = store.outbox_add(3, "written offline").await.unwrap();
        store.close().await;
        let store = Store::open(&path).await.unwrap();
        let pending = store.outbox().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].client_id.as_str(), pending[0].state.as_str()),
            (id.as_str(), "pending")
        );
    }
}
