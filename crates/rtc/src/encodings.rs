//! What a video track encodes for the connections it is sent on: which encoders run (a codec
//! and a group of links that share it, see `encoder_groups`), the rate each aims at, which
//! links each feeds, and which must start with a keyframe.
//!
//! [`LinkState`] is what a connection's sending task and the track's capture thread share about
//! that connection; [`plan`] reads and updates it once a frame, with no I/O and the time passed
//! in.
use std::collections::HashMap;
use std::time::Instant;

use crate::codecs::VideoCodec;
use crate::counters::SendCounters;
use crate::encoder_groups::{Groups, LinkId};
use crate::estimate::{video_share, Estimate};

/// One encoder: a codec, and the group of links it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EncodingKey {
    pub(crate) codec: VideoCodec,
    pub(crate) group: u64,
}

/// What the capture thread and a connection's sending task share about that connection.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    /// The connection's congestion-control estimate.
    pub(crate) estimate: Option<Estimate>,
    /// The video codec it negotiated (`None`: not known yet, or an audio track).
    pub(crate) codec: Option<VideoCodec>,
    /// The encoder whose frames it sends (`None` until [`plan`] has placed it).
    pub(crate) encoding: Option<EncodingKey>,
    /// Its receiver asked for a keyframe (or is new, or missed frames).
    pub(crate) wants_keyframe: bool,
    /// What the next size up of its picture needs, bits per second (0: none), for its prober.
    pub(crate) next_size_bps: u32,
    /// Where its congestion controller should start for the picture sent
    /// ([`crate::congestion::start_bps`]; 0 before the first frame), for that controller.
    pub(crate) start_bps: u32,
    /// What was sent on it: its outbound stream's frames, size and quality limitation.
    pub(crate) counters: SendCounters,
}

impl LinkState {
    /// The video bitrate this connection can take: its estimate's video share, within the
    /// user's cap. Before its congestion controller has said anything, the connection is taken
    /// to carry what that controller starts at for this picture (`start_bps`). Unmetered, the
    /// first keyframe of a 720p call was made at the encoder's default 2.8 Mbit/s (23 kB, then
    /// 14 kB for the next size), and the pacer took half a second to send them at the start
    /// rate: every frame behind them was late, and the receiver's playout delay, which covers
    /// the delays frames meet, started the call 90 ms high.
    fn target_bps(&self, start_bps: u32, cap_bps: Option<u32>) -> u32 {
        let estimate = self.estimate.map_or(start_bps, |e| e.target_bps);
        video_share(estimate).min(cap_bps.unwrap_or(u32::MAX))
    }
}

/// One encoder to run for the next frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub(crate) key: EncodingKey,
    pub(crate) links: Vec<LinkId>,
    /// What the thinnest of its links can take.
    pub(crate) target_bps: u32,
    /// One of its links' receivers asked for a keyframe (the keyframe gate decides when).
    pub(crate) keyframe_wanted: bool,
    /// A link has just been moved to it from another encoder: that link's receiver has nothing
    /// from this one to decode from, so the next frame must be a keyframe whatever the gate
    /// says. (A new link asked for its first keyframe already, and waits for the gate like any
    /// request.)
    pub(crate) keyframe_needed: bool,
}

/// The encoders to run for the next frame. Links of each codec are grouped by what they can
/// carry (rates above what `source` needs at full size count as that: a wider link would not
/// change the picture), each link is placed on its group's encoder, and each encoder aims at
/// the thinnest of its links. Before any link's codec is known, one H.264 encoder with no links
/// runs, at the rate a link is taken to carry before it is measured: a link learns its codec
/// from the first frames that reach it.
pub(crate) fn plan(
    now: Instant,
    links: &mut HashMap<LinkId, LinkState>,
    groups: &mut HashMap<VideoCodec, Groups>,
    source: (usize, usize, u32),
    cap_bps: Option<u32>,
) -> Vec<Planned> {
    let (width, height, fps) = source;
    // What the picture needs at full size: links that can carry more are all alike to it.
    let full_rate_bps =
        parlor_media::video_codec::EncoderConfig::for_size(width, height, fps).bitrate_bps;
    let start_bps = crate::congestion::start_bps(source);
    let unmeasured_bps = LinkState::default().target_bps(start_bps, cap_bps);
    let mut rates: Vec<(VideoCodec, Vec<(LinkId, u32)>)> = Vec::new();
    for (&link, state) in links.iter_mut() {
        state.start_bps = start_bps;
        let Some(codec) = state.codec else {
            state.encoding = None;
            continue;
        };
        let rate = state.target_bps(start_bps, cap_bps).min(full_rate_bps);
        match rates.iter_mut().find(|(c, _)| *c == codec) {
            Some((_, of_codec)) => of_codec.push((link, rate)),
            None => rates.push((codec, vec![(link, rate)])),
        }
    }
    rates.sort_by_key(|(codec, _)| *codec != VideoCodec::H264);
    groups.retain(|codec, _| rates.iter().any(|(c, _)| c == codec));
    let mut planned = Vec::new();
    for (codec, of_codec) in rates {
        for group in groups.entry(codec).or_default().follow(now, &of_codec) {
            let key = EncodingKey {
                codec,
                group: group.id,
            };
            let target_bps = group
                .links
                .iter()
                .filter_map(|link| links.get(link))
                .map(|state| state.target_bps(start_bps, cap_bps))
                .min()
                .unwrap_or(unmeasured_bps);
            let mut encoding = Planned {
                key,
                links: group.links.clone(),
                target_bps,
                keyframe_wanted: false,
                keyframe_needed: false,
            };
            for link in &group.links {
                let state = links.get_mut(link).expect("grouped links are known");
                if state.encoding != Some(key) {
                    tracing::debug!(link, from = ?state.encoding, to = ?key, rate = ?state.target_bps(start_bps, cap_bps), "link placed on an encoder");
                    // A new link asked for its first keyframe already, and waits for the gate
                    // like any request; a moved one has a picture frozen until it comes.
                    encoding.keyframe_needed |= state.encoding.is_some();
                    state.encoding = Some(key);
                }
                encoding.keyframe_wanted |= state.wants_keyframe;
            }
            planned.push(encoding);
        }
    }
    if planned.is_empty() {
        planned.push(Planned {
            key: EncodingKey {
                codec: VideoCodec::H264,
                group: 0,
            },
            links: Vec::new(),
            target_bps: unmeasured_bps,
            keyframe_wanted: false,
            keyframe_needed: false,
        });
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    fn estimate(target_bps: u32) -> Estimate {
        Estimate {
            target_bps,
            delay_based_bps: None,
            loss_based_bps: None,
            loss: None,
        }
    }

    fn link(codec: VideoCodec, target_bps: u32) -> LinkState {
        LinkState {
            estimate: Some(estimate(target_bps)),
            codec: Some(codec),
            ..LinkState::default()
        }
    }

    /// 640x480 at 30 fps.
    const VGA: (usize, usize, u32) = (640, 480, 30);

    #[test]
    fn links_alike_share_an_encoder_aimed_at_the_thinnest_less_audio_and_margin() {
        let mut links = HashMap::from([
            (1, link(VideoCodec::H264, 2_000_000)),
            (2, link(VideoCodec::H264, 1_000_000)),
        ]);
        let mut groups = HashMap::new();
        let start = Instant::now();
        let planned = plan(start, &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 1, "{planned:?}");
        // 85 % of 1 Mbit/s less 40 kbit/s of audio.
        assert_eq!(planned[0].target_bps, 810_000);
        assert_eq!(planned[0].links.len(), 2);
        assert!(!planned[0].keyframe_needed, "new links wait for the gate");
        // The user's cap bounds it.
        let planned = plan(at(start, 10), &mut links, &mut groups, VGA, Some(300_000));
        assert_eq!(planned[0].target_bps, 300_000);
        assert!(!planned[0].keyframe_needed, "nobody moved");
        // A link below the audio's room leaves the video nothing, never less (past its first
        // seconds, when it would be split off at once).
        links.get_mut(&2).unwrap().estimate = Some(estimate(40_000));
        let planned = plan(at(start, 10_000), &mut links, &mut groups, VGA, None);
        assert_eq!(planned[0].target_bps, 0);
    }

    #[test]
    fn a_thin_link_gets_its_own_encoder_and_no_longer_holds_the_others_back() {
        let start = Instant::now();
        let mut links = HashMap::from([
            (1, link(VideoCodec::H264, 2_000_000)),
            (2, link(VideoCodec::H264, 2_000_000)),
            (3, link(VideoCodec::H264, 2_000_000)),
        ]);
        let mut groups = HashMap::new();
        let first = plan(start, &mut links, &mut groups, VGA, None);
        assert_eq!(first.len(), 1);
        let shared = first[0].key;
        // Past the links' first seconds (a link found thin then is split off at once).
        let start = at(start, 10_000);
        assert_eq!(plan(start, &mut links, &mut groups, VGA, None).len(), 1);
        links.get_mut(&3).unwrap().estimate = Some(estimate(300_000));
        // At first the thin link holds the others back (it may be a dip)...
        let planned = plan(at(start, 1000), &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].target_bps, 215_000);
        // ...then it is split off, keeping the encoder that follows its rate; the wide links
        // move to a new one, which starts with a keyframe for them.
        let planned = plan(at(start, 3000), &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 2, "{planned:?}");
        let thin = planned.iter().find(|p| p.key == shared).expect("kept");
        assert_eq!(thin.links, vec![3]);
        assert_eq!(thin.target_bps, 215_000);
        assert!(!thin.keyframe_needed, "link 3 stayed where it was");
        let wide = planned.iter().find(|p| p.key != shared).expect("new");
        assert_eq!(wide.target_bps, 1_660_000);
        assert!(wide.keyframe_needed, "links 1 and 2 start on a new encoder");
        assert_eq!(links[&1].encoding, Some(wide.key));
        assert_eq!(links[&3].encoding, Some(shared));
    }

    #[test]
    fn rates_above_what_the_picture_needs_make_no_difference() {
        let start = Instant::now();
        // 4 and 1.2 Mbit/s: both more than the full picture's 0.92; one encoder.
        let mut links = HashMap::from([
            (1, link(VideoCodec::H264, 4_000_000)),
            (2, link(VideoCodec::H264, 1_200_000)),
        ]);
        let mut groups = HashMap::new();
        plan(start, &mut links, &mut groups, VGA, None);
        assert_eq!(
            plan(at(start, 5000), &mut links, &mut groups, VGA, None).len(),
            1
        );
    }

    #[test]
    fn each_codec_has_its_own_encoders_and_a_link_moved_to_another_starts_with_a_keyframe() {
        let start = Instant::now();
        let mut links = HashMap::from([
            (1, link(VideoCodec::H264, crate::congestion::start_bps(VGA))),
            (2, LinkState::default()),
        ]);
        links.get_mut(&2).unwrap().wants_keyframe = true;
        let mut groups = HashMap::new();
        let planned = plan(start, &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 1, "link 2's codec is not known yet");
        assert_eq!(links[&2].encoding, None);
        assert!(!planned[0].keyframe_wanted, "link 2 is on no encoder");
        links.get_mut(&2).unwrap().codec = Some(VideoCodec::Vp8);
        let planned = plan(at(start, 100), &mut links, &mut groups, VGA, None);
        let codecs: Vec<VideoCodec> = planned.iter().map(|p| p.key.codec).collect();
        assert_eq!(codecs, vec![VideoCodec::H264, VideoCodec::Vp8]);
        assert!(
            planned[1].keyframe_wanted,
            "link 2 asked for its first keyframe"
        );
        assert!(!planned[1].keyframe_needed && !planned[0].keyframe_needed);
        // A renegotiation moves link 1 to VP8: it needs a keyframe from VP8's encoder at once.
        links.get_mut(&1).unwrap().codec = Some(VideoCodec::Vp8);
        let planned = plan(at(start, 150), &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 1);
        assert!(planned[0].keyframe_needed);
        links.get_mut(&1).unwrap().codec = Some(VideoCodec::H264);
        plan(at(start, 160), &mut links, &mut groups, VGA, None);
        // Gone: its encoder goes too.
        links.remove(&2);
        let planned = plan(at(start, 200), &mut links, &mut groups, VGA, None);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].key.codec, VideoCodec::H264);
    }

    #[test]
    fn before_any_codec_is_known_one_h264_encoder_runs_at_the_start_rate() {
        let mut links = HashMap::from([(1, LinkState::default())]);
        let planned = plan(Instant::now(), &mut links, &mut HashMap::new(), VGA, None);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].key.codec, VideoCodec::H264);
        assert!(planned[0].links.is_empty());
        assert_eq!(
            planned[0].target_bps,
            video_share(crate::congestion::start_bps(VGA))
        );
    }

    #[test]
    fn a_link_not_yet_measured_is_taken_at_the_start_rate() {
        let mut links = HashMap::from([(
            1,
            LinkState {
                codec: Some(VideoCodec::H264),
                ..LinkState::default()
            },
        )]);
        let planned = plan(Instant::now(), &mut links, &mut HashMap::new(), VGA, None);
        assert_eq!(planned[0].links, vec![1]);
        assert_eq!(
            planned[0].target_bps,
            video_share(crate::congestion::start_bps(VGA))
        );
    }
}
