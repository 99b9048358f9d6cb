//! H.264 through OpenH264: Constrained Baseline (what browsers call 42e01f), Annex B byte
//! streams in and out.
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig as OpenH264Config, FrameRate, FrameType,
    IntraFramePeriod, Level, Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use crate::video_codec::{
    EncodedFrame, EncoderConfig, VideoDecoder, VideoEncoder, MIN_BITRATE_BPS,
};
use crate::{MediaError, VideoFrame};

pub struct H264Encoder {
    encoder: Encoder,
    config: EncoderConfig,
    /// The bitrate it was built with: OpenH264 makes that the layer's maximum and refuses
    /// anything over it.
    max_bitrate_bps: u32,
    frames: u64,
    /// The `openh264` crate sets OpenH264 up on the first frame, and until then OpenH264
    /// refuses a new bitrate (status 4): every new encoder (the ladder builds one for each
    /// picture size) made its first keyframe, the costliest frame, at the size's default rate,
    /// 2-3 × what a thin link had room for (measured in a two-way call on a 600 kbit/s link:
    /// 230 kbit/s for 320x240 with the link's share at 85). So a rate set before the first
    /// frame builds the encoder again at that rate, and the first frame then raises the
    /// layer's maximum back to `max_bitrate_bps` (true here until it has).
    maximum_to_raise: bool,
}

/// OpenH264's configuration for `config` at `bitrate_bps` (which it also takes as the most the
/// layer may be given).
fn openh264_config(config: &EncoderConfig, bitrate_bps: u32) -> OpenH264Config {
    OpenH264Config::new()
        .bitrate(BitRate::from_bps(bitrate_bps))
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
        })
}

fn build(config: &EncoderConfig, bitrate_bps: u32) -> Result<Encoder, MediaError> {
    Encoder::with_api_config(
        OpenH264API::from_source(),
        openh264_config(config, bitrate_bps),
    )
    .map_err(codec_error)
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
    pub fn new(config: EncoderConfig) -> Result<Self, MediaError> {
        config.check_size("H.264")?;
        Ok(H264Encoder {
            encoder: build(&config, config.bitrate_bps)?,
            config,
            max_bitrate_bps: config.bitrate_bps,
            frames: 0,
            maximum_to_raise: false,
        })
    }

    /// Gives the layer back the maximum it was built for (see `maximum_to_raise`).
    fn raise_maximum(&mut self) -> Result<(), MediaError> {
        let (layer, bps) = (openh264_sys2::SPATIAL_LAYER_0, self.max_bitrate_bps);
        self.set_rate_option(openh264_sys2::ENCODER_OPTION_MAX_BITRATE, layer, bps)
            .map_err(|status| {
                MediaError::Codec(format!(
                    "OpenH264 refused the maximum bitrate {bps}: status {status}"
                ))
            })?;
        self.maximum_to_raise = false;
        Ok(())
    }

    /// Sets one of OpenH264's rate options (a target or a maximum) on `layer`, once it has been
    /// set up by a first frame; `Err` holds its status.
    fn set_rate_option(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        layer: openh264_sys2::LAYER_NUM,
        bps: u32,
    ) -> Result<(), i32> {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: layer,
            iBitrate: bps as i32,
        };
        // SAFETY: the encoder exists (built by `with_api_config`) and `info` outlives the call;
        // OpenH264 copies the value and keeps no pointer to it.
        let status = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, std::ptr::addr_of_mut!(info).cast())
        };
        match status {
            0 => Ok(()),
            status => Err(status),
        }
    }
}

impl VideoEncoder for H264Encoder {
    fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Above the bitrate it was built with (see [`EncoderConfig::for_size`]: what the size
    /// needs) it stays there: OpenH264 refuses more, and measured, a call on a wide link asked
    /// for more on every frame and logged the refusal 30 times a second.
    fn set_bitrate(&mut self, bps: u32) -> Result<(), MediaError> {
        let bps = bps.clamp(MIN_BITRATE_BPS, self.max_bitrate_bps.max(MIN_BITRATE_BPS));
        if bps == self.config.bitrate_bps {
            return Ok(());
        }
        if self.frames == 0 {
            self.encoder = build(&self.config, bps)?;
            self.config.bitrate_bps = bps;
            self.maximum_to_raise = bps < self.max_bitrate_bps;
            return Ok(());
        }
        self.set_rate_option(
            openh264_sys2::ENCODER_OPTION_BITRATE,
            openh264_sys2::SPATIAL_LAYER_ALL,
            bps,
        )
        .map_err(|status| {
            MediaError::Codec(format!("OpenH264 refused bitrate {bps}: status {status}"))
        })?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, MediaError> {
        self.config.check_frame(frame)?;
        let timestamp =
            openh264::Timestamp::from_millis(self.frames * 1000 / self.config.fps.max(1) as u64);
        self.frames += 1;
        let stream = self
            .encoder
            .encode_at(&I420(frame), timestamp)
            .map_err(codec_error)?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let skipped = matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid);
        let data = if skipped { Vec::new() } else { stream.to_vec() };
        if self.maximum_to_raise {
            self.raise_maximum()?;
        }
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
}

impl VideoDecoder for H264Decoder {
    /// `data` is one Annex B access unit; parameter sets alone complete no picture.
    fn decode(
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
    use crate::pattern::TestPattern;
    use crate::source::VideoConstraints;
    use std::time::Duration;

    #[test]
    fn encodes_and_decodes_the_test_pattern_with_its_stamp_intact() {
        crate::video_codec::testing::stamps_survive(
            &mut H264Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap(),
            &mut H264Decoder::new().unwrap(),
            contains_idr,
        );
    }

    #[test]
    fn a_requested_keyframe_is_an_idr() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let mut encoder = H264Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap();
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
        let mut encoder = H264Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap();
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
        let mut encoder = H264Encoder::new(EncoderConfig::for_size(640, 480, 30)).unwrap();
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
            EncoderConfig::for_size(640, 480, 30).bitrate_bps / 1000
        );
        // Out-of-range requests are clamped, not refused.
        encoder.set_bitrate(1).unwrap();
        assert_eq!(encoder.config().bitrate_bps, MIN_BITRATE_BPS);
        let built_with = EncoderConfig::for_size(640, 480, 30).bitrate_bps;
        encoder.set_bitrate(built_with + 50_000).unwrap();
        assert_eq!(encoder.config().bitrate_bps, built_with);
    }

    #[test]
    fn a_rate_set_before_the_first_frame_holds_from_that_frame_and_can_rise_later() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        })
        .unwrap();
        let encode = |encoder: &mut H264Encoder, frames: std::ops::Range<u64>| {
            let mut sizes = Vec::new();
            for n in frames {
                let at = Duration::from_micros(n * 33_333);
                if let Some(e) = encoder.encode(&pattern.render(n as u32, at)).unwrap() {
                    sizes.push(e.data.len());
                }
            }
            sizes
        };
        let built_with = EncoderConfig::for_size(640, 480, 30).bitrate_bps;
        let mut at_default = H264Encoder::new(EncoderConfig::for_size(640, 480, 30)).unwrap();
        let mut at_150k = H264Encoder::new(EncoderConfig::for_size(640, 480, 30)).unwrap();
        at_150k.set_bitrate(150_000).unwrap();
        assert_eq!(at_150k.config().bitrate_bps, 150_000);
        let (default_first, low_first) =
            (encode(&mut at_default, 0..1), encode(&mut at_150k, 0..1));
        assert!(
            low_first[0] * 10 < default_first[0] * 7,
            "the first keyframe at 150 kbit/s: {} bytes; at {built_with}: {}",
            low_first[0],
            default_first[0]
        );
        let low: usize = encode(&mut at_150k, 1..60).iter().sum();
        // 150 kbit/s for 2 s is 37.5 kB; the default rate would be 230 kB.
        assert!(low < 60_000, "{low} bytes in 2 s at 150 kbit/s");
        // The layer's maximum is the size's again: a higher rate is taken, and used.
        at_150k.set_bitrate(600_000).unwrap();
        assert_eq!(at_150k.config().bitrate_bps, 600_000);
        encode(&mut at_150k, 60..120);
        let high: usize = encode(&mut at_150k, 120..180).iter().sum();
        assert!(high > low * 2, "{high} bytes at 600 kbit/s, {low} at 150");
    }
}
