//! How peer connections are made: ICE servers and policy, the addresses to gather on, buffers
//! and ICE timing.
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A STUN or TURN server, shaped like the browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Only TURN relays: hides the user's addresses from the other side.
    Relay,
}

#[derive(Debug, Clone)]
pub struct RtcConfig {
    /// No ICE servers by default: Parlor never contacts a public server unless told to.
    pub ice_servers: Vec<IceServer>,
    pub ice_transport_policy: IceTransportPolicy,
    /// Local UDP addresses to gather host candidates on. Port 0 picks one. Binding to
    /// 0.0.0.0 skips the loopback interface, so tests bind 127.0.0.1 explicitly.
    pub udp_addrs: Vec<SocketAddr>,
    /// Resolve browsers' `.local` mDNS candidates. Needs a multicast-capable interface, so it
    /// is off in tests run inside a loopback-only namespace.
    pub resolve_mdns: bool,
    /// Bytes a data channel may have queued before `send` waits.
    pub data_channel_buffer: usize,
    /// SCTP receive window. webrtc-rs defaults to 1 MiB, which caps a data channel at about
    /// 400 Mbit/s even on loopback; 8 MiB measured 700-1100 Mbit/s (parlor-rtc-bench).
    pub sctp_receive_window: u32,
    /// Interval between ICE connectivity checks (and, in webrtc-rs 0.21, between the driver's
    /// wake-ups while connecting). The library's 200 ms made call setup 200-400 ms.
    pub ice_check_interval: std::time::Duration,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            ice_servers: Vec::new(),
            ice_transport_policy: IceTransportPolicy::All,
            udp_addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            resolve_mdns: true,
            data_channel_buffer: 4 * 1024 * 1024,
            sctp_receive_window: 8 * 1024 * 1024,
            ice_check_interval: std::time::Duration::from_millis(20),
        }
    }
}

impl RtcConfig {
    /// Loopback only, no mDNS: what tests and benchmarks on one machine use.
    pub fn loopback() -> Self {
        RtcConfig {
            udp_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            resolve_mdns: false,
            ..RtcConfig::default()
        }
    }
}
