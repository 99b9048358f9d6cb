//! H.264 through OpenH264: Constrained Baseline (what browsers call 42e01f), Annex B byte
//! streams in and out.
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::{MediaError, VideoFrame};

/// The least [`H264Encoder::set_bitrate`] goes to: below 50 kbit/s nothing useful is left of a
/// picture. (The most is what it was built with.)
pub const MIN_BITRATE_BPS: u32 = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Config {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Frames between IDR frames; 0 for none but the first (and those asked for).
    pub keyframe_interval: u32,
}

impl H264Config {
    /// A sensible bitrate for a resolution at 30 fps (≈ 0.1 bit per pixel per frame), and no
    /// periodic keyframes: receivers ask for one when they need it (PLI, FIR; a new receiver,
    /// a loss that could not be repaired), as libwebrtc's encoders are used. A keyframe every
    /// 10 s put several frames' worth into a thin link at once for nobody's benefit; on
    /// drop300 one came just as the link narrowed.
    pub fn for_size(width: usize, height: usize, fps: u32) -> Self {
        let bitrate = (width * height * fps as usize / 10).clamp(150_000, 4_000_000) as u32;
        H264Config {
            width,
            height,
            fps,
            bitrate_bps: bitrate,
            keyframe_interval: 0,
        }
    }
}

/// One encoded picture: an Annex B access unit.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub struct H264Encoder {
    encoder: Encoder,
    config: H264Config,
    /// The bitrate it was built with: OpenH264 makes that the layer's maximum and refuses
    /// anything over it.
    max_bitrate_bps: u32,
    frames: u64,
}

/// Lends a [`VideoFrame`] to OpenH264 without copying.
struct I420<'a>(&'a VideoFrame);

impl YUVSource for I420<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.stride_y, self.0.stride_uv, self.0.stride_uv)
    }
    fn y(&self) -> &[u8] {
        &self.0.y
    }
    fn u(&self) -> &[u8] {
        &self.0.u
    }
    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

fn codec_error(e: impl std::fmt::Display) -> MediaError {
    MediaError::Codec(e.to_string())
}

impl H264Encoder {
    pub fn new(config: H264Config) -> Result<Self, MediaError> {
        if !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
            || config.width == 0
            || config.height == 0
        {
            return Err(MediaError::Unsupported(format!(
                "H.264 size {}x{}",
                config.width, config.height
            )));
        }
        let encoder_config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(config.fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .complexity(Complexity::Low)
            // Skipping a frame under rate pressure is how OpenH264 holds its bitrate (without
            // it the target is only a hint, and a thin link drowns). A skipped frame comes back
            // as `Ok(None)` and is counted as dropped.
            .skip_frames(true)
            // Scene-change IDRs: at a low bitrate OpenH264 took the moving picture for new scenes
            // and sent an IDR a second, each several P-frames' worth, exactly where a link is
            // thinnest. Keyframes come from the interval and from receivers' requests instead.
            .scene_change_detect(false)
            .num_threads(1)
            .intra_frame_period(if config.keyframe_interval == 0 {
                IntraFramePeriod::auto()
            } else {
                IntraFramePeriod::from_num_frames(config.keyframe_interval)
            });
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config)
            .map_err(codec_error)?;
        Ok(H264Encoder {
            encoder,
            config,
            max_bitrate_bps: config.bitrate_bps,
            frames: 0,
        })
    }

    pub fn config(&self) -> H264Config {
        self.config
    }

    /// Changes the target bitrate from the next frame on, without a keyframe (the congestion
    /// controller's estimate moves it several times a second).
    /// Above the bitrate it was built with (see [`H264Config::for_size`]: what the size needs)
    /// it stays there: OpenH264 refuses more, and measured, a call on a wide link asked for more
    /// on every frame and logged the refusal 30 times a second.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), MediaError> {
        let bps = bps.clamp(MIN_BITRATE_BPS, self.max_bitrate_bps.max(MIN_BITRATE_BPS));
        if bps == self.config.bitrate_bps {
            return Ok(());
        }
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: bps as i32,
        };
        // SAFETY: the encoder is initialised (it was built by `with_api_config`), and `info`
        // outlives the call; OpenH264 copies the value and keeps no pointer to it.
        let status = unsafe {
            self.encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                std::ptr::addr_of_mut!(info).cast(),
            )
        };
        if status != 0 {
            return Err(MediaError::Codec(format!(
                "OpenH264 refused bitrate {bps}: status {status}"
            )));
        }
        self.config.bitrate_bps = bps;
        Ok(())
    }

    /// Makes the next encoded frame an IDR (answering a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// Encodes one frame. `None` when the encoder chose to skip it.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, MediaError> {
        if frame.width != self.config.width || frame.height != self.config.height {
            return Err(MediaError::Unsupported(format!(
                "frame {}x{} into a {}x{} encoder",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        let timestamp =
            openh264::Timestamp::from_millis(self.frames * 1000 / self.config.fps.max(1) as u64);
        self.frames += 1;
        let stream = self
            .encoder
            .encode_at(&I420(frame), timestamp)
            .map_err(codec_error)?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame { data, keyframe }))
    }
}

pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, MediaError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(codec_error)?;
        Ok(H264Decoder { decoder })
    }

    /// Decodes one Annex B access unit. `Ok(None)` when it completed no picture (parameter sets
    /// only, say); an error when the data is corrupt, after which the caller should ask the
    /// sender for a keyframe.
    pub fn decode(
        &mut self,
        annex_b: &[u8],
        captured_at: std::time::Duration,
    ) -> Result<Option<VideoFrame>, MediaError> {
        let Some(yuv) = self.decoder.decode(annex_b).map_err(codec_error)? else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let (stride_y, stride_uv, _) = yuv.strides();
        Ok(Some(VideoFrame {
            width,
            height,
            y: yuv.y()[..stride_y * height].to_vec(),
            u: yuv.u()[..stride_uv * (height / 2)].to_vec(),
            v: yuv.v()[..stride_uv * (height / 2)].to_vec(),
            stride_y,
            stride_uv,
            captured_at,
        }))
    }
}

/// True if an Annex B access unit contains an IDR slice (NAL type 5).
pub fn contains_idr(annex_b: &[u8]) -> bool {
    nal_types(annex_b).any(|t| t == 5)
}

/// The NAL unit types in an Annex B byte stream.
pub fn nal_types(annex_b: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < annex_b.len() {
            let three = annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1;
            if three {
                let t = annex_b[i + 3] & 0x1f;
                i += 3;
                return Some(t);
            }
            i += 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{read_stamp, TestPattern};
    use crate::source::VideoConstraints;
    use std::time::Duration;

    #[test]
    fn encodes_and_decodes_the_test_pattern_with_its_stamp_intact() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let mut encoder = H264Encoder::new(H264Config::for_size(320, 240, 30)).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for n in 0..30 {
            let at = Duration::from_micros(1_000_000 + n as u64 * 33_333);
            let frame = pattern.render(n, at);
            let encoded = encoder.encode(&frame).unwrap().expect("no skipped frames");
            if n == 0 {
                assert!(encoded.keyframe && contains_idr(&encoded.data));
            }
            if let Some(out) = decoder.decode(&encoded.data, Duration::ZERO).unwrap() {
                assert_eq!((out.width, out.height), (320, 240));
                let stamp = read_stamp(&out).expect("stamp survives H.264");
                assert_eq!(stamp.frame_number, n);
                assert_eq!(stamp.captured_at, at);
                decoded += 1;
            }
        }
        assert_eq!(decoded, 30);
    }

    #[test]
    fn a_requested_keyframe_is_an_idr() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let mut encoder = H264Encoder::new(H264Config::for_size(320, 240, 30)).unwrap();
        for n in 0..5 {
            let e = encoder
                .encode(&pattern.render(n, Duration::ZERO))
                .unwrap()
                .unwrap();
            assert_eq!(e.keyframe, n == 0);
        }
        encoder.request_keyframe();
        let e = encoder
            .encode(&pattern.render(5, Duration::ZERO))
            .unwrap()
            .unwrap();
        assert!(e.keyframe && contains_idr(&e.data));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = H264Decoder::new().unwrap();
        let garbage: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let _ = decoder.decode(&garbage, Duration::ZERO);
        let _ = decoder.decode(&[0, 0, 0, 1, 0x65, 0xff, 0xff], Duration::ZERO);
        let mut encoder = H264Encoder::new(H264Config::for_size(320, 240, 30)).unwrap();
        let wrong = VideoFrame::black(640, 480, Duration::ZERO);
        assert!(matches!(
            encoder.encode(&wrong),
            Err(MediaError::Unsupported(_))
        ));
    }

    #[test]
    fn a_lower_bitrate_takes_effect_without_a_keyframe() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        })
        .unwrap();
        let mut encoder = H264Encoder::new(H264Config::for_size(640, 480, 30)).unwrap();
        // Bytes over 2 s of pattern at one rate (frames 30..90, after the first keyframe settles).
        let run = |encoder: &mut H264Encoder, from: u64| {
            let (mut bytes, mut keyframes) = (0usize, 0);
            for n in from..from + 60 {
                let at = Duration::from_micros(n * 33_333);
                if let Some(e) = encoder.encode(&pattern.render(n as u32, at)).unwrap() {
                    bytes += e.data.len();
                    keyframes += e.keyframe as u32;
                }
            }
            (bytes, keyframes)
        };
        run(&mut encoder, 0);
        let (high, _) = run(&mut encoder, 60);
        encoder.set_bitrate(150_000).unwrap();
        assert_eq!(encoder.config().bitrate_bps, 150_000);
        run(&mut encoder, 120); // the rate control settles
        let (low, keyframes) = run(&mut encoder, 180);
        assert_eq!(keyframes, 0, "a bitrate change is not a keyframe");
        assert!(
            low * 2 < high,
            "150 kbit/s should produce well under half of {} kbit/s: {low} vs {high} bytes",
            H264Config::for_size(640, 480, 30).bitrate_bps / 1000
        );
        // Out-of-range requests are clamped, not refused.
        encoder.set_bitrate(1).unwrap();
        assert_eq!(encoder.config().bitrate_bps, MIN_BITRATE_BPS);
        let built_with = H264Config::for_size(640, 480, 30).bitrate_bps;
        encoder.set_bitrate(built_with + 50_000).unwrap();
        assert_eq!(encoder.config().bitrate_bps, built_with);
    }
}
