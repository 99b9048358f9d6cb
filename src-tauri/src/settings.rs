//! The user's settings (server, devices, language), kept as JSON in the app's config folder.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The signaling server's WebSocket URL.
    pub server: Option<String>,
    /// A PEM file of extra CA certificates to trust for a `wss://` server (a private CA).
    pub ca_file: Option<String>,
    /// A UI language code; none means the system's.
    pub language: Option<String>,
    /// Device ids; none means the system default.
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    /// A camera id, `test-pattern`, or none for the first camera found.
    pub camera: Option<String>,
    /// What is done to the microphone's sound before it is sent.
    pub voice: parlor_media::voice::VoiceSettings,
}

pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    pub fn new(config_dir: &Path) -> Self {
        SettingsFile {
            path: config_dir.join("settings.json"),
        }
    }

    /// The saved settings; defaults when there are none or the file is damaged (it is then
    /// replaced at the next save, which loses nothing the user could still use).
    /// `default_server` fills in a missing server (the run script's local server), and
    /// `default_ca_file` a missing CA file (`PARLOR_CA_FILE`).
    pub fn load(
        &self,
        default_server: Option<String>,
        default_ca_file: Option<String>,
    ) -> Settings {
        let mut settings: Settings = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| match serde_json::from_str(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("ignoring damaged {}: {e}", self.path.display());
                    None
                }
            })
            .unwrap_or_default();
        if settings.server.is_none() {
            settings.server = default_server;
        }
        if settings.ca_file.is_none() {
            settings.ca_file = default_ca_file;
        }
        settings
    }

    /// Writes atomically (a temporary file renamed over the old one).
    pub fn save(&self, settings: &Settings) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(settings)?)?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_restart_and_damage_falls_back_to_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = SettingsFile::new(dir.path());
        assert_eq!(
            file.load(Some("ws://127.0.0.1:1/ws".into()), None)
                .server
                .as_deref(),
            Some("ws://127.0.0.1:1/ws")
        );
        let saved = Settings {
            server: Some("ws://127.0.0.1:7700/ws".into()),
            language: Some("ja".into()),
            camera: Some("test-pattern".into()),
            ca_file: Some("/etc/parlor/team-ca.pem".into()),
            ..Settings::default()
        };
        file.save(&saved).unwrap();
        assert_eq!(file.load(None, None), saved);
        let with_defaults = file.load(Some("ws://other/ws".into()), Some("/tmp/other.pem".into()));
        assert_eq!(
            (with_defaults.server, with_defaults.ca_file),
            (saved.server.clone(), saved.ca_file.clone()),
            "the saved server and CA file win over the defaults"
        );
        std::fs::write(dir.path().join("settings.json"), "{not json").unwrap();
        assert_eq!(file.load(None, None), Settings::default());
        assert_eq!(
            file.load(None, Some("/tmp/ca.pem".into()))
                .ca_file
                .as_deref(),
            Some("/tmp/ca.pem"),
            "PARLOR_CA_FILE fills a missing CA file"
        );
    }

    #[test]
    fn voice_processing_is_on_unless_turned_off_part_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let file = SettingsFile::new(dir.path());
        // A settings file from before these settings existed.
        std::fs::write(dir.path().join("settings.json"), r#"{"language":"ko"}"#).unwrap();
        let voice = file.load(None, None).voice;
        assert!(voice.echo_cancellation && voice.noise_suppression && voice.auto_gain_control);
        std::fs::write(
            dir.path().join("settings.json"),
            r#"{"voice":{"noise_suppression":false}}"#,
        )
        .unwrap();
        let voice = file.load(None, None).voice;
        assert_eq!(
            (
                voice.echo_cancellation,
                voice.noise_suppression,
                voice.auto_gain_control
            ),
            (true, false, true)
        );
    }
}
