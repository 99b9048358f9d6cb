//! What `parlor-server admin` and server administrators change: accounts and invites. These run
//! on the database of a running server too (WAL lets a second process write beside it); the
//! server notices revoked sessions within its session check interval.
use parlor_protocol::{ErrorCode, Millis, User, UserId};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::Row;

use crate::error::{Error, Result};

/// An account as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub user: User,
    pub is_admin: bool,
    pub disabled_at: Option<Millis>,
    pub created_at: Millis,
    /// Sessions neither revoked nor expired.
    pub live_sessions: i64,
}

pub async fn accounts(db: &SqlitePool, now: Millis) -> Result<Vec<Account>> {
    let rows = sqlx::query(
        "SELECT u.id, u.username, u.display_name, u.is_admin, u.disabled_at, u.created_at,
                (SELECT COUNT(*) FROM sessions s
                  WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > ?) AS live
           FROM users u ORDER BY u.id",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Account {
            user: User {
                id: r.get("id"),
                username: r.get("username"),
                display_name: r.get("display_name"),
            },
            is_admin: r.get("is_admin"),
            disabled_at: r.get("disabled_at"),
            created_at: r.get("created_at"),
            live_sessions: r.get("live"),
        })
        .collect())
}

async fn user_id(tx: &mut SqliteConnection, username: &str) -> Result<UserId> {
    sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
        .bind(username)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| Error::not_found(format!("no user `{username}`")))
}

async fn revoke_all_sessions(tx: &mut SqliteConnection, user: UserId, now: Millis) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(user)
        .execute(tx)
        .await?;
    Ok(())
}

/// Disables an account and revokes its sessions, or enables it again.
pub async fn set_disabled(
    w: &mut SqliteConnection,
    username: &str,
    disabled: bool,
    now: Millis,
) -> Result<UserId> {
    let mut tx = super::begin_write(w).await?;
    let user = user_id(&mut tx, username).await?;
    sqlx::query("UPDATE users SET disabled_at = ? WHERE id = ?")
        .bind(disabled.then_some(now))
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if disabled {
        revoke_all_sessions(&mut tx, user, now).await?;
    }
    tx.commit().await?;
    Ok(user)
}

pub async fn set_admin(w: &mut SqliteConnection, username: &str, admin: bool) -> Result<UserId> {
    let mut tx = super::begin_write(w).await?;
    let user = user_id(&mut tx, username).await?;
    sqlx::query("UPDATE users SET is_admin = ? WHERE id = ?")
        .bind(admin)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn is_admin(db: &SqlitePool, user: UserId) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT is_admin FROM users WHERE id = ? AND disabled_at IS NULL")
            .bind(user)
            .fetch_optional(db)
            .await?
            .unwrap_or(false),
    )
}

/// Sets a new password and signs the account out everywhere.
pub async fn reset_password(
    w: &mut SqliteConnection,
    username: &str,
    password_hash: &str,
    now: Millis,
) -> Result<UserId> {
    let mut tx = super::begin_write(w).await?;
    let user = user_id(&mut tx, username).await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    revoke_all_sessions(&mut tx, user, now).await?;
    tx.commit().await?;
    Ok(user)
}

/// Deletes an account as a chat server must: its messages stay in their rooms' timelines (other
/// members' history and sequence numbers must not change), so the row stays, emptied. Its
/// sessions and memberships go, its name is freed, and it can never sign in again.
pub async fn delete_account(
    w: &mut SqliteConnection,
    username: &str,
    now: Millis,
) -> Result<UserId> {
    let mut tx = super::begin_write(w).await?;
    let user = user_id(&mut tx, username).await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM memberships WHERE user_id = ?
            AND room_id NOT IN (SELECT id FROM rooms WHERE kind = 'direct')",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    // An empty password hash matches no password: verification fails to parse it.
    sqlx::query(
        "UPDATE users SET username = 'deleted-' || id, display_name = 'Deleted user',
                password_hash = '', is_admin = 0, disabled_at = ?
          WHERE id = ?",
    )
    .bind(now)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// An invite as listed; the code itself is only known when it is made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invite {
    pub id: i64,
    pub created_by: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub uses_left: i64,
    pub revoked: bool,
}

pub async fn create_invite(
    w: &mut SqliteConnection,
    code_hash: &[u8],
    created_by: Option<UserId>,
    now: Millis,
    expires_at: Millis,
    uses: u32,
) -> Result<i64> {
    if uses == 0 {
        return Err(Error::invalid("an invite needs at least one use"));
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO invites (code_hash, created_by, created_at, expires_at, uses_left)
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(code_hash)
    .bind(created_by)
    .bind(now)
    .bind(expires_at)
    .bind(uses)
    .fetch_one(w)
    .await?)
}

/// Invites that can still be used.
pub async fn open_invites(db: &SqlitePool, now: Millis) -> Result<Vec<Invite>> {
    let rows = sqlx::query(
        "SELECT i.id, u.username, i.created_at, i.expires_at, i.uses_left, i.revoked_at
           FROM invites i LEFT JOIN users u ON u.id = i.created_by
          WHERE i.revoked_at IS NULL AND i.uses_left > 0 AND i.expires_at > ?
          ORDER BY i.id",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Invite {
            id: r.get("id"),
            created_by: r.get("username"),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
            uses_left: r.get("uses_left"),
            revoked: r.get::<Option<i64>, _>("revoked_at").is_some(),
        })
        .collect())
}

pub async fn revoke_invite(w: &mut SqliteConnection, id: i64, now: Millis) -> Result<()> {
    let done = sqlx::query("UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(w)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::refused(
            ErrorCode::NotFound,
            format!("no open invite {id}"),
        ));
    }
    Ok(())
}
