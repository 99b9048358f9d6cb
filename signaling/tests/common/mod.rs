//! Test harness: the real `parlor-server` binary on 127.0.0.1:0 with a temporary SQLite file, and
//! real WebSocket clients speaking the protocol.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_protocol::{
    decode_server_frame, encode_request, ErrorBody, ErrorCode, Event, Reply, Request, ServerFrame,
    User,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen promptly. Generous: this bounds a
/// failing test, it does not measure speed.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    child: Option<Child>,
    pub addr: String,
    pub db: PathBuf,
    args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("server.db");
        let mut server = Self::start_on(&db, "127.0.0.1:0", args).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server on an existing database (for restart tests).
    pub async fn start_on(db: &Path, listen: &str, args: &[&str]) -> TestServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parlor-server"));
        command
            .arg("--listen")
            .arg(listen)
            .arg("--database")
            .arg(db)
            .args(args)
            .env("RUST_LOG", "parlor_signaling=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn parlor-server");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("server printed nothing in time")
            .expect("read stdout")
            .expect("server exited before listening");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        TestServer {
            child: Some(child),
            addr,
            db: db.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            _dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .expect("server did not stop after SIGTERM")
            .expect("wait");
        assert!(exit.success(), "server exited with {exit}");
    }

    /// Stops the server and starts it again on the same database and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let dir = self._dir.take();
        let args: Vec<String> = self.args.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut again = Self::start_on(&self.db, &self.addr, &args).await;
        again._dir = dir;
        *self = again;
    }

    /// A plain HTTP GET on the server; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.get_with_headers(path).await;
        (status, body)
    }

    /// A plain HTTP GET on the server; returns (status, headers with lower-case names, body).
    pub async fn get_with_headers(
        &self,
        path: &str,
    ) -> (u16, std::collections::HashMap<String, String>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(&self.addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a client received that was not the reply it was waiting for.
#[derive(Debug)]
pub enum Received {
    Event(Event),
    Close(Option<u16>, String),
}

pub struct Client {
    socket: Socket,
    next_id: u64,
    pending: VecDeque<Event>,
    pub user: Option<User>,
    pub token: Option<String>,
}

impl Client {
    pub async fn connect(server: &TestServer) -> Client {
        Self::connect_url(&server.url()).await
    }

    pub async fn connect_url(url: &str) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client::from_socket(socket)
    }

    pub fn from_socket(socket: Socket) -> Client {
        Client {
            socket,
            next_id: 1,
            pending: VecDeque::new(),
            user: None,
            token: None,
        }
    }

    /// Registers `name` (password "password-<name>") and stays authenticated.
    pub async fn register(server: &TestServer, name: &str) -> Client {
        let mut client = Client::connect(server).await;
        let reply = client
            .request(Request::Register {
                username: name.into(),
                display_name: name.to_uppercase(),
                password: format!("password-{name}"),
                invite: None,
            })
            .await
            .expect("register");
        client.take_session(reply);
        client
    }

    pub async fn login(server: &TestServer, name: &str) -> Client {
        let mut client = Client::connect(server).await;
        let reply = client
            .request(Request::Login {
                username: name.into(),
                password: format!("password-{name}"),
            })
            .await
            .expect("login");
        client.take_session(reply);
        client
    }

    /// A new socket authenticated with an existing token.
    pub async fn resume(server: &TestServer, token: &str) -> Client {
        let mut client = Client::connect(server).await;
        match client
            .request(Request::Authenticate {
                token: token.into(),
            })
            .await
            .expect("authenticate")
        {
            Reply::Authenticated { user, .. } => client.user = Some(user),
            other => panic!("unexpected {other:?}"),
        }
        client.token = Some(token.into());
        client
    }

    fn take_session(&mut self, reply: Reply) {
        match reply {
            Reply::Session { user, token, .. } => {
                self.user = Some(user);
                self.token = Some(token);
            }
            other => panic!("expected a session, got {other:?}"),
        }
    }

    pub fn id(&self) -> i64 {
        self.user.as_ref().expect("authenticated").id
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends text that the server may refuse mid-write (it can close before reading it all).
    pub async fn try_send_text(&mut self, text: String) -> Result<(), String> {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    /// Sends a request and waits for its reply, keeping events that arrive meanwhile.
    pub async fn request(&mut self, request: Request) -> Result<Reply, ErrorBody> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(encode_request(Some(id), &request)).await;
        self.reply_to(id).await
    }

    pub async fn reply_to(&mut self, id: u64) -> Result<Reply, ErrorBody> {
        loop {
            match self.next_frame().await {
                ServerFrame::Reply { id: got, reply } if got == id => return Ok(reply),
                ServerFrame::Error {
                    id: Some(got),
                    error,
                } if got == id => return Err(error),
                ServerFrame::Event(event) => self.pending.push_back(event),
                other => panic!("while waiting for reply {id}: unexpected {other:?}"),
            }
        }
    }

    /// Like [`Client::request`] but the request must fail with `code`.
    pub async fn refused(&mut self, request: Request, code: ErrorCode) -> ErrorBody {
        let what = format!("{request:?}");
        match self.request(request).await {
            Err(e) => {
                assert_eq!(e.code, code, "{what}: {}", e.message);
                e
            }
            Ok(reply) => panic!("{what} should fail with {code}, got {reply:?}"),
        }
    }

    /// The next server frame of any kind.
    pub async fn next_frame(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("no frame in time")
                .expect("socket ended")
                .expect("socket error");
            match message {
                Message::Text(text) => {
                    return decode_server_frame(text.as_str()).expect("server sent a valid frame")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next frame, or the close code once the server closes.
    pub async fn next_frame_or_close(&mut self) -> Result<ServerFrame, Option<u16>> {
        loop {
            match self.socket.next().await {
                None | Some(Err(_)) => return Err(None),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Text(text))) => {
                    return Ok(decode_server_frame(text.as_str()).expect("valid frame"))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next event, waiting up to [`PATIENCE`].
    pub async fn event(&mut self) -> Event {
        if let Some(event) = self.pending.pop_front() {
            return event;
        }
        match self.next_frame().await {
            ServerFrame::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Skips events until one matches; panics if none does in time.
    pub async fn event_matching(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.event())
                .await
                .unwrap_or_else(|_| panic!("no {what} event in time"));
            if pred(&event) {
                return event;
            }
        }
    }

    /// Asserts that no event matching `pred` arrives within `wait`. A round trip (ping) at the
    /// end guarantees that everything the server sent before it has been read.
    pub async fn no_event_matching(&mut self, wait: Duration, pred: impl Fn(&Event) -> bool) {
        tokio::time::sleep(wait).await;
        self.request(Request::Ping).await.expect("ping");
        for event in self.pending.drain(..) {
            assert!(!pred(&event), "unexpected event {event:?}");
        }
    }

    /// Events received and not yet taken (for example those read by [`Client::closed`]).
    pub fn pending_events(&self) -> impl Iterator<Item = &Event> {
        self.pending.iter()
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> (Option<u16>, String) {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("socket not closed in time");
            match message {
                None => return (None, String::new()),
                Some(Err(_)) => return (None, String::new()),
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::new()),
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ServerFrame::Event(e)) = decode_server_frame(text.as_str()) {
                        self.pending.push_back(e);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .send(Message::Close(Some(
                tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                },
            )))
            .await;
    }

    /// Drops the TCP connection without a close handshake.
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// Polls `check` until it yields a value, for at most [`PATIENCE`].
pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn create_room(client: &mut Client, name: &str, public: bool) -> i64 {
    match client
        .request(Request::CreateRoom {
            name: name.into(),
            public,
        })
        .await
        .expect("create room")
    {
        Reply::Room { room } => room.id,
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn send(
    client: &mut Client,
    room: i64,
    client_id: &str,
    text: &str,
) -> parlor_protocol::Message {
    match client
        .request(Request::SendMessage {
            room_id: room,
            client_id: client_id.into(),
            text: text.into(),
        })
        .await
        .expect("send message")
    {
        Reply::MessageSent { message, .. } => message,
        other => panic!("unexpected {other:?}"),
    }
}

/// Every timeline entry of `room` after `since_seq`, page by page.
pub async fn timeline_since(
    client: &mut Client,
    room: i64,
    since_seq: i64,
) -> Vec<parlor_protocol::TimelineEntry> {
    let mut all = Vec::new();
    let mut since = since_seq;
    loop {
        let reply = client
            .request(Request::Sync {
                room_id: room,
                since_seq: since,
                limit: None,
            })
            .await
            .expect("sync");
        let Reply::Sync {
            entries, has_more, ..
        } = reply
        else {
            panic!("not a sync reply: {reply:?}")
        };
        since = entries.last().map_or(since, |e| e.seq());
        all.extend(entries);
        if !has_more {
            return all;
        }
    }
}
