use parlor_protocol::{ErrorCode, Message, Millis, RoomId, Seq, TimelineEntry, UserId};
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use crate::error::{Error, Result};

#[derive(sqlx::FromRow)]
struct TimelineRow {
    room_id: i64,
    seq: i64,
    kind: String,
    author_id: i64,
    client_id: Option<String>,
    target_seq: Option<i64>,
    text: String,
    created_at: i64,
    edited_at: Option<i64>,
    deleted_at: Option<i64>,
}

impl TimelineRow {
    fn into_message(self) -> Message {
        Message {
            room_id: self.room_id,
            seq: self.seq,
            client_id: self.client_id.unwrap_or_default(),
            author_id: self.author_id,
            text: self.text,
            sent_at: self.created_at,
            edited_at: self.edited_at,
            deleted: self.deleted_at.is_some(),
        }
    }

    fn into_entry(self) -> Result<TimelineEntry> {
        match self.kind.as_str() {
            "message" => Ok(TimelineEntry::Message {
                message: self.into_message(),
            }),
            "edit" => Ok(TimelineEntry::Edit {
                room_id: self.room_id,
                seq: self.seq,
                target_seq: self.target_seq.unwrap_or_default(),
                author_id: self.author_id,
                text: self.text,
                at: self.created_at,
            }),
            "delete" => Ok(TimelineEntry::Delete {
                room_id: self.room_id,
                seq: self.seq,
                target_seq: self.target_seq.unwrap_or_default(),
                by: self.author_id,
                at: self.created_at,
            }),
            other => Err(Error::Internal(format!("unknown timeline kind {other:?}"))),
        }
    }
}

// Written out per query (not assembled) so every statement stays a constant.
pub async fn last_message(db: &SqlitePool, room: RoomId) -> Result<Option<Message>> {
    let row: Option<TimelineRow> = sqlx::query_as(
        "SELECT room_id, seq, kind, author_id, client_id, target_seq, text, created_at, edited_at, deleted_at
           FROM timeline WHERE room_id = ? AND kind = 'message' ORDER BY seq DESC LIMIT 1",
    )
    .bind(room)
    .fetch_optional(db)
    .await?;
    Ok(row.map(TimelineRow::into_message))
}

async fn message_at(tx: &mut SqliteConnection, room: RoomId, seq: Seq) -> Result<TimelineRow> {
    let row: Option<TimelineRow> = sqlx::query_as(
        "SELECT room_id, seq, kind, author_id, client_id, target_seq, text, created_at, edited_at, deleted_at
           FROM timeline WHERE room_id = ? AND seq = ? AND kind = 'message'",
    )
    .bind(room)
    .bind(seq)
    .fetch_optional(tx)
    .await?;
    row.ok_or_else(|| Error::not_found(format!("no message {seq} in room {room}")))
}

async fn next_seq(tx: &mut SqliteConnection, room: RoomId) -> Result<Seq> {
    let seq: Option<Seq> = sqlx::query_scalar(
        "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
    )
    .bind(room)
    .fetch_optional(tx)
    .await?;
    seq.ok_or_else(|| Error::not_found(format!("room {room} does not exist")))
}

/// Refuses a write by someone who is not (or no longer) a member. The service checks membership
/// in memory before it takes the write lock; a leave can commit in between, and this check,
/// inside the write's own transaction, is the one that holds.
async fn ensure_member(tx: &mut SqliteConnection, room: RoomId, user: UserId) -> Result<()> {
    let member: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM memberships WHERE room_id = ? AND user_id = ?")
            .bind(room)
            .bind(user)
            .fetch_optional(tx)
            .await?;
    match member {
        Some(_) => Ok(()),
        None => Err(Error::refused(
            ErrorCode::NotMember,
            format!("you are not a member of room {room}"),
        )),
    }
}

/// Stores a message, or returns the original when this author already sent `client_id` in this
/// room (the `bool` is then true).
pub async fn send_message(
    w: &mut SqliteConnection,
    room: RoomId,
    author: UserId,
    client_id: &str,
    text: &str,
    now: Millis,
) -> Result<(Message, bool)> {
    let mut tx = super::begin_write(w).await?;
    ensure_member(&mut tx, room, author).await?;
    let existing: Option<TimelineRow> = sqlx::query_as(
        "SELECT room_id, seq, kind, author_id, client_id, target_seq, text, created_at, edited_at, deleted_at
           FROM timeline WHERE room_id = ? AND author_id = ? AND client_id = ?",
    )
    .bind(room)
    .bind(author)
    .bind(client_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(original) = existing {
        return Ok((original.into_message(), true));
    }
    let seq = next_seq(&mut tx, room).await?;
    sqlx::query(
        "INSERT INTO timeline (room_id, seq, kind, author_id, client_id, text, created_at)
         VALUES (?, ?, 'message', ?, ?, ?, ?)",
    )
    .bind(room)
    .bind(seq)
    .bind(author)
    .bind(client_id)
    .bind(text)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        Message {
            room_id: room,
            seq,
            client_id: client_id.to_owned(),
            author_id: author,
            text: text.to_owned(),
            sent_at: now,
            edited_at: None,
            deleted: false,
        },
        false,
    ))
}

/// Replaces a message's text; only its author may, and not once it is deleted.
pub async fn edit_message(
    w: &mut SqliteConnection,
    room: RoomId,
    target: Seq,
    editor: UserId,
    text: &str,
    now: Millis,
) -> Result<TimelineEntry> {
    let mut tx = super::begin_write(w).await?;
    ensure_member(&mut tx, room, editor).await?;
    let original = message_at(&mut tx, room, target).await?;
    if original.author_id != editor {
        return Err(Error::forbidden("only the author can edit a message"));
    }
    if original.deleted_at.is_some() {
        return Err(Error::refused(
            ErrorCode::Conflict,
            "the message was deleted",
        ));
    }
    let seq = next_seq(&mut tx, room).await?;
    sqlx::query(
        "INSERT INTO timeline (room_id, seq, kind, author_id, target_seq, text, created_at)
         VALUES (?, ?, 'edit', ?, ?, ?, ?)",
    )
    .bind(room)
    .bind(seq)
    .bind(editor)
    .bind(target)
    .bind(text)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE timeline SET text = ?, edited_at = ? WHERE room_id = ? AND seq = ?")
        .bind(text)
        .bind(now)
        .bind(room)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(TimelineEntry::Edit {
        room_id: room,
        seq,
        target_seq: target,
        author_id: editor,
        text: text.to_owned(),
        at: now,
    })
}

/// Deletes a message: its author or the room's owner may. Its text is erased from storage.
pub async fn delete_message(
    w: &mut SqliteConnection,
    room: RoomId,
    target: Seq,
    by: UserId,
    by_is_owner: bool,
    now: Millis,
) -> Result<TimelineEntry> {
    let mut tx = super::begin_write(w).await?;
    ensure_member(&mut tx, room, by).await?;
    let original = message_at(&mut tx, room, target).await?;
    if original.author_id != by && !by_is_owner {
        return Err(Error::forbidden(
            "only the author or the room's owner can delete a message",
        ));
    }
    if original.deleted_at.is_some() {
        return Err(Error::refused(
            ErrorCode::Conflict,
            "the message was already deleted",
        ));
    }
    let seq = next_seq(&mut tx, room).await?;
    sqlx::query(
        "INSERT INTO timeline (room_id, seq, kind, author_id, target_seq, text, created_at)
         VALUES (?, ?, 'delete', ?, ?, '', ?)",
    )
    .bind(room)
    .bind(seq)
    .bind(by)
    .bind(target)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    // Erase the text of the message and of its edits: deleted means gone.
    sqlx::query("UPDATE timeline SET text = '', deleted_at = ? WHERE room_id = ? AND seq = ?")
        .bind(now)
        .bind(room)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE timeline SET text = '' WHERE room_id = ? AND kind = 'edit' AND target_seq = ?",
    )
    .bind(room)
    .bind(target)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(TimelineEntry::Delete {
        room_id: room,
        seq,
        target_seq: target,
        by,
        at: now,
    })
}

/// Messages (current state) before `before` (exclusive), newest `limit`, returned oldest first.
pub async fn history(
    db: &SqlitePool,
    room: RoomId,
    before: Option<Seq>,
    limit: u32,
) -> Result<(Vec<Message>, bool)> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT room_id, seq, kind, author_id, client_id, target_seq, text, created_at, edited_at, deleted_at
           FROM timeline WHERE room_id = ? AND kind = 'message' AND seq < ?
          ORDER BY seq DESC LIMIT ?",
    )
    .bind(room)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit as i64 + 1)
    .fetch_all(db)
    .await?;
    let has_more = rows.len() > limit as usize;
    let mut messages: Vec<Message> = rows
        .into_iter()
        .take(limit as usize)
        .map(TimelineRow::into_message)
        .collect();
    messages.reverse();
    Ok((messages, has_more))
}

/// Timeline entries after `since` (exclusive), oldest first, at most `limit`.
pub async fn sync(
    db: &SqlitePool,
    room: RoomId,
    since: Seq,
    limit: u32,
) -> Result<(Vec<TimelineEntry>, bool, Seq)> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT room_id, seq, kind, author_id, client_id, target_seq, text, created_at, edited_at, deleted_at
           FROM timeline WHERE room_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
    )
    .bind(room)
    .bind(since)
    .bind(limit as i64 + 1)
    .fetch_all(db)
    .await?;
    let has_more = rows.len() > limit as usize;
    let entries = rows
        .into_iter()
        .take(limit as usize)
        .map(TimelineRow::into_entry)
        .collect::<Result<Vec<_>>>()?;
    let last_seq: Seq = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = ?")
        .bind(room)
        .fetch_optional(db)
        .await?
        .unwrap_or(0);
    Ok((entries, has_more, last_seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{add_member, create_room, create_user, remove_member};
    use parlor_protocol::RoomKind;

    /// The race the service's in-memory check cannot close: the member left between that check
    /// and the write. The store refuses the write itself.
    #[tokio::test]
    async fn writes_by_someone_who_just_left_are_refused_in_the_transaction() {
        let (_dir, store) = crate::store::temporary().await;
        let mut w = store.writer().await;
        let ann = create_user(&mut w, "ann", "Ann", "hash", None, 0)
            .await
            .unwrap();
        let bob = create_user(&mut w, "bob", "Bob", "hash", None, 0)
            .await
            .unwrap();
        let room = create_room(&mut w, ann.id, "team", RoomKind::Public, 0)
            .await
            .unwrap();
        add_member(&mut w, room.id, bob.id, 0).await.unwrap();
        let (sent, _) = send_message(&mut w, room.id, bob.id, "c1", "hi", 1)
            .await
            .unwrap();
        remove_member(&mut w, room.id, bob.id).await.unwrap();

        let refused = |r: Result<_>| match r {
            Err(Error::Refused(body)) => body.code,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a write by a former member was stored"),
        };
        let send = send_message(&mut w, room.id, bob.id, "c2", "still here?", 2).await;
        assert_eq!(refused(send.map(|_| ())), ErrorCode::NotMember);
        // The resend of a message stored while a member is refused too: it says nothing of
        // the room to someone outside it.
        let resend = send_message(&mut w, room.id, bob.id, "c1", "hi", 2).await;
        assert_eq!(refused(resend.map(|_| ())), ErrorCode::NotMember);
        let edit = edit_message(&mut w, room.id, sent.seq, bob.id, "edited", 3).await;
        assert_eq!(refused(edit.map(|_| ())), ErrorCode::NotMember);
        let delete = delete_message(&mut w, room.id, sent.seq, bob.id, false, 3).await;
        assert_eq!(refused(delete.map(|_| ())), ErrorCode::NotMember);

        let (entries, _, last_seq) = sync(store.reader(), room.id, 0, 100).await.unwrap();
        assert_eq!(
            (entries.len(), last_seq),
            (1, sent.seq),
            "nothing else was stored"
        );
    }
}
