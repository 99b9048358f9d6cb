//! Parlor's RTC API, modelled on Ktor's WebRTC client and built on webrtc-rs 0.21:
//!
//! * an [`RtcClient`] made with ICE servers, an ICE transport policy and UDP bind addresses;
//! * [`PeerConnection`]s with offer/answer, trickled ICE candidates, state changes and remote
//!   tracks delivered as one ordered [`PeerEvent`] stream;
//! * [`DataChannel`]s with open/close events, text and binary messages and back-pressure;
//! * local audio/video tracks built from `parlor-media` sources (capture → encoder → RTP),
//!   remote tracks yielding decoded frames;
//! * one [`stats::CallStats`] schema for every connection.
//!
//! Everything that fails returns an [`RtcError`]; nothing the remote side sends can panic.

mod arrival_rate;
mod audio_gaps;
mod client;
mod codecs;
mod config;
mod congestion;
mod counters;
mod data_channel;
mod drop_recovery;
mod encoder_budget;
mod encoder_groups;
mod encodings;
mod error;
mod estimate;
pub mod freezes;
mod ice_timing;
mod jitter;
mod keyframes;
mod ladder;
mod lifecycle;
mod packet_hook;
mod peer;
mod probe;
mod render_timing;
mod retransmissions;
mod rtx;
mod sdp;
#[cfg(test)]
mod sim;
mod state;
pub mod stats;
#[cfg(test)]
mod test_time;
mod track_local;
mod track_remote;

pub use client::RtcClient;
pub use codecs::MediaKind;
pub use config::{IceServer, IceTransportPolicy, RtcConfig};
pub use counters::QualityLimitation;
pub use data_channel::{DataChannel, DataChannelEvent, DataChannelOptions, Message};
pub use error::RtcError;
pub use estimate::Estimate;
pub use peer::{
    ConnectionState, IceCandidate, IceConnectionState, PeerConnection, PeerEvent, SdpType,
    SessionDescription, SignalingState,
};
pub use sdp::{without_h264, OpenSections};
pub use track_local::{LocalAudioTrack, LocalVideoTrack, VideoTrackOptions};
pub use track_remote::{RemoteAudioTrack, RemoteTrack, RemoteVideoTrack};

pub type Result<T, E = RtcError> = std::result::Result<T, E>;
