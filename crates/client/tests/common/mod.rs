//! The real signaling server, in-process on loopback with a temporary SQLite file, for the
//! client's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use parlor_signaling::config::Settings;
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
