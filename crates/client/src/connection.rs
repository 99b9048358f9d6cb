//! A connection to the signaling server that stays up by itself. One task owns the socket:
//! it matches replies to requests, forwards events, and when the socket drops it fails the
//! requests in flight, waits as the [`ReconnectPolicy`] says, reconnects and authenticates
//! again with the session token. A link that goes quiet is pinged and, if the ping is not
//! answered, dropped (see [`ReconnectPolicy::silence`]). Callers see the state on a watch
//! channel and a `Connected` event after every (re)connect, which is their cue to re-sync.
use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_protocol::{
    decode_server_frame, encode_request, ErrorCode, Event, Reply, Request, ServerFrame, User,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::endpoint::{self, ServerEndpoint, TlsError};
use crate::reconnect::{ReconnectPolicy, Silence};
use crate::ClientError;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The id of the ping that marks the end of the server's welcome (ids of requests on a served
/// socket start at 1).
const WELCOME_END: u64 = 0x7e1c;

/// How long one request may wait for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// The socket dropped; attempt `attempt` is next.
    Reconnecting {
        attempt: u32,
    },
    /// Closed by the caller, refused credentials, or attempts used up.
    Offline,
    /// The server's TLS certificate was refused; retrying cannot help until the user trusts
    /// its CA (or the server fixes its certificate).
    CertificateNotTrusted {
        reason: String,
    },
}

impl ConnectionState {
    /// No further attempt will be made.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ConnectionState::Offline | ConnectionState::CertificateNotTrusted { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    /// Authenticated; `resumed` is true after a reconnect. `welcome` is everything the server
    /// pushed on authentication (`call_resumed`, `call_ongoing`, presence), complete: the
    /// reply to a request sent right after authenticating came after it.
    Connected {
        user: User,
        resumed: bool,
        welcome: Vec<Event>,
    },
    /// The socket dropped; the connection is trying again.
    Dropped,
    Server(Event),
    /// The server refused the credentials; the connection stops.
    Refused(parlor_protocol::ErrorBody),
    /// The server's certificate was refused; the connection stops.
    CertificateNotTrusted {
        reason: String,
    },
}

/// How to authenticate a socket.
#[derive(Debug, Clone)]
pub enum Credentials {
    Token(String),
    Login {
        username: String,
        password: String,
    },
    Register {
        username: String,
        display_name: String,
        password: String,
        /// For a server whose registration needs an invite code.
        invite: Option<String>,
    },
}

enum Command {
    Request(Request, oneshot::Sender<Result<Reply, ClientError>>),
    /// Stop waiting between attempts and try now (the user asked, or the network changed).
    RetryNow,
    Close,
}

pub struct Connection {
    commands: mpsc::Sender<Command>,
    events: Mutex<mpsc::UnboundedReceiver<ConnectionEvent>>,
    state: watch::Receiver<ConnectionState>,
    token: watch::Receiver<Option<String>>,
}

impl Connection {
    /// Starts connecting in the background; use [`Connection::wait_connected`] to wait.
    pub fn open(
        server: &ServerEndpoint,
        credentials: Credentials,
        policy: ReconnectPolicy,
    ) -> Connection {
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let (token_tx, token_rx) = watch::channel(match &credentials {
            Credentials::Token(t) => Some(t.clone()),
            _ => None,
        });
        let actor = Actor {
            server: server.clone(),
            credentials,
            policy,
            commands: commands_rx,
            events: events_tx,
            state: state_tx,
            token: token_tx,
        };
        tokio::spawn(actor.run());
        Connection {
            commands: commands_tx,
            events: Mutex::new(events_rx),
            state: state_rx,
            token: token_rx,
        }
    }

    pub fn state(&self) -> ConnectionState {
        self.state.borrow().clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// The session token once known (after login or register, or the one given).
    pub fn token(&self) -> Option<String> {
        self.token.borrow().clone()
    }

    /// Waits until connected; fails if the connection goes offline first.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut state = self.state.clone();
        let done = state.wait_for(|s| *s == ConnectionState::Connected || s.is_final());
        let state = tokio::time::timeout(timeout, done)
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|_| ClientError::Disconnected)?;
        match &*state {
            ConnectionState::Connected => Ok(()),
            ConnectionState::CertificateNotTrusted { reason } => {
                Err(TlsError::NotTrusted(reason.clone()).into())
            }
            _ => Err(ClientError::Disconnected),
        }
    }

    /// The next event; `None` once the connection is closed for good.
    pub async fn next_event(&self) -> Option<ConnectionEvent> {
        self.events.lock().await.recv().await
    }

    /// Sends a request and waits for its reply. Fails fast with `Disconnected` while offline.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        self.queue(request).await.await
    }

    /// Queues a request now and returns the wait for its reply: requests queued one after
    /// another go out in that order, however their replies are awaited (an answer must not
    /// be overtaken by the offer that follows it).
    pub async fn queue(
        &self,
        request: Request,
    ) -> impl std::future::Future<Output = Result<Reply, ClientError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.commands.send(Command::Request(request, tx)).await;
        async move {
            queued.map_err(|_| ClientError::Disconnected)?;
            match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ClientError::Disconnected),
                Err(_) => Err(ClientError::Timeout),
            }
        }
    }

    /// While waiting to reconnect, tries at once instead; otherwise does nothing.
    pub async fn retry_now(&self) {
        let _ = self.commands.send(Command::RetryNow).await;
    }

    /// Closes the socket and stops reconnecting.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

struct Actor {
    server: ServerEndpoint,
    credentials: Credentials,
    policy: ReconnectPolicy,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    state: watch::Sender<ConnectionState>,
    token: watch::Sender<Option<String>>,
}

enum Ended {
    Closed,
    Dropped,
}

impl Actor {
    async fn run(mut self) {
        let mut attempt = 0u32;
        let mut connected_before = false;
        loop {
            match self.connect().await {
                Ok((socket, user, welcome)) => {
                    attempt = 0;
                    self.state.send_replace(ConnectionState::Connected);
                    let _ = self.events.send(ConnectionEvent::Connected {
                        user,
                        resumed: connected_before,
                        welcome,
                    });
                    connected_before = true;
                    if let Ended::Closed = self.serve(socket).await {
                        break;
                    }
                    let _ = self.events.send(ConnectionEvent::Dropped);
                }
                // A signed-in socket being throttled waits as long as it is told, then tries
                // its token again; a typed password is not tried again unasked.
                Err(ClientError::Refused(e))
                    if e.code == ErrorCode::RateLimited && self.token.borrow().is_some() =>
                {
                    let wait = Duration::from_millis(e.retry_after_ms.unwrap_or(1000));
                    tracing::debug!("authentication throttled for {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(ClientError::Refused(e))
                    if matches!(
                        e.code,
                        ErrorCode::Unauthorized
                            | ErrorCode::Conflict
                            | ErrorCode::Invalid
                            | ErrorCode::Forbidden
                            | ErrorCode::TooLarge
                            | ErrorCode::RateLimited
                    ) =>
                {
                    tracing::debug!("credentials refused: {e}");
                    let _ = self.events.send(ConnectionEvent::Refused(e));
                    break;
                }
                Err(ClientError::Tls(TlsError::NotTrusted(reason))) => {
                    tracing::warn!("{}: certificate not trusted: {reason}", self.server.url());
                    let _ = self.events.send(ConnectionEvent::CertificateNotTrusted {
                        reason: reason.clone(),
                    });
                    self.state
                        .send_replace(ConnectionState::CertificateNotTrusted { reason });
                    return self.fail_remaining().await;
                }
                Err(e) => tracing::debug!("connecting failed: {e}"),
            }
            attempt += 1;
            let Some(delay) = self.policy.delay(attempt, rand::random::<f64>()) else {
                tracing::warn!("giving up after {} attempts", attempt - 1);
                break;
            };
            tracing::debug!("attempt {attempt} in {delay:?}");
            self.state
                .send_replace(ConnectionState::Reconnecting { attempt });
            if self.wait_offline(delay).await {
                break;
            }
        }
        self.state.send_replace(ConnectionState::Offline);
        self.fail_remaining().await;
    }

    /// Anyone still asking gets a prompt answer.
    async fn fail_remaining(mut self) {
        self.commands.close();
        while let Some(command) = self.commands.recv().await {
            if let Command::Request(_, reply) = command {
                let _ = reply.send(Err(ClientError::Disconnected));
            }
        }
    }

    /// Sleeps `delay` (or until asked to retry now) while failing requests at once (nothing
    /// can be sent). True if closed.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return false,
                command = self.commands.recv() => match command {
                    Some(Command::Request(_, reply)) => { let _ = reply.send(Err(ClientError::Disconnected)); }
                    Some(Command::RetryNow) => return false,
                    Some(Command::Close) | None => return true,
                },
            }
        }
    }

    /// Opens a socket and authenticates it; returns it with the user and the events the
    /// server pushed on authentication.
    async fn connect(&mut self) -> Result<(Socket, User, Vec<Event>), ClientError> {
        // A server that accepts TCP but never answers (or a black-holed route) must not hold
        // the attempt for the operating system's connect timeout, minutes on some systems.
        let (mut socket, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(
                self.server.url(),
                None,
                false,
                Some(self.server.connector()),
            ),
        )
        .await
        .map_err(|_| ClientError::Timeout)?
        .map_err(|e| match endpoint::not_trusted(&e) {
            Some(reason) => TlsError::NotTrusted(reason).into(),
            None => ClientError::Disconnected,
        })?;
        let token = self.token.borrow().clone();
        let request = match (&token, &self.credentials) {
            (Some(token), _) => Request::Authenticate {
                token: token.clone(),
            },
            (None, Credentials::Login { username, password }) => Request::Login {
                username: username.clone(),
                password: password.clone(),
            },
            (
                None,
                Credentials::Register {
                    username,
                    display_name,
                    password,
                    invite,
                },
            ) => Request::Register {
                username: username.clone(),
                display_name: display_name.clone(),
                password: password.clone(),
                invite: invite.clone(),
            },
            (None, Credentials::Token(t)) => Request::Authenticate { token: t.clone() },
        };
        socket
            .send(Message::Text(encode_request(Some(0), &request).into()))
            .await
            .map_err(|_| ClientError::Disconnected)?;
        let mut welcome = Vec::new();
        let mut user = None;
        let mut asked_welcome_end = false;
        loop {
            let frame = tokio::time::timeout(REQUEST_TIMEOUT, socket.next())
                .await
                .map_err(|_| ClientError::Timeout)?;
            let Some(Ok(Message::Text(text))) = frame else {
                match frame {
                    Some(Ok(_)) => continue,
                    _ => return Err(ClientError::Disconnected),
                }
            };
            match decode_server_frame(text.as_str())
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                ServerFrame::Reply {
                    id: 0,
                    reply: Reply::Session { user: u, token, .. },
                } => {
                    self.token.send_replace(Some(token));
                    user = Some(u);
                }
                ServerFrame::Reply {
                    id: 0,
                    reply: Reply::Authenticated { user: u, .. },
                } => user = Some(u),
                ServerFrame::Error { id: Some(0), error } => {
                    return Err(ClientError::Refused(error))
                }
                // The server pushes its welcome (a resumed call, ongoing calls, presence) on
                // authentication but may write it after the reply; everything it pushed comes
                // before the reply to the next request, so a ping marks its end.
                ServerFrame::Reply {
                    id: WELCOME_END,
                    reply: Reply::Pong,
                } => break,
                ServerFrame::Event(event) => welcome.push(event),
                other => return Err(ClientError::Protocol(format!("unexpected {other:?}"))),
            }
            if user.is_some() && !std::mem::replace(&mut asked_welcome_end, true) {
                socket
                    .send(Message::Text(
                        encode_request(Some(WELCOME_END), &Request::Ping).into(),
                    ))
                    .await
                    .map_err(|_| ClientError::Disconnected)?;
            }
        }
        let user = user.ok_or_else(|| ClientError::Protocol("no authentication reply".into()))?;
        Ok((socket, user, welcome))
    }

    async fn serve(&mut self, mut socket: Socket) -> Ended {
        let mut pending: HashMap<u64, oneshot::Sender<Result<Reply, ClientError>>> = HashMap::new();
        let mut next_id = 1u64;
        let mut last_heard = tokio::time::Instant::now();
        let mut pinged = false;
        let ended = loop {
            let now = tokio::time::Instant::now();
            let quiet = now - last_heard;
            let wake = match self.policy.silence(quiet, pinged) {
                Silence::Wait(more) => now + more,
                Silence::Ping => {
                    pinged = true;
                    if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break Ended::Dropped;
                    }
                    continue;
                }
                Silence::Dead => {
                    tracing::info!("nothing heard from the server for {quiet:?}; reconnecting");
                    break Ended::Dropped;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                frame = socket.next() => {
                    // Any frame, pongs and the server's own pings included, shows the link is alive.
                    last_heard = tokio::time::Instant::now();
                    pinged = false;
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Ended::Dropped,
                        Some(Ok(_)) => continue,
                    };
                    match decode_server_frame(text.as_str()) {
                        Ok(ServerFrame::Reply { id, reply }) => {
                            if let Some(waiter) = pending.remove(&id) {
                                let _ = waiter.send(Ok(reply));
                            }
                        }
                        Ok(ServerFrame::Error { id: Some(id), error }) => {
                            if let Some(waiter) = pending.remove(&id) {
                                let _ = waiter.send(Err(ClientError::Refused(error)));
                            }
                        }
                        Ok(ServerFrame::Error { id: None, error }) => tracing::warn!("server error: {error}"),
                        Ok(ServerFrame::Event(Event::SessionRevoked)) => {
                            let _ = self.events.send(ConnectionEvent::Server(Event::SessionRevoked));
                            break Ended::Closed;
                        }
                        Ok(ServerFrame::Event(event)) => {
                            let _ = self.events.send(ConnectionEvent::Server(event));
                        }
                        Err(e) => tracing::warn!("undecodable frame: {e}"),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Request(request, reply)) => {
                        let id = next_id;
                        next_id += 1;
                        if socket.send(Message::Text(encode_request(Some(id), &request).into())).await.is_err() {
                            let _ = reply.send(Err(ClientError::Disconnected));
                            break Ended::Dropped;
                        }
                        pending.insert(id, reply);
                    }
                    Some(Command::RetryNow) => {}
                    Some(Command::Close) | None => {
                        let _ = socket.close(None).await;
                        break Ended::Closed;
                    }
                },
            }
        };
        // Whatever was in flight may or may not have been done; callers retry what must be
        // done (sends carry a client id, so a retry is never a duplicate).
        for (_, waiter) in pending.drain() {
            let _ = waiter.send(Err(ClientError::Disconnected));
        }
        ended
    }
}
