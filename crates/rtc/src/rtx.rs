//! Retransmission (RTX, RFC 4588) streams beside the media streams they repair.
//!
//! webrtc-rs binds only a local stream's primary SSRC to its interceptors, so its transport-wide
//! numbering and send history never see a packet in an RTX stream: resends, and the prober's
//! clusters, would leave unnumbered and unreported, and the estimator would believe the path
//! carries less than it does. [`AlsoRepairStreams`] binds each RTX stream as a stream of its
//! own to the interceptor it wraps.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// The local streams' retransmission (RTX) streams: which SSRC each repairs. Filled as streams
/// are bound, read by whoever must tell a resend from a first send.
#[derive(Debug, Clone, Default)]
pub(crate) struct RepairStreams(Arc<Mutex<HashMap<u32, u32>>>);

impl RepairStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn bind(&self, info: &StreamInfo) {
        if let (Some(rtx), Some(_)) = (info.ssrc_rtx, info.payload_type_rtx) {
            self.lock().insert(rtx, info.ssrc);
        }
    }

    pub(crate) fn unbind(&self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.lock().remove(&rtx);
        }
    }

    /// The packet an outgoing RTP packet carries: its own SSRC and sequence number, or for a
    /// retransmission in an RTX stream, the SSRC it repairs and the original sequence number
    /// (RFC 4588: the payload's first two bytes). `None` for an RTX packet with no original.
    pub(crate) fn original(&self, packet: &rtc::rtp::Packet) -> Option<(u32, u16)> {
        let header = &packet.header;
        match self.lock().get(&header.ssrc) {
            None => Some((header.ssrc, header.sequence_number)),
            Some(&primary) => {
                let osn = packet.payload.get(..2)?;
                Some((primary, u16::from_be_bytes([osn[0], osn[1]])))
            }
        }
    }
}

/// `inner`, with every local stream's RTX stream bound to it as well.
pub(crate) struct AlsoRepairStreams<I>(pub(crate) I);

/// The RTX stream of `info` described as a stream of its own, if it has one.
fn repair_stream(info: &StreamInfo) -> Option<StreamInfo> {
    let (ssrc, payload_type) = (info.ssrc_rtx?, info.payload_type_rtx?);
    let mut repair = info.clone();
    repair.ssrc = ssrc;
    repair.payload_type = payload_type;
    repair.ssrc_rtx = None;
    repair.payload_type_rtx = None;
    repair.mime_type = rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX.to_owned();
    Some(repair)
}

impl<I: Interceptor> Protocol<TaggedPacket, TaggedPacket, ()> for AlsoRepairStreams<I> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_read(msg)
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.0.poll_read()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.0.handle_write(msg)
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.0.poll_write()
    }
    fn handle_event(&mut self, evt: ()) -> Result<(), Self::Error> {
        self.0.handle_event(evt)
    }
    fn poll_event(&mut self) -> Option<Self::Eout> {
        self.0.poll_event()
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.0.handle_timeout(now)
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn close(&mut self) -> Result<(), Self::Error> {
        self.0.close()
    }
}

impl<I: Interceptor> Interceptor for AlsoRepairStreams<I> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.0.bind_local_stream(info);
        if let Some(repair) = repair_stream(info) {
            self.0.bind_local_stream(&repair);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(repair) = repair_stream(info) {
            self.0.unbind_local_stream(&repair);
        }
        self.0.unbind_local_stream(info);
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.bind_remote_stream(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.0.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::NoopInterceptor;

    fn video_with_rtx() -> StreamInfo {
        StreamInfo {
            ssrc: 1,
            ssrc_rtx: Some(2),
            payload_type: 102,
            payload_type_rtx: Some(103),
            mime_type: "video/H264".into(),
            ..Default::default()
        }
    }

    fn packet(ssrc: u32, sequence_number: u16, payload: &[u8]) -> rtc::rtp::Packet {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.ssrc = ssrc;
        packet.header.sequence_number = sequence_number;
        packet.payload = payload.to_vec().into();
        packet
    }

    #[test]
    fn a_resend_in_an_rtx_stream_names_its_original() {
        let streams = RepairStreams::default();
        streams.bind(&video_with_rtx());
        assert_eq!(
            streams.original(&packet(1, 7, &[9])),
            Some((1, 7)),
            "a first send"
        );
        assert_eq!(
            streams.original(&packet(2, 500, &[0x01, 0x02, 9])),
            Some((1, 0x0102)),
            "a resend of 258"
        );
        assert_eq!(streams.original(&packet(2, 501, &[])), None, "padding only");
        streams.unbind(&video_with_rtx());
        assert_eq!(streams.original(&packet(2, 502, &[0, 1])), Some((2, 502)));
    }

    #[test]
    fn an_rtx_stream_is_only_known_once_negotiated() {
        let streams = RepairStreams::default();
        let unnegotiated = StreamInfo {
            payload_type_rtx: None,
            ..video_with_rtx()
        };
        streams.bind(&unnegotiated);
        assert_eq!(streams.original(&packet(2, 5, &[0, 1])), Some((2, 5)));
        assert!(repair_stream(&unnegotiated).is_none());
    }

    /// Passes packets through and records which local streams are bound to it.
    #[derive(Default)]
    struct Bindings {
        bound: Vec<u32>,
        inner: NoopInterceptor,
    }

    impl Protocol<TaggedPacket, TaggedPacket, ()> for Bindings {
        type Rout = TaggedPacket;
        type Wout = TaggedPacket;
        type Eout = ();
        type Error = Error;
        type Time = Instant;
        fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
            self.inner.handle_read(msg)
        }
        fn poll_read(&mut self) -> Option<TaggedPacket> {
            self.inner.poll_read()
        }
        fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
            self.inner.handle_write(msg)
        }
        fn poll_write(&mut self) -> Option<TaggedPacket> {
            self.inner.poll_write()
        }
    }

    impl Interceptor for Bindings {
        fn bind_local_stream(&mut self, info: &StreamInfo) {
            self.bound.push(info.ssrc);
        }
        fn unbind_local_stream(&mut self, info: &StreamInfo) {
            self.bound.retain(|ssrc| *ssrc != info.ssrc);
        }
        fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
        fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
    }

    #[test]
    fn the_repair_stream_is_bound_as_a_stream_of_its_own() {
        let repair = repair_stream(&video_with_rtx()).expect("negotiated RTX");
        assert_eq!((repair.ssrc, repair.payload_type), (2, 103));
        assert_eq!((repair.ssrc_rtx, repair.payload_type_rtx), (None, None));
        let mut wrapped = AlsoRepairStreams(Bindings::default());
        wrapped.bind_local_stream(&video_with_rtx());
        assert_eq!(wrapped.0.bound, vec![1, 2]);
        wrapped.unbind_local_stream(&video_with_rtx());
        assert!(wrapped.0.bound.is_empty());
        let audio = StreamInfo {
            ssrc: 3,
            mime_type: "audio/opus".into(),
            ..Default::default()
        };
        wrapped.bind_local_stream(&audio);
        assert_eq!(wrapped.0.bound, vec![3], "no RTX, nothing more");
    }
}
