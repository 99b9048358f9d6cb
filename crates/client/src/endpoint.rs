//! Where the signaling server is and how to trust it. A `ws://` URL is plain TCP (meant for
//! loopback and tests); a `wss://` URL gets a rustls configuration that verifies the server's
//! certificate against the platform's trust store, plus an optional extra CA file for
//! self-hosters with a private CA. The same configuration serves the socket and the health
//! check, so the two can never disagree about whether a server is trusted.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the health check may take before the server counts as unreachable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a server could not be used over TLS. A configuration problem, not a passing fault: the
/// connection stops rather than retrying it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {} holds no PEM certificate", path.display())]
    CaFileEmpty { path: PathBuf },
    #[error("the CA file {} is not valid PEM: {source}", path.display())]
    CaFilePem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("cannot set up certificate verification: {0}")]
    Verifier(#[source] rustls::Error),
    /// The server's certificate was refused (unknown issuer, wrong name, expired, ...).
    #[error("certificate not trusted: {0}")]
    NotTrusted(String),
}

/// A signaling server's address and, for `wss://`, how its certificate is checked.
#[derive(Clone)]
pub struct ServerEndpoint {
    url: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEndpoint")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ServerEndpoint {
    /// Parses `ws://HOST[:PORT]/PATH` or `wss://…`; `ca_file` adds a PEM file of extra trusted
    /// CA certificates (only read for `wss://`, but a file that is named must be usable).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<ServerEndpoint, crate::ClientError> {
        let url = url.trim();
        let bad = || {
            crate::ClientError::Invalid(format!(
                "the server address must look like wss://HOST/ws or ws://HOST:PORT/ws, not {url:?}"
            ))
        };
        let (secure, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) =
            split_authority(authority, if secure { 443 } else { 80 }).ok_or_else(bad)?;
        let extra_roots = match ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let tls = if secure {
            Some(Arc::new(client_config(extra_roots)?))
        } else {
            None
        };
        Ok(ServerEndpoint {
            url: url.to_owned(),
            host,
            port,
            tls,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    /// The connector tungstenite uses: our rustls configuration, or plain TCP.
    pub(crate) fn connector(&self) -> tokio_tungstenite::Connector {
        match &self.tls {
            Some(config) => tokio_tungstenite::Connector::Rustls(config.clone()),
            None => tokio_tungstenite::Connector::Plain,
        }
    }

    /// Asks `GET /healthz` on the socket's host and port, over TLS for `wss://`. `Ok(true)` when
    /// it answers 200, `Ok(false)` when it cannot be reached or answers otherwise, and an error
    /// when it answers with a certificate we do not trust (which retrying will not mend).
    pub async fn health(&self) -> Result<bool, TlsError> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.ask_health()).await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(e)) => match not_trusted(&e) {
                Some(reason) => Err(TlsError::NotTrusted(reason)),
                None => Ok(false),
            },
            Err(_) => Ok(false),
        }
    }

    async fn ask_health(&self) -> std::io::Result<bool> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        match &self.tls {
            None => get_healthz(tcp, &self.host).await,
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                get_healthz(stream, &self.host).await
            }
        }
    }
}

async fn get_healthz(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
) -> std::io::Result<bool> {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    Ok(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, with `default_port` when none is given.
/// The web address of `path` on the server whose socket is at `socket_url`: the same host and
/// port over HTTP(S), where `parlor-server --web-dir` serves the web app. A guest link to give
/// out is `web_url(server, "/join/CODE")`. `None` for an address that is not a server's.
pub fn web_url(socket_url: &str, path: &str) -> Option<String> {
    let url = socket_url.trim();
    let (scheme, rest) = match url.strip_prefix("wss://") {
        Some(rest) => ("https", rest),
        None => ("http", url.strip_prefix("ws://")?),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    split_authority(authority, 80)?;
    Some(format!("{scheme}://{authority}{path}"))
}

fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_owned(), default_port)),
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CaFilePem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::CaFileEmpty {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The platform verifier (system trust store; on Linux the CA bundle, which honours
/// `SSL_CERT_FILE`), augmented by the extra roots.
fn client_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(not(target_os = "android"))]
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(TlsError::Verifier)?;
    // Android's verifier asks the system through JNI and takes no extra roots.
    #[cfg(target_os = "android")]
    let verifier = {
        let _ = extra_roots;
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(TlsError::Verifier)?
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Verifier)?
        .dangerous() // Not dangerous: this installs the platform's verifier, not a bypass.
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// The reason, when an error chain holds a refused server certificate.
pub(crate) fn not_trusted(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(reason)) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(reason));
        }
        // tokio-rustls wraps rustls' error in an io::Error, whose `source()` skips the error it
        // wraps: step into that error itself.
        next = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match reason {
        C::UnknownIssuer => "issued by an authority this device does not trust".to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "issued for a different host name".to_owned()
        }
        C::Expired | C::ExpiredContext { .. } => "expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".to_owned(),
        C::Revoked => "revoked".to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_addresses_follow_the_socket() {
        assert_eq!(
            web_url("wss://chat.example.org/ws", "/join/abc").as_deref(),
            Some("https://chat.example.org/join/abc")
        );
        assert_eq!(
            web_url(" ws://127.0.0.1:7700/ws ", "/join/abc").as_deref(),
            Some("http://127.0.0.1:7700/join/abc")
        );
        assert_eq!(
            web_url("wss://[::1]:8443/parlor/ws", "/").as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(web_url("https://example.org/ws", "/"), None);
        assert_eq!(web_url("ws://user@host/ws", "/"), None);
        assert_eq!(web_url("ws:///ws", "/"), None);
    }

    #[test]
    fn authorities_with_and_without_ports() {
        assert_eq!(
            split_authority("example.org", 443),
            Some(("example.org".into(), 443))
        );
        assert_eq!(
            split_authority("127.0.0.1:7700", 80),
            Some(("127.0.0.1".into(), 7700))
        );
        assert_eq!(split_authority("[::1]:9", 80), Some(("::1".into(), 9)));
        assert_eq!(split_authority("[::1]", 443), Some(("::1".into(), 443)));
        assert_eq!(split_authority("", 80), None);
        assert_eq!(split_authority(":80", 80), None);
        assert_eq!(split_authority("host:port", 80), None);
        assert_eq!(split_authority("user@host", 80), None);
    }

    #[test]
    fn only_websocket_urls_are_servers() {
        for bad in ["http://host/ws", "host:7700", "", "wss://", "ws://:1/ws"] {
            let error = ServerEndpoint::new(bad, None).unwrap_err();
            assert!(
                error.to_string().contains("wss://HOST/ws"),
                "{bad}: {error}"
            );
        }
        let plain = ServerEndpoint::new(" ws://127.0.0.1:7700/ws ", None).unwrap();
        assert!(!plain.is_secure());
        assert_eq!(plain.url(), "ws://127.0.0.1:7700/ws");
        assert!(ServerEndpoint::new("wss://chat.example.org/ws", None)
            .unwrap()
            .is_secure());
    }

    #[test]
    fn a_named_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = ServerEndpoint::new("wss://h/ws", Some(&missing)).unwrap_err();
        assert!(
            error.to_string().contains("cannot read the CA file"),
            "{error}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = ServerEndpoint::new("wss://h/ws", Some(&empty)).unwrap_err();
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error}"
        );

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = ServerEndpoint::new("wss://h/ws", Some(&broken)).unwrap_err();
        assert!(error.to_string().contains("not valid PEM"), "{error}");
    }
}
