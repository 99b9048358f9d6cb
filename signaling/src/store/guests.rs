//! Guest links and the guests who come through them.
use parlor_protocol::{Millis, RoomId, RoomInvite, User, UserId};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::hub::SessionId;

fn invite_from(row: &sqlx::sqlite::SqliteRow) -> RoomInvite {
    RoomInvite {
        id: row.get("id"),
        room_id: row.get("room_id"),
        code: None,
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        uses_left: row
            .get::<Option<i64>, _>("uses_left")
            .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
        revoked: row.get::<Option<i64>, _>("revoked_at").is_some(),
    }
}

const INVITE_COLUMNS: &str = "id, room_id, created_at, expires_at, uses_left, revoked_at";

pub async fn create_room_invite(
    w: &mut SqliteConnection,
    room: RoomId,
    created_by: UserId,
    code_hash: &[u8],
    now: Millis,
    expires_at: Millis,
    uses: Option<u32>,
) -> Result<RoomInvite> {
    let row = sqlx::query(&format!(
        "INSERT INTO room_invites (room_id, code_hash, created_by, created_at, expires_at, uses_left)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING {INVITE_COLUMNS}"
    ))
    .bind(room)
    .bind(code_hash)
    .bind(created_by)
    .bind(now)
    .bind(expires_at)
    .bind(uses)
    .fetch_one(w)
    .await?;
    Ok(invite_from(&row))
}

/// The room's links, newest first, revoked and expired ones included.
pub async fn room_invites(db: &SqlitePool, room: RoomId) -> Result<Vec<RoomInvite>> {
    let rows = sqlx::query(&format!(
        "SELECT {INVITE_COLUMNS} FROM room_invites WHERE room_id = ? ORDER BY id DESC"
    ))
    .bind(room)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(invite_from).collect())
}

/// What revoking a link ended: the link as it is now, the sessions of its guests and the
/// guests themselves (taken out of the room).
pub struct Revoked {
    pub invite: RoomInvite,
    pub sessions: Vec<SessionId>,
    pub guests: Vec<UserId>,
}

pub async fn revoke_room_invite(
    w: &mut SqliteConnection,
    room: RoomId,
    id: i64,
    now: Millis,
) -> Result<Revoked> {
    let mut tx = super::begin_write(w).await?;
    let row = sqlx::query(&format!(
        "UPDATE room_invites SET revoked_at = COALESCE(revoked_at, ?)
          WHERE id = ? AND room_id = ? RETURNING {INVITE_COLUMNS}"
    ))
    .bind(now)
    .bind(id)
    .bind(room)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found(format!("room {room} has no invite {id}")))?;
    let sessions = revoke_guest_sessions(&mut tx, GuestsOf::Invite(id), now).await?;
    let guests = sqlx::query_scalar(
        "DELETE FROM memberships
          WHERE room_id = ? AND user_id IN (SELECT id FROM users WHERE guest_invite_id = ?)
          RETURNING user_id",
    )
    .bind(room)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Revoked {
        invite: invite_from(&row),
        sessions,
        guests,
    })
}

/// A guest let in: who they are, their room, their session and when it ends (with the link).
pub struct Guest {
    pub user: User,
    pub room: RoomId,
    pub session: SessionId,
    pub expires_at: Millis,
}

/// Takes one use of the link whose code hashes to `code_hash` and, in the same transaction,
/// makes the guest, their membership and their session. A refused link changes nothing.
pub async fn create_guest(
    w: &mut SqliteConnection,
    code_hash: &[u8],
    username: &str,
    display_name: &str,
    token_hash: &[u8],
    now: Millis,
) -> Result<Guest> {
    let mut tx = super::begin_write(w).await?;
    let link = sqlx::query(
        "UPDATE room_invites SET uses_left = uses_left - 1
          WHERE code_hash = ? AND (uses_left IS NULL OR uses_left > 0)
            AND expires_at > ? AND revoked_at IS NULL
          RETURNING id, room_id, expires_at",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::forbidden("the invite link is unknown, used up, expired or revoked"))?;
    let (invite, room, expires_at): (i64, RoomId, Millis) =
        (link.get("id"), link.get("room_id"), link.get("expires_at"));
    let row = sqlx::query(
        "INSERT INTO users (username, display_name, password_hash, created_at, guest_room_id, guest_invite_id)
         VALUES (?, ?, '', ?, ?, ?) RETURNING id",
    )
    .bind(username)
    .bind(display_name)
    .bind(now)
    .bind(room)
    .bind(invite)
    .fetch_one(&mut *tx)
    .await?;
    let user = User {
        id: row.get("id"),
        username: username.to_owned(),
        display_name: display_name.to_owned(),
    };
    super::add_member(&mut tx, room, user.id, now).await?;
    let session = super::create_session(&mut tx, user.id, token_hash, now, expires_at).await?;
    tx.commit().await?;
    Ok(Guest {
        user,
        room,
        session,
        expires_at,
    })
}

/// Ends the sessions of the guests of `room` (it is being deleted); returns them.
pub async fn revoke_guests_of_room(
    w: &mut SqliteConnection,
    room: RoomId,
    now: Millis,
) -> Result<Vec<SessionId>> {
    revoke_guest_sessions(w, GuestsOf::Room(room), now).await
}

/// Whose guests: those who came through one link, or all of a room's.
enum GuestsOf {
    Invite(i64),
    Room(RoomId),
}

async fn revoke_guest_sessions(
    w: &mut SqliteConnection,
    guests: GuestsOf,
    now: Millis,
) -> Result<Vec<SessionId>> {
    let (column, id) = match guests {
        GuestsOf::Invite(id) => ("guest_invite_id", id),
        GuestsOf::Room(room) => ("guest_room_id", room),
    };
    Ok(sqlx::query_scalar(&format!(
        "UPDATE sessions SET revoked_at = ?
          WHERE revoked_at IS NULL
            AND user_id IN (SELECT id FROM users WHERE {column} = ?)
          RETURNING id"
    ))
    .bind(now)
    .bind(id)
    .fetch_all(w)
    .await?)
}
