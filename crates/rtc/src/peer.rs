//! A peer connection in the shape of Ktor's WebRTC client: offer/answer, trickled candidates,
//! states, data channels and remote tracks, with everything that happens delivered in order on
//! one event stream.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use webrtc::data_channel::{DataChannel as RawDataChannel, RTCDataChannelInit};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection as RawPeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSdpType, RTCSessionDescription, RTCSignalingState, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::{IceTransportPolicy, RtcConfig};
use crate::data_channel::{DataChannel, DataChannelOptions};
use crate::ice_timing::IceTiming;
use crate::jitter::{MAX_NACKS_PER_PACKET, NACK_INTERVAL};
use crate::lifecycle::Lifecycle;
pub use crate::state::{ConnectionState, IceConnectionState, SignalingState};
use crate::stats::StatsRegistry;
use crate::track_local::{LocalAudioTrack, LocalVideoTrack, SendLink};
use crate::track_remote::{ReceiveLink, RemoteTrack};
use crate::{codecs, Result, RtcError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// A session description as it travels through signaling (`{"type":"offer","sdp":"v=0…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub sdp_type: SdpType,
    pub sdp: String,
}

/// A trickled ICE candidate, serialized exactly like the browser's `RTCIceCandidateInit`
/// (`sdpMid`, `sdpMLineIndex`, `usernameFragment`) so it passes to and from pages unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid", alias = "sdp_mid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex", alias = "sdp_mline_index")]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, rename = "usernameFragment", alias = "username_fragment")]
    pub username_fragment: Option<String>,
}

/// Everything a peer connection reports, in the order it happened.
#[derive(Debug)]
pub enum PeerEvent {
    /// A local candidate to send to the other side.
    IceCandidate(IceCandidate),
    /// Gathering finished: no more local candidates.
    IceGatheringComplete,
    ConnectionState(ConnectionState),
    IceConnectionState(IceConnectionState),
    SignalingState(SignalingState),
    /// Tracks or channels changed in a way that needs a new offer.
    NegotiationNeeded,
    /// The other side opened a data channel.
    DataChannel(DataChannel),
    /// The other side started sending a track.
    TrackAdded(RemoteTrack),
    /// A remote track ended.
    TrackRemoved {
        track_id: String,
    },
    /// The other side offered `kind` media only in codecs Parlor does not have (`offered`): that
    /// part of the call is refused, the rest goes on.
    MediaRefused {
        kind: crate::codecs::MediaKind,
        offered: Vec<String>,
    },
}

/// State shared with the event handler and the track pipelines.
pub(crate) struct Shared {
    pub(crate) events: mpsc::UnboundedSender<PeerEvent>,
    /// What the stats read from our own pipelines.
    pub(crate) stats: Arc<StatsRegistry>,
    /// Remote tracks already reported as removed.
    pub(crate) removed: Mutex<std::collections::HashSet<String>>,
    /// Closing cancels, and the count of tasks still running.
    pub(crate) lifecycle: Lifecycle,
    pub(crate) keyframe_requests: broadcast::Sender<u32>,
    pub(crate) connection: watch::Sender<ConnectionState>,
    /// Bumped after every applied description: negotiated payload types may have changed.
    pub(crate) negotiations: watch::Sender<u64>,
    /// Whether the far side's last description asked us to leave silence out (Opus DTX).
    pub(crate) far_side_dtx: watch::Sender<bool>,
    /// The congestion controller's estimate for this connection (all media), published by the
    /// estimator itself each time it changes.
    pub(crate) bandwidth_estimate: watch::Sender<Option<crate::estimate::Estimate>>,
    /// What the sent video's next size up needs (0: none), for this connection's prober.
    pub(crate) probe_next_size: watch::Sender<u32>,
    /// Where the estimate starts for the sent video's source (0: not known yet), for this
    /// connection's congestion controller (`congestion::start_bps`).
    pub(crate) source_start: watch::Sender<u32>,
    /// The selected candidate pair's round-trip time, as last read by the stats (receivers
    /// scale how long they wait for a retransmission by it).
    pub(crate) round_trip_time: watch::Sender<Option<std::time::Duration>>,
    gathering_complete: watch::Sender<bool>,
    /// The mid of the local description's first media section: every media section is
    /// bundled on its transport, so every local candidate belongs to it. webrtc-rs gives each
    /// candidate the mid "" instead, which a browser may refuse.
    transport_mid: Mutex<Option<String>>,
}

impl Shared {
    /// What a local track's binding to this connection needs.
    fn send_link(&self) -> SendLink {
        SendLink {
            keyframe_requests: self.keyframe_requests.subscribe(),
            lifecycle: self.lifecycle.clone(),
            negotiations: self.negotiations.subscribe(),
            far_side_dtx: self.far_side_dtx.subscribe(),
            connection: self.connection.subscribe(),
            estimate: self.bandwidth_estimate.subscribe(),
            probe_next_size: self.probe_next_size.clone(),
            source_start: self.source_start.clone(),
            stats: self.stats.clone(),
        }
    }

    /// What a remote track on this connection needs.
    fn receive_link(&self) -> ReceiveLink {
        let events = self.events.clone();
        ReceiveLink {
            lifecycle: self.lifecycle.clone(),
            round_trip_time: self.round_trip_time.subscribe(),
            stats: self.stats.clone(),
            ended: Arc::new(move |track_id| {
                let _ = events.send(PeerEvent::TrackRemoved { track_id });
            }),
        }
    }
}

struct Handler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_negotiation_needed(&self) {
        let _ = self.shared.events.send(PeerEvent::NegotiationNeeded);
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let transport_mid = self
                    .shared
                    .transport_mid
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let _ = self
                    .shared
                    .events
                    .send(PeerEvent::IceCandidate(IceCandidate {
                        candidate: init.candidate,
                        sdp_mid: transport_mid.or(init.sdp_mid).filter(|mid| !mid.is_empty()),
                        sdp_mline_index: Some(0),
                        username_fragment: init.username_fragment,
                    }));
            }
            Err(e) => tracing::warn!("unusable local candidate: {e}"),
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.shared.gathering_complete.send_replace(true);
            let _ = self.shared.events.send(PeerEvent::IceGatheringComplete);
        } else if state == RTCIceGatheringState::Gathering {
            self.shared.gathering_complete.send_replace(false);
        }
    }

    async fn on_signaling_state_change(&self, state: RTCSignalingState) {
        let state = match state {
            RTCSignalingState::HaveLocalOffer => SignalingState::HaveLocalOffer,
            RTCSignalingState::HaveRemoteOffer => SignalingState::HaveRemoteOffer,
            RTCSignalingState::HaveLocalPranswer => SignalingState::HaveLocalPranswer,
            RTCSignalingState::HaveRemotePranswer => SignalingState::HaveRemotePranswer,
            RTCSignalingState::Closed => SignalingState::Closed,
            _ => SignalingState::Stable,
        };
        let _ = self.shared.events.send(PeerEvent::SignalingState(state));
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let state = match state {
            RTCIceConnectionState::Checking => IceConnectionState::Checking,
            RTCIceConnectionState::Connected => IceConnectionState::Connected,
            RTCIceConnectionState::Completed => IceConnectionState::Completed,
            RTCIceConnectionState::Disconnected => IceConnectionState::Disconnected,
            RTCIceConnectionState::Failed => IceConnectionState::Failed,
            RTCIceConnectionState::Closed => IceConnectionState::Closed,
            _ => IceConnectionState::New,
        };
        let _ = self
            .shared
            .events
            .send(PeerEvent::IceConnectionState(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::Connecting => ConnectionState::Connecting,
            RTCPeerConnectionState::Connected => ConnectionState::Connected,
            RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
            RTCPeerConnectionState::Failed => ConnectionState::Failed,
            RTCPeerConnectionState::Closed => ConnectionState::Closed,
            _ => ConnectionState::New,
        };
        self.shared.connection.send_replace(state);
        let _ = self.shared.events.send(PeerEvent::ConnectionState(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn RawDataChannel>) {
        let channel = DataChannel::wrap(channel, &self.shared.lifecycle).await;
        let _ = self.shared.events.send(PeerEvent::DataChannel(channel));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        match RemoteTrack::start(track, &self.shared.receive_link()).await {
            Ok(track) => {
                let _ = self.shared.events.send(PeerEvent::TrackAdded(track));
            }
            Err(e) => tracing::warn!("remote track refused: {e}"),
        }
    }
}

/// One WebRTC connection to one other participant.
pub struct PeerConnection {
    pub(crate) raw: Arc<dyn RawPeerConnection>,
    pub(crate) shared: Arc<Shared>,
    events: Mutex<Option<mpsc::UnboundedReceiver<PeerEvent>>>,
    connection: watch::Receiver<ConnectionState>,
    gathering_complete: watch::Receiver<bool>,
    senders: Mutex<Vec<(String, Arc<dyn RtpSender>)>>,
    /// Candidates that arrived before the remote description; applied right after it.
    early_candidates: tokio::sync::Mutex<Vec<IceCandidate>>,
}

impl std::fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerConnection({:?})", *self.connection.borrow())
    }
}

/// NACK generator and responder, and the video feedback they negotiate.
fn nack(
    media_engine: &mut rtc::peer_connection::configuration::media_engine::MediaEngine,
) -> Registry {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Slot};
    use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RtpCodecKind};
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                // `a=rtcp-fb:<pt> nack` and `nack pli` (webrtc-rs keeps its constant private).
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_interval(NACK_INTERVAL)
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
        )
}

/// The one place the interceptor chain is composed: NACK (generator and responder), RTCP
/// reports, simulcast header extensions, send-side congestion control (Google Congestion Control
/// over transport-wide feedback, with its pacer), our retransmission limiter, our prober and
/// our keyframe-request tap.
fn interceptors(
    media_engine: &mut rtc::peer_connection::configuration::media_engine::MediaEngine,
    keyframe_requests: broadcast::Sender<u32>,
    estimates: watch::Sender<Option<crate::estimate::Estimate>>,
    probe_next_size: watch::Receiver<u32>,
    source_start: watch::Receiver<u32>,
    stats: Arc<StatsRegistry>,
) -> Result<Registry> {
    use crate::congestion::{INITIAL_BITRATE_BPS, MAX_BITRATE_BPS, MIN_BITRATE_BPS};
    use rtc::peer_connection::configuration::interceptor_registry as chain;
    let estimate_rx = estimates.subscribe();
    let probe_log = crate::probe::ProbeLog::default();
    let probe =
        crate::probe::Prober::new(probe_next_size, estimates.subscribe(), probe_log.clone());
    let failed = |e: rtc::shared::error::Error| RtcError::Internal(format!("interceptors: {e}"));
    let registry = nack(media_engine);
    chain::configure_simulcast_extension_headers(media_engine).map_err(failed)?;
    let registry = chain::configure_rtcp_reports(registry);
    let estimator = crate::congestion::Published::new(
        crate::congestion::Gcc::new(INITIAL_BITRATE_BPS, MIN_BITRATE_BPS, MAX_BITRATE_BPS)
            .with_probes(probe_log)
            .with_source_start(source_start),
        estimates,
    );
    let registry = congestion_control(registry, estimator, media_engine).map_err(failed)?;
    Ok(registry
        .with(
            rtc::interceptor::Slot::from(14_000),
            crate::keyframes::keyframe_request_tap(keyframe_requests.clone()),
        )
        // Between the pacer (3 000) and the NACK responder (4 000): it sees the resends
        // before they queue.
        .with(
            rtc::interceptor::Slot::from(3_500),
            crate::retransmissions::retransmission_limiter(estimate_rx, keyframe_requests, stats),
        )
        // Between the transport-wide numbering and the pacer: its clusters go out faster than
        // the estimate, which is their point, and are reported on like everything else.
        .with(rtc::interceptor::Slot::from(2_500), probe))
}

/// Send-side congestion control over transport-wide feedback, as webrtc-rs's
/// `configure_congestion_control` composes it (the same feedback, header extension and
/// interceptors in the same slots), except that the numbering and the send history also see
/// the RTX streams (see `rtx`): without that, resends and probes leave unreported.
fn congestion_control<E: rtc::interceptor::BandwidthEstimator + 'static>(
    registry: Registry,
    estimator: E,
    media_engine: &mut rtc::peer_connection::configuration::media_engine::MediaEngine,
) -> rtc::shared::error::Result<Registry> {
    use crate::rtx::AlsoRepairStreams;
    use rtc::interceptor::{
        CongestionControlBuilder, PacerBuilder, Slot, TwccReceiverBuilder, TwccSenderBuilder,
    };
    use rtc::rtp_transceiver::rtp_sender::{
        RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind,
    };
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media_engine.register_feedback(
            RTCPFeedback {
                // `a=rtcp-fb:<pt> transport-cc` (webrtc-rs keeps its constant private).
                typ: "transport-cc".to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            None,
        )?;
    }
    Ok(registry
        .with(
            Slot::CongestionControl,
            AlsoRepairStreams(CongestionControlBuilder::new(estimator).build()),
        )
        .with(Slot::Pacer, PacerBuilder::new().build())
        .with(
            Slot::TwccSender,
            AlsoRepairStreams(TwccSenderBuilder::new().build()),
        )
        .with(
            Slot::TwccReceiver,
            TwccReceiverBuilder::new()
                .with_interval(FEEDBACK_INTERVAL)
                .build(),
        ))
}

/// How often the receiver reports arrivals to the sender's congestion controller. webrtc-rs's
/// default is 100 ms; a queue building on a 600 kbit/s link was then seen two reports (and
/// 50-60 ms of queue) late. libwebrtc reports every 50-250 ms by rate; at video rates, 50.
const FEEDBACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Builds webrtc-rs's peer connection for `config`, its events going to `shared`.
async fn build_raw(
    config: &RtcConfig,
    shared: &Arc<Shared>,
    keyframe_tx: &broadcast::Sender<u32>,
    resolve_mdns: bool,
) -> Result<Arc<dyn RawPeerConnection>> {
    let ice_servers = config
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers)
        .with_ice_transport_policy(match config.ice_transport_policy {
            IceTransportPolicy::All => RTCIceTransportPolicy::All,
            IceTransportPolicy::Relay => RTCIceTransportPolicy::Relay,
        })
        .build();
    let mut media_engine = codecs::media_engine()?;
    let registry = interceptors(
        &mut media_engine,
        keyframe_tx.clone(),
        shared.bandwidth_estimate.clone(),
        shared.probe_next_size.subscribe(),
        shared.source_start.subscribe(),
        shared.stats.clone(),
    )?;
    let mdns = if resolve_mdns {
        rtc::ice::mdns::MulticastDnsMode::QueryOnly
    } else {
        rtc::ice::mdns::MulticastDnsMode::Disabled
    };
    let settings = IceTiming::new(config.ice_check_interval)
        .apply(SettingEngineBuilder::new())
        .with_multicast_dns_mode(mdns)
        .with_sctp_max_message_size(
            rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize::Bounded(
                16 * 1024 * 1024,
            ),
        )
        .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
        .with_sctp_max_receive_buffer_size(config.sctp_receive_window)
        .build();
    let raw = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler {
            shared: shared.clone(),
        }))
        .with_udp_addrs(config.udp_addrs.clone())
        .with_data_channel_send_buffer_limit(config.data_channel_buffer)
        .build()
        .await
        .map_err(|e| RtcError::Ice(format!("cannot set up the connection: {e}")))?;
    Ok(Arc::new(raw))
}

impl PeerConnection {
    pub(crate) async fn new(config: &RtcConfig) -> Result<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (connection_tx, connection_rx) = watch::channel(ConnectionState::New);
        let (gathering_tx, gathering_rx) = watch::channel(false);
        let (keyframe_tx, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            events: events_tx,
            stats: Arc::default(),
            removed: Mutex::new(Default::default()),
            lifecycle: Lifecycle::new(),
            keyframe_requests: keyframe_tx.clone(),
            connection: connection_tx,
            negotiations: watch::channel(0).0,
            far_side_dtx: watch::channel(false).0,
            round_trip_time: watch::channel(None).0,
            bandwidth_estimate: watch::channel(None).0,
            probe_next_size: watch::channel(0).0,
            source_start: watch::channel(0).0,
            gathering_complete: gathering_tx,
            transport_mid: Mutex::new(None),
        });

        let raw = match build_raw(config, &shared, &keyframe_tx, config.resolve_mdns).await {
            Ok(raw) => raw,
            // Resolving mDNS needs a multicast-capable interface, which a container, a
            // loopback-only namespace or a VPN-only machine may not have ("No such device"):
            // a call goes on without resolving `.local` candidates rather than not at all.
            Err(e) if config.resolve_mdns => {
                tracing::warn!("cannot set up the connection with mDNS ({e}); trying without it");
                build_raw(config, &shared, &keyframe_tx, false).await?
            }
            Err(e) => return Err(e),
        };
        tokio::spawn(crate::stats::follow_round_trip_time(
            Arc::downgrade(&raw),
            shared.lifecycle.closed.clone(),
            shared.round_trip_time.clone(),
        ));
        Ok(PeerConnection {
            raw,
            shared,
            events: Mutex::new(Some(events_rx)),
            connection: connection_rx,
            gathering_complete: gathering_rx,
            senders: Mutex::new(Vec::new()),
            early_candidates: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    /// The event stream. It can be taken once; later calls get `None`.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<PeerEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn connection_state(&self) -> ConnectionState {
        *self.connection.borrow()
    }

    /// Waits until the connection is connected, or fails if it fails or closes first.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.connection.clone();
        let wait = rx.wait_for(|s| {
            matches!(
                s,
                ConnectionState::Connected | ConnectionState::Failed | ConnectionState::Closed
            )
        });
        let state = *tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| RtcError::Ice(format!("not connected after {timeout:?}")))?
            .map_err(|_| RtcError::Closed)?;
        match state {
            ConnectionState::Connected => Ok(()),
            ConnectionState::Failed => Err(RtcError::Ice("the connection failed".into())),
            _ => Err(RtcError::Closed),
        }
    }

    /// Waits until ICE gathering completes (for peers that do not trickle).
    pub async fn wait_gathering_complete(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.gathering_complete.clone();
        tokio::time::timeout(timeout, rx.wait_for(|done| *done))
            .await
            .map_err(|_| RtcError::Ice(format!("gathering not complete after {timeout:?}")))?
            .map_err(|_| RtcError::Closed)?;
        Ok(())
    }

    pub async fn create_offer(&self) -> Result<SessionDescription> {
        let offer = self
            .raw
            .create_offer(None)
            .await
            .map_err(|e| RtcError::Sdp(e.to_string()))?;
        Ok(to_description(offer))
    }

    pub async fn create_answer(&self) -> Result<SessionDescription> {
        let answer = self
            .raw
            .create_answer(None)
            .await
            .map_err(|e| RtcError::Sdp(e.to_string()))?;
        Ok(to_description(answer))
    }

    pub async fn set_local_description(&self, description: SessionDescription) -> Result<()> {
        let description = from_description(description)?;
        if description.sdp_type == RTCSdpType::Answer {
            self.name_answered_codecs(&description).await?;
        }
        // Named before the description is applied: applying it starts gathering, and the
        // first candidate can be out before the call returns (it went out with webrtc-rs's
        // empty mid, now and then, in `local_candidates_carry_the_bundles_mid`).
        let previous =
            crate::sdp::first_mid(&description).map(|mid| self.set_transport_mid(Some(mid)));
        if let Err(e) = self.raw.set_local_description(description).await {
            if let Some(previous) = previous {
                self.set_transport_mid(previous);
            }
            return Err(RtcError::Sdp(e.to_string()));
        }
        self.shared.negotiations.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Sets the mid local candidates name; returns the one before.
    fn set_transport_mid(&self, mid: Option<String>) -> Option<String> {
        std::mem::replace(
            &mut *self
                .shared
                .transport_mid
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            mid,
        )
    }

    /// Applies the other side's description. Malformed or inapplicable SDP is an
    /// [`RtcError::Sdp`], never a panic.
    pub async fn set_remote_description(&self, description: SessionDescription) -> Result<()> {
        let description = crate::sdp::without_refused_credentials(from_description(description)?)?;
        let description = crate::sdp::with_our_video_order(description)?;
        let is_offer = description.sdp_type == RTCSdpType::Offer;
        let unserved = match is_offer {
            true => crate::sdp::unserved_sections(&description),
            false => Vec::new(),
        };
        if description.sdp_type == RTCSdpType::Answer {
            self.name_answered_codecs(&description).await?;
        }
        let dtx = crate::sdp::asks_for_dtx(&description);
        // Held across the call so a candidate cannot slip between the check and the apply.
        let mut early = self.early_candidates.lock().await;
        self.raw
            .set_remote_description(description)
            .await
            .map_err(|e| RtcError::Sdp(e.to_string()))?;
        self.shared.far_side_dtx.send_replace(dtx);
        for section in unserved {
            self.refuse(section).await?;
        }
        self.shared.negotiations.send_modify(|n| *n += 1);
        if let Some(remote) = self.raw.remote_description().await {
            self.report_removed_tracks(&remote);
        }
        for candidate in early.drain(..) {
            if let Err(e) = self.apply_candidate(candidate).await {
                tracing::debug!("an early candidate was refused: {e}");
            }
        }
        Ok(())
    }

    /// Takes our track off a section of the other side's offer that has no codec we have.
    /// webrtc-rs answers such a section with port 0 only when nothing is to be sent in it; with
    /// our track attached it failed the whole answer ("RTPSender created with no codecs"), and
    /// not even audio connected.
    async fn refuse(&self, section: crate::sdp::UnservedSection) -> Result<()> {
        tracing::warn!(
            "the other side offers {:?} in {:?} (mid {}): none is a codec Parlor has, so that \
             section is refused and the rest of the call goes on",
            section.offered,
            section.kind,
            section.mid
        );
        for transceiver in self.raw.get_transceivers().await {
            if transceiver.mid().await.map_err(RtcError::from)?.as_deref()
                != Some(section.mid.as_str())
            {
                continue;
            }
            if let Some(sender) = transceiver.sender().await.map_err(RtcError::from)? {
                self.senders_mut()
                    .retain(|(_, ours)| ours.id() != sender.id());
                self.raw
                    .remove_track(&sender)
                    .await
                    .map_err(RtcError::from)?;
            }
        }
        let _ = self.shared.events.send(PeerEvent::MediaRefused {
            kind: section.kind,
            offered: section.offered,
        });
        Ok(())
    }

    /// Withdraws our unanswered offer (back to the stable state), to take the other side's
    /// offer instead when both offered at once.
    pub async fn rollback(&self) -> Result<()> {
        self.set_local_description(SessionDescription {
            sdp_type: SdpType::Rollback,
            sdp: String::new(),
        })
        .await
    }

    pub async fn local_description(&self) -> Option<SessionDescription> {
        self.raw.local_description().await.map(to_description)
    }

    pub async fn remote_description(&self) -> Option<SessionDescription> {
        self.raw.remote_description().await.map(to_description)
    }

    /// A renegotiation in which the other side stopped sending a track ends that track here, as
    /// browsers do (webrtc-rs itself does not end it).
    fn report_removed_tracks(&self, remote: &RTCSessionDescription) {
        let sending = crate::sdp::sending_track_ids(remote);
        let known = self.shared.stats.inbound_track_ids();
        let mut removed = self
            .shared
            .removed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for track_id in known {
            if !sending.contains(&track_id) && removed.insert(track_id.clone()) {
                let _ = self
                    .shared
                    .events
                    .send(PeerEvent::TrackRemoved { track_id });
            }
        }
    }

    /// Adds a candidate trickled by the other side. One that arrives before the remote
    /// description (signaling can overtake itself) is kept and applied with it. A malformed one
    /// is an [`RtcError::Ice`].
    pub async fn add_ice_candidate(&self, candidate: IceCandidate) -> Result<()> {
        if candidate.candidate.len() > 1024 {
            return Err(RtcError::Ice("candidate too long".into()));
        }
        if candidate.candidate.trim().is_empty() {
            return Ok(()); // end-of-candidates, as browsers send it
        }
        check_candidate_syntax(&candidate.candidate)?;
        {
            let mut early = self.early_candidates.lock().await;
            if self.raw.remote_description().await.is_none() {
                if early.len() >= 100 {
                    return Err(RtcError::Ice(
                        "too many candidates before the description".into(),
                    ));
                }
                early.push(candidate);
                return Ok(());
            }
        }
        self.apply_candidate(candidate).await
    }

    async fn apply_candidate(&self, candidate: IceCandidate) -> Result<()> {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_mline_index,
            username_fragment: candidate.username_fragment,
            url: None,
        };
        self.raw
            .add_ice_candidate(init)
            .await
            .map_err(|e| RtcError::Ice(e.to_string()))
    }

    /// Marks the next offer as an ICE restart (new credentials, new candidates).
    pub async fn restart_ice(&self) -> Result<()> {
        self.raw
            .restart_ice()
            .await
            .map_err(|e| RtcError::Ice(e.to_string()))
    }

    pub async fn create_data_channel(
        &self,
        label: &str,
        options: DataChannelOptions,
    ) -> Result<DataChannel> {
        if options.large_messages && !options.ordered {
            return Err(RtcError::Internal(
                "large messages need an ordered channel".into(),
            ));
        }
        let protocol = if options.large_messages {
            crate::data_channel::CHUNKED_PROTOCOL.to_owned()
        } else {
            options.protocol.clone()
        };
        let init = RTCDataChannelInit {
            ordered: options.ordered,
            max_packet_life_time: options.max_packet_lifetime_ms,
            max_retransmits: options.max_retransmits,
            protocol,
            negotiated: options.negotiated_id,
        };
        if init.max_packet_life_time.is_some() && init.max_retransmits.is_some() {
            return Err(RtcError::Internal(
                "max packet lifetime and max retransmits cannot both be set".into(),
            ));
        }
        let raw = self
            .raw
            .create_data_channel(label, Some(init))
            .await
            .map_err(RtcError::from)?;
        Ok(DataChannel::wrap(raw, &self.shared.lifecycle).await)
    }

    /// Sends a local video track on this connection.
    pub async fn add_video_track(&self, track: &LocalVideoTrack) -> Result<()> {
        self.add_pipeline(track.pipeline()).await
    }

    /// Sends a local audio track on this connection.
    pub async fn add_audio_track(&self, track: &LocalAudioTrack) -> Result<()> {
        self.add_pipeline(track.pipeline()).await
    }

    /// Gives a local track an RTP binding of its own on this connection and starts feeding it.
    async fn add_pipeline(&self, pipeline: &Arc<crate::track_local::Pipeline>) -> Result<()> {
        let rtp = pipeline.binding()?;
        let sender = self
            .raw
            .add_track(rtp.clone() as Arc<dyn webrtc::media_stream::track_local::TrackLocal>)
            .await
            .map_err(RtcError::from)?;
        pipeline.start_sending(rtp, sender.clone(), self.shared.send_link());
        self.senders_mut().push((pipeline.id.clone(), sender));
        Ok(())
    }

    /// Before an answer (ours or theirs) is applied, each video sender's track is made to name
    /// the codec that answer chose. webrtc-rs binds a sender's retransmission, NACK and
    /// congestion-control streams to the codec its track names, when the answer starts it, and
    /// binds nothing if that is not the negotiated codec; our video tracks name none when they
    /// are made (so that every video codec is offered: see `Pipeline::binding`). The track
    /// webrtc-rs holds is replaced at each answer, with the same stream, id and SSRCs.
    async fn name_answered_codecs(&self, answer: &RTCSessionDescription) -> Result<()> {
        let chosen = crate::sdp::answered_video_codecs(answer);
        if chosen.is_empty() {
            return Ok(());
        }
        for transceiver in self.raw.get_transceivers().await {
            let Some(mid) = transceiver.mid().await.map_err(RtcError::from)? else {
                continue;
            };
            let (Some(codec), Some(sender)) = (
                chosen.get(&mid),
                transceiver.sender().await.map_err(RtcError::from)?,
            ) else {
                continue;
            };
            let named = sender.track().track().await;
            if let Some(renamed) = crate::track_local::coded_as(&named, *codec) {
                let binding =
                    webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP::new(
                        renamed,
                    );
                sender
                    .replace_track(Arc::new(binding))
                    .await
                    .map_err(RtcError::from)?;
            }
        }
        Ok(())
    }

    /// Stops sending a track (renegotiation needed).
    pub async fn remove_track(&self, track_id: &str) -> Result<()> {
        let sender = {
            let mut senders = self.senders_mut();
            let index = senders
                .iter()
                .position(|(id, _)| id == track_id)
                .ok_or_else(|| RtcError::Internal(format!("no local track {track_id}")))?;
            senders.remove(index).1
        };
        self.raw.remove_track(&sender).await.map_err(RtcError::from)
    }

    fn senders_mut(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<dyn RtpSender>)>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Statistics in Parlor's one schema (see [`crate::stats::CallStats`]).
    pub async fn stats(&self) -> crate::stats::CallStats {
        let estimate = *self.shared.bandwidth_estimate.borrow();
        crate::stats::collect(&*self.raw, &self.shared.stats, estimate).await
    }

    /// Background tasks and threads of this connection still running (0 after `close`).
    pub fn running_tasks(&self) -> usize {
        self.shared.lifecycle.tasks.live()
    }

    /// Closes the connection and stops every pipeline it started; waits (bounded) for them.
    pub async fn close(&self) -> Result<()> {
        self.shared.lifecycle.closed.cancel();
        let result = self.raw.close().await.map_err(RtcError::from);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while self.shared.lifecycle.tasks.live() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        result
    }
}

/// RFC 8839 `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>`.
/// A candidate line the ICE agent can take, read by the `rtc` crate's own candidate parser
/// (kind, addresses, ports and priority checked), so a bad one is refused here, clearly.
fn check_candidate_syntax(candidate: &str) -> Result<()> {
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    body.strip_prefix("candidate:")
        .ok_or_else(|| "it does not start with \"candidate:\"".to_owned())
        .and_then(|fields| {
            rtc::ice::candidate::unmarshal_candidate(fields).map_err(|e| e.to_string())
        })
        .map(|_| ())
        .map_err(|why| RtcError::Ice(format!("malformed candidate {candidate:?}: {why}")))
}

fn to_description(d: RTCSessionDescription) -> SessionDescription {
    SessionDescription {
        sdp_type: match d.sdp_type {
            RTCSdpType::Offer => SdpType::Offer,
            RTCSdpType::Pranswer => SdpType::Pranswer,
            RTCSdpType::Rollback => SdpType::Rollback,
            _ => SdpType::Answer,
        },
        sdp: d.sdp,
    }
}

fn from_description(d: SessionDescription) -> Result<RTCSessionDescription> {
    let parsed = match d.sdp_type {
        SdpType::Offer => RTCSessionDescription::offer(d.sdp),
        SdpType::Answer => RTCSessionDescription::answer(d.sdp),
        SdpType::Pranswer => RTCSessionDescription::pranswer(d.sdp),
        SdpType::Rollback => RTCSessionDescription::rollback((!d.sdp.is_empty()).then_some(d.sdp)),
    };
    parsed.map_err(|e| RtcError::Sdp(e.to_string()))
}
