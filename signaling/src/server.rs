//! The listening socket: HTTP routes (`/ws`, `/healthz`, `/metrics`, and the web app when
//! configured), optional TLS, the call
//! timer and graceful shutdown.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::connection::{self, CLOSE_SHUTDOWN};
use crate::service::Service;
use crate::store::Store;

/// Frames above this are refused by the WebSocket layer itself (the connection is closed with
/// 1009). Frames between [`parlor_protocol::MAX_FRAME_BYTES`] and this get a `too_large` error and
/// the socket stays usable.
const TRANSPORT_MAX_MESSAGE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] crate::store::OpenError),
    #[error("loading rooms: {0}")]
    Load(#[from] crate::error::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Clone)]
struct AppState {
    service: Arc<Service>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// How long sockets get to finish their requests and flush their replies at shutdown.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);

/// A server that is bound and ready; [`Server::run`] serves until the shutdown future resolves.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
}

impl Server {
    pub async fn bind(settings: Settings) -> Result<Server, StartError> {
        let tls = match &settings.tls {
            Some((cert, key)) => Some(tls_acceptor(cert, key)?),
            None => None,
        };
        let store = Store::open(&settings.database).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| StartError::Bind(settings.listen, e))?;
        let service = Arc::new(Service::new(settings, store).await?);
        Ok(Server {
            listener,
            tls,
            state: AppState {
                service,
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn service(&self) -> Arc<Service> {
        self.state.service.clone()
    }

    /// Serves until `shutdown` resolves, then closes every socket with 1001, waits (bounded) for
    /// them, and checkpoints and closes the database.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            tls,
            state,
        } = self;
        let mut router = Router::new()
            .route("/ws", get(websocket))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics));
        if let Some(dir) = &state.service.settings.web_dir {
            router = router.merge(crate::web::routes(dir));
        }
        let router = router.with_state(state.clone());
        let timer = tokio::spawn(call_timer(state.service.clone(), state.shutdown.clone()));
        let checks = tokio::spawn(session_checks(
            state.service.clone(),
            state.shutdown.clone(),
        ));
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            // The sign-in throttles count by client address (or the one a trusted proxy names).
            let router = router
                .clone()
                .layer(axum::Extension(ClientAddress(peer.ip())));
            let tls = tls.clone();
            let shutdown = state.shutdown.clone();
            state.tracker.spawn(async move {
                let result = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => serve_http(stream, router, shutdown).await,
                        Err(e) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                    },
                    None => serve_http(tcp, router, shutdown).await,
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, "HTTP connection ended: {e}");
                }
            });
        }
        tracing::info!("shutting down");
        drop(listener);
        drop(router);
        // Each socket's reader sees this once the request it is handling (if any) is done, and
        // closes with 1001 behind the replies already queued. Kicking the writers at once
        // dropped those replies: messages stored but never acknowledged. Only a socket still
        // open after the drain (a peer that stopped reading) is kicked.
        state.shutdown.cancel();
        state.tracker.close();
        if tokio::time::timeout(SHUTDOWN_DRAIN, state.tracker.wait())
            .await
            .is_err()
        {
            state.service.kick_all(CLOSE_SHUTDOWN);
            let _ = tokio::time::timeout(Duration::from_secs(3), state.tracker.wait()).await;
        }
        let _ = timer.await;
        let _ = checks.await;
        match Arc::try_unwrap(state.service) {
            Ok(service) => service.store.close().await,
            Err(_) => {
                tracing::warn!("sockets still open at shutdown; database closed without checkpoint")
            }
        }
    }
}

/// Serves HTTP/1.1 (with WebSocket upgrades) on one stream; on shutdown, finishes the request in
/// flight and closes. Upgraded sockets are closed by their own tasks.
async fn serve_http<I>(
    io: I,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// Runs the hub's timers (call participants whose grace period ran out) when they are due, and
/// sleeps while none is: an idle server does not wake.
async fn call_timer(service: Arc<Service>, shutdown: CancellationToken) {
    loop {
        let (due, changed) = service.hub_timeout();
        let changed = changed.notified();
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => service.tick(),
            _ = changed => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Closes sockets whose session ended in the database (see [`Service::check_sessions`]).
async fn session_checks(service: Arc<Service>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(service.settings.session_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = service.check_sessions().await {
                    tracing::warn!("checking sessions failed: {e}");
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The address of the TCP peer a request came from.
#[derive(Debug, Clone, Copy)]
struct ClientAddress(std::net::IpAddr);

async fn websocket(
    State(state): State<AppState>,
    axum::Extension(ClientAddress(peer)): axum::Extension<ClientAddress>,
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    let from = crate::client_address::client_address(
        peer,
        forwarded_for,
        &state.service.settings.trusted_proxies,
    );
    if state.shutdown.is_cancelled() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(slot) = state.service.admit_socket(from) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open sockets from this address",
        )
            .into_response();
    };
    let AppState {
        service,
        shutdown,
        tracker,
    } = state;
    upgrade
        .max_message_size(TRANSPORT_MAX_MESSAGE)
        .max_frame_size(TRANSPORT_MAX_MESSAGE)
        // tungstenite's 128 KiB default read buffer per socket dominates memory at 10k sockets,
        // and it zero-fills the whole buffer before each read, so all of it is resident. Frames
        // are small and larger ones are read in several chunks: 4 KiB (measured at 15,000
        // sockets: 8 KiB and an unboxed handler cost 16.5 KiB of server memory per idle socket).
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                connection::serve(service, socket, from, shutdown).await;
                drop(slot);
            })
        })
}

async fn healthz(State(state): State<AppState>) -> Response {
    let database_ok = state.service.store.healthy().await;
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if database_ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": parlor_protocol::PROTOCOL_VERSION,
        "database": if database_ok { "ok" } else { "error" },
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.service.metrics.render(state.service.active_calls());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| StartError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| StartError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| StartError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
