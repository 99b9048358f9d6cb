//! The real signaling server, in-process on loopback with a temporary SQLite file, for the
//! client's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use parlor_signaling::config::Settings;
pub use parlor_signaling::test_pki::TestPki;
use tokio::sync::oneshot;

pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    db: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `db` on `addr` (port 0 picks one; a restart passes the old address back).
    pub async fn start(db: &Path, addr: SocketAddr) -> Server {
        let mut settings = Settings::for_database(db);
        settings.listen = addr;
        Self::start_with(settings).await
    }

    pub async fn start_with(settings: Settings) -> Server {
        let db = settings.database.clone();
        let server = parlor_signaling::server::Server::bind(settings)
            .await
            .expect("bind");
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            url: format!("ws://{addr}/ws"),
            db,
            stop: Some(tx),
            task,
        }
    }

    /// Shuts down gracefully; returns the database and address, for starting it again.
    pub async fn stop(mut self) -> (PathBuf, SocketAddr) {
        let _ = self.stop.take().expect("running").send(());
        let _ = self.task.await;
        (self.db, self.addr)
    }
}

/// A server on a free loopback port.
pub async fn server(db: &Path) -> Server {
    Server::start(db, "127.0.0.1:0".parse().unwrap()).await
}

/// A TCP relay in front of the server whose line the test can cut (the client sees its socket
/// drop and cannot reconnect, while the server stays up so others can go on talking) or stall
/// (connections stay open and carry nothing, as when a route dies without a FIN or RST).
pub struct Proxy {
    pub url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stalled: tokio::sync::watch::Sender<bool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (stalled, _) = tokio::sync::watch::channel(false);
        let links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let (open2, links2, stalled2) = (open.clone(), links.clone(), stalled.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    continue; // dropped: the line is cut
                }
                let gate = stalled2.subscribe();
                let link = tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                        let (from_client, to_client) = inbound.into_split();
                        let (from_server, to_server) = outbound.into_split();
                        tokio::join!(
                            relay(from_client, to_server, gate.clone()),
                            relay(from_server, to_client, gate)
                        );
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Proxy {
            url,
            open,
            stalled,
            links,
            accept,
        }
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Keeps every connection open but forwards nothing, either way, until restored.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn restore(&self) {
        self.stalled.send_replace(false);
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies one direction of a relayed connection; while `stalled`, holds what it read.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A new account `name` (display name in capitals), connected and with its store in
/// `dir/name`.
pub async fn register(
    url: &str,
    dir: &Path,
    name: &str,
    policy: parlor_client::reconnect::ReconnectPolicy,
) -> parlor_client::Client {
    let server = parlor_client::ServerEndpoint::new(url, None).expect("server address");
    parlor_client::Client::connect(
        &server,
        &dir.join(name),
        parlor_client::Credentials::Register {
            username: name.into(),
            display_name: name.to_uppercase(),
            password: "password-123".into(),
            invite: None,
        },
        policy,
    )
    .await
    .expect("register")
}

/// Runs the `parlor` CLI against `url` with its data in `data_dir` and `--json` output.
pub async fn parlor(
    data_dir: &Path,
    url: &str,
    password: &str,
    args: &[&str],
) -> std::process::Output {
    parlor_with_env(data_dir, url, password, args, &[]).await
}

/// [`parlor`] with extra environment variables. Nothing from the test's own environment that
/// changes where the CLI connects or whom it trusts leaks in.
pub async fn parlor_with_env(
    data_dir: &Path,
    url: &str,
    password: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> std::process::Output {
    parlor_command(data_dir, url, password, args, env)
        .output()
        .await
        .expect("run parlor")
}

/// The CLI as [`parlor_with_env`] runs it, to spawn with its output piped.
pub fn parlor_command(
    data_dir: &Path,
    url: &str,
    password: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_parlor"));
    command
        .arg("--server")
        .arg(url)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--json")
        .args(args)
        .env("PARLOR_PASSWORD", password)
        .env_remove("PARLOR_SERVER")
        .env_remove("PARLOR_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    command
}

/// The real server on a free loopback port, serving `wss://` with `pki`'s certificate.
pub async fn tls_server(db: &Path, pki: &TestPki) -> Server {
    let mut settings = Settings::for_database(db);
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.tls = Some((pki.cert.clone(), pki.key.clone()));
    let mut server = Server::start_with(settings).await;
    server.url = format!("wss://localhost:{}/ws", server.addr.port());
    server
}

/// The last JSON line a successful CLI run printed.
pub fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "parlor failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().expect("output")).expect("JSON")
}
