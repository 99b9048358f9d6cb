//! Where the session token is kept: the platform's keyring (Secret Service on Linux, Keychain
//! on macOS, Credential Manager on Windows). Where none is running (a bare session, a test
//! display), a file only the user can read, with a warning in the log.
use std::path::{Path, PathBuf};

const SERVICE: &str = "chat.parlor.desktop";

pub struct TokenStore {
    fallback_dir: PathBuf,
}

impl TokenStore {
    pub fn new(data_dir: &Path) -> Self {
        TokenStore {
            fallback_dir: data_dir.join("tokens"),
        }
    }

    fn fallback_path(&self, server: &str) -> PathBuf {
        // One file per server; the name is a hash, so no address characters reach the path.
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        server.hash(&mut hasher);
        self.fallback_dir
            .join(format!("{:016x}.token", hasher.finish()))
    }

    pub fn save(&self, server: &str, token: &str) {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        match keyring::Entry::new(SERVICE, server).and_then(|e| e.set_password(token)) {
            Ok(()) => {
                // A stale file from an earlier keyring-less run must not outlive the keyring copy.
                let _ = std::fs::remove_file(self.fallback_path(server));
                return;
            }
            Err(e) => {
                tracing::warn!("no keyring ({e}); keeping the session token in a private file")
            }
        }
        if let Err(e) = self.save_file(server, token) {
            tracing::error!("could not keep the session token: {e}");
        }
    }

    fn save_file(&self, server: &str, token: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.fallback_dir)?;
        let path = self.fallback_path(server);
        #[cfg(unix)]
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(token.as_bytes())
        }
        #[cfg(not(unix))]
        std::fs::write(&path, token)
    }

    pub fn load(&self, server: &str) -> Option<String> {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        if let Ok(token) = keyring::Entry::new(SERVICE, server).and_then(|e| e.get_password()) {
            return Some(token);
        }
        std::fs::read_to_string(self.fallback_path(server))
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    pub fn delete(&self, server: &str) {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        if let Ok(entry) = keyring::Entry::new(SERVICE, server) {
            let _ = entry.delete_credential();
        }
        let _ = std::fs::remove_file(self.fallback_path(server));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_per_server_and_forgotten_on_logout() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (a, b) = ("ws://127.0.0.1:9/ws#test-a", "ws://127.0.0.1:9/ws#test-b");
        store.save(a, "token-a");
        store.save(b, "token-b");
        assert_eq!(store.load(a).as_deref(), Some("token-a"));
        assert_eq!(store.load(b).as_deref(), Some("token-b"));
        // Without a keyring (as on this test machine) the files are private to the user.
        #[cfg(unix)]
        for entry in std::fs::read_dir(dir.path().join("tokens"))
            .into_iter()
            .flatten()
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the user may read a token file");
        }
        store.delete(a);
        assert_eq!(store.load(a), None);
        assert_eq!(store.load(b).as_deref(), Some("token-b"));
        store.delete(b);
    }
}
