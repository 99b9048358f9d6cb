//! The window's commands: each is a thin call into `parlor-client` (or the settings, devices
//! and video plumbing). Business logic lives in the client library, not here.

use std::sync::Arc;

use parlor_client::call_session::{CallHandle, CallOptions, DeviceOpener};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::store::RoomView;
use parlor_client::{Client, ConnectionState, Credentials, OutboxView};
use parlor_media::{AudioSource, VideoSource};
use parlor_protocol::{Member, Message, Room, RoomId, RoomInvite, Seq, User, UserId};
use parlor_rtc::MediaKind;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, State};

use crate::media::{self, AppSink};
use crate::settings::Settings;
use crate::state::{AppState, CommandError, CommandResult};

#[derive(Serialize)]
pub struct Session {
    user: User,
    server: String,
    /// Where the connection stands now (a resume returns before the server answers); later
    /// changes arrive as `connection` events.
    connection: ConnectionState,
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

#[tauri::command]
pub fn save_settings(state: State<'_, AppState>, settings: Settings) -> CommandResult<()> {
    state.update_settings(|s| *s = settings)
}

/// Whether the server answers its health check (GET /healthz on the socket's host, over TLS
/// for `wss://`): `up`, `down`, `untrusted` (its certificate is refused) or `invalid` (not a
/// server address, or an unusable CA file).
#[tauri::command]
pub async fn server_health(
    state: State<'_, AppState>,
    server: String,
) -> CommandResult<&'static str> {
    let Ok(endpoint) = state.endpoint(&server) else {
        return Ok("invalid");
    };
    Ok(match endpoint.health().await {
        Ok(true) => "up",
        Ok(false) => "down",
        Err(_) => "untrusted",
    })
}

/// How a sign-in reaches the server: with typed credentials (the server must answer), or with
/// the saved token (offline-first: the account's store opens at once).
enum SignIn {
    Credentials(Credentials),
    Token(String),
}

async fn connect(
    app: &AppHandle,
    state: &AppState,
    server: String,
    sign_in: SignIn,
) -> CommandResult<Session> {
    // A new sign-in replaces the old one (and its call).
    state.end_call().await;
    if let Some(old) = state.session.lock().await.take() {
        old.client.close().await;
    }
    let endpoint = state.endpoint(&server)?;
    let (dir, policy) = (state.store_dir(&server), ReconnectPolicy::default());
    let client = match sign_in {
        SignIn::Credentials(credentials) => {
            Client::connect(&endpoint, &dir, credentials, policy).await?
        }
        SignIn::Token(token) => Client::resume(&endpoint, &dir, token, policy).await?,
    };
    if let Some(token) = client.token() {
        let (tokens, key) = (state.tokens.clone(), server.clone());
        // The keyring may block on D-Bus: keep it off the async threads.
        let _ = tokio::task::spawn_blocking(move || tokens.save(&key, &token)).await;
    }
    state.update_settings(|s| s.server = Some(server.clone()))?;
    let user = client.me().clone();
    state.sign_in(app, client.clone(), server.clone()).await;
    // Read after the window's event forwarding started, so no change falls between the two.
    let connection = client.connection_state();
    Ok(Session {
        user,
        server,
        connection,
    })
}

/// Signs in with the saved session token, if there is one for the configured server. With the
/// server down this still opens the account on what it last saw; a token the server no longer
/// takes ends the session by event once it answers.
#[tauri::command]
pub async fn resume(app: AppHandle, state: State<'_, AppState>) -> CommandResult<Option<Session>> {
    let Some(server) = state.settings().server else {
        return Ok(None);
    };
    let (tokens, key) = (state.tokens.clone(), server.clone());
    let token = tokio::task::spawn_blocking(move || tokens.load(&key))
        .await
        .ok()
        .flatten();
    let Some(token) = token else {
        return Ok(None);
    };
    match connect(&app, &state, server.clone(), SignIn::Token(token)).await {
        Ok(session) => Ok(Some(session)),
        Err(e) if e.code == "unauthorized" => {
            // Expired or revoked: forget it and ask for the password.
            let tokens = state.tokens.clone();
            let _ = tokio::task::spawn_blocking(move || tokens.delete(&server)).await;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Shows a desktop notification about `room_id`; clicking it raises the window and sends the
/// page `notification_opened` with the room, to open it.
#[tauri::command]
pub async fn show_notification(
    app: AppHandle,
    title: String,
    body: String,
    room_id: Option<RoomId>,
) -> CommandResult<()> {
    let opener = app.clone();
    let on_click = move || {
        if let Some(window) = opener.get_webview_window("main") {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
        }
        let _ = opener.emit("notification_opened", room_id);
    };
    let (t, b) = (title.clone(), body.clone());
    let shown = tokio::task::spawn_blocking(move || crate::notifications::show(&t, &b, on_click))
        .await
        .map_err(|e| CommandError::new("internal", e.to_string()))?;
    if let Err(why) = shown {
        // No clickable notifications here: the plugin's, which a click cannot open.
        tracing::debug!("{why}");
        use tauri_plugin_notification::NotificationExt;
        app.notification()
            .builder()
            .title(title)
            .body(body)
            .show()
            .map_err(|e| CommandError::new("internal", e.to_string()))?;
    }
    Ok(())
}

/// Tries to reach the server now instead of waiting out the backoff ("Retry now", or the
/// system says the network is back).
#[tauri::command]
pub async fn retry_now(state: State<'_, AppState>) -> CommandResult<()> {
    state.client().await?.retry_now().await;
    Ok(())
}

#[tauri::command]
pub async fn login(
    app: AppHandle,
    state: State<'_, AppState>,
    server: String,
    username: String,
    password: String,
) -> CommandResult<Session> {
    connect(
        &app,
        &state,
        server,
        SignIn::Credentials(Credentials::Login { username, password }),
    )
    .await
}

#[tauri::command]
pub async fn register(
    app: AppHandle,
    state: State<'_, AppState>,
    server: String,
    username: String,
    display_name: String,
    password: String,
    invite: Option<String>,
) -> CommandResult<Session> {
    connect(
        &app,
        &state,
        server,
        SignIn::Credentials(Credentials::Register {
            username,
            display_name,
            password,
            invite,
        }),
    )
    .await
}

#[tauri::command]
pub async fn logout(state: State<'_, AppState>) -> CommandResult<()> {
    state.end_call().await;
    let Some(session) = state.session.lock().await.take() else {
        return Ok(());
    };
    let result = session.client.logout().await;
    let (tokens, server) = (state.tokens.clone(), session.server.clone());
    let _ = tokio::task::spawn_blocking(move || tokens.delete(&server)).await;
    // Signed out locally whatever the server said; a token it did not hear about expires.
    if let Err(e) = result {
        tracing::warn!("logout not confirmed by the server: {e}");
    }
    Ok(())
}

#[tauri::command]
pub async fn rooms(state: State<'_, AppState>) -> CommandResult<Vec<RoomView>> {
    Ok(state.client().await?.rooms().await?)
}

#[tauri::command]
pub async fn create_room(
    state: State<'_, AppState>,
    name: String,
    public: bool,
) -> CommandResult<Room> {
    Ok(state.client().await?.create_room(&name, public).await?)
}

#[tauri::command]
pub async fn join_room(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<Room> {
    Ok(state.client().await?.join_room(room_id).await?)
}

#[tauri::command]
pub async fn leave_room(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<()> {
    Ok(state.client().await?.leave_room(room_id).await?)
}

#[tauri::command]
pub async fn rename_room(
    state: State<'_, AppState>,
    room_id: RoomId,
    name: String,
) -> CommandResult<Room> {
    Ok(state.client().await?.rename_room(room_id, &name).await?)
}

#[tauri::command]
pub async fn delete_room(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<()> {
    Ok(state.client().await?.delete_room(room_id).await?)
}

#[tauri::command]
pub async fn find_rooms(state: State<'_, AppState>, query: String) -> CommandResult<Vec<Room>> {
    Ok(state.client().await?.find_rooms(&query).await?)
}

#[tauri::command]
pub async fn open_direct(state: State<'_, AppState>, username: String) -> CommandResult<Room> {
    Ok(state.client().await?.open_direct(&username).await?)
}

#[tauri::command]
pub async fn add_member(
    state: State<'_, AppState>,
    room_id: RoomId,
    username: String,
) -> CommandResult<()> {
    Ok(state.client().await?.add_member(room_id, &username).await?)
}

/// A new guest link and the address to give out.
#[derive(serde::Serialize)]
pub struct GuestLink {
    pub invite: RoomInvite,
    /// `https://HOST/join/CODE` on the signed-in server (its web app opens it).
    pub url: Option<String>,
}

#[tauri::command]
pub async fn create_guest_link(
    state: State<'_, AppState>,
    room_id: RoomId,
    hours: Option<u32>,
    uses: Option<u32>,
) -> CommandResult<GuestLink> {
    let (client, server) = {
        let session = state.session.lock().await;
        let signed_in = session
            .as_ref()
            .ok_or_else(|| CommandError::new("unauthorized", "not signed in"))?;
        (signed_in.client.clone(), signed_in.server.clone())
    };
    let invite = client.create_guest_link(room_id, hours, uses).await?;
    let url = invite
        .code
        .as_deref()
        .and_then(|code| parlor_client::endpoint::web_url(&server, &format!("/join/{code}")));
    Ok(GuestLink { invite, url })
}

#[tauri::command]
pub async fn guest_links(
    state: State<'_, AppState>,
    room_id: RoomId,
) -> CommandResult<Vec<RoomInvite>> {
    Ok(state.client().await?.guest_links(room_id).await?)
}

#[tauri::command]
pub async fn revoke_guest_link(
    state: State<'_, AppState>,
    room_id: RoomId,
    invite_id: i64,
) -> CommandResult<()> {
    state
        .client()
        .await?
        .revoke_guest_link(room_id, invite_id)
        .await?;
    Ok(())
}

#[tauri::command]
pub async fn members(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<Vec<Member>> {
    Ok(state.client().await?.members(room_id).await?)
}

/// Most messages one history page may ask for.
const MAX_PAGE: u32 = 200;

#[tauri::command]
pub async fn history(
    state: State<'_, AppState>,
    room_id: RoomId,
    before: Option<Seq>,
    limit: u32,
) -> CommandResult<Vec<Message>> {
    Ok(state
        .client()
        .await?
        .history(room_id, before, limit.clamp(1, MAX_PAGE))
        .await?)
}

#[tauri::command]
pub async fn history_after(
    state: State<'_, AppState>,
    room_id: RoomId,
    after: Seq,
    limit: u32,
) -> CommandResult<Vec<Message>> {
    Ok(state
        .client()
        .await?
        .history_after(room_id, after, limit.clamp(1, MAX_PAGE))
        .await?)
}

#[tauri::command]
pub async fn outbox(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<Vec<OutboxView>> {
    Ok(state.client().await?.outbox(room_id).await?)
}

#[tauri::command]
pub async fn send(
    state: State<'_, AppState>,
    room_id: RoomId,
    text: String,
) -> CommandResult<OutboxView> {
    Ok(state.client().await?.send(room_id, &text).await?)
}

#[tauri::command]
pub async fn retry(state: State<'_, AppState>, client_id: String) -> CommandResult<()> {
    Ok(state.client().await?.retry(&client_id).await?)
}

#[tauri::command]
pub async fn discard(state: State<'_, AppState>, client_id: String) -> CommandResult<()> {
    Ok(state.client().await?.discard(&client_id).await?)
}

#[tauri::command]
pub async fn edit(
    state: State<'_, AppState>,
    room_id: RoomId,
    seq: Seq,
    text: String,
) -> CommandResult<()> {
    Ok(state.client().await?.edit(room_id, seq, &text).await?)
}

#[tauri::command]
pub async fn delete_message(
    state: State<'_, AppState>,
    room_id: RoomId,
    seq: Seq,
) -> CommandResult<()> {
    Ok(state.client().await?.delete(room_id, seq).await?)
}

#[tauri::command]
pub async fn search(state: State<'_, AppState>, query: String) -> CommandResult<Vec<Message>> {
    Ok(state.client().await?.search(&query).await?)
}

#[tauri::command]
pub async fn mark_read(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<()> {
    Ok(state.client().await?.mark_read(room_id).await?)
}

#[tauri::command]
pub async fn typing(
    state: State<'_, AppState>,
    room_id: RoomId,
    typing: bool,
) -> CommandResult<()> {
    Ok(state.client().await?.set_typing(room_id, typing).await?)
}

#[tauri::command]
pub async fn devices() -> parlor_media::devices::Devices {
    // Device enumeration may block (it talks to the sound server).
    tokio::task::spawn_blocking(parlor_media::devices::devices)
        .await
        .unwrap_or_default()
}

#[derive(Serialize)]
pub struct CallStatus {
    room_id: RoomId,
    /// Whether a microphone / camera is sending (false when none could be opened).
    microphone: bool,
    camera: bool,
    /// Who was in the call when we joined, ourselves included.
    participants: Vec<UserId>,
}

/// Starts or joins a room's call (also how an incoming call is accepted), with the devices
/// from the settings. A device that cannot be opened leaves the call without that medium.
#[tauri::command]
pub async fn join_call(
    app: AppHandle,
    state: State<'_, AppState>,
    room_id: RoomId,
) -> CommandResult<CallStatus> {
    let client = state.client().await?;
    state.end_call().await;
    let settings = state.settings();
    let hub = state.hub.clone();
    let (camera_choice, microphone_choice) = (settings.camera.clone(), settings.microphone.clone());
    let voice = state.voice.clone();
    let (video, audio) = blocking(move || {
        let video = media::open_camera(camera_choice.as_deref())
            .map_err(|e| tracing::info!("no camera for the call: {e}"))
            .ok();
        let audio = media::open_microphone(microphone_choice.as_deref(), &voice)
            .map_err(|e| tracing::info!("no microphone for the call: {e}"))
            .ok();
        Ok((video, audio))
    })
    .await?;
    let sink = AppSink::new(
        state.hub.clone(),
        settings.speaker.as_deref(),
        state.voice.clone(),
    );
    let (microphone, camera) = (audio.is_some(), video.is_some());
    let options = CallOptions {
        video: video.map(|v| media::video_once(v, hub)),
        audio: audio.map(media::audio_once),
        rtc: parlor_rtc::RtcConfig::default(),
        sink: Some(sink.clone()),
        // The window shows what arrives; nothing reads test stamps or tones from it.
        analyze: false,
        devices: Some(Arc::new(ChosenDevices { app: app.clone() })),
    };
    let handle = client.join_call(room_id, options).await?;
    let status = CallStatus {
        room_id,
        microphone,
        camera,
        participants: handle
            .joined()
            .participants
            .iter()
            .map(|p| p.user_id)
            .collect(),
    };
    state.keep_call(&app, handle, room_id, sink).await;
    Ok(status)
}

#[tauri::command]
pub async fn decline_call(state: State<'_, AppState>, room_id: RoomId) -> CommandResult<()> {
    Ok(state.client().await?.decline_call(room_id).await?)
}

#[tauri::command]
pub async fn leave_call(state: State<'_, AppState>) -> CommandResult<()> {
    state.end_call().await;
    Ok(())
}

/// Runs device work off the async threads (device APIs block on the sound server or driver).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, parlor_media::MediaError> + Send + 'static,
) -> CommandResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CommandError::new("internal", e.to_string()))?
        .map_err(|e| CommandError::new("media", e.to_string()))
}

/// The running call's handle, or `call_ended`.
async fn call_handle(state: &AppState) -> CommandResult<std::sync::Arc<CallHandle>> {
    state
        .call
        .lock()
        .await
        .as_ref()
        .map(|c| c.handle.clone())
        .ok_or_else(|| CommandError::new("call_ended", "not in a call"))
}

/// The devices chosen in the settings, opened when the call asks for one: turning on a
/// microphone or camera the call started without, or a device picked mid-call.
struct ChosenDevices {
    app: AppHandle,
}

impl DeviceOpener for ChosenDevices {
    fn microphone(&self) -> Result<Box<dyn AudioSource>, parlor_media::MediaError> {
        let state = self.app.state::<AppState>();
        let choice = state.settings().microphone;
        media::open_microphone(choice.as_deref(), &state.voice)
    }

    fn camera(&self) -> Result<Box<dyn VideoSource>, parlor_media::MediaError> {
        let state = self.app.state::<AppState>();
        let choice = state.settings().camera;
        let camera = media::open_camera(choice.as_deref())?;
        Ok(media::with_preview(camera, state.hub.clone()))
    }
}

/// Mute and unmute (unmuting a call that had no microphone opens the chosen one: the call
/// machine decides).
#[tauri::command]
pub async fn set_microphone(state: State<'_, AppState>, enabled: bool) -> CommandResult<()> {
    let handle = call_handle(&state).await?;
    Ok(handle.set_sending(MediaKind::Audio, enabled).await?)
}

/// Camera off stops sending; on again resumes, or opens the chosen camera if the call had
/// none.
#[tauri::command]
pub async fn set_camera(state: State<'_, AppState>, enabled: bool) -> CommandResult<()> {
    let handle = call_handle(&state).await?;
    Ok(handle.set_sending(MediaKind::Video, enabled).await?)
}

/// Chooses a device (saved in the settings) and, during a call, switches to it at once.
#[tauri::command]
pub async fn use_device(
    state: State<'_, AppState>,
    kind: String,
    id: Option<String>,
) -> CommandResult<()> {
    state.update_settings(|s| match kind.as_str() {
        "microphone" => s.microphone = id.clone(),
        "speaker" => s.speaker = id.clone(),
        "camera" => s.camera = id.clone(),
        _ => {}
    })?;
    let Ok(handle) = call_handle(&state).await else {
        return Ok(());
    };
    match kind.as_str() {
        "camera" => handle.switch_device(MediaKind::Video).await?,
        "microphone" => handle.switch_device(MediaKind::Audio).await?,
        "speaker" => {
            let sink = state.call.lock().await.as_ref().map(|c| c.sink.clone());
            if let Some(sink) = sink {
                blocking(move || {
                    sink.use_speaker(id.as_deref());
                    Ok(())
                })
                .await?;
            }
        }
        other => {
            return Err(CommandError::new(
                "invalid",
                format!("no device kind {other}"),
            ))
        }
    }
    Ok(())
}

/// One participant's link as the call view's badge shows it: counters the UI turns into a
/// loss rate per poll, and the rates of the last interval.
#[derive(Serialize)]
pub struct LinkQuality {
    user_id: UserId,
    rtt_ms: Option<f64>,
    packets_lost: i64,
    packets_received: u64,
    jitter_ms: Option<f64>,
    /// All media received from them, bits per second over the last interval.
    received_bps: f64,
    /// Their video as it arrives: size and frames per second over the last interval.
    received_video: Option<VideoFigures>,
    freeze_count: u64,
    /// Our video as sent to them.
    sent_video: Option<VideoFigures>,
    /// What the congestion controller finds room for towards them, bits per second.
    available_bps: Option<f64>,
    /// Why our picture to them is reduced: none, bandwidth or cpu.
    limitation: parlor_rtc::QualityLimitation,
}

#[derive(Serialize)]
pub struct VideoFigures {
    width: u32,
    height: u32,
    fps: f64,
}

#[tauri::command]
pub async fn call_quality(state: State<'_, AppState>) -> CommandResult<Vec<LinkQuality>> {
    let stats = call_handle(&state).await?.stats().await?;
    Ok(stats
        .into_iter()
        .map(|(user_id, s)| {
            let inbound_video = s.inbound.iter().find(|t| t.kind == "video");
            let outbound_video = s.outbound.iter().find(|t| t.kind == "video");
            LinkQuality {
                user_id,
                rtt_ms: s.selected_pair.as_ref().and_then(|p| p.round_trip_time_ms),
                packets_lost: s.inbound.iter().map(|t| t.packets_lost.max(0)).sum(),
                packets_received: s.inbound.iter().map(|t| t.packets_received).sum(),
                jitter_ms: s.inbound.iter().map(|t| t.jitter_ms).reduce(f64::max),
                received_bps: s.inbound.iter().map(|t| t.bitrate_bps).sum(),
                received_video: inbound_video.map(|t| VideoFigures {
                    width: t.frame_width,
                    height: t.frame_height,
                    fps: t.frames_per_second,
                }),
                freeze_count: inbound_video.map_or(0, |t| t.freeze_count),
                sent_video: outbound_video.map(|t| VideoFigures {
                    width: t.frame_width,
                    height: t.frame_height,
                    fps: t.frames_per_second,
                }),
                available_bps: s.estimate.map(|e| f64::from(e.target_bps)),
                limitation: outbound_video.map_or(parlor_rtc::QualityLimitation::None, |t| {
                    t.quality_limitation_reason
                }),
            }
        })
        .collect())
}

#[derive(Serialize)]
pub struct VideoEndpoint {
    url: String,
}

#[tauri::command]
pub fn video_endpoint(state: State<'_, AppState>) -> VideoEndpoint {
    VideoEndpoint {
        url: state.video.url(),
    }
}
