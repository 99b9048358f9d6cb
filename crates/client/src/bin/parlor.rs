//! `parlor`: the command-line client.
//!
//!   parlor --server ws://HOST:PORT/ws [--data-dir DIR] [--json] <command>
//!
//! The session (server, token, user) is kept in `<data-dir>/session.json` (mode 0600) and the
//! local copy of rooms and messages in `<data-dir>/<user id>.db`. Exit codes: 0 done, 1 refused
//! by the server (the message says why), 2 bad usage, 3 cannot reach the server (a `send` is
//! then queued in the outbox and goes out with the next command that connects), 4 the server's
//! TLS certificate is not trusted (give its CA with `--ca-file`).
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use parlor_client::call_session::{AudioMaker, CallEvent, EndReason, VideoMaker};
use parlor_client::connection::{ConnectionEvent, Credentials};
use parlor_client::reconnect::ReconnectPolicy;
use parlor_client::recorder::Recorder;
use parlor_client::store::Store;
use parlor_client::{outbox, Client, ClientError, Connection, ServerEndpoint, TlsError};
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_protocol::{Reply, Request, User};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "parlor", version, about = "Parlor's command-line client")]
struct Cli {
    /// Signaling server, e.g. ws://127.0.0.1:7700/ws (remembered after login).
    #[arg(long, env = "PARLOR_SERVER", global = true)]
    server: Option<String>,
    /// Extra CA certificates (PEM) to trust for a wss:// server, beside the system's.
    #[arg(long, env = "PARLOR_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Where the session and the local store live.
    #[arg(long, env = "PARLOR_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Machine-readable output: one JSON value per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account (the password comes from PARLOR_PASSWORD or --password).
    Register {
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, env = "PARLOR_PASSWORD", hide_env_values = true)]
        password: String,
        /// The invite code, for a server whose registration needs one. Codes are URL-safe
        /// base64, so one in 64 starts with '-': it is still taken as the value.
        #[arg(
            long,
            env = "PARLOR_INVITE",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        invite: Option<String>,
    },
    /// Log in and remember the session.
    Login {
        username: String,
        #[arg(long, env = "PARLOR_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// End the session on the server and forget it here.
    Logout,
    /// Your rooms, with unread counts.
    Rooms,
    CreateRoom {
        name: String,
        #[arg(long)]
        private: bool,
    },
    Join {
        room_id: i64,
    },
    /// Make a guest link to a room you own: someone without an account opens it in a browser
    /// (the server's web app) and joins that room only.
    GuestLink {
        room_id: i64,
        /// Hours until it expires (1 to 720). [default: 24]
        #[arg(long)]
        hours: Option<u32>,
        /// How many guests it lets in (1 to 1000). [default: any number]
        #[arg(long)]
        uses: Option<u32>,
    },
    /// A room's guest links (you own the room).
    GuestLinks {
        room_id: i64,
    },
    /// End a guest link; the guests who came through it are signed out.
    RevokeGuestLink {
        room_id: i64,
        invite_id: i64,
    },
    /// Send a message (queued and sent later if the server cannot be reached).
    Send {
        room_id: i64,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Catch up, then show the latest messages.
    History {
        room_id: i64,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Search the local copy of your messages.
    Search {
        query: Vec<String>,
    },
    /// Join a room's call (mesh) for a while, sending the chosen media; prints what arrived.
    Call {
        room_id: i64,
        /// test-pattern | camera[:ID] | file:PATH.y4m | none
        #[arg(long, default_value = "test-pattern")]
        video: String,
        /// tone:HZ | test-tone | mic[:ID] | file:PATH.wav | none
        #[arg(long, default_value = "tone:440")]
        audio: String,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Local address for media (e.g. 127.0.0.1); default: all interfaces.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Write the call's report (received media and stats per participant) here.
        #[arg(long)]
        stats_json: Option<PathBuf>,
        /// Use only TURN relays (hides your addresses from the other participants).
        #[arg(long)]
        relay_only: bool,
        /// Record the video of the first participant heard to this Y4M file.
        #[arg(long)]
        record_video: Option<PathBuf>,
        /// Record the audio of the first participant heard to this WAV file.
        #[arg(long)]
        record_audio: Option<PathBuf>,
        /// Send the microphone as it is, without noise suppression and gain control (there is
        /// no echo to cancel: `parlor call` plays nothing).
        #[arg(long)]
        raw_microphone: bool,
    },
    /// List microphones, speakers and cameras (no server needed).
    Devices,
    /// Print incoming events as JSON lines.
    Tail {
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long = "for")]
        seconds: Option<f64>,
    },
}

#[derive(Serialize, Deserialize)]
struct Session {
    server: String,
    token: String,
    user: User,
}

struct Failure {
    code: u8,
    message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match e {
            ClientError::Refused(_) => 1,
            ClientError::Disconnected | ClientError::Timeout | ClientError::GaveUp(_) => 3,
            ClientError::Tls(TlsError::NotTrusted(_)) => 4,
            ClientError::Tls(_) | ClientError::Invalid(_) => 2,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(|| {
        dirs::data_dir()
            .map(|d| d.join("parlor").join("cli"))
            .unwrap_or_else(|| PathBuf::from(".parlor"))
    })
}

fn session_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

fn load_session(dir: &Path) -> Result<Session, Failure> {
    let text = std::fs::read_to_string(session_path(dir))
        .map_err(|_| fail(2, "not logged in: run `parlor login` first"))?;
    serde_json::from_str(&text).map_err(|e| fail(2, format!("damaged session file: {e}")))
}

fn save_session(dir: &Path, session: &Session) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| fail(1, e.to_string()))?;
    let path = session_path(dir);
    let text = serde_json::to_string_pretty(session).map_err(|e| fail(1, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| fail(1, e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// A CLI does not wait long for a server that is down.
fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        max_attempts: Some(2),
        base: Duration::from_millis(200),
        max_delay: Duration::from_millis(500),
        ..ReconnectPolicy::default()
    }
}

async fn connect(server: &ServerEndpoint, credentials: Credentials) -> Result<Connection, Failure> {
    let connection = Connection::open(server, credentials, policy());
    match connection.wait_connected(Duration::from_secs(10)).await {
        Ok(()) => Ok(connection),
        Err(e) => Err(unreachable_server(server, e)),
    }
}

/// A failed connect: an untrusted certificate says so; anything else is "cannot reach".
fn unreachable_server(server: &ServerEndpoint, e: ClientError) -> Failure {
    match e {
        e @ ClientError::Tls(_) => {
            let mut failure = Failure::from(e);
            failure.message = format!("{}: {}", server.url(), failure.message);
            failure
        }
        _ => fail(
            3,
            format!(
                "cannot reach {} (or the session is no longer valid)",
                server.url()
            ),
        ),
    }
}

fn endpoint(cli: &Cli, url: &str) -> Result<ServerEndpoint, Failure> {
    ServerEndpoint::new(url, cli.ca_file.as_deref()).map_err(Failure::from)
}

fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let dir = data_dir(&cli);
    let json = cli.json;
    let credentials = match &cli.command {
        Command::Register {
            username,
            display_name,
            password,
            invite,
        } => Some(Credentials::Register {
            username: username.clone(),
            display_name: display_name.clone().unwrap_or_else(|| username.clone()),
            password: password.clone(),
            invite: invite.clone(),
        }),
        Command::Login { username, password } => Some(Credentials::Login {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    if let Command::Devices = cli.command {
        let value = serde_json::to_value(parlor_media::devices::devices())
            .map_err(|e| fail(1, format!("listing devices: {e}")))?;
        print(json, value.clone(), || {
            let mut lines = Vec::new();
            for (kind, key) in [
                ("microphone", "microphones"),
                ("speaker", "speakers"),
                ("camera", "cameras"),
            ] {
                for d in value[key].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "{kind}: {}  [{}]",
                        d["name"].as_str().unwrap_or(""),
                        d["id"].as_str().unwrap_or("")
                    ));
                }
            }
            if lines.is_empty() {
                "no devices".to_owned()
            } else {
                lines.join("\n")
            }
        });
        return Ok(());
    }
    if let Some(credentials) = credentials {
        let server = cli
            .server
            .clone()
            .ok_or_else(|| fail(2, "--server is required"))?;
        let endpoint = endpoint(&cli, &server)?;
        let connection = Connection::open(&endpoint, credentials, policy());
        // Credentials are checked on the first connect; wait for the verdict.
        let user = loop {
            match tokio::time::timeout(Duration::from_secs(10), connection.next_event()).await {
                Ok(Some(ConnectionEvent::Connected { user, .. })) => break user,
                Ok(Some(ConnectionEvent::Refused(error))) => {
                    return Err(fail(1, format!("refused: {error}")))
                }
                Ok(Some(ConnectionEvent::CertificateNotTrusted { reason })) => {
                    let e = ClientError::Tls(TlsError::NotTrusted(reason));
                    return Err(unreachable_server(&endpoint, e));
                }
                Ok(Some(_)) => continue,
                _ => return Err(fail(3, format!("cannot reach {server}"))),
            }
        };
        let token = connection
            .token()
            .ok_or_else(|| fail(1, "no session token"))?;
        save_session(
            &dir,
            &Session {
                server,
                token,
                user: user.clone(),
            },
        )?;
        print(json, serde_json::json!({ "user": user }), || {
            format!("logged in as {} ({})", user.username, user.id)
        });
        connection.close().await;
        return Ok(());
    }
    let session = load_session(&dir)?;
    let server = endpoint(
        &cli,
        &cli.server.clone().unwrap_or_else(|| session.server.clone()),
    )?;
    if let Command::Call { .. } = &cli.command {
        return call(&cli, &server, &session, &dir).await;
    }
    let store = Store::open(&dir.join(format!("{}.db", session.user.id)))
        .await
        .map_err(Failure::from)?;
    let result = command(&cli, &server, &session, &store, &dir).await;
    store.close().await;
    result
}

async fn command(
    cli: &Cli,
    server: &ServerEndpoint,
    session: &Session,
    store: &Store,
    dir: &Path,
) -> Result<(), Failure> {
    let json = cli.json;
    // A send works offline: queue first, then try to deliver everything queued.
    if let Command::Send { room_id, text } = &cli.command {
        let client_id = store
            .outbox_add(*room_id, &text.join(" "))
            .await
            .map_err(Failure::from)?;
        let connection = match connect(server, Credentials::Token(session.token.clone())).await {
            Ok(c) => c,
            Err(e) => {
                print(json, serde_json::json!({ "queued": client_id }), || {
                    "queued: the server cannot be reached; it will be sent next time".into()
                });
                return Err(e);
            }
        };
        let result = outbox::deliver(&connection, store).await;
        connection.close().await;
        result.map_err(Failure::from)?;
        let left = store.outbox().await.map_err(Failure::from)?;
        if let Some(failed) = left.iter().find(|m| m.client_id == client_id) {
            return Err(fail(
                1,
                failed
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "refused".into()),
            ));
        }
        let sent = store
            .history(*room_id, None, 200)
            .await
            .map_err(Failure::from)?
            .into_iter()
            .find(|m| m.client_id == client_id);
        print(json, serde_json::json!({ "sent": sent }), || {
            format!("sent (#{})", sent.map(|m| m.seq).unwrap_or(0))
        });
        return Ok(());
    }
    let connection = connect(server, Credentials::Token(session.token.clone())).await?;
    // Anything left in the outbox from an earlier offline `send` goes out now.
    let _ = outbox::deliver(&connection, store).await;
    let result = match &cli.command {
        Command::Logout => {
            let r = connection.request(Request::Logout).await;
            let _ = std::fs::remove_file(session_path(dir));
            r.map(|_| {
                print(json, serde_json::json!({ "logged_out": true }), || {
                    "logged out".into()
                })
            })
            .map_err(Failure::from)
        }
        Command::Rooms => match connection
            .request(Request::ListRooms)
            .await
            .map_err(Failure::from)?
        {
            Reply::Rooms { rooms } => {
                for r in &rooms {
                    store.upsert_room(&r.room).await.map_err(Failure::from)?;
                }
                if json {
                    println!("{}", serde_json::json!({ "rooms": rooms }));
                } else {
                    for r in rooms {
                        println!("{:>5}  {}  ({} unread)", r.room.id, r.room.name, r.unread);
                    }
                }
                Ok(())
            }
            other => Err(fail(1, format!("unexpected reply {other:?}"))),
        },
        Command::CreateRoom { name, private } => {
            match connection
                .request(Request::CreateRoom {
                    name: name.clone(),
                    public: !private,
                })
                .await
                .map_err(Failure::from)?
            {
                Reply::Room { room } => {
                    store.upsert_room(&room).await.map_err(Failure::from)?;
                    print(json, serde_json::json!({ "room": room }), || {
                        format!("created room {} ({})", room.name, room.id)
                    });
                    Ok(())
                }
                other => Err(fail(1, format!("unexpected reply {other:?}"))),
            }
        }
        Command::GuestLink {
            room_id,
            hours,
            uses,
        } => match connection
            .request(Request::CreateRoomInvite {
                room_id: *room_id,
                uses: *uses,
                expires_in_hours: *hours,
            })
            .await
            .map_err(Failure::from)?
        {
            Reply::RoomInvite { invite } => {
                let code = invite.code.clone().unwrap_or_default();
                let url = parlor_client::endpoint::web_url(server.url(), &format!("/join/{code}"));
                print(
                    json,
                    serde_json::json!({ "invite": invite, "url": url }),
                    || url.clone().unwrap_or(code.clone()),
                );
                Ok(())
            }
            other => Err(fail(1, format!("unexpected reply {other:?}"))),
        },
        Command::GuestLinks { room_id } => match connection
            .request(Request::ListRoomInvites { room_id: *room_id })
            .await
            .map_err(Failure::from)?
        {
            Reply::RoomInvites { invites } => {
                if json {
                    println!("{}", serde_json::json!({ "invites": invites }));
                } else {
                    for i in invites {
                        let state = if i.revoked { "revoked" } else { "open" };
                        let uses = i.uses_left.map_or("any".to_owned(), |n| n.to_string());
                        println!("{:>5}  {state}  uses left: {uses}", i.id);
                    }
                }
                Ok(())
            }
            other => Err(fail(1, format!("unexpected reply {other:?}"))),
        },
        Command::RevokeGuestLink { room_id, invite_id } => match connection
            .request(Request::RevokeRoomInvite {
                room_id: *room_id,
                invite_id: *invite_id,
            })
            .await
            .map_err(Failure::from)?
        {
            Reply::RoomInvite { invite } => {
                print(json, serde_json::json!({ "invite": invite }), || {
                    format!("revoked guest link {}", invite.id)
                });
                Ok(())
            }
            other => Err(fail(1, format!("unexpected reply {other:?}"))),
        },
        Command::Join { room_id } => match connection
            .request(Request::JoinRoom { room_id: *room_id })
            .await
            .map_err(Failure::from)?
        {
            Reply::Room { room } => {
                store.upsert_room(&room).await.map_err(Failure::from)?;
                print(json, serde_json::json!({ "room": room }), || {
                    format!("joined {} ({})", room.name, room.id)
                });
                Ok(())
            }
            other => Err(fail(1, format!("unexpected reply {other:?}"))),
        },
        Command::History { room_id, limit } => {
            outbox::sync_room(&connection, store, *room_id)
                .await
                .map_err(Failure::from)?;
            let messages = store
                .history(*room_id, None, *limit)
                .await
                .map_err(Failure::from)?;
            if json {
                for m in messages {
                    println!("{}", serde_json::json!(m));
                }
            } else {
                for m in messages {
                    let text = if m.deleted {
                        "(deleted)".to_owned()
                    } else {
                        m.text
                    };
                    println!("#{} user {}: {}", m.seq, m.author_id, text);
                }
            }
            Ok(())
        }
        Command::Search { query } => {
            for room in store.room_ids().await.map_err(Failure::from)? {
                let _ = outbox::sync_room(&connection, store, room).await;
            }
            let found = store
                .search(&query.join(" "))
                .await
                .map_err(Failure::from)?;
            if json {
                for m in found {
                    println!("{}", serde_json::json!(m));
                }
            } else {
                for m in found {
                    println!("room {} #{}: {}", m.room_id, m.seq, m.text);
                }
            }
            Ok(())
        }
        Command::Tail { seconds } => {
            let until = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
            loop {
                let next = match until {
                    Some(t) => {
                        match tokio::time::timeout_at(t.into(), connection.next_event()).await {
                            Ok(event) => event,
                            Err(_) => break,
                        }
                    }
                    None => connection.next_event().await,
                };
                match next {
                    Some(ConnectionEvent::Server(event)) => {
                        if let parlor_protocol::Event::Timeline { entry } = &event {
                            let _ = store.apply(entry).await;
                        }
                        println!("{}", serde_json::to_string(&event).unwrap_or_default());
                    }
                    // Said once per (re)connection, so a script knows from when nothing is
                    // missed.
                    Some(ConnectionEvent::Connected { .. }) => {
                        println!("{}", serde_json::json!({ "type": "listening" }));
                    }
                    Some(ConnectionEvent::Refused(error)) => {
                        return Err(fail(1, format!("refused: {error}")))
                    }
                    Some(ConnectionEvent::Dropped) => {}
                    Some(ConnectionEvent::CertificateNotTrusted { reason }) => {
                        let e = ClientError::Tls(TlsError::NotTrusted(reason));
                        return Err(unreachable_server(server, e));
                    }
                    None => break,
                }
            }
            Ok(())
        }
        Command::Register { .. }
        | Command::Login { .. }
        | Command::Send { .. }
        | Command::Call { .. }
        | Command::Devices => {
            unreachable!("handled above")
        }
    };
    connection.close().await;
    result
}

/// `parlor call`: joins through the full client (which routes the call's signaling), stays for
/// `--duration` or until the call ends, then reports what arrived from each participant.
async fn call(
    cli: &Cli,
    server: &ServerEndpoint,
    session: &Session,
    dir: &Path,
) -> Result<(), Failure> {
    let Command::Call {
        room_id,
        video,
        audio,
        duration,
        bind,
        stats_json,
        relay_only,
        record_video,
        record_audio,
        raw_microphone,
    } = &cli.command
    else {
        unreachable!("only called for `call`")
    };
    let mut options = call_options(video, audio, *bind, *raw_microphone)?;
    if *relay_only {
        options.rtc.ice_transport_policy = parlor_rtc::IceTransportPolicy::Relay;
    }
    let recorder = Arc::new(Recorder::new(
        record_video.as_deref(),
        record_audio.as_deref(),
    ));
    options.sink = Some(recorder.clone());
    let client = Client::connect(
        server,
        dir,
        Credentials::Token(session.token.clone()),
        policy(),
    )
    .await
    .map_err(|e| match e {
        ClientError::Disconnected | ClientError::Timeout | ClientError::Tls(_) => {
            unreachable_server(server, e)
        }
        e => Failure::from(e),
    })?;
    let result = async {
        let handle = client
            .join_call(*room_id, options)
            .await
            .map_err(Failure::from)?;
        let until = tokio::time::Instant::now() + Duration::from_secs_f64(*duration);
        let mut outcome = CallOutcome::default();
        loop {
            let event = match tokio::time::timeout_at(until, handle.next_event()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(event)) => event,
            };
            // With --json each event is a line as it happens (a script can wait for a link
            // to connect); the report is the last line.
            if cli.json {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
            }
            // A failed step is already on stderr: the library logs it as a warning.
            outcome.record(&event);
            if matches!(event, CallEvent::Ended { .. }) {
                break;
            }
        }
        Ok::<_, Failure>((handle.leave().await.map_err(Failure::from)?, outcome))
    }
    .await;
    client.close().await;
    let (report, outcome) = result?;
    let recorded = recorder.finish().map_err(|e| fail(1, e.to_string()))?;
    let mut value = serde_json::to_value(&report).map_err(|e| fail(1, e.to_string()))?;
    if record_video.is_some() || record_audio.is_some() {
        value["recorded"] = serde_json::to_value(&recorded).unwrap_or_default();
    }
    if let Some(path) = stats_json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        )
        .map_err(|e| fail(1, e.to_string()))?;
    }
    print(cli.json, value, || {
        report
            .peers
            .iter()
            .map(|(user, r)| {
                format!(
                    "user {user}: {} video frames, {} audio frames ({:?} Hz)",
                    r.video_frames, r.audio_frames, r.audio_hz
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    match (outcome.first_failure, outcome.ended) {
        (Some(error), _) if !outcome.connected => Err(fail(
            1,
            format!("the call failed, no link connected: {error}"),
        )),
        (_, Some(reason)) if reason.is_failure() => {
            Err(fail(1, format!("the call ended: {}", reason.describe())))
        }
        _ => Ok(()),
    }
}

/// What the CLI needs to know of a call's events for its exit status.
#[derive(Default)]
struct CallOutcome {
    /// Some link reached `connected`.
    connected: bool,
    first_failure: Option<String>,
    ended: Option<EndReason>,
}

impl CallOutcome {
    fn record(&mut self, event: &CallEvent) {
        match event {
            CallEvent::Link {
                state: parlor_rtc::ConnectionState::Connected,
                ..
            } => self.connected = true,
            CallEvent::Failed { error, .. } => {
                self.first_failure.get_or_insert_with(|| error.clone());
            }
            CallEvent::Ended { reason } => self.ended = Some(*reason),
            _ => {}
        }
    }
}

/// Opens the `--audio` source; a microphone with noise suppression and gain control unless
/// `raw`.
fn open_audio(
    spec: &AudioSpec,
    raw: bool,
) -> Result<Box<dyn parlor_media::AudioSource>, parlor_media::MediaError> {
    use parlor_media::voice::{VoiceProcessor, VoiceSettings};
    let source = spec.open()?;
    if raw || !spec.is_microphone() {
        return Ok(source);
    }
    let microphone = source;
    let settings = VoiceSettings {
        echo_cancellation: false,
        ..VoiceSettings::default()
    };
    Ok(Box::new(VoiceProcessor::new(settings)?.wrap(microphone)?))
}

/// Turns `--video` and `--audio` into source factories (each link's sender shares them).
fn call_options(
    video: &str,
    audio: &str,
    bind: Option<std::net::IpAddr>,
    raw_microphone: bool,
) -> Result<parlor_client::call_session::CallOptions, Failure> {
    use parlor_media::source::VideoConstraints;
    let video: Option<VideoMaker> = match video {
        "none" => None,
        text => {
            let spec: VideoSpec = text
                .parse()
                .map_err(|e| fail(2, format!("--video: {e} or none")))?;
            Some(Box::new(move || spec.open(VideoConstraints::default())))
        }
    };
    let audio: Option<AudioMaker> = match audio {
        "none" => None,
        text => {
            let spec: AudioSpec = text
                .parse()
                .map_err(|e| fail(2, format!("--audio: {e} or none")))?;
            Some(Box::new(move || open_audio(&spec, raw_microphone)))
        }
    };
    let mut rtc = parlor_rtc::RtcConfig::default();
    if let Some(ip) = bind {
        rtc.udp_addrs = vec![std::net::SocketAddr::new(ip, 0)];
        rtc.resolve_mdns = !ip.is_loopback();
    }
    Ok(parlor_client::call_session::CallOptions {
        video,
        audio,
        rtc,
        sink: None,
        // The report says which test pattern frames and which tone arrived.
        analyze: true,
        // The CLI's call runs unattended: nothing asks for another device mid-call.
        devices: None,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    // Warnings from the library (a call step that failed, a link given up) reach the terminal.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("parlor: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
