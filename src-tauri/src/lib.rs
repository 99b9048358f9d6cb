//! Parlor's desktop app: a thin Tauri shell over `parlor-client`. Commands call the client
//! library, client and call events are forwarded to the window as Tauri events, and decoded
//! video goes to the page over a loopback WebSocket (`video.rs`).
pub mod commands;
pub mod media;
pub mod notifications;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod video;

use std::sync::Arc;

use tauri::Manager;

use crate::secrets::TokenStore;
use crate::settings::SettingsFile;
use crate::state::AppState;
use crate::video::{VideoHub, VideoServer};

/// Origins the page is served from: Tauri's custom protocol on each platform. (There is no
/// dev server: the page is always the built `ui/dist`, embedded in the binary.)
fn page_origins() -> Vec<String> {
    vec![
        "tauri://localhost".to_owned(),
        "http://tauri.localhost".to_owned(),
        "https://tauri.localhost".to_owned(),
    ]
}

/// Logs go to `parlor.log` in the app's log folder (and stderr when it is a terminal).
fn start_logging(log_dir: &std::path::Path) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let _ = std::fs::create_dir_all(log_dir);
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARLOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,webrtc=warn,rtc=warn"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("parlor.log"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let _ = match file {
        Ok(file) => builder
            .with_writer(std::sync::Mutex::new(file).and(std::io::stderr))
            .try_init(),
        Err(_) => builder.try_init(),
    };
}

fn setup(app: &mut tauri::App) -> Result<(), Box<dyn std::error::Error>> {
    let paths = app.path();
    let (config_dir, data_dir, log_dir) = (
        paths.app_config_dir()?,
        paths.app_data_dir()?,
        paths.app_log_dir()?,
    );
    start_logging(&log_dir);
    tracing::info!("Parlor starting; data in {}", data_dir.display());
    let settings_file = SettingsFile::new(&config_dir);
    // The run script points a first start at its local server.
    let settings = settings_file.load(
        std::env::var("PARLOR_SERVER").ok(),
        std::env::var("PARLOR_CA_FILE").ok(),
    );
    let hub = Arc::new(VideoHub::default());
    let video = tauri::async_runtime::block_on(VideoServer::start(hub.clone(), page_origins()))?;
    let voice = media::Voice::new(settings.voice);
    app.manage(AppState {
        voice,
        tokens: Arc::new(TokenStore::new(&data_dir)),
        data_dir,
        settings_file,
        settings: std::sync::Mutex::new(settings),
        session: Default::default(),
        call: Default::default(),
        hub,
        video,
    });
    Ok(())
}

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let builder = tauri::Builder::default();
    // A second launch brings the running window forward instead of opening another app.
    #[cfg(desktop)]
    let builder = builder.plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
        if let Some(window) = app.get_webview_window("main") {
            let _ = window.unminimize();
            let _ = window.set_focus();
        }
    }));
    builder
        .plugin(tauri_plugin_notification::init())
        .setup(setup)
        .invoke_handler(tauri::generate_handler![
            commands::get_settings,
            commands::save_settings,
            commands::server_health,
            commands::resume,
            commands::retry_now,
            commands::show_notification,
            commands::login,
            commands::register,
            commands::logout,
            commands::rooms,
            commands::create_room,
            commands::join_room,
            commands::leave_room,
            commands::rename_room,
            commands::delete_room,
            commands::find_rooms,
            commands::open_direct,
            commands::add_member,
            commands::create_guest_link,
            commands::guest_links,
            commands::revoke_guest_link,
            commands::members,
            commands::history,
            commands::history_after,
            commands::outbox,
            commands::send,
            commands::retry,
            commands::discard,
            commands::edit,
            commands::delete_message,
            commands::search,
            commands::mark_read,
            commands::typing,
            commands::devices,
            commands::join_call,
            commands::decline_call,
            commands::leave_call,
            commands::set_microphone,
            commands::set_camera,
            commands::use_device,
            commands::call_quality,
            commands::video_endpoint,
        ])
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("the Parlor window could not start");
}
