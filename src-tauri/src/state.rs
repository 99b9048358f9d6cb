//! What the running app holds: settings, the signed-in client, the call in progress, and the
//! video server. Commands (`commands.rs`) act on it; events go to the window from here.
use std::path::PathBuf;
use std::sync::Arc;

use parlor_client::call_session::CallHandle;
use parlor_client::{Client, ServerEndpoint};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::Mutex;

use crate::media::{AppSink, Voice};
use crate::secrets::TokenStore;
use crate::settings::{Settings, SettingsFile};
use crate::video::{VideoHub, VideoServer};

/// A failed command, as the page sees it: a stable `code` to translate and a message.
#[derive(Debug, Serialize)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CommandError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<parlor_client::ClientError> for CommandError {
    fn from(e: parlor_client::ClientError) -> Self {
        use parlor_client::ClientError as E;
        match &e {
            E::Refused(body) => CommandError::new(
                serde_json::to_value(body.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .as_deref()
                    .unwrap_or("refused"),
                body.message.clone(),
            ),
            E::Disconnected | E::Timeout | E::GaveUp(_) => {
                CommandError::new("disconnected", e.to_string())
            }
            E::Invalid(message) => CommandError::new("invalid", message.clone()),
            E::CallEnded => CommandError::new("call_ended", e.to_string()),
            E::Media(source) => CommandError::new("media", source.to_string()),
            E::Tls(parlor_client::TlsError::NotTrusted(_)) => {
                CommandError::new("certificate_not_trusted", e.to_string())
            }
            E::Tls(_) => CommandError::new("tls", e.to_string()),
            _ => CommandError::new("internal", e.to_string()),
        }
    }
}

pub type CommandResult<T> = Result<T, CommandError>;

pub struct SignedIn {
    pub client: Client,
    pub server: String,
    forward: tauri::async_runtime::JoinHandle<()>,
}

impl Drop for SignedIn {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// The call in progress: its handle and where its sound goes. What it sends, and which
/// devices it has, is the call machine's to know (its `media` events say).
pub struct ActiveCall {
    pub handle: Arc<CallHandle>,
    pub room: i64,
    pub sink: Arc<AppSink>,
}

pub struct AppState {
    pub data_dir: PathBuf,
    pub settings_file: SettingsFile,
    pub settings: std::sync::Mutex<Settings>,
    pub tokens: Arc<TokenStore>,
    pub session: Mutex<Option<SignedIn>>,
    pub call: Mutex<Option<ActiveCall>>,
    pub hub: Arc<VideoHub>,
    pub video: VideoServer,
    /// The microphone's voice processing, following `settings.voice`.
    pub voice: Voice,
}

impl AppState {
    pub fn settings(&self) -> Settings {
        self.settings.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> CommandResult<()> {
        let mut settings = self
            .settings
            .lock()
            .map_err(|_| CommandError::new("internal", "settings lock"))?;
        change(&mut settings);
        self.voice.set(settings.voice);
        self.settings_file
            .save(&settings)
            .map_err(|e| CommandError::new("internal", format!("saving settings: {e}")))
    }

    /// The server at `url`, trusted as the settings say (system store plus the CA file).
    pub fn endpoint(&self, url: &str) -> CommandResult<ServerEndpoint> {
        let ca_file = self.settings().ca_file.filter(|f| !f.trim().is_empty());
        Ok(ServerEndpoint::new(
            url,
            ca_file.as_deref().map(std::path::Path::new),
        )?)
    }

    /// This account's local store lives under the server it belongs to.
    pub fn store_dir(&self, server: &str) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        server.hash(&mut hasher);
        self.data_dir
            .join("accounts")
            .join(format!("{:016x}", hasher.finish()))
    }

    /// Keeps `client` as the signed-in one and forwards its events to the window.
    pub async fn sign_in(&self, app: &AppHandle, client: Client, server: String) {
        let mut events = client.subscribe();
        let app = app.clone();
        let forward = tauri::async_runtime::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let _ = app.emit("client", &event);
                    }
                    // The page reloads what it shows on the next room event; nothing is lost
                    // from the store.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("the window fell {n} events behind");
                    }
                    Err(_) => break,
                }
            }
        });
        *self.session.lock().await = Some(SignedIn {
            client,
            server,
            forward,
        });
    }

    pub async fn client(&self) -> CommandResult<Client> {
        self.session
            .lock()
            .await
            .as_ref()
            .map(|s| s.client.clone())
            .ok_or_else(|| CommandError::new("unauthorized", "not signed in"))
    }

    /// Keeps a started call and forwards its events to the window.
    pub async fn keep_call(
        &self,
        app: &AppHandle,
        handle: CallHandle,
        room: i64,
        sink: Arc<AppSink>,
    ) {
        let handle = Arc::new(handle);
        let events = handle.clone();
        let app = app.clone();
        // Forwards the call's events until it ends, then forgets it (an end can come from the
        // other side: everyone left, or the room was deleted).
        tauri::async_runtime::spawn(async move {
            while let Some(event) = events.next_event().await {
                let ended = matches!(event, parlor_client::call_session::CallEvent::Ended { .. });
                let _ = app.emit("call", &event);
                if ended {
                    break;
                }
            }
            let state = app.state::<AppState>();
            let mut call = state.call.lock().await;
            if call
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.handle, &events))
            {
                *call = None;
            }
        });
        *self.call.lock().await = Some(ActiveCall { handle, room, sink });
    }

    /// Hangs up the call in progress, if any.
    pub async fn end_call(&self) {
        if let Some(call) = self.call.lock().await.take() {
            call.handle.hang_up();
        }
    }
}
