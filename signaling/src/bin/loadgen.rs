//! `parlor-loadgen`: N clients in M rooms each send K messages over loopback WebSockets; prints
//! delivered messages per second, p50/p99 delivery latency, and lost and duplicated deliveries.
//!
//! Without `--server` it starts a server in this process on a temporary database. Every loop is
//! bounded by a count and by `--timeout-secs`.
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use parlor_protocol::{
    decode_server_frame, encode_request, Event, Reply, Request, ServerFrame, TimelineEntry,
};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "parlor-loadgen",
    about = "Load test for parlor-server over loopback"
)]
struct Args {
    /// Server to test, e.g. ws://127.0.0.1:7700/ws. Default: start one in this process.
    #[arg(long)]
    server: Option<String>,
    /// Clients (each its own user and socket).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Rooms; client i joins room i mod M.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Messages each client sends.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Pause between one client's messages, in ms (keeps each client under the rate limit).
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// Give up this long after start, reporting what arrived.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Idle sockets held open beside the active clients, each its own account, authenticated
    /// and in no room, as most of a team's sockets are most of the time. With `--server`, the
    /// server's resident memory per idle socket is printed.
    #[arg(long, default_value_t = 0)]
    idle: usize,
}

#[derive(Default)]
struct Tally {
    sent_ok: AtomicU64,
    send_errors: AtomicU64,
    /// Sum over accepted messages of the number of other members who should receive it.
    expected: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    last_delivery_ns: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow_free::Result {
    let args = Args::parse();
    if args.clients == 0 || args.rooms == 0 || args.rooms > args.clients {
        eprintln!("parlor-loadgen: need clients >= rooms >= 1");
        std::process::exit(2);
    }
    parlor_signaling::limits::raise_open_files_limit();
    parlor_signaling::limits::return_large_allocations_to_os();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);

    // The server: external, or in this process on a temporary database.
    let _dir;
    let mut server_task = None;
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let url = match &args.server {
        Some(url) => url.clone(),
        None => {
            let dir = tempfile_dir();
            let mut settings =
                parlor_signaling::config::Settings::for_database(&dir.join("load.db"));
            settings.listen = "127.0.0.1:0".parse().unwrap();
            settings.rate_per_sec = 1000;
            settings.rate_burst = 1000;
            // Every simulated client registers from this one address.
            settings.throttle.registrations_per_address.burst = u32::MAX;
            settings.sockets_per_address = u32::MAX;
            let server = parlor_signaling::server::Server::bind(settings).await?;
            let url = format!("ws://{}/ws", server.local_addr());
            let stop = shutdown.clone();
            server_task = Some(tokio::spawn(
                server.run(async move { stop.notified().await }),
            ));
            _dir = dir;
            url
        }
    };
    println!(
        "parlor-loadgen: {} clients, {} rooms, {} messages each, {} ms apart, server {url}",
        args.clients, args.rooms, args.messages, args.interval_ms
    );

    // 1. Accounts and rooms (argon2 makes registration slow by design; a few at a time).
    let setup_started = Instant::now();
    let mut tokens = register_all(&url, args.clients + args.idle, deadline).await?;
    let idle_tokens = tokens.split_off(args.clients);
    let room_ids = create_rooms(&url, &tokens, args.rooms).await?;
    println!(
        "setup: {} accounts and {} rooms in {:.1} s",
        tokens.len() + idle_tokens.len(),
        room_ids.len(),
        setup_started.elapsed().as_secs_f64()
    );

    // 2. The idle sockets, and what they cost the server. Only an external server's memory
    // can be told apart from the clients' (in this process both ends live in one heap).
    let idle = IdleSockets::open(&url, idle_tokens, deadline).await;
    if args.idle > 0 {
        println!(
            "idle sockets:         {} open, {} failed",
            idle.count(),
            args.idle - idle.count()
        );
    }
    if let (Some(before), Some(_), true) = (idle.server_rss_before, &args.server, args.idle > 0) {
        if let Some(after) = server_rss(&url).await {
            println!(
                "server RSS:           {:.1} MiB before the idle sockets, {:.1} MiB with them: {:.1} KiB per idle socket",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                (after as f64 - before as f64) / 1024.0 / idle.count().max(1) as f64
            );
        }
    }

    // 3. Every client connects and joins its room; then all send at once.
    let members_per_room: Vec<u64> = (0..args.rooms)
        .map(|r| (0..args.clients).filter(|i| i % args.rooms == r).count() as u64)
        .collect();
    let tally = Arc::new(Tally::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(
        args.clients * args.messages * (args.clients / args.rooms),
    )));
    let ready = Arc::new(Barrier::new(args.clients + 1));
    let all_sent = Arc::new(Barrier::new(args.clients + 1));
    let epoch = Instant::now();
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let room = room_ids[i % args.rooms];
        let others = members_per_room[i % args.rooms] - 1;
        let ctx = ClientCtx {
            index: i,
            url: url.clone(),
            token,
            room,
            others,
            args: args.clone(),
            tally: tally.clone(),
            latencies: latencies.clone(),
            ready: ready.clone(),
            all_sent: all_sent.clone(),
            connecting: connecting.clone(),
            epoch,
            deadline,
        };
        tasks.push(tokio::spawn(run_client(ctx)));
    }
    ready.wait().await;
    let send_started = epoch.elapsed();
    println!("all {} clients connected; sending", args.clients);
    all_sent.wait().await;
    let sends_done = epoch.elapsed();
    for task in tasks {
        if let Err(e) = task.await {
            eprintln!("client task failed: {e}");
        }
    }

    // 4. Report.
    let expected = tally.expected.load(Relaxed);
    let delivered = tally.delivered.load(Relaxed);
    let duplicates = tally.duplicates.load(Relaxed);
    let last = Duration::from_nanos(tally.last_delivery_ns.load(Relaxed));
    let window = last.saturating_sub(send_started).as_secs_f64().max(1e-9);
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e6
    };
    println!(
        "messages sent:        {} accepted, {} refused",
        tally.sent_ok.load(Relaxed),
        tally.send_errors.load(Relaxed)
    );
    println!(
        "send phase:           {:.2} s",
        (sends_done - send_started).as_secs_f64()
    );
    println!("deliveries expected:  {expected}");
    println!("deliveries received:  {delivered}");
    println!(
        "lost:                 {}",
        expected.saturating_sub(delivered)
    );
    println!("duplicated:           {duplicates}");
    println!("delivered per second: {:.0}", delivered as f64 / window);
    println!(
        "accepted per second:  {:.0}",
        tally.sent_ok.load(Relaxed) as f64 / window
    );
    println!("latency p50:          {:.1} ms", pct(0.50));
    println!("latency p99:          {:.1} ms", pct(0.99));
    println!("latency max:          {:.1} ms", pct(1.0));
    if args.server.is_some() {
        if let Some(rss) = server_rss(&url).await {
            println!("server RSS at the end: {:.1} MiB", rss as f64 / 1048576.0);
        }
    }
    idle.close().await;

    shutdown.notify_one();
    if let Some(task) = server_task {
        let _ = task.await;
    }
    Ok(())
}

struct ClientCtx {
    index: usize,
    url: String,
    token: String,
    room: i64,
    others: u64,
    args: Args,
    tally: Arc<Tally>,
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
    ready: Arc<Barrier>,
    all_sent: Arc<Barrier>,
    /// Bounds the clients connecting at once: 10,000 simultaneous handshakes overflow the
    /// listen queue, and a few sockets then never got their upgrade answered.
    connecting: Arc<Semaphore>,
    epoch: Instant,
    deadline: Instant,
}

async fn run_client(ctx: ClientCtx) {
    // Whatever happens, this client passes both barriers exactly once so nobody waits forever.
    let mut passed_ready = false;
    let result = client_body(&ctx, &mut passed_ready).await;
    if let Err(e) = result {
        eprintln!("client {}: {e}", ctx.index);
    }
    if !passed_ready {
        ctx.ready.wait().await;
        ctx.all_sent.wait().await;
    }
}

async fn client_body(ctx: &ClientCtx, passed_ready: &mut bool) -> Result<(), String> {
    let connecting = ctx.connecting.acquire().await.map_err(|e| e.to_string())?;
    let socket = connect(ctx.url.as_str()).await?;
    let (mut tx, mut rx) = socket.split();
    let text = encode_request(
        Some(1),
        &Request::Authenticate {
            token: ctx.token.clone(),
        },
    );
    tx.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())?;
    let text = encode_request(Some(2), &Request::JoinRoom { room_id: ctx.room });
    tx.send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())?;
    // Wait for both replies before counting as ready.
    let mut replies = 0;
    while replies < 2 {
        match next_frame(&mut rx, ctx.deadline).await? {
            ServerFrame::Reply { .. } => replies += 1,
            ServerFrame::Error { error, .. } => return Err(format!("setup refused: {error}")),
            ServerFrame::Event(_) => {}
        }
    }
    drop(connecting);
    let messages = ctx.args.messages;
    let interval = Duration::from_millis(ctx.args.interval_ms);
    // The receiver runs from here on, while the sender waits for every client to be ready: a
    // socket that stopped reading would miss the server's pings and be closed as idle (at
    // 10,000 clients connecting takes longer than the idle timeout).
    let sender = async {
        ctx.ready.wait().await;
        *passed_ready = true;
        // Each client starts at its own point of the interval, evenly spread, as independent
        // people do. (Offsets of `index % 97` made 97 waves of about 100 simultaneous sends at
        // 10,000 clients, a load no team puts on a server.)
        let offset = interval.mul_f64(ctx.index as f64 / ctx.args.clients as f64);
        tokio::time::sleep(offset).await;
        for k in 0..messages {
            let now = ctx.epoch.elapsed().as_nanos() as u64;
            let request = Request::SendMessage {
                room_id: ctx.room,
                client_id: format!("{}-{k}", ctx.index),
                text: format!("{now}"),
            };
            let frame = encode_request(Some(10 + k as u64), &request);
            if tx.send(Message::Text(frame.into())).await.is_err() {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        ctx.all_sent.wait().await;
        tx
    };
    let receiver = async {
        let mut seen: HashSet<i64> = HashSet::new();
        let mut answered = 0usize;
        let expected_here = ctx.others as usize * messages;
        // Bounded: stops once this client's sends are answered and its share has arrived, or at
        // the deadline.
        while answered < messages || seen.len() < expected_here {
            let frame = match next_frame(&mut rx, ctx.deadline).await {
                Ok(frame) => frame,
                Err(_) => break,
            };
            match frame {
                ServerFrame::Reply {
                    reply: Reply::MessageSent { .. },
                    ..
                } => {
                    answered += 1;
                    ctx.tally.sent_ok.fetch_add(1, Relaxed);
                    ctx.tally.expected.fetch_add(ctx.others, Relaxed);
                }
                ServerFrame::Error { .. } => {
                    answered += 1;
                    ctx.tally.send_errors.fetch_add(1, Relaxed);
                }
                ServerFrame::Event(Event::Timeline {
                    entry: TimelineEntry::Message { message },
                }) => {
                    let now = ctx.epoch.elapsed().as_nanos() as u64;
                    if !seen.insert(message.seq) {
                        ctx.tally.duplicates.fetch_add(1, Relaxed);
                        continue;
                    }
                    ctx.tally.delivered.fetch_add(1, Relaxed);
                    ctx.tally.last_delivery_ns.fetch_max(now, Relaxed);
                    if let Ok(sent) = message.text.parse::<u64>() {
                        ctx.latencies.lock().unwrap().push(now.saturating_sub(sent));
                    }
                }
                _ => {}
            }
        }
    };
    let (tx, ()) = tokio::join!(sender, receiver);
    let mut socket = tx.reunite(rx).map_err(|e| e.to_string())?;
    let _ = socket.close(None).await;
    Ok(())
}

/// A client socket with a 4 KiB read buffer. tungstenite's default is 128 KiB, zero-filled
/// before every read: at 50,000 frames a second that memset was half of this program's CPU,
/// taken from the server it shares the machine with.
async fn connect(
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

async fn next_frame<S>(rx: &mut S, deadline: Instant) -> Result<ServerFrame, String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout_at(deadline.into(), rx.next())
            .await
            .map_err(|_| "deadline reached".to_string())?
            .ok_or("socket closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(text) = message {
            return decode_server_frame(text.as_str()).map_err(|e| e.to_string());
        }
    }
}

/// One request on a fresh socket; for setup steps.
async fn one_shot(url: &str, requests: Vec<Request>) -> Result<Vec<Reply>, String> {
    let mut socket = connect(url).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut replies = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        let id = i as u64 + 1;
        socket
            .send(Message::Text(encode_request(Some(id), &request).into()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match next_frame(&mut socket, deadline).await? {
                ServerFrame::Reply { id: got, reply } if got == id => {
                    replies.push(reply);
                    break;
                }
                ServerFrame::Error { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
    }
    let _ = socket.close(None).await;
    Ok(replies)
}

async fn register_all(url: &str, count: usize, deadline: Instant) -> Result<Vec<String>, String> {
    let permits = Arc::new(Semaphore::new(8));
    let run = format!("{:x}", std::process::id());
    let mut tasks = Vec::new();
    for i in 0..count {
        let url = url.to_owned();
        let permits = permits.clone();
        let username = format!("load{run}_{i}");
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
            let replies = one_shot(
                &url,
                vec![Request::Register {
                    username,
                    display_name: format!("Load {i}"),
                    password: "load-test-password".into(),
                    invite: None,
                }],
            )
            .await?;
            match replies.into_iter().next() {
                Some(Reply::Session { token, .. }) => Ok(token),
                other => Err(format!("unexpected {other:?}")),
            }
        }));
    }
    let mut tokens = Vec::with_capacity(tasks.len());
    for task in tasks {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let token = tokio::time::timeout(remaining, task)
            .await
            .map_err(|_| "setup timed out".to_string())?
            .map_err(|e| e.to_string())??;
        tokens.push(token);
    }
    Ok(tokens)
}

async fn create_rooms(url: &str, tokens: &[String], rooms: usize) -> Result<Vec<i64>, String> {
    let mut ids = Vec::with_capacity(rooms);
    for (r, token) in tokens.iter().take(rooms).enumerate() {
        let replies = one_shot(
            url,
            vec![
                Request::Authenticate {
                    token: token.clone(),
                },
                Request::CreateRoom {
                    name: format!("load room {r}"),
                    public: true,
                },
            ],
        )
        .await?;
        match replies.last() {
            Some(Reply::Room { room }) => ids.push(room.id),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(ids)
}

/// Sockets that authenticate and then only read (answering the server's pings, which
/// tungstenite does while reading) until closed.
struct IdleSockets {
    /// The server's resident memory before the first idle socket connected.
    server_rss_before: Option<u64>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<tokio::sync::Notify>,
}

impl IdleSockets {
    async fn open(url: &str, tokens: Vec<String>, deadline: Instant) -> IdleSockets {
        let server_rss_before = server_rss(url).await;
        let stop = Arc::new(tokio::sync::Notify::new());
        let connecting = Arc::new(Semaphore::new(256));
        let mut setups = Vec::with_capacity(tokens.len());
        for token in tokens {
            let (url, connecting, stop) = (url.to_owned(), connecting.clone(), stop.clone());
            setups.push(tokio::spawn(async move {
                let permit = connecting
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?;
                let socket = connect(url.as_str()).await?;
                let (mut tx, mut rx) = socket.split();
                let frame = encode_request(Some(1), &Request::Authenticate { token });
                tx.send(Message::Text(frame.into()))
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    match next_frame(&mut rx, deadline).await? {
                        ServerFrame::Reply { .. } => break,
                        ServerFrame::Error { error, .. } => {
                            return Err(format!("authentication refused: {error}"))
                        }
                        ServerFrame::Event(_) => {}
                    }
                }
                drop(permit);
                Ok::<_, String>(tokio::spawn(async move {
                    // Bounded by the run's deadline like every other loop here.
                    let read =
                        async { while let Ok(_frame) = next_frame(&mut rx, deadline).await {} };
                    tokio::select! {
                        () = read => {}
                        () = stop.notified() => {}
                    }
                    if let Ok(mut socket) = tx.reunite(rx) {
                        let _ = socket.close(None).await;
                    }
                }))
            }));
        }
        let mut readers = Vec::with_capacity(setups.len());
        for setup in setups {
            match setup.await {
                Ok(Ok(reader)) => readers.push(reader),
                Ok(Err(e)) => eprintln!("idle socket: {e}"),
                Err(e) => eprintln!("idle socket task: {e}"),
            }
        }
        IdleSockets {
            server_rss_before,
            readers,
            stop,
        }
    }

    fn count(&self) -> usize {
        self.readers.len()
    }

    async fn close(self) {
        self.stop.notify_waiters();
        for reader in self.readers {
            let _ = reader.await;
        }
    }
}

/// The server's `process_resident_memory_bytes`, read from `/metrics` beside its `/ws`
/// (plain `ws://` only).
async fn server_rss(ws_url: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = ws_url.strip_prefix("ws://")?.split('/').next()?;
    let mut tcp = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    response
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .and_then(|value| value.trim().parse().ok())
}

fn tempfile_dir() -> TempDir {
    let path = std::env::temp_dir().join(format!("parlor-loadgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("temp dir");
    TempDir(path)
}

/// Removes the temporary database when the run ends.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error>>;
}
