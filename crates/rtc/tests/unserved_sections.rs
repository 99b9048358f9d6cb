//! An offer with a media section we cannot serve: Debian's Firefox ESR offers video in VP8
//! and VP9 only (no H.264 for WebRTC), audio in Opus, and a data channel.
mod common;

use common::*;
use parlor_media::source::VideoConstraints;
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_rtc::{
    LocalAudioTrack, LocalVideoTrack, MediaKind, PeerEvent, SdpType, SessionDescription,
    VideoTrackOptions,
};

/// The shape of Firefox ESR 128's offer on Debian 12 (audio, video, data channel in one
/// BUNDLE), keys and identifiers made up.
const FIREFOX_OFFER: &str = "v=0\r\n\
o=mozilla...THIS_IS_SDPARTA-128.5.1 3150873463325516355 0 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 4F:1B:62:7A:29:5E:AD:18:7E:4C:F0:4B:77:30:9B:61:22:6D:33:93:5A:5A:40:D8:46:1C:2A:CD:50:55:0A:37\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=ice-options:trickle\r\n\
a=msid-semantic:WMS *\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1\r\n\
a=fmtp:101 0-15\r\n\
a=ice-pwd:b5d5d3c7b1f0f9b5e2b6c3a1d4e7f8a9\r\n\
a=ice-ufrag:4f2a9c1e\r\n\
a=mid:0\r\n\
a=msid:{5b7e4c1a-8d2f-4e3b-9a6c-1f0e2d3c4b5a} {0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}\r\n\
a=rtcp-mux\r\n\
a=rtpmap:109 opus/48000/2\r\n\
a=rtpmap:9 G722/8000/1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=setup:actpass\r\n\
a=ssrc:2821505338 cname:{8c1f3a2e-7b4d-4c6e-9f0a-1b2c3d4e5f60}\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 123 122 119\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\n\
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r\n\
a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=fmtp:120 max-fs=12288;max-fr=60\r\n\
a=fmtp:124 apt=120\r\n\
a=fmtp:121 max-fs=12288;max-fr=60\r\n\
a=fmtp:125 apt=121\r\n\
a=fmtp:119 apt=122\r\n\
a=ice-pwd:b5d5d3c7b1f0f9b5e2b6c3a1d4e7f8a9\r\n\
a=ice-ufrag:4f2a9c1e\r\n\
a=mid:1\r\n\
a=msid:{5b7e4c1a-8d2f-4e3b-9a6c-1f0e2d3c4b5a} {6d5c4b3a-2f1e-4d0c-8b9a-7f6e5d4c3b2a}\r\n\
a=rtcp-fb:120 nack\r\n\
a=rtcp-fb:120 nack pli\r\n\
a=rtcp-fb:120 ccm fir\r\n\
a=rtcp-fb:120 goog-remb\r\n\
a=rtcp-fb:120 transport-cc\r\n\
a=rtcp-fb:121 nack\r\n\
a=rtcp-fb:121 nack pli\r\n\
a=rtcp-fb:121 ccm fir\r\n\
a=rtcp-fb:121 goog-remb\r\n\
a=rtcp-fb:121 transport-cc\r\n\
a=rtcp-fb:123 nack\r\n\
a=rtcp-fb:123 nack pli\r\n\
a=rtcp-fb:123 ccm fir\r\n\
a=rtcp-fb:123 goog-remb\r\n\
a=rtcp-fb:123 transport-cc\r\n\
a=rtcp-fb:122 nack\r\n\
a=rtcp-fb:122 nack pli\r\n\
a=rtcp-fb:122 ccm fir\r\n\
a=rtcp-fb:122 goog-remb\r\n\
a=rtcp-fb:122 transport-cc\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:120 VP8/90000\r\n\
a=rtpmap:124 rtx/90000\r\n\
a=rtpmap:121 VP9/90000\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=rtpmap:123 ulpfec/90000\r\n\
a=rtpmap:122 red/90000\r\n\
a=rtpmap:119 rtx/90000\r\n\
a=setup:actpass\r\n\
a=ssrc:1190564417 cname:{8c1f3a2e-7b4d-4c6e-9f0a-1b2c3d4e5f60}\r\n\
a=ssrc:3523454150 cname:{8c1f3a2e-7b4d-4c6e-9f0a-1b2c3d4e5f60}\r\n\
a=ssrc-group:FID 1190564417 3523454150\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=sendrecv\r\n\
a=ice-pwd:b5d5d3c7b1f0f9b5e2b6c3a1d4e7f8a9\r\n\
a=ice-ufrag:4f2a9c1e\r\n\
a=mid:2\r\n\
a=setup:actpass\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:1073741823\r\n";

/// A peer with our tracks on it, given `offer`: the answer it sets as its local description,
/// and its events.
async fn answer(
    offer: &str,
) -> (
    std::sync::Arc<parlor_rtc::PeerConnection>,
    tokio::sync::mpsc::UnboundedReceiver<PeerEvent>,
    String,
) {
    let (pc, events) = peer().await;
    let pattern = VideoSpec::TestPattern
        .open(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
    let video = LocalVideoTrack::new(pattern, VideoTrackOptions::default()).unwrap();
    let audio = LocalAudioTrack::new(AudioSpec::Tone(440.0).open().unwrap()).unwrap();
    pc.add_audio_track(&audio).await.unwrap();
    pc.add_video_track(&video).await.unwrap();
    pc.set_remote_description(SessionDescription {
        sdp_type: SdpType::Offer,
        sdp: offer.into(),
    })
    .await
    .unwrap();
    let answer = pc.create_answer().await.expect("an answer");
    pc.set_local_description(answer.clone()).await.unwrap();
    (pc, events, answer.sdp)
}

/// The answer's sections, each from its `m=` line on.
fn sections(sdp: &str) -> Vec<&str> {
    sdp.split("\r\nm=").skip(1).collect()
}

/// Debian's Firefox has no H.264: its video is answered in VP8, with our audio and data
/// channel, all in one bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firefox_offer_is_answered_in_vp8() {
    let (pc, _events, answer) = answer(FIREFOX_OFFER).await;
    let sections = sections(&answer);
    assert_eq!(sections.len(), 3, "{answer}");
    assert!(sections[0].starts_with("audio 9 ") && sections[0].contains("opus/48000/2"));
    assert!(
        sections[1].starts_with("video 9 UDP/TLS/RTP/SAVPF 120")
            && sections[1].contains("a=rtpmap:120 VP8/90000")
            && !sections[1].contains("H264")
            && sections[1].contains("a=msid:"),
        "video is answered in VP8, the offer's payload type, and sent:\n{answer}"
    );
    assert!(
        answer.lines().any(|line| line == "a=group:BUNDLE 0 1 2"),
        "{answer}"
    );
    pc.close().await.unwrap();
}

/// A video section offering none of our codecs (AV1 and VP9 here) is refused with port 0,
/// and audio and the data channel are answered as they would be without it. The answer used to
/// fail whole ("RTPSender created with no codecs"), so not even audio connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_none_of_our_video_codecs_gets_its_video_refused_and_the_rest_answered() {
    let offer = FIREFOX_OFFER.replace("VP8/90000", "AV1/90000");
    let (pc, mut events, answer) = answer(&offer).await;
    let refused = next_matching(&mut events, "the refusal", |event| match event {
        PeerEvent::MediaRefused { kind, offered } => Some((kind, offered)),
        _ => None,
    })
    .await;
    assert_eq!(refused.0, MediaKind::Video);
    assert_eq!(refused.1, ["AV1", "VP9", "ulpfec", "red"]);
    let sections = sections(&answer);
    assert_eq!(
        sections.len(),
        3,
        "one answer section per offered one:\n{answer}"
    );
    assert!(
        sections[0].starts_with("audio 9 ") && sections[0].contains("opus/48000/2"),
        "audio is answered:\n{answer}"
    );
    assert!(
        sections[0].contains("a=sendrecv") && sections[0].contains("a=msid:"),
        "and our audio sent:\n{answer}"
    );
    assert!(
        sections[1].starts_with("video 0 ") && sections[1].contains("a=mid:1"),
        "video is refused:\n{answer}"
    );
    assert!(
        sections[2].starts_with("application 9 ") && sections[2].contains("a=mid:2"),
        "the data channel is answered:\n{answer}"
    );
    let bundle = answer
        .lines()
        .find(|line| line.starts_with("a=group:BUNDLE"))
        .expect("a BUNDLE group");
    assert_eq!(
        bundle, "a=group:BUNDLE 0 2",
        "a refused section leaves the bundle"
    );
    pc.close().await.unwrap();
}
