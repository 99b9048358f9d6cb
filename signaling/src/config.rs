//! Server settings: command-line flags, each with an environment-variable equivalent, over an
//! optional TOML file, over defaults. Precedence: flag > environment > file > default.
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::throttle::{Allowance, ThrottleConfig};

#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(
    name = "parlor-server",
    version,
    about = "Parlor's self-hosted signaling server"
)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Args {
    /// TOML file with any of these settings (keys as the long flag names, e.g. `listen`).
    #[arg(long, env = "PARLOR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. [default: 127.0.0.1:7700]
    #[arg(long, env = "PARLOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// SQLite database file. [default: <platform data dir>/parlor/server.db]
    #[arg(long, env = "PARLOR_DATABASE")]
    pub database: Option<PathBuf>,
    /// PEM certificate chain; with --tls-key, serves wss:// and https://.
    #[arg(long, env = "PARLOR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "PARLOR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// STUN server URI handed to clients (repeatable). None by default.
    #[arg(long = "stun-url", env = "PARLOR_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,
    /// TURN server URI handed to clients (repeatable), e.g. turn:turn.example.org:3478?transport=udp.
    #[arg(long = "turn-url", env = "PARLOR_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// Shared secret of the TURN server (coturn `use-auth-secret`); clients get time-limited credentials.
    #[arg(long, env = "PARLOR_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Lifetime of issued TURN credentials, in seconds. [default: 86400]
    #[arg(long, env = "PARLOR_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,
    /// Most participants in one room's call. [default: 6]
    #[arg(long, env = "PARLOR_MAX_CALL_PARTICIPANTS")]
    pub max_call_participants: Option<usize>,
    /// How long a call participant whose socket dropped keeps its place, in ms. [default: 10000]
    #[arg(long, env = "PARLOR_CALL_GRACE_MS")]
    pub call_grace_ms: Option<u64>,
    /// A socket that has not authenticated in this many ms is closed. [default: 10000]
    #[arg(long, env = "PARLOR_AUTH_TIMEOUT_MS")]
    pub auth_timeout_ms: Option<u64>,
    /// Interval between server pings, in ms. [default: 20000]
    #[arg(long, env = "PARLOR_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u64>,
    /// A socket silent (no frame, no pong) for this many ms is closed. [default: 60000]
    #[arg(long, env = "PARLOR_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Sustained requests per second allowed per socket. [default: 20]
    #[arg(long, env = "PARLOR_RATE_PER_SEC")]
    pub rate_per_sec: Option<u32>,
    /// Burst of requests allowed per socket above the sustained rate. [default: 100]
    #[arg(long, env = "PARLOR_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Consecutive rate-limited frames after which the socket is closed. [default: 50]
    #[arg(long, env = "PARLOR_RATE_ABUSE_LIMIT")]
    pub rate_abuse_limit: Option<u32>,
    /// Days a session token stays valid after its last use. [default: 30]
    #[arg(long, env = "PARLOR_SESSION_TTL_DAYS")]
    pub session_ttl_days: Option<u64>,
    /// Interval, in ms, at which the sessions of open sockets are checked against the database:
    /// an expired, revoked or disabled one is closed. [default: 10000]
    #[arg(long, env = "PARLOR_SESSION_CHECK_MS")]
    pub session_check_ms: Option<u64>,
    /// Who may create an account: `open` (anyone), `invite` (with an invite code from an
    /// administrator) or `closed` (only `parlor-server admin add-user`). [default: open]
    #[arg(long, env = "PARLOR_REGISTRATION")]
    pub registration: Option<Registration>,
    /// Failed logins and authentications one client address may make in a burst; one more is
    /// allowed every 6 s. [default: 20]
    #[arg(long, env = "PARLOR_SIGN_IN_FAILURES_PER_ADDRESS")]
    pub sign_in_failures_per_address: Option<u32>,
    /// Failed logins one account may take in a burst, from anywhere; one more is allowed every
    /// minute. [default: 10]
    #[arg(long, env = "PARLOR_LOGIN_FAILURES_PER_ACCOUNT")]
    pub login_failures_per_account: Option<u32>,
    /// Accounts one client address may register in a burst; one more is allowed every minute.
    /// [default: 10]
    #[arg(long, env = "PARLOR_REGISTRATIONS_PER_ADDRESS")]
    pub registrations_per_address: Option<u32>,
    /// WebSockets one client address may hold open at once; more are refused (HTTP 429) until
    /// one closes. [default: 1000]
    #[arg(long, env = "PARLOR_SOCKETS_PER_ADDRESS")]
    pub sockets_per_address: Option<u32>,
    /// Address of a reverse proxy in front of the server (repeatable), trusted to name the
    /// client in X-Forwarded-For for the per-address limits. None by default: the header is
    /// ignored.
    #[arg(
        long = "trusted-proxy",
        env = "PARLOR_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
    /// Folder of the built web app (`ui/dist-web`, from `npm run --prefix ui build:web`),
    /// served at `/` beside `/ws`. None by default: only the API is served.
    #[arg(long, env = "PARLOR_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
}

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    #[default]
    Open,
    Invite,
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: PathBuf,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub turn_ttl: Duration,
    pub max_call_participants: usize,
    pub call_grace: Duration,
    pub auth_timeout: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub rate_abuse_limit: u32,
    pub session_ttl: Duration,
    pub session_check: Duration,
    pub registration: Registration,
    pub throttle: crate::throttle::ThrottleConfig,
    pub sockets_per_address: u32,
    /// Canonical addresses (IPv4-mapped IPv6 as IPv4), as the TCP peer is compared.
    pub trusted_proxies: Vec<IpAddr>,
    pub web_dir: Option<PathBuf>,
}

impl Args {
    /// Fills what the command line and environment left unset from `file`.
    fn or(self, file: Args) -> Args {
        fn vec_or<T>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
            if a.is_empty() {
                b
            } else {
                a
            }
        }
        Args {
            config: self.config,
            listen: self.listen.or(file.listen),
            database: self.database.or(file.database),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            stun_urls: vec_or(self.stun_urls, file.stun_urls),
            turn_urls: vec_or(self.turn_urls, file.turn_urls),
            turn_secret: self.turn_secret.or(file.turn_secret),
            turn_ttl_secs: self.turn_ttl_secs.or(file.turn_ttl_secs),
            max_call_participants: self.max_call_participants.or(file.max_call_participants),
            call_grace_ms: self.call_grace_ms.or(file.call_grace_ms),
            auth_timeout_ms: self.auth_timeout_ms.or(file.auth_timeout_ms),
            ping_interval_ms: self.ping_interval_ms.or(file.ping_interval_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(file.idle_timeout_ms),
            rate_per_sec: self.rate_per_sec.or(file.rate_per_sec),
            rate_burst: self.rate_burst.or(file.rate_burst),
            rate_abuse_limit: self.rate_abuse_limit.or(file.rate_abuse_limit),
            session_ttl_days: self.session_ttl_days.or(file.session_ttl_days),
            session_check_ms: self.session_check_ms.or(file.session_check_ms),
            registration: self.registration.or(file.registration),
            sign_in_failures_per_address: self
                .sign_in_failures_per_address
                .or(file.sign_in_failures_per_address),
            login_failures_per_account: self
                .login_failures_per_account
                .or(file.login_failures_per_account),
            registrations_per_address: self
                .registrations_per_address
                .or(file.registrations_per_address),
            sockets_per_address: self.sockets_per_address.or(file.sockets_per_address),
            trusted_proxies: vec_or(self.trusted_proxies, file.trusted_proxies),
            web_dir: self.web_dir.or(file.web_dir),
        }
    }

    /// Reads the TOML file (if any) and applies defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let merged = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                let file: Args =
                    toml::from_str(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?;
                self.or(file)
            }
            None => self,
        };
        let tls = match (merged.tls_cert, merged.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "TLS needs both a certificate and a key".into(),
                ))
            }
        };
        let ms = Duration::from_millis;
        let settings = Settings {
            listen: merged
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7700))),
            database: merged.database.unwrap_or_else(default_database),
            tls,
            stun_urls: merged.stun_urls,
            turn_urls: merged.turn_urls,
            turn_secret: merged.turn_secret.filter(|s| !s.is_empty()),
            turn_ttl: Duration::from_secs(merged.turn_ttl_secs.unwrap_or(86_400)),
            max_call_participants: merged.max_call_participants.unwrap_or(6),
            call_grace: ms(merged.call_grace_ms.unwrap_or(10_000)),
            auth_timeout: ms(merged.auth_timeout_ms.unwrap_or(10_000)),
            ping_interval: ms(merged.ping_interval_ms.unwrap_or(20_000)),
            idle_timeout: ms(merged.idle_timeout_ms.unwrap_or(60_000)),
            rate_per_sec: merged.rate_per_sec.unwrap_or(20),
            rate_burst: merged.rate_burst.unwrap_or(100),
            rate_abuse_limit: merged.rate_abuse_limit.unwrap_or(50),
            session_ttl: Duration::from_secs(86_400 * merged.session_ttl_days.unwrap_or(30)),
            session_check: ms(merged.session_check_ms.unwrap_or(10_000)),
            registration: merged.registration.unwrap_or_default(),
            throttle: ThrottleConfig {
                failures_per_address: Allowance {
                    burst: merged.sign_in_failures_per_address.unwrap_or(20),
                    refill: Duration::from_secs(6),
                },
                failures_per_account: Allowance {
                    burst: merged.login_failures_per_account.unwrap_or(10),
                    refill: Duration::from_secs(60),
                },
                registrations_per_address: Allowance {
                    burst: merged.registrations_per_address.unwrap_or(10),
                    refill: Duration::from_secs(60),
                },
            },
            sockets_per_address: merged.sockets_per_address.unwrap_or(1000),
            trusted_proxies: merged
                .trusted_proxies
                .iter()
                .map(IpAddr::to_canonical)
                .collect(),
            web_dir: merged.web_dir,
        };
        settings.validate()?;
        Ok(settings)
    }
}

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.max_call_participants < 2 {
            return bad("max-call-participants must be at least 2");
        }
        if self.rate_per_sec == 0 || self.rate_burst == 0 {
            return bad("rate-per-sec and rate-burst must be positive");
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return bad("idle-timeout-ms must exceed a non-zero ping-interval-ms");
        }
        if self.session_ttl.is_zero() {
            return bad("session-ttl-days must be positive");
        }
        if self.session_check.is_zero() {
            return bad("session-check-ms must be positive");
        }
        if let Some(dir) = &self.web_dir {
            if !dir.join("index.html").is_file() {
                return Err(ConfigError::Invalid(format!(
                    "web-dir {} has no index.html: build the web app first \
                     (npm run --prefix ui build:web)",
                    dir.display()
                )));
            }
        }
        if self.sockets_per_address == 0 {
            return bad("sockets-per-address must be positive");
        }
        let t = &self.throttle;
        if [
            t.failures_per_address,
            t.failures_per_account,
            t.registrations_per_address,
        ]
        .iter()
        .any(|a| a.burst == 0)
        {
            return bad("sign-in allowances must be positive");
        }
        Ok(())
    }

    /// Defaults with a given database, for embedding the server (tests, the desktop app).
    pub fn for_database(database: &Path) -> Settings {
        Args {
            database: Some(database.to_path_buf()),
            ..Args::default()
        }
        .resolve()
        .expect("defaults are valid")
    }
}

/// `<data dir>/parlor/server.db`, or `./parlor-server.db` where the platform has no data dir.
fn default_database() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("parlor").join("server.db"))
        .unwrap_or_else(|| PathBuf::from("parlor-server.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_public_server_free() {
        let s = Args::default().resolve().unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7700");
        assert!(s.stun_urls.is_empty() && s.turn_urls.is_empty());
        assert_eq!(s.max_call_participants, 6);
    }

    #[test]
    fn command_line_beats_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parlor.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax-call-participants = 4\nstun-urls = [\"stun:127.0.0.1:3478\"]\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "parlor-server",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        let s = args.resolve().unwrap();
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.max_call_participants, 4);
        assert_eq!(s.stun_urls, vec!["stun:127.0.0.1:3478"]);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("parlor.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let args = Args {
            config: Some(file),
            ..Args::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Parse(..))));
        let args = Args {
            max_call_participants: Some(1),
            ..Args::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Invalid(_))));
    }
}
