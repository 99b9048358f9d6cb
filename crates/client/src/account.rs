//! Which account a data folder belongs to. The store's file is named by the server-given user
//! id, so without this a client could not open its history before reaching the server: an app
//! started offline would show nothing. Kept beside the stores as `account.json`; the session
//! token is not in it (that is the caller's secret to keep).
use std::io;
use std::path::{Path, PathBuf};

use parlor_protocol::User;

fn path(dir: &Path) -> PathBuf {
    dir.join("account.json")
}

/// Records `user` as the folder's account (replacing the file whole, so a crash mid-write
/// leaves the old one).
pub fn remember(dir: &Path, user: &User) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join("account.json.new");
    std::fs::write(&temporary, serde_json::to_vec_pretty(user)?)?;
    std::fs::rename(&temporary, path(dir))
}

/// The folder's account, if one was remembered. A missing file is `None`; an unreadable one is
/// `None` with a warning (the client then waits for the server, as on a first start).
pub fn recall(dir: &Path) -> Option<User> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("reading {}: {e}", path(dir).display());
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(user) => Some(user),
        Err(e) => {
            tracing::warn!("{} is not an account: {e}", path(dir).display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> User {
        User {
            id: 7,
            username: "ann".into(),
            display_name: "Ann".into(),
        }
    }

    #[test]
    fn a_remembered_account_is_recalled_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recall(dir.path()), None);
        remember(&dir.path().join("nested"), &ann()).unwrap();
        assert_eq!(recall(&dir.path().join("nested")), Some(ann()));
        let renamed = User {
            display_name: "Ann B.".into(),
            ..ann()
        };
        remember(&dir.path().join("nested"), &renamed).unwrap();
        assert_eq!(recall(&dir.path().join("nested")), Some(renamed));
    }

    #[test]
    fn a_damaged_account_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"id\": 7, \"user").unwrap();
        assert_eq!(recall(dir.path()), None);
    }
}
