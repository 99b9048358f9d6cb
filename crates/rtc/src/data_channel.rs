//! Data channels: text and binary messages, open/close events, and back-pressure (a `send`
//! waits while more than the configured number of bytes are queued, instead of queueing
//! without bound).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{mpsc, Mutex};
use webrtc::data_channel::{DataChannel as RawDataChannel, DataChannelEvent as RawEvent};

use crate::lifecycle::Lifecycle;
use crate::{Result, RtcError};

/// How a channel delivers. The defaults are reliable and ordered, like TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChannelOptions {
    pub ordered: bool,
    /// Give up on a message after this many milliseconds (partial reliability).
    pub max_packet_lifetime_ms: Option<u16>,
    /// Give up on a message after this many retransmissions (partial reliability).
    pub max_retransmits: Option<u16>,
    pub protocol: String,
    /// Pre-agreed stream id: both sides create the channel, no in-band announcement.
    pub negotiated_id: Option<u16>,
    /// Carry messages of any size (up to [`MAX_REASSEMBLED`]) by splitting them into chunks.
    /// SCTP (and so every browser) limits one message to 256 KiB; a channel with this set
    /// announces the `parlor-chunked/1` sub-protocol and frames every message, so both ends
    /// must be Parlor. Needs `ordered`.
    pub large_messages: bool,
}

/// The sub-protocol a chunked channel announces.
pub const CHUNKED_PROTOCOL: &str = "parlor-chunked/1";
/// Largest message a chunked channel reassembles; more is refused (memory safety).
pub const MAX_REASSEMBLED: usize = 64 * 1024 * 1024;
/// Largest single message on a plain channel (webrtc-rs's and Chromium's SCTP limit).
pub const MAX_PLAIN_MESSAGE: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024 - 1;
const LAST: u8 = 0x01;
const TEXT: u8 = 0x02;

impl Default for DataChannelOptions {
    fn default() -> Self {
        DataChannelOptions {
            ordered: true,
            max_packet_lifetime_ms: None,
            max_retransmits: None,
            protocol: String::new(),
            negotiated_id: None,
            large_messages: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChannelEvent {
    Open,
    Message(Message),
    /// Queued outgoing data dropped below the low-water mark.
    BufferedAmountLow,
    Closing,
    Closed,
    Error,
}

/// One data channel. Cheap to clone; clones share the channel and its event stream.
#[derive(Clone)]
pub struct DataChannel {
    raw: Arc<dyn RawDataChannel>,
    label: String,
    chunked: bool,
    events: Arc<Mutex<mpsc::UnboundedReceiver<DataChannelEvent>>>,
    /// Closed or closing as far as this side knows: by `close`, or by an event saying so. The
    /// library's own state follows later (its driver task applies a close), so without this a
    /// send right after `close` could still succeed.
    ended: Arc<AtomicBool>,
}

impl std::fmt::Debug for DataChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataChannel({:?})", self.label)
    }
}

impl DataChannel {
    /// Wraps a channel and starts forwarding its events (the task ends with the channel).
    pub(crate) async fn wrap(raw: Arc<dyn RawDataChannel>, lifecycle: &Lifecycle) -> Self {
        let label = raw.label().await.unwrap_or_default();
        let chunked = raw.protocol().await.unwrap_or_default() == CHUNKED_PROTOCOL;
        let (tx, rx) = mpsc::unbounded_channel();
        let guard = lifecycle.tasks.enter();
        let closed = lifecycle.closed.clone();
        let source = raw.clone();
        let ended = Arc::new(AtomicBool::new(false));
        let ended_by_event = ended.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let mut partial: Vec<u8> = Vec::new();
            let mut oversized = false;
            loop {
                let event = tokio::select! {
                    event = source.poll() => event,
                    _ = closed.cancelled() => None,
                };
                let Some(event) = event else {
                    ended_by_event.store(true, Ordering::SeqCst);
                    let _ = tx.send(DataChannelEvent::Closed);
                    break;
                };
                let (event, last) = match event {
                    RawEvent::OnMessage(m) if chunked => {
                        // [flags][payload]; flags: LAST ends a message, TEXT marks text.
                        let Some((&flags, payload)) = m.data.split_first() else {
                            continue;
                        };
                        if !oversized && partial.len() + payload.len() > MAX_REASSEMBLED {
                            oversized = true;
                            partial = Vec::new();
                        }
                        if !oversized {
                            partial.extend_from_slice(payload);
                        }
                        if flags & LAST == 0 {
                            continue;
                        }
                        if std::mem::take(&mut oversized) {
                            (DataChannelEvent::Error, false)
                        } else {
                            let data = std::mem::take(&mut partial);
                            let message = if flags & TEXT != 0 {
                                Message::Text(String::from_utf8_lossy(&data).into_owned())
                            } else {
                                Message::Binary(data)
                            };
                            (DataChannelEvent::Message(message), false)
                        }
                    }
                    RawEvent::OnOpen => (DataChannelEvent::Open, false),
                    RawEvent::OnMessage(m) if m.is_string => (
                        DataChannelEvent::Message(Message::Text(
                            String::from_utf8_lossy(&m.data).into_owned(),
                        )),
                        false,
                    ),
                    RawEvent::OnMessage(m) => (
                        DataChannelEvent::Message(Message::Binary(m.data.to_vec())),
                        false,
                    ),
                    RawEvent::OnBufferedAmountLow => (DataChannelEvent::BufferedAmountLow, false),
                    RawEvent::OnClosing => (DataChannelEvent::Closing, false),
                    RawEvent::OnClose => (DataChannelEvent::Closed, true),
                    RawEvent::OnError => (DataChannelEvent::Error, false),
                    _ => continue,
                };
                if matches!(event, DataChannelEvent::Closing | DataChannelEvent::Closed) {
                    ended_by_event.store(true, Ordering::SeqCst);
                }
                if tx.send(event).is_err() || last {
                    break;
                }
            }
        });
        DataChannel {
            raw,
            label,
            chunked,
            events: Arc::new(Mutex::new(rx)),
            ended,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(RtcError::DataChannelClosed);
        }
        Ok(())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The next event; `None` once the channel is gone and every event was read.
    pub async fn next_event(&self) -> Option<DataChannelEvent> {
        self.events.lock().await.recv().await
    }

    /// Waits for `Open`, skipping nothing else: an event other than `Open` first is an error.
    pub async fn wait_open(&self) -> Result<()> {
        match self.next_event().await {
            Some(DataChannelEvent::Open) => Ok(()),
            _ => Err(RtcError::DataChannelClosed),
        }
    }

    /// Sends text; waits while the channel's send buffer is full.
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.check_open()?;
        if self.chunked {
            return self.send_chunked(text.as_bytes(), TEXT).await;
        }
        check_plain_size(text.len())?;
        self.raw.send_text(text).await.map_err(closed_or_internal)
    }

    /// Sends binary data; waits while the channel's send buffer is full.
    pub async fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.check_open()?;
        if self.chunked {
            return self.send_chunked(data, 0).await;
        }
        check_plain_size(data.len())?;
        self.raw
            .send(BytesMut::from(data))
            .await
            .map_err(closed_or_internal)
    }

    async fn send_chunked(&self, data: &[u8], kind: u8) -> Result<()> {
        if data.len() > MAX_REASSEMBLED {
            return Err(RtcError::MessageTooLarge {
                size: data.len(),
                max: MAX_REASSEMBLED,
            });
        }
        let mut chunks = data.chunks(CHUNK).peekable();
        if chunks.peek().is_none() {
            return self.send_frame(kind | LAST, &[]).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = if chunks.peek().is_none() { LAST } else { 0 };
            self.send_frame(kind | last, chunk).await?;
        }
        Ok(())
    }

    async fn send_frame(&self, flags: u8, payload: &[u8]) -> Result<()> {
        let mut frame = BytesMut::with_capacity(payload.len() + 1);
        frame.extend_from_slice(&[flags]);
        frame.extend_from_slice(payload);
        self.raw.send(frame).await.map_err(closed_or_internal)
    }

    /// Bytes queued and not yet acknowledged by the other side.
    pub async fn buffered_amount(&self) -> usize {
        self.raw.outstanding_bytes().await.unwrap_or(0)
    }

    /// Sets the low-water mark for `BufferedAmountLow`.
    pub async fn set_buffered_amount_low_threshold(&self, bytes: u32) -> Result<()> {
        self.raw
            .set_buffered_amount_low_threshold(bytes)
            .await
            .map_err(closed_or_internal)
    }

    pub async fn close(&self) -> Result<()> {
        self.ended.store(true, Ordering::SeqCst);
        self.raw.close().await.map_err(closed_or_internal)
    }
}

fn check_plain_size(size: usize) -> Result<()> {
    if size > MAX_PLAIN_MESSAGE {
        return Err(RtcError::MessageTooLarge {
            size,
            max: MAX_PLAIN_MESSAGE,
        });
    }
    Ok(())
}

/// A send on a channel whose stream, association or connection is gone is `DataChannelClosed`
/// (by the library's error variant; its messages are for people).
fn closed_or_internal(e: webrtc::error::Error) -> RtcError {
    use webrtc::error::Error as E;
    match e {
        E::ErrStreamClosed | E::ErrClosedPipe => RtcError::DataChannelClosed,
        e => match RtcError::from(e) {
            RtcError::Closed => RtcError::DataChannelClosed,
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::error::Error as E;

    #[test]
    fn a_send_on_a_gone_channel_is_closed_and_anything_else_is_said_as_it_came() {
        for gone in [
            E::ErrDataChannelClosed,
            E::ErrConnectionClosed,
            E::ErrStreamClosed,
            E::ErrClosedPipe,
        ] {
            assert!(matches!(
                closed_or_internal(gone),
                RtcError::DataChannelClosed
            ));
        }
        assert!(matches!(
            closed_or_internal(E::ErrDataChannelNotOpen),
            RtcError::Internal(text) if text.contains("not open")
        ));
    }
}
