use parlor_protocol::{ErrorCode, Millis, User, UserId};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Connection, Row};

use crate::error::{Error, Result};
use crate::hub::SessionId;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
        }
    }
}

pub async fn create_user(
    w: &mut SqliteConnection,
    username: &str,
    display_name: &str,
    password_hash: &str,
    now: Millis,
) -> Result<User> {
    let result = sqlx::query_as::<_, UserRow>(
        "INSERT INTO users (username, display_name, password_hash, created_at)
         VALUES (?, ?, ?, ?) RETURNING id, username, display_name",
    )
    .bind(username)
    .bind(display_name)
    .bind(password_hash)
    .bind(now)
    .fetch_one(w)
    .await;
    match result {
        Ok(row) => Ok(row.into()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::refused(
            ErrorCode::Conflict,
            format!("the username `{username}` is taken"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The user and their password hash, for login.
pub async fn find_credentials(db: &SqlitePool, username: &str) -> Result<Option<(User, String)>> {
    let row = sqlx::query(
        "SELECT id, username, display_name, password_hash FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        (
            User {
                id: r.get("id"),
                username: r.get("username"),
                display_name: r.get("display_name"),
            },
            r.get("password_hash"),
        )
    }))
}

pub async fn password_hash(db: &SqlitePool, user: UserId) -> Result<String> {
    Ok(
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
            .bind(user)
            .fetch_one(db)
            .await?,
    )
}

pub async fn find_user(db: &SqlitePool, username: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as::<_, UserRow>(
        "SELECT id, username, display_name FROM users WHERE username = ?",
    )
    .bind(username)
    .fetch_optional(db)
    .await?
    .map(Into::into))
}

pub async fn set_password(w: &mut SqliteConnection, user: UserId, hash: &str) -> Result<()> {
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(user)
        .execute(w)
        .await?;
    Ok(())
}

pub async fn create_session(
    w: &mut SqliteConnection,
    user: UserId,
    token_hash: &[u8],
    now: Millis,
    expires_at: Millis,
) -> Result<SessionId> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sessions (user_id, token_hash, created_at, expires_at)
         VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(user)
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .fetch_one(w)
    .await?)
}

/// Looks a live session up by its token hash and slides its expiry to `new_expiry`.
pub async fn use_session(
    w: &mut SqliteConnection,
    token_hash: &[u8],
    now: Millis,
    new_expiry: Millis,
) -> Result<Option<(SessionId, User, Millis)>> {
    let mut tx = w.begin().await?;
    let row = sqlx::query(
        "UPDATE sessions SET expires_at = ?
         WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?
         RETURNING id, user_id",
    )
    .bind(new_expiry)
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (session, user_id): (i64, i64) = (row.get("id"), row.get("user_id"));
    let user =
        sqlx::query_as::<_, UserRow>("SELECT id, username, display_name FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Some((session, user.into(), new_expiry)))
}

pub async fn revoke_session(
    w: &mut SqliteConnection,
    session: SessionId,
    now: Millis,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(session)
        .execute(w)
        .await?;
    Ok(())
}

/// Revokes every live session of `user` but `keep`; returns the revoked ones.
pub async fn revoke_other_sessions(
    w: &mut SqliteConnection,
    user: UserId,
    keep: SessionId,
    now: Millis,
) -> Result<Vec<SessionId>> {
    Ok(sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?
         WHERE user_id = ? AND id != ? AND revoked_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(user)
    .bind(keep)
    .fetch_all(w)
    .await?)
}
