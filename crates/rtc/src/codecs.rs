//! The codecs Parlor negotiates, registered the way browsers expect them.
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use webrtc::peer_connection::MediaEngine;

use crate::{Result, RtcError};

/// Audio or video: the two kinds of media a call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

pub const H264_PAYLOAD_TYPE: u8 = 102;
pub const H264_RTX_PAYLOAD_TYPE: u8 = 103;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
pub const VP8_PAYLOAD_TYPE: u8 = 96;
pub const VP8_RTX_PAYLOAD_TYPE: u8 = 97;

/// The video codecs Parlor sends and receives. H.264 is preferred (it is what Parlor's own
/// clients and Chromium use, with hardware decoders on most machines); VP8 is for peers without
/// H.264, Debian's Firefox among them. Which one a connection uses is negotiated per
/// connection, so one call can carry both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl VideoCodec {
    /// From a negotiated codec's MIME type (`video/H264`, `video/VP8`), case aside.
    pub(crate) fn from_mime(mime: &str) -> Option<Self> {
        if mime.eq_ignore_ascii_case(MIME_TYPE_H264) {
            Some(VideoCodec::H264)
        } else if mime.eq_ignore_ascii_case(MIME_TYPE_VP8) {
            Some(VideoCodec::Vp8)
        } else {
            None
        }
    }

    /// The MIME type as getStats spells it (`video/H264`, `video/VP8`).
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => MIME_TYPE_H264,
            VideoCodec::Vp8 => MIME_TYPE_VP8,
        }
    }

    pub(crate) fn rtp_codec(self) -> RTCRtpCodec {
        match self {
            VideoCodec::H264 => h264(),
            VideoCodec::Vp8 => vp8(),
        }
    }

    pub(crate) fn encoder(
        self,
        config: parlor_media::video_codec::EncoderConfig,
    ) -> std::result::Result<
        Box<dyn parlor_media::video_codec::VideoEncoder>,
        parlor_media::MediaError,
    > {
        Ok(match self {
            VideoCodec::H264 => Box::new(parlor_media::h264::H264Encoder::new(config)?),
            VideoCodec::Vp8 => Box::new(parlor_media::vp8::Vp8Encoder::new(config)?),
        })
    }

    pub(crate) fn decoder(
        self,
    ) -> std::result::Result<
        Box<dyn parlor_media::video_codec::VideoDecoder>,
        parlor_media::MediaError,
    > {
        Ok(match self {
            VideoCodec::H264 => Box::new(parlor_media::h264::H264Decoder::new()?),
            VideoCodec::Vp8 => Box::new(parlor_media::vp8::Vp8Decoder::new()?),
        })
    }

    /// Whether a frame as the decoder takes it (an access unit, a VP8 frame) starts a picture
    /// that needs no earlier one.
    pub(crate) fn is_keyframe(self, frame: &[u8]) -> bool {
        match self {
            VideoCodec::H264 => parlor_media::h264::contains_idr(frame),
            VideoCodec::Vp8 => parlor_media::vp8::is_keyframe(frame),
        }
    }
}

/// H.264 Constrained Baseline 3.1 with packetization mode 1. Chromium matches the first two
/// bytes of profile-level-id strictly, so it must be `42e0`, not `4200`.
pub fn h264() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![
            feedback("nack", ""),
            feedback("nack", "pli"),
            feedback("ccm", "fir"),
        ],
    }
}

/// Retransmissions of H.264 in a stream of their own (RFC 4588), as every browser sends them:
/// a resend then has a sequence number of its own, so it is never taken for a replay, and the
/// prober (`probe`) can send copies of what was already sent to measure the path.
pub fn h264_rtx() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!("apt={H264_PAYLOAD_TYPE}"),
        rtcp_feedback: vec![],
    }
}

/// VP8, with the feedback browsers expect of it.
pub fn vp8() -> RTCRtpCodec {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            feedback("nack", ""),
            feedback("nack", "pli"),
            feedback("ccm", "fir"),
        ],
    }
}

/// Retransmissions of VP8 in a stream of their own, as for H.264.
pub fn vp8_rtx() -> RTCRtpCodec {
    RTCRtpCodec {
        sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
        ..h264_rtx()
    }
}

/// Opus, stereo-capable as the RTP spec requires, with in-band FEC.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        // usedtx=1: we prefer the far side to leave silence out (RFC 7587); we do the same for
        // a far side that asks (`sdp::asks_for_dtx`).
        sdp_fmtp_line: "minptime=10;useinbandfec=1;usedtx=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Every codec Parlor registers, with its payload type and kind: the media engine is built
/// from this list and [`serves`] reads it, so the two cannot disagree.
fn registered() -> [(RTCRtpCodec, u8, RtpCodecKind); 5] {
    [
        (opus(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio),
        (h264(), H264_PAYLOAD_TYPE, RtpCodecKind::Video),
        (h264_rtx(), H264_RTX_PAYLOAD_TYPE, RtpCodecKind::Video),
        (vp8(), VP8_PAYLOAD_TYPE, RtpCodecKind::Video),
        (vp8_rtx(), VP8_RTX_PAYLOAD_TYPE, RtpCodecKind::Video),
    ]
}

/// Whether Parlor can carry `kind` media (`audio`, `video`) in the codec an SDP `rtpmap` calls
/// `name` (`VP8`, `opus`, …), case aside as webrtc-rs matches it. A retransmission stream carries
/// nothing by itself, so `rtx` is not a codec served.
pub(crate) fn serves(kind: &str, name: &str) -> bool {
    registered().iter().any(|(codec, _, registered_kind)| {
        registered_kind.to_string() == kind
            && codec.mime_type != MIME_TYPE_RTX
            && codec
                .mime_type
                .split_once('/')
                .is_some_and(|(_, subtype)| subtype.eq_ignore_ascii_case(name))
    })
}

pub fn media_engine() -> Result<MediaEngine> {
    let mut engine = MediaEngine::default();
    for (codec, payload_type, kind) in registered() {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type,
                },
                kind,
            )
            .map_err(|e| RtcError::Internal(format!("registering a codec: {e}")))?;
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn what_is_served_is_what_is_registered() {
        assert!(serves("video", "H264") && serves("video", "h264"));
        assert!(serves("audio", "opus") && serves("audio", "OPUS"));
        assert!(serves("video", "VP8") && serves("video", "vp8"));
        assert!(!serves("video", "VP9") && !serves("video", "AV1"));
        assert!(!serves("audio", "H264") && !serves("video", "opus"));
        assert!(
            !serves("video", "rtx"),
            "a retransmission stream is no codec"
        );
    }
}
