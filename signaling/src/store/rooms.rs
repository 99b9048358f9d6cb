use parlor_protocol::{
    Member, Millis, Presence, Role, Room, RoomId, RoomKind, RoomSummary, Seq, User, UserId,
};
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::Row;

use crate::error::{Error, Result};

#[derive(sqlx::FromRow)]
struct RoomRow {
    id: i64,
    name: String,
    kind: String,
    owner_id: Option<i64>,
    created_at: i64,
}

impl TryFrom<RoomRow> for Room {
    type Error = Error;
    fn try_from(r: RoomRow) -> Result<Room> {
        Ok(Room {
            id: r.id,
            name: r.name,
            kind: kind_from_str(&r.kind)?,
            owner_id: r.owner_id,
            created_at: r.created_at,
        })
    }
}

fn kind_from_str(kind: &str) -> Result<RoomKind> {
    match kind {
        "public" => Ok(RoomKind::Public),
        "private" => Ok(RoomKind::Private),
        "direct" => Ok(RoomKind::Direct),
        other => Err(Error::Internal(format!(
            "unknown room kind {other:?} in database"
        ))),
    }
}

fn kind_str(kind: RoomKind) -> &'static str {
    match kind {
        RoomKind::Public => "public",
        RoomKind::Private => "private",
        RoomKind::Direct => "direct",
    }
}

pub async fn create_room(
    w: &mut SqliteConnection,
    owner: UserId,
    name: &str,
    kind: RoomKind,
    now: Millis,
) -> Result<Room> {
    let mut tx = super::begin_write(w).await?;
    let room: RoomRow = sqlx::query_as(
        "INSERT INTO rooms (name, kind, owner_id, created_at) VALUES (?, ?, ?, ?)
         RETURNING id, name, kind, owner_id, created_at",
    )
    .bind(name)
    .bind(kind_str(kind))
    .bind(owner)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO memberships (room_id, user_id, joined_at) VALUES (?, ?, ?)")
        .bind(room.id)
        .bind(owner)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    room.try_into()
}

pub async fn get_room(db: &SqlitePool, room: RoomId) -> Result<Room> {
    let row: Option<RoomRow> =
        sqlx::query_as("SELECT id, name, kind, owner_id, created_at FROM rooms WHERE id = ?")
            .bind(room)
            .fetch_optional(db)
            .await?;
    row.ok_or_else(|| Error::not_found(format!("room {room} does not exist")))?
        .try_into()
}

pub async fn rename_room(w: &mut SqliteConnection, room: RoomId, name: &str) -> Result<Room> {
    let row: RoomRow = sqlx::query_as(
        "UPDATE rooms SET name = ? WHERE id = ? RETURNING id, name, kind, owner_id, created_at",
    )
    .bind(name)
    .bind(room)
    .fetch_one(w)
    .await?;
    row.try_into()
}

pub async fn delete_room(w: &mut SqliteConnection, room: RoomId) -> Result<()> {
    sqlx::query("DELETE FROM rooms WHERE id = ?")
        .bind(room)
        .execute(w)
        .await?;
    Ok(())
}

/// Every (room, member) pair, for loading the hub at start.
pub async fn all_memberships(db: &SqlitePool) -> Result<Vec<(RoomId, UserId)>> {
    Ok(sqlx::query_as("SELECT room_id, user_id FROM memberships")
        .fetch_all(db)
        .await?)
}

/// Every room id, including rooms that have lost all their members.
pub async fn all_room_ids(db: &SqlitePool) -> Result<Vec<RoomId>> {
    Ok(sqlx::query_scalar("SELECT id FROM rooms")
        .fetch_all(db)
        .await?)
}

pub async fn list_rooms(db: &SqlitePool, user: UserId) -> Result<Vec<RoomSummary>> {
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.kind, r.owner_id, r.created_at, r.last_seq, m.last_read_seq,
                (SELECT COUNT(*) FROM timeline t
                  WHERE t.room_id = r.id AND t.seq > m.last_read_seq AND t.kind = 'message'
                    AND t.deleted_at IS NULL AND t.author_id != m.user_id) AS unread
           FROM memberships m JOIN rooms r ON r.id = m.room_id
          WHERE m.user_id = ?
          ORDER BY r.last_seq DESC, r.id",
    )
    .bind(user)
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let room: Room = RoomRow {
            id: row.get("id"),
            name: row.get("name"),
            kind: row.get("kind"),
            owner_id: row.get("owner_id"),
            created_at: row.get("created_at"),
        }
        .try_into()?;
        let last_message = super::last_message(db, room.id).await?;
        out.push(RoomSummary {
            role: role_of(&room, user),
            unread: row.get("unread"),
            last_read_seq: row.get("last_read_seq"),
            last_seq: row.get("last_seq"),
            last_message,
            room,
        });
    }
    Ok(out)
}

pub fn role_of(room: &Room, user: UserId) -> Role {
    if room.owner_id == Some(user) {
        Role::Owner
    } else {
        Role::Member
    }
}

/// Public rooms whose name contains `query` (case-insensitive), at most 50.
pub async fn find_public_rooms(db: &SqlitePool, query: &str) -> Result<Vec<Room>> {
    let pattern = format!("%{}%", escape_like(query));
    let rows: Vec<RoomRow> = sqlx::query_as(
        "SELECT id, name, kind, owner_id, created_at FROM rooms
          WHERE kind = 'public' AND name LIKE ? ESCAPE '\\'
          ORDER BY name, id LIMIT 50",
    )
    .bind(pattern)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

/// Makes `%`, `_` and `\` in user input match literally inside a LIKE pattern.
fn escape_like(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for c in query.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Adds a member; false if they already were one.
pub async fn add_member(
    w: &mut SqliteConnection,
    room: RoomId,
    user: UserId,
    now: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO memberships (room_id, user_id, joined_at) VALUES (?, ?, ?)
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room)
    .bind(user)
    .bind(now)
    .execute(w)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(w: &mut SqliteConnection, room: RoomId, user: UserId) -> Result<()> {
    sqlx::query("DELETE FROM memberships WHERE room_id = ? AND user_id = ?")
        .bind(room)
        .bind(user)
        .execute(w)
        .await?;
    Ok(())
}

/// Members with their read markers; presence is filled in by the caller (the hub knows it).
pub async fn members(db: &SqlitePool, room: &Room) -> Result<Vec<Member>> {
    let rows = sqlx::query(
        "SELECT u.id, u.username, u.display_name, m.last_read_seq
           FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.room_id = ? ORDER BY u.username",
    )
    .bind(room.id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let user = User {
                id: r.get("id"),
                username: r.get("username"),
                display_name: r.get("display_name"),
            };
            Member {
                role: role_of(room, user.id),
                presence: Presence::Offline,
                last_read_seq: r.get("last_read_seq"),
                user,
            }
        })
        .collect())
}

/// The direct room between `a` and `b`, created on first use. Returns whether it was created.
pub async fn open_direct(
    w: &mut SqliteConnection,
    a: &User,
    b: &User,
    now: Millis,
) -> Result<(Room, bool)> {
    let (lo, hi) = if a.id < b.id { (a, b) } else { (b, a) };
    let key = format!("{}:{}", lo.id, hi.id);
    let mut tx = super::begin_write(w).await?;
    let existing: Option<RoomRow> = sqlx::query_as(
        "SELECT id, name, kind, owner_id, created_at FROM rooms WHERE direct_key = ?",
    )
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(room) = existing {
        return Ok((room.try_into()?, false));
    }
    let name = format!("{} & {}", lo.username, hi.username);
    let room: RoomRow = sqlx::query_as(
        "INSERT INTO rooms (name, kind, owner_id, direct_key, created_at)
         VALUES (?, 'direct', NULL, ?, ?) RETURNING id, name, kind, owner_id, created_at",
    )
    .bind(name)
    .bind(&key)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    for user in [lo.id, hi.id] {
        sqlx::query("INSERT INTO memberships (room_id, user_id, joined_at) VALUES (?, ?, ?)")
            .bind(room.id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((room.try_into()?, true))
}

/// Moves the read marker forward (never back, never past the room's last seq); returns it.
pub async fn mark_read(
    w: &mut SqliteConnection,
    room: RoomId,
    user: UserId,
    seq: Seq,
) -> Result<Seq> {
    let marker: Option<Seq> = sqlx::query_scalar(
        "UPDATE memberships
            SET last_read_seq = MAX(last_read_seq, MIN(?, (SELECT last_seq FROM rooms WHERE id = ?)))
          WHERE room_id = ? AND user_id = ? RETURNING last_read_seq",
    )
    .bind(seq)
    .bind(room)
    .bind(room)
    .bind(user)
    .fetch_optional(w)
    .await?;
    marker.ok_or_else(|| {
        Error::refused(
            parlor_protocol::ErrorCode::NotMember,
            format!("you are not a member of room {room}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{create_user, Store};

    #[test]
    fn like_wildcards_in_queries_match_literally() {
        assert_eq!(super::escape_like(r"50%_off\"), r"50\%\_off\\");
    }

    #[tokio::test]
    async fn a_deleted_room_s_id_is_never_given_to_another_room() {
        let (_dir, store) = crate::store::temporary().await;
        let mut w = store.writer().await;
        let ann = create_user(&mut w, "ann", "Ann", "hash", None, 0)
            .await
            .unwrap();
        let older = create_room(&mut w, ann.id, "one", RoomKind::Public, 0)
            .await
            .unwrap();
        let newest = create_room(&mut w, ann.id, "two", RoomKind::Public, 0)
            .await
            .unwrap();
        delete_room(&mut w, newest.id).await.unwrap();
        let next = create_room(&mut w, ann.id, "three", RoomKind::Public, 0)
            .await
            .unwrap();
        assert!(
            older.id < newest.id && newest.id < next.id,
            "ids {} {} {}",
            older.id,
            newest.id,
            next.id
        );
    }

    /// A database made before ids were protected keeps every row and reference through the
    /// upgrade, and from then on does not reuse ids either.
    #[tokio::test]
    async fn the_upgrade_keeps_rows_and_references() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let mut old = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let mut first_only = sqlx::migrate!("../migrations/server");
        first_only.migrations = first_only.migrations.iter().take(1).cloned().collect();
        first_only.run(&mut old).await.unwrap();
        for statement in [
            "INSERT INTO users VALUES (1, 'ann', 'Ann', 'h', 0), (2, 'bob', 'Bob', 'h', 0)",
            "INSERT INTO sessions VALUES (1, 2, x'00', 0, 99, NULL)",
            "INSERT INTO rooms VALUES (1, 'one', 'public', 1, NULL, 1, 0),
                                      (2, 'two', 'private', 1, NULL, 0, 0)",
            "INSERT INTO memberships VALUES (1, 1, 0, 0), (1, 2, 1, 0), (2, 1, 0, 0)",
            "INSERT INTO timeline VALUES (1, 1, 'message', 2, 'c-1', NULL, 'hi', 0, NULL, NULL)",
            // The newest room was deleted before the upgrade: that id can no longer be known.
            "DELETE FROM rooms WHERE id = 2",
        ] {
            sqlx::query(statement).execute(&mut old).await.unwrap();
        }
        old.close().await.unwrap();

        let store = Store::open(&path).await.unwrap();
        let members: Vec<(i64, i64)> =
            sqlx::query_as("SELECT room_id, user_id FROM memberships ORDER BY 1, 2")
                .fetch_all(store.reader())
                .await
                .unwrap();
        assert_eq!(
            members,
            vec![(1, 1), (1, 2)],
            "room 2's membership went with it"
        );
        let text: String = sqlx::query_scalar("SELECT text FROM timeline WHERE room_id = 1")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(text, "hi");
        let broken: i64 = sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_check")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(broken, 0);
        let mut w = store.writer().await;
        let three = create_room(&mut w, 1, "three", RoomKind::Public, 0)
            .await
            .unwrap();
        delete_room(&mut w, three.id).await.unwrap();
        let four = create_room(&mut w, 1, "four", RoomKind::Public, 0)
            .await
            .unwrap();
        assert!(four.id > three.id, "{} after {}", four.id, three.id);
        // Deleting a user's room must still cascade: the references point at the new tables.
        let cascaded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM memberships WHERE room_id = ?")
                .bind(three.id)
                .fetch_one(store.reader())
                .await
                .unwrap();
        assert_eq!(cascaded, 0);
    }
}
