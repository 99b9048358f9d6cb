//! `parlor-server admin …` and `parlor-server backup`: a self-hoster's tools. They open the
//! database file themselves, so they work whether the server is running or not; a running
//! server closes the sockets of sessions revoked here within its session check interval.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Subcommand};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::ConfigError;
use crate::credentials;
use crate::store::{self, now_millis, OpenError, Store};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Administer accounts and invites (on a running or a stopped server's database).
    Admin {
        #[command(flatten)]
        database: DatabaseArg,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write a consistent copy of the database to FILE, also while the server runs.
    Backup {
        #[command(flatten)]
        database: DatabaseArg,
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
}

/// Which database: the same flags, environment and config file as the server's.
#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// TOML file with the server's settings (only `database` is read).
    #[arg(long, env = "PARLOR_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// SQLite database file. [default: <platform data dir>/parlor/server.db]
    #[arg(long, env = "PARLOR_DATABASE", global = true)]
    database: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List accounts.
    Users,
    /// Create an account and print its password (for `closed` registration).
    AddUser {
        username: String,
        /// [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// Also make it a server administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it is signed out everywhere and cannot sign in.
    Disable { username: String },
    /// Let a disabled account sign in again.
    Enable { username: String },
    /// Set a new password (printed, or read with --password-stdin); signs the account out.
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account: its sessions and memberships go, its messages stay, shown as
    /// "Deleted user", and its name is free again.
    DeleteUser { username: String },
    /// Make an account a server administrator (it may create invites from a client).
    MakeAdmin { username: String },
    /// Take server administrator rights away.
    RemoveAdmin { username: String },
    /// Create an invite code (for `invite` registration) and print it.
    Invite {
        /// How many accounts it may create.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Days until it expires.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
    /// List invites that can still be used.
    Invites,
    /// Revoke an invite by its id (from `invites`).
    RevokeInvite { id: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("backup: {0}")]
    Backup(String),
}

impl From<crate::error::Error> for AdminError {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::Refused(body) => AdminError::Refused(body.message),
            crate::error::Error::Database(e) => AdminError::Database(e),
            crate::error::Error::Internal(m) => AdminError::Refused(m),
            crate::error::Error::Hashing(e) => AdminError::Refused(format!("hashing failed: {e}")),
        }
    }
}

impl DatabaseArg {
    fn path(&self) -> Result<PathBuf, ConfigError> {
        let args = crate::config::Args {
            config: self.config.clone(),
            database: self.database.clone(),
            ..Default::default()
        };
        Ok(args.resolve()?.database)
    }
}

/// Runs one command; what it reports goes to `out`, a password read with `--password-stdin`
/// comes from `input`.
pub async fn run(
    command: Command,
    input: &mut impl std::io::BufRead,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    match command {
        Command::Backup { database, file } => backup(&database.path()?, &file, out).await,
        Command::Admin { database, action } => {
            let path = database.path()?;
            if !path.exists() {
                return Err(AdminError::Refused(format!(
                    "no database at {}",
                    path.display()
                )));
            }
            let store = Store::open(&path).await?;
            let result = administer(&store, action, input, out).await;
            store.close().await;
            result
        }
    }
}

fn print(out: &mut impl Write, line: impl std::fmt::Display) -> Result<(), AdminError> {
    writeln!(out, "{line}").map_err(|e| AdminError::Io("output".into(), e))
}

/// A password for someone who will change it: 128 random bits, URL-safe.
fn generated_password() -> String {
    let (token, _) = credentials::new_token();
    token[..22].to_owned()
}

fn password(
    from_stdin: bool,
    input: &mut impl std::io::BufRead,
) -> Result<(String, bool), AdminError> {
    if !from_stdin {
        return Ok((generated_password(), true));
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| AdminError::Io("standard input".into(), e))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    crate::validate::password(&password)?;
    Ok((password, false))
}

async fn hash(password: String) -> Result<String, AdminError> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| AdminError::Refused(format!("hashing failed: {e}")))?
        .map_err(|e| AdminError::Refused(format!("hashing failed: {e}")))
}

/// `YYYY-MM-DD HH:MM` UTC, without a date library for one column.
fn date(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

async fn administer(
    store: &Store,
    action: AdminAction,
    input: &mut impl std::io::BufRead,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let now = now_millis();
    match action {
        AdminAction::Users => {
            print(
                out,
                format_args!(
                    "{:>6}  {:<24} {:<24} {:<8} {:>8}  created",
                    "id", "username", "display name", "status", "sessions"
                ),
            )?;
            for a in store::accounts(store.reader(), now).await? {
                let status = match (a.disabled_at.is_some(), a.is_admin) {
                    (true, _) => "disabled",
                    (false, true) => "admin",
                    (false, false) => "active",
                };
                print(
                    out,
                    format_args!(
                        "{:>6}  {:<24} {:<24} {:<8} {:>8}  {}",
                        a.user.id,
                        a.user.username,
                        a.user.display_name,
                        status,
                        a.live_sessions,
                        date(a.created_at)
                    ),
                )?;
            }
        }
        AdminAction::AddUser {
            username,
            display_name,
            admin,
            password_stdin,
        } => {
            crate::validate::username(&username)?;
            let display_name = display_name.unwrap_or_else(|| username.clone());
            crate::validate::display_name(&display_name)?;
            let (password, generated) = password(password_stdin, input)?;
            let hash = hash(password.clone()).await?;
            let mut w = store.writer().await;
            let user = store::create_user(&mut w, &username, display_name.trim(), &hash, None, now)
                .await?;
            if admin {
                store::set_admin(&mut w, &user.username, true).await?;
            }
            print(
                out,
                format_args!("created user {} ({})", user.username, user.id),
            )?;
            if generated {
                print(out, format_args!("password: {password}"))?;
            }
        }
        AdminAction::Disable { username } => {
            let mut w = store.writer().await;
            store::set_disabled(&mut w, &username, true, now).await?;
            print(
                out,
                format_args!("disabled {username}; its sessions are revoked"),
            )?;
        }
        AdminAction::Enable { username } => {
            let mut w = store.writer().await;
            store::set_disabled(&mut w, &username, false, now).await?;
            print(out, format_args!("enabled {username}"))?;
        }
        AdminAction::ResetPassword {
            username,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin, input)?;
            let hash = hash(password.clone()).await?;
            let mut w = store.writer().await;
            store::reset_password(&mut w, &username, &hash, now).await?;
            print(
                out,
                format_args!("new password set for {username}; its sessions are revoked"),
            )?;
            if generated {
                print(out, format_args!("password: {password}"))?;
            }
        }
        AdminAction::DeleteUser { username } => {
            let mut w = store.writer().await;
            let id = store::delete_account(&mut w, &username, now).await?;
            print(
                out,
                format_args!("deleted {username} (id {id}); its messages remain"),
            )?;
        }
        AdminAction::MakeAdmin { username } => {
            let mut w = store.writer().await;
            store::set_admin(&mut w, &username, true).await?;
            print(out, format_args!("{username} is a server administrator"))?;
        }
        AdminAction::RemoveAdmin { username } => {
            let mut w = store.writer().await;
            store::set_admin(&mut w, &username, false).await?;
            print(
                out,
                format_args!("{username} is no longer a server administrator"),
            )?;
        }
        AdminAction::Invite { uses, days } => {
            if !(1..=3650).contains(&days) {
                return Err(AdminError::Refused("--days must be 1 to 3650".into()));
            }
            let mut w = store.writer().await;
            let (code, expires_at) =
                crate::service::create_invite(&mut w, None, uses, days, now).await?;
            print(
                out,
                format_args!(
                    "invite for {uses} account(s), until {} UTC:",
                    date(expires_at)
                ),
            )?;
            print(out, code)?;
        }
        AdminAction::Invites => {
            print(
                out,
                format_args!(
                    "{:>6}  {:>9}  {:<16}  created by",
                    "id", "uses left", "expires (UTC)"
                ),
            )?;
            for i in store::open_invites(store.reader(), now).await? {
                print(
                    out,
                    format_args!(
                        "{:>6}  {:>9}  {:<16}  {}",
                        i.id,
                        i.uses_left,
                        date(i.expires_at),
                        i.created_by.as_deref().unwrap_or("parlor-server admin")
                    ),
                )?;
            }
        }
        AdminAction::RevokeInvite { id } => {
            let mut w = store.writer().await;
            store::revoke_invite(&mut w, id, now).await?;
            print(out, format_args!("revoked invite {id}"))?;
        }
    }
    Ok(())
}

/// Copies the database with `VACUUM INTO`: one read transaction, so the copy is the database as
/// of one moment even while the server writes, and compact. Opened read-only, without
/// migrating: a backup must not change what it copies.
async fn backup(database: &Path, file: &Path, out: &mut impl Write) -> Result<(), AdminError> {
    if file.exists() {
        return Err(AdminError::Backup(format!(
            "{} exists; choose a new file",
            file.display()
        )));
    }
    if !database.exists() {
        return Err(AdminError::Backup(format!(
            "no database at {}",
            database.display()
        )));
    }
    let target = file
        .to_str()
        .ok_or_else(|| AdminError::Backup(format!("{}: not UTF-8", file.display())))?;
    let mut source = SqliteConnectOptions::from_str("sqlite:")?
        .filename(database)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut source)
        .await
        .map_err(|e| AdminError::Backup(format!("copying to {}: {e}", file.display())))?;
    source.close().await?;

    let mut copy = SqliteConnectOptions::from_str("sqlite:")?
        .filename(file)
        .read_only(true)
        .connect()
        .await?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await?;
    if check != "ok" {
        return Err(AdminError::Backup(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    let (users, rooms, entries): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM rooms),
                (SELECT COUNT(*) FROM timeline)",
    )
    .fetch_one(&mut copy)
    .await?;
    copy.close().await?;
    print(
        out,
        format_args!(
            "backed up {users} users, {rooms} rooms, {entries} timeline entries to {}",
            file.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(date(0), "1970-01-01 00:00");
        // 2026-12-02 09:30:00 UTC
        assert_eq!(date(1_796_203_800_000), "2026-12-02 09:30");
        assert_eq!(date(951_782_400_000), "2000-02-29 00:00");
    }
}
