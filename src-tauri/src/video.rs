//! Decoded video to the page. IPC was measured too slow for frames, so the page opens a
//! WebSocket to this server: loopback only, an ephemeral port, a random token per launch
//! checked on connect, and the page's Origin checked. The page says which tiles are visible;
//! only those get frames, and a slow page gets the newest frame, never a backlog.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use parlor_media::VideoFrame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;

/// The tile of the local preview; other tiles are user ids.
pub const LOCAL_TILE: i64 = 0;
pub const FRAME_VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 16;

type Latest = watch::Sender<Option<Arc<VideoFrame>>>;

/// The newest frame of each tile, and how many pages watch it.
#[derive(Default)]
pub struct VideoHub {
    tiles: Mutex<HashMap<i64, (Latest, usize)>>,
}

impl VideoHub {
    /// Whether anyone shows `tile` (a source may skip preparing frames nobody sees).
    pub fn wanted(&self, tile: i64) -> bool {
        self.tiles
            .lock()
            .map(|t| t.get(&tile).is_some_and(|(_, watchers)| *watchers > 0))
            .unwrap_or(false)
    }

    /// Offers a frame for `tile`; dropped at once when nobody shows it.
    pub fn publish(&self, tile: i64, frame: &VideoFrame) {
        if let Ok(tiles) = self.tiles.lock() {
            if let Some((latest, watchers)) = tiles.get(&tile) {
                if *watchers > 0 {
                    latest.send_replace(Some(Arc::new(frame.clone())));
                }
            }
        }
    }

    fn watch(self: &Arc<Self>, tile: i64) -> TileWatch {
        let mut tiles = self.tiles.lock().unwrap_or_else(|p| p.into_inner());
        let (latest, watchers) = tiles
            .entry(tile)
            .or_insert_with(|| (watch::channel(None).0, 0));
        *watchers += 1;
        TileWatch {
            hub: self.clone(),
            tile,
            frames: latest.subscribe(),
        }
    }
}

/// A page's interest in one tile; dropping it ends the interest.
struct TileWatch {
    hub: Arc<VideoHub>,
    tile: i64,
    frames: watch::Receiver<Option<Arc<VideoFrame>>>,
}

impl Drop for TileWatch {
    fn drop(&mut self) {
        if let Ok(mut tiles) = self.hub.tiles.lock() {
            if let Some((_, watchers)) = tiles.get_mut(&self.tile) {
                *watchers = watchers.saturating_sub(1);
                if *watchers == 0 {
                    tiles.remove(&self.tile);
                }
            }
        }
    }
}

/// One frame as the page reads it (see `ui/src/lib/frames.ts`): the planes are copied row by
/// row straight into the message, whatever their strides (one copy per frame sent).
pub fn encode_frame(tile: i64, frame: &VideoFrame) -> Vec<u8> {
    let (cw, ch) = (frame.width / 2, frame.height / 2);
    let mut out = Vec::with_capacity(HEADER_BYTES + frame.width * frame.height + 2 * cw * ch);
    out.push(FRAME_VERSION);
    out.push(0);
    out.extend_from_slice(&(frame.width as u16).to_le_bytes());
    out.extend_from_slice(&(frame.height as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&tile.to_le_bytes());
    let mut plane = |data: &[u8], stride: usize, width: usize, height: usize| {
        for row in data.chunks(stride).take(height) {
            out.extend_from_slice(&row[..width]);
        }
    };
    plane(&frame.y, frame.stride_y, frame.width, frame.height);
    plane(&frame.u, frame.stride_uv, cw, ch);
    plane(&frame.v, frame.stride_uv, cw, ch);
    out
}

/// The subscription message from the page: `{"tiles":[0,5]}`.
#[derive(serde::Deserialize)]
struct Subscription {
    tiles: Vec<i64>,
}

/// Longest subscription message read (a page never sends more; anything longer is hostile).
const MAX_CONTROL_BYTES: usize = 4096;

pub struct VideoServer {
    pub addr: SocketAddr,
    pub token: String,
}

impl VideoServer {
    pub fn url(&self) -> String {
        format!("ws://{}/video?token={}", self.addr, self.token)
    }

    /// Listens on 127.0.0.1 (an ephemeral port) and serves pages from `origins` only.
    pub async fn start(hub: Arc<VideoHub>, origins: Vec<String>) -> std::io::Result<VideoServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let accepted = Arc::new(Gate {
            token: token.clone(),
            origins,
        });
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                if !peer.ip().is_loopback() {
                    continue;
                }
                tokio::spawn(serve(stream, hub.clone(), accepted.clone()));
            }
        });
        Ok(VideoServer { addr, token })
    }
}

/// Who may connect.
struct Gate {
    token: String,
    origins: Vec<String>,
}

impl Gate {
    fn check(&self, request: &Request) -> Result<(), &'static str> {
        let origin = request
            .headers()
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .ok_or("no origin")?;
        if !self.origins.iter().any(|allowed| allowed == origin) {
            return Err("origin not allowed");
        }
        let token = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
            .ok_or("no token")?;
        // Compared in constant time: the token is the only secret here.
        let equal = token.len() == self.token.len()
            && token
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if request.uri().path() != "/video" || !equal {
            return Err("bad token");
        }
        Ok(())
    }
}

async fn serve(stream: TcpStream, hub: Arc<VideoHub>, gate: Arc<Gate>) {
    // The shape of this callback is tungstenite's (its error is an HTTP response).
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match gate.check(request) {
            Ok(()) => Ok(response),
            Err(why) => {
                tracing::warn!("video socket refused: {why}");
                let mut refusal = ErrorResponse::new(Some(why.to_owned()));
                *refusal.status_mut() = StatusCode::FORBIDDEN;
                Err(refusal)
            }
        }
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_CONTROL_BYTES))
        .max_frame_size(Some(MAX_CONTROL_BYTES));
    let Ok(socket) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut incoming) = socket.split();
    // One frame in flight per page: a tile's sender waits here and then takes the newest frame.
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(1);
    let mut senders: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let Ok(subscription) = serde_json::from_str::<Subscription>(text.as_str()) else {
                        break;
                    };
                    let wanted: std::collections::HashSet<i64> = subscription.tiles.into_iter().take(16).collect();
                    senders.retain(|tile, task| {
                        let keep = wanted.contains(tile);
                        if !keep {
                            task.abort();
                        }
                        keep
                    });
                    for tile in wanted {
                        senders.entry(tile).or_insert_with(|| {
                            tokio::spawn(send_tile(hub.watch(tile), frames_tx.clone()))
                        });
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            frame = frames_rx.recv() => match frame {
                Some(bytes) => {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    for (_, task) in senders {
        task.abort();
    }
}

async fn send_tile(mut watch: TileWatch, out: mpsc::Sender<Vec<u8>>) {
    while watch.frames.changed().await.is_ok() {
        let frame = watch.frames.borrow_and_update().clone();
        if let Some(frame) = frame {
            if out.send(encode_frame(watch.tile, &frame)).await.is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    const ORIGIN: &str = "tauri://localhost";

    /// Lets the server's tasks run until `done` holds (bounded: a hang fails the test).
    async fn settle(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the server never got there");
    }

    fn frame(luma: u8) -> VideoFrame {
        let mut f = VideoFrame::black(4, 2, std::time::Duration::ZERO);
        f.y.iter_mut().for_each(|y| *y = luma);
        f
    }

    async fn connect(
        server: &VideoServer,
        url: &str,
        origin: Option<&str>,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
        tokio_tungstenite::tungstenite::Error,
    > {
        let _ = server;
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    #[test]
    fn padded_planes_are_sent_without_their_padding() {
        let packed = frame(77);
        let mut padded = packed.clone();
        padded.stride_y = 6;
        padded.y = packed
            .y
            .chunks(4)
            .flat_map(|r| [r, &[0, 0][..]].concat())
            .collect();
        padded.stride_uv = 3;
        padded.u = packed
            .u
            .chunks(2)
            .flat_map(|r| [r, &[9][..]].concat())
            .collect();
        padded.v = packed
            .v
            .chunks(2)
            .flat_map(|r| [r, &[9][..]].concat())
            .collect();
        assert_eq!(encode_frame(3, &padded), encode_frame(3, &packed));
        assert_eq!(encode_frame(3, &packed).len(), HEADER_BYTES + 8 + 2 + 2);
    }

    #[tokio::test]
    async fn only_the_app_page_with_the_token_gets_frames_and_only_for_visible_tiles() {
        let hub = Arc::new(VideoHub::default());
        let server = VideoServer::start(hub.clone(), vec![ORIGIN.into()])
            .await
            .unwrap();
        assert!(server.addr.ip().is_loopback());
        let url = server.url();
        let wrong_token = format!("ws://{}/video?token=0000", server.addr);
        assert!(connect(&server, &wrong_token, Some(ORIGIN)).await.is_err());
        assert!(connect(&server, &url, Some("http://evil.example"))
            .await
            .is_err());
        assert!(connect(&server, &url, None).await.is_err());

        let mut page = connect(&server, &url, Some(ORIGIN)).await.unwrap();
        assert!(!hub.wanted(7));
        page.send(Message::Text(r#"{"tiles":[7]}"#.into()))
            .await
            .unwrap();
        settle(|| hub.wanted(7)).await;
        hub.publish(9, &frame(50)); // not shown: never sent
        hub.publish(7, &frame(90));
        let Some(Ok(Message::Binary(bytes))) = page.next().await else {
            panic!("no frame")
        };
        assert_eq!(bytes.len(), HEADER_BYTES + 8 + 2 + 2);
        assert_eq!(bytes[0], FRAME_VERSION);
        assert_eq!(i64::from_le_bytes(bytes[8..16].try_into().unwrap()), 7);
        assert_eq!(bytes[HEADER_BYTES], 90);
        // Hiding the tile stops its frames.
        page.send(Message::Text(r#"{"tiles":[]}"#.into()))
            .await
            .unwrap();
        settle(|| !hub.wanted(7)).await;
        // Malformed control messages close the socket rather than being guessed at.
        page.send(Message::Text("tiles please".into()))
            .await
            .unwrap();
        let end = page.next().await;
        assert!(
            matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
            "{end:?}"
        );
    }
}
