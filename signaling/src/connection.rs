//! One WebSocket connection: a reader loop that handles requests one at a time, and a writer task
//! that drains the socket's bounded outbox and sends pings. All protocol decisions are made in
//! `service.rs` and the hub; this module only moves frames and enforces per-socket limits.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use parlor_protocol::{
    decode_request, encode_error, encode_reply, ErrorBody, ErrorCode, MAX_FRAME_BYTES,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::service::{After, ConnHandle, ConnState, Outbound, Service};
use crate::socket_guard::{GuardConfig, SocketGuard, Verdict};

/// Events and replies waiting for a socket. A socket that lets this fill up is closed.
const OUTBOX_CAPACITY: usize = 1024;

pub const CLOSE_SHUTDOWN: (u16, &str) = (1001, "server shutting down");
pub const CLOSE_TOO_BIG: (u16, &str) = (1009, "frame too large");
pub const CLOSE_PROTOCOL: (u16, &str) = (1002, "protocol error");

pub async fn serve(
    service: Arc<Service>,
    socket: WebSocket,
    from: std::net::IpAddr,
    shutdown: CancellationToken,
) {
    let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
    let kick = CancellationToken::new();
    let kick_reason = Arc::new(Mutex::new(None));
    let id = service.register(ConnHandle {
        outbox: outbox.clone(),
        kick: kick.clone(),
        kick_reason: kick_reason.clone(),
    });
    service
        .metrics
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    service
        .metrics
        .connections_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let (sink, mut stream) = socket.split();
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        inbox,
        service.settings.ping_interval,
        kick.clone(),
        kick_reason,
        writer_done.clone(),
    ));

    let mut state = ConnState {
        id,
        from,
        identity: None,
    };
    let close = read_loop(
        &service,
        &mut state,
        &mut stream,
        &outbox,
        &writer_done,
        &shutdown,
    )
    .await;

    // Forget the socket first, so no further events are queued for it, then let the writer
    // flush what is queued and send the close frame.
    service.unregister(id);
    if let Some((code, reason)) = close {
        let _ = outbox.send(Outbound::Close(code, reason)).await;
    }
    drop(outbox);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    // Closing handshake: let the peer answer our close frame before the TCP connection goes, so
    // that it reads the close code instead of a reset.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    service
        .metrics
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Reads and handles frames until the socket ends; returns the close frame to send, if any.
async fn read_loop(
    service: &Service,
    state: &mut ConnState,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    outbox: &mpsc::Sender<Outbound>,
    writer_done: &CancellationToken,
    shutdown: &CancellationToken,
) -> Option<(u16, &'static str)> {
    let settings = &service.settings;
    let (rate_burst, rate_refill) = service.request_rate();
    let mut guard = SocketGuard::new(
        GuardConfig {
            auth_timeout: settings.auth_timeout,
            idle_timeout: settings.idle_timeout,
            rate_burst,
            rate_refill,
            abuse_limit: settings.rate_abuse_limit,
        },
        std::time::Instant::now(),
    );

    loop {
        if state.identity.is_some() {
            guard.authenticated();
        }
        let (deadline, why) = guard.deadline();
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = sleep_until(Instant::from_std(deadline)) => return Some(why),
            _ = shutdown.cancelled() => return Some(CLOSE_SHUTDOWN),
            _ = writer_done.cancelled() => return None,
        };
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Err(e)) => {
                tracing::debug!(conn = state.id, "socket error: {e}");
                // A frame over the transport limit leaves the stream unusable: say why and go.
                let too_big = e.to_string().to_ascii_lowercase().contains("too long")
                    || e.to_string().to_ascii_lowercase().contains("capacity");
                return Some(if too_big {
                    CLOSE_TOO_BIG
                } else {
                    CLOSE_PROTOCOL
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                guard.heard_from(std::time::Instant::now());
                continue;
            }
            Some(Ok(Message::Binary(_))) => {
                guard.heard_from(std::time::Instant::now());
                service
                    .metrics
                    .frames_received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let error = ErrorBody::new(
                    ErrorCode::Invalid,
                    "binary frames are not part of the protocol; send JSON text frames",
                );
                send_error(service, outbox, None, &error).await;
                continue;
            }
            Some(Ok(Message::Text(text))) => text,
        };
        service
            .metrics
            .frames_received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let now = std::time::Instant::now();
        let verdict = guard.request(now, || {
            state
                .identity
                .as_ref()
                .is_none_or(|i| service.user_may_request(i.user.id, now))
        });
        if let Verdict::Close(code, reason) = verdict {
            return Some((code, reason));
        }
        if let Verdict::Refuse { retry_after } = verdict {
            // Echo the id when it can be read, so the client knows which request was dropped.
            let id = match decode_request(text.as_str()) {
                Ok(frame) => frame.id,
                Err(e) => e.id,
            };
            let error = ErrorBody::retry_after("too many requests; slow down", retry_after);
            send_error(service, outbox, id, &error).await;
            continue;
        }

        if text.len() > MAX_FRAME_BYTES {
            let error = ErrorBody::new(
                ErrorCode::TooLarge,
                format!(
                    "frames are limited to {MAX_FRAME_BYTES} bytes; this one has {}",
                    text.len()
                ),
            );
            send_error(service, outbox, None, &error).await;
            continue;
        }

        let frame = match decode_request(text.as_str()) {
            Ok(frame) => frame,
            Err(e) => {
                let id = e.id;
                send_error(service, outbox, id, &e.into_body()).await;
                continue;
            }
        };
        // Boxed: a request's handling (its database futures) is tens of times the size of
        // the rest of this loop, and unboxed it would be part of every socket's task for as
        // long as the socket is open, idle or not.
        match Box::pin(service.handle(state, frame.request)).await {
            Ok((reply, after)) => {
                if let Some(id) = frame.id {
                    let text = encode_reply(id, &reply);
                    if outbox.send(Outbound::Text(text.into())).await.is_err() {
                        return None;
                    }
                }
                if let After::Close(code, reason) = after {
                    return Some((code, reason));
                }
            }
            Err(e) => {
                if matches!(
                    e,
                    crate::error::Error::Database(_) | crate::error::Error::Internal(_)
                ) {
                    tracing::error!(conn = state.id, "request failed: {e}");
                }
                send_error(service, outbox, frame.id, &e.to_body()).await;
            }
        }
    }
}

async fn send_error(
    service: &Service,
    outbox: &mpsc::Sender<Outbound>,
    id: Option<u64>,
    error: &ErrorBody,
) {
    service.metrics.error(error.code);
    let _ = outbox
        .send(Outbound::Text(encode_error(id, error).into()))
        .await;
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut inbox: mpsc::Receiver<Outbound>,
    ping_interval: Duration,
    kick: CancellationToken,
    kick_reason: Arc<Mutex<Option<(u16, &'static str)>>>,
    done: CancellationToken,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            biased;
            _ = kick.cancelled() => {
                let (code, reason) = kick_reason
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or(CLOSE_SHUTDOWN);
                // What is already queued (a reply, the event saying why) goes out first.
                while let Ok(Outbound::Text(text)) = inbox.try_recv() {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                let _ = sink.send(close(code, reason)).await;
                break;
            }
            item = inbox.recv() => match item {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = sink.send(close(code, reason)).await;
                    break;
                }
                None => {
                    let _ = sink.send(close(1000, "")).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
    done.cancel();
}
