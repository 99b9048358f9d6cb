//! What Parlor reads out of session descriptions, all on the `rtc` crate's SDP parser.
use std::collections::HashSet;

use webrtc::peer_connection::{RTCSdpType, RTCSessionDescription};

use crate::codecs;
use crate::codecs::MediaKind;
use crate::{Result, RtcError};

/// An audio or video section of the other side's offer with no codec Parlor has: Debian's
/// Firefox ESR, for one, offers video in VP8 and VP9 only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnservedSection {
    pub(crate) mid: String,
    pub(crate) kind: MediaKind,
    /// The codecs it offered, in its order of preference (retransmission streams left out).
    pub(crate) offered: Vec<String>,
}

/// The offer's audio and video sections we can neither send nor receive in, which the answer
/// has to refuse (port 0) so that the rest of the call can go on. Sections already refused, and
/// sections of other kinds (the data channel's), are not listed.
pub(crate) fn unserved_sections(description: &RTCSessionDescription) -> Vec<UnservedSection> {
    let Ok(parsed) = description.unmarshal() else {
        return Vec::new(); // the library refuses it whole when it is applied
    };
    let mut unserved = Vec::new();
    for section in &parsed.media_descriptions {
        let media = section.media_name.media.as_str();
        let kind = match media {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            _ => continue,
        };
        if section.media_name.port.value == 0 {
            continue;
        }
        let codecs = section.codecs();
        let offered: Vec<String> = section
            .media_name
            .formats
            .iter()
            .filter_map(|format| format.parse::<u8>().ok())
            .filter_map(|payload_type| codecs.get(&payload_type))
            .map(|codec| codec.name.clone())
            .filter(|name| !name.eq_ignore_ascii_case("rtx"))
            .fold(Vec::new(), |mut names, name| {
                // One entry per codec, however many profiles of it are offered.
                if !names.contains(&name) {
                    names.push(name);
                }
                names
            });
        if offered.iter().any(|name| codecs::serves(media, name)) {
            continue;
        }
        if let Some(mid) = section.attribute("mid").flatten() {
            unserved.push(UnservedSection {
                mid: mid.to_owned(),
                kind,
                offered,
            });
        }
    }
    unserved
}

/// A refused section (port 0) has no transport, so ICE credentials in it mean nothing; yet
/// Chromium writes fresh ones into the section it refuses, and webrtc-rs, which requires every
/// section's credentials to agree (skipping only `inactive` ones), then refused the whole answer
/// ("conflicting ice-ufrag values"): a browser turning down our video took our audio with it.
/// They are dropped before webrtc-rs reads the description.
pub(crate) fn without_refused_credentials(
    description: RTCSessionDescription,
) -> Result<RTCSessionDescription> {
    let Ok(mut parsed) = description.unmarshal() else {
        return Ok(description); // the library says what is wrong with it when it is applied
    };
    let mut changed = false;
    for section in &mut parsed.media_descriptions {
        if section.media_name.port.value == 0 {
            let before = section.attributes.len();
            section
                .attributes
                .retain(|a| a.key != "ice-ufrag" && a.key != "ice-pwd");
            changed |= section.attributes.len() != before;
        }
    }
    if !changed {
        return Ok(description);
    }
    let sdp = parsed.marshal();
    match description.sdp_type {
        RTCSdpType::Offer => RTCSessionDescription::offer(sdp),
        RTCSdpType::Pranswer => RTCSessionDescription::pranswer(sdp),
        _ => RTCSessionDescription::answer(sdp),
    }
    .map_err(|e| RtcError::Sdp(e.to_string()))
}

/// The video codec an answer chose for each of its video sections (by mid): the first it lists
/// that Parlor has. Refused sections are left out.
pub(crate) fn answered_video_codecs(
    description: &RTCSessionDescription,
) -> std::collections::HashMap<String, codecs::VideoCodec> {
    let Ok(parsed) = description.unmarshal() else {
        return Default::default();
    };
    let mut chosen = std::collections::HashMap::new();
    for section in &parsed.media_descriptions {
        if section.media_name.media != "video" || section.media_name.port.value == 0 {
            continue;
        }
        let codecs = section.codecs();
        let first = section
            .media_name
            .formats
            .iter()
            .filter_map(|format| format.parse::<u8>().ok())
            .filter_map(|payload_type| codecs.get(&payload_type))
            .find_map(|codec| codecs::VideoCodec::from_mime(&format!("video/{}", codec.name)));
        if let (Some(mid), Some(codec)) = (section.attribute("mid").flatten(), first) {
            chosen.insert(mid.to_owned(), codec);
        }
    }
    chosen
}

/// Whether `description` asks its far side to leave silence out: `usedtx=1` on the Opus
/// payload type of an audio section it did not refuse (RFC 7587). Parlor's descriptions ask;
/// Chromium's do not unless the page sets it.
pub(crate) fn asks_for_dtx(description: &RTCSessionDescription) -> bool {
    let Ok(parsed) = description.unmarshal() else {
        return false;
    };
    parsed
        .media_descriptions
        .iter()
        .filter(|section| section.media_name.media == "audio" && section.media_name.port.value != 0)
        .any(|section| {
            section.codecs().values().any(|codec| {
                codec.name.eq_ignore_ascii_case("opus")
                    && codec.fmtp.split(';').any(|p| p.trim() == "usedtx=1")
            })
        })
}

/// An offer whose video sections list H.264 after another codec of ours (Chromium lists VP8
/// first) is read with H.264 moved to the front: webrtc-rs answers in the offer's order, and
/// Parlor's rate control and picture ladder were measured with H.264, which is also what its
/// own peers send. The order is the offerer's preference, not a constraint, and only our reading
/// of it changes. Answers and other sections are left as they came.
pub(crate) fn with_our_video_order(
    description: RTCSessionDescription,
) -> Result<RTCSessionDescription> {
    if description.sdp_type != RTCSdpType::Offer {
        return Ok(description);
    }
    let Ok(mut parsed) = description.unmarshal() else {
        return Ok(description);
    };
    let mut changed = false;
    for section in &mut parsed.media_descriptions {
        if section.media_name.media != "video" {
            continue;
        }
        let codecs = section.codecs();
        let is_h264 = |format: &String| {
            format
                .parse::<u8>()
                .ok()
                .and_then(|pt| codecs.get(&pt))
                .is_some_and(|codec| codec.name.eq_ignore_ascii_case("h264"))
        };
        let formats = &mut section.media_name.formats;
        let reordered: Vec<String> = formats
            .iter()
            .filter(|f| is_h264(f))
            .chain(formats.iter().filter(|f| !is_h264(f)))
            .cloned()
            .collect();
        if reordered != *formats {
            *formats = reordered;
            changed = true;
        }
    }
    if !changed {
        return Ok(description);
    }
    RTCSessionDescription::offer(parsed.marshal()).map_err(|e| RtcError::Sdp(e.to_string()))
}

/// Which kinds of media a description has a section open for (not refused with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenSections {
    pub audio: bool,
    pub video: bool,
}

impl OpenSections {
    /// The sections of `sdp`, an offer or answer as it came from the other side. A description
    /// the parser refuses has none (applying it fails anyway).
    pub fn of(sdp: &str) -> OpenSections {
        let parsed = RTCSessionDescription::offer(sdp.to_owned())
            .ok()
            .and_then(|description| description.unmarshal().ok());
        let mut open = OpenSections::default();
        for section in parsed.iter().flat_map(|p| &p.media_descriptions) {
            if section.media_name.port.value == 0 {
                continue;
            }
            match section.media_name.media.as_str() {
                "audio" => open.audio = true,
                "video" => open.video = true,
                _ => {}
            }
        }
        open
    }
}

/// The mid of the first section: the one whose transport a BUNDLE group uses.
pub(crate) fn first_mid(description: &RTCSessionDescription) -> Option<String> {
    let parsed = description.unmarshal().ok()?;
    let first = parsed.media_descriptions.first()?;
    first.attribute("mid").flatten().map(str::to_owned)
}

/// The ids of the tracks a description's sender is sending (`a=msid:<stream> <track>` of every
/// section that is neither `recvonly` nor `inactive`).
pub(crate) fn sending_track_ids(description: &RTCSessionDescription) -> HashSet<String> {
    let Ok(parsed) = description.unmarshal() else {
        return HashSet::new();
    };
    parsed
        .media_descriptions
        .iter()
        .filter(|section| !section.has_attribute("recvonly") && !section.has_attribute("inactive"))
        .filter_map(|section| section.attribute("msid").flatten())
        .filter_map(|msid| msid.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect()
}

/// `description` (one of ours) as a peer without H.264 reads it: our H.264 payload type and its
/// retransmissions' taken out of the video section, as Debian's Firefox ESR, which has no
/// H.264, would offer or answer. For exercising the VP8 path between two Parlor peers in tests
/// and benchmarks.
pub fn without_h264(description: &crate::SessionDescription) -> crate::SessionDescription {
    let ours = [codecs::H264_PAYLOAD_TYPE, codecs::H264_RTX_PAYLOAD_TYPE].map(|pt| pt.to_string());
    let is_h264_attribute = |line: &str| {
        ours.iter().any(|pt| {
            ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                .iter()
                .any(|attribute| line.starts_with(&format!("{attribute}{pt} ")))
        })
    };
    let sdp = description
        .sdp
        .split("\r\n")
        .filter(|line| !is_h264_attribute(line))
        .map(|line| match line.strip_prefix("m=video ") {
            Some(rest) => format!(
                "m=video {}",
                rest.split(' ')
                    .filter(|field| !ours.iter().any(|pt| pt == field))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    crate::SessionDescription {
        sdp_type: description.sdp_type,
        sdp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a0 v1\r\n";

    fn offer(body: &str) -> RTCSessionDescription {
        RTCSessionDescription::offer(format!("{HEAD}{body}")).unwrap()
    }

    #[test]
    fn open_sections_leave_out_refused_ones_and_data_channels() {
        let audio_and_refused_video = format!(
            "{HEAD}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n\
             m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d2\r\n"
        );
        assert_eq!(
            OpenSections::of(&audio_and_refused_video),
            OpenSections {
                audio: true,
                video: false
            }
        );
        let video_only =
            format!("{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v0\r\n");
        assert_eq!(
            OpenSections::of(&video_only),
            OpenSections {
                audio: false,
                video: true
            }
        );
        assert_eq!(OpenSections::of("not sdp"), OpenSections::default());
    }

    #[test]
    fn dtx_is_asked_for_by_usedtx_on_an_open_audio_sections_opus() {
        let audio = |port: u16, fmtp: &str| {
            offer(&format!(
                "m=audio {port} UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n\
                 a=rtpmap:111 opus/48000/2\r\na=fmtp:111 {fmtp}\r\na=rtpmap:0 PCMU/8000\r\n"
            ))
        };
        assert!(asks_for_dtx(&audio(
            9,
            "minptime=10;useinbandfec=1;usedtx=1"
        )));
        // Chromium's own, and a refused section.
        assert!(!asks_for_dtx(&audio(9, "minptime=10;useinbandfec=1")));
        assert!(!asks_for_dtx(&audio(9, "usedtx=0")));
        assert!(!asks_for_dtx(&audio(0, "usedtx=1")));
        // Ours says so.
        assert!(asks_for_dtx(&audio(9, &codecs::opus().sdp_fmtp_line)));
    }

    #[test]
    fn a_refused_section_loses_its_ice_credentials_and_nothing_else() {
        let sdp = "m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:5lC6\r\n\
                   a=ice-pwd:NoFMJBTzLlv5ZNlT0EcYH6Nh\r\na=mid:v0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:QvHD\r\n\
                   a=ice-pwd:FYHXS+STwZ+72MmQ+RMXTc+1\r\na=mid:a1\r\na=rtpmap:111 opus/48000/2\r\n";
        let answer = RTCSessionDescription::answer(format!("{HEAD}{sdp}")).unwrap();
        let cleaned = without_refused_credentials(answer).unwrap();
        assert_eq!(cleaned.sdp_type, RTCSdpType::Answer);
        let parsed = cleaned.unmarshal().unwrap();
        let [video, audio] = &parsed.media_descriptions[..] else {
            panic!("{}", cleaned.sdp);
        };
        assert!(video.attribute("ice-ufrag").is_none() && video.attribute("ice-pwd").is_none());
        assert_eq!(video.attribute("mid").flatten(), Some("v0"));
        assert_eq!(audio.attribute("ice-ufrag").flatten(), Some("QvHD"));
        assert_eq!(
            audio.attribute("ice-pwd").flatten(),
            Some("FYHXS+STwZ+72MmQ+RMXTc+1")
        );
        assert_eq!(
            audio.attribute("rtpmap").flatten(),
            Some("111 opus/48000/2")
        );
    }

    #[test]
    fn a_description_without_refused_sections_is_passed_on_as_it_came() {
        let sdp =
            format!("{HEAD}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n");
        let offer = RTCSessionDescription::offer(sdp.clone()).unwrap();
        assert_eq!(without_refused_credentials(offer).unwrap().sdp, sdp);
    }

    #[test]
    fn an_answers_video_codec_is_the_first_it_lists_that_we_have() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n\
                   a=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 98 120 124 102\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                   a=rtpmap:98 VP9/90000\r\na=rtpmap:120 VP8/90000\r\na=rtpmap:124 rtx/90000\r\n\
                   a=rtpmap:102 H264/90000\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:v2\r\n";
        let answer = RTCSessionDescription::answer(format!("{HEAD}{sdp}")).unwrap();
        let chosen = answered_video_codecs(&answer);
        assert_eq!(chosen.len(), 1, "{chosen:?}");
        assert_eq!(chosen["v1"], codecs::VideoCodec::Vp8);
    }

    #[test]
    fn an_offer_is_read_with_h264_first_and_nothing_else_moved() {
        let sdp =
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 98\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                   a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\n\
                   a=rtpmap:103 rtx/90000\r\na=rtpmap:98 VP9/90000\r\n";
        let read = with_our_video_order(offer(sdp)).unwrap();
        let parsed = read.unmarshal().unwrap();
        assert_eq!(
            parsed.media_descriptions[0].media_name.formats,
            ["102", "96", "97", "103", "98"]
        );
        let already = "m=video 9 UDP/TLS/RTP/SAVPF 102 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                       a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n";
        let same = offer(already);
        assert_eq!(with_our_video_order(same.clone()).unwrap().sdp, same.sdp);
    }

    #[test]
    fn the_transport_mid_is_the_first_sections() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n";
        assert_eq!(first_mid(&offer(sdp)).as_deref(), Some("a0"));
        let no_mid = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n";
        assert_eq!(first_mid(&offer(no_mid)), None);
    }

    #[test]
    fn only_sending_sections_count() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=sendrecv\r\na=msid:s a1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\na=msid:s v1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=msid:s v2\r\n";
        let ids = sending_track_ids(&offer(sdp));
        assert!(
            ids.contains("a1") && ids.contains("v2") && !ids.contains("v1"),
            "{ids:?}"
        );
    }

    #[test]
    fn a_section_offering_none_of_our_codecs_is_unserved() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\nc=IN IP4 0.0.0.0\r\na=mid:a0\r\n\
                   a=rtpmap:109 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 122\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                   a=rtpmap:120 AV1/90000\r\na=rtpmap:124 rtx/90000\r\na=fmtp:124 apt=120\r\n\
                   a=rtpmap:121 VP9/90000\r\na=rtpmap:122 VP9/90000\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d2\r\n";
        assert_eq!(
            unserved_sections(&offer(sdp)),
            vec![UnservedSection {
                mid: "v1".into(),
                kind: MediaKind::Video,
                offered: vec!["AV1".into(), "VP9".into()],
            }]
        );
    }

    #[test]
    fn one_codec_of_ours_among_others_is_enough() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 98 102\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                   a=rtpmap:98 VP9/90000\r\na=rtpmap:102 H264/90000\r\n";
        assert!(unserved_sections(&offer(sdp)).is_empty());
        let vp8 = "m=video 9 UDP/TLS/RTP/SAVPF 98 96\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                   a=rtpmap:98 VP9/90000\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(unserved_sections(&offer(vp8)).is_empty());
    }

    #[test]
    fn a_section_already_refused_or_offering_only_retransmissions_is_as_it_says() {
        let refused = "m=video 0 UDP/TLS/RTP/SAVPF 120\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                       a=rtpmap:120 VP8/90000\r\n";
        assert!(unserved_sections(&offer(refused)).is_empty());
        let rtx_only = "m=video 9 UDP/TLS/RTP/SAVPF 103\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";
        let unserved = unserved_sections(&offer(rtx_only));
        assert_eq!(unserved.len(), 1);
        assert!(unserved[0].offered.is_empty());
    }
}
