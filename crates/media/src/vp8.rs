//! VP8 through libvpx, set up for real-time calls as browsers set it up: one pass, constant
//! bitrate, no look-ahead, frames dropped rather than the bitrate overshot, keyframes only when
//! asked for and bounded in size.
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint};

use vpx_sys as vpx;

use crate::video_codec::{
    EncodedFrame, EncoderConfig, VideoDecoder, VideoEncoder, MIN_BITRATE_BPS,
};
use crate::{MediaError, VideoFrame};

/// RTP's clock for video: timestamps given to the encoder are in its ticks.
const CLOCK_HZ: u32 = 90_000;

/// libvpx's word for what went wrong, with the context's detail when it has one.
fn vpx_error(
    what: &str,
    ctx: Option<&mut vpx::vpx_codec_ctx_t>,
    err: vpx::vpx_codec_err_t,
) -> MediaError {
    // SAFETY: libvpx returns static, NUL-terminated strings for both.
    let message = unsafe { CStr::from_ptr(vpx::vpx_codec_err_to_string(err)) }
        .to_string_lossy()
        .into_owned();
    let detail = ctx
        .map(|ctx| unsafe { vpx::vpx_codec_error_detail(ctx) })
        .filter(|detail| !detail.is_null())
        .map(|detail| {
            unsafe { CStr::from_ptr(detail) }
                .to_string_lossy()
                .into_owned()
        });
    MediaError::Codec(match detail {
        Some(detail) => format!("VP8 {what}: {message} ({detail})"),
        None => format!("VP8 {what}: {message}"),
    })
}

fn check(
    what: &str,
    ctx: Option<&mut vpx::vpx_codec_ctx_t>,
    err: vpx::vpx_codec_err_t,
) -> Result<(), MediaError> {
    if err == vpx::vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(vpx_error(what, ctx, err))
    }
}

pub struct Vp8Encoder {
    /// Boxed: libvpx keeps pointers into the context, so it must not move.
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: vpx::vpx_codec_enc_cfg_t,
    config: EncoderConfig,
    max_bitrate_bps: u32,
    keyframe_requested: bool,
    frames: u64,
}

// SAFETY: the context is used only through `&mut self`; libvpx keeps no thread-local state.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    pub fn new(config: EncoderConfig) -> Result<Self, MediaError> {
        config.check_size("VP8")?;
        let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::zeroed();
        // SAFETY: libvpx fills the whole configuration.
        let mut cfg = unsafe {
            check(
                "defaults",
                None,
                vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), cfg.as_mut_ptr(), 0),
            )?;
            cfg.assume_init()
        };
        cfg.g_w = config.width as c_uint;
        cfg.g_h = config.height as c_uint;
        cfg.g_timebase = vpx::vpx_rational {
            num: 1,
            den: CLOCK_HZ as c_int,
        };
        cfg.g_threads = 1;
        cfg.g_lag_in_frames = 0;
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.g_error_resilient = 0;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = config.bitrate_bps.div_ceil(1000);
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        // No room above the optimal level: libvpx keeps its buffer in bits, and a bitrate cut
        // turns a buffer sized at the old rate into a surplus at the new one, which it spends.
        // With libwebrtc's 1000 ms, output after a cut from 800 to 350 kbit/s stayed at 600-700
        // kbit/s for half a second (OpenH264 follows within 100 ms): just when the congestion
        // controller backs off, a queue on the link, frames 250-400 ms late, a freeze.
        cfg.rc_buf_sz = 600;
        // Dropping a frame when the buffer runs low is how libvpx holds a bitrate on a thin
        // link, as OpenH264's frame skipping is (a dropped frame comes back as `Ok(None)`).
        cfg.rc_dropframe_thresh = 30;
        cfg.rc_resize_allowed = 0;
        if config.keyframe_interval == 0 {
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
        } else {
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = config.keyframe_interval;
            cfg.kf_max_dist = config.keyframe_interval;
        }
        let mut ctx = Box::new(MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed());
        // SAFETY: `ctx` is writable and stays where it is (boxed) for the encoder's life.
        unsafe {
            check(
                "encoder",
                None,
                vpx::vpx_codec_enc_init_ver(
                    ctx.as_mut_ptr(),
                    vpx::vpx_codec_vp8_cx(),
                    &cfg,
                    0,
                    vpx::VPX_ENCODER_ABI_VERSION as c_int,
                ),
            )?;
        }
        // SAFETY: initialised by `vpx_codec_enc_init_ver` above; a Box of MaybeUninit<T> has
        // T's layout.
        let mut ctx: Box<vpx::vpx_codec_ctx_t> =
            unsafe { Box::from_raw(Box::into_raw(ctx).cast()) };
        // libwebrtc's real-time settings: fastest useful speed; no denoising (a test pattern or
        // a camera's own); a keyframe at most 9 average frames' worth (its buffer's 600 ms at
        // the frame rate, halved), so one never floods a thin link.
        let max_intra_pct = (600 * config.fps.max(1) / 2 / 10).max(300);
        for (control, value) in [
            (vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int, -6),
            (
                vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
                0,
            ),
            (
                vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
                1,
            ),
            (
                vpx::vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS as c_int,
                0,
            ),
            (
                vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
                max_intra_pct as c_int,
            ),
        ] {
            // SAFETY: an initialised encoder, a control libvpx's VP8 encoder knows, an int.
            let err = unsafe { vpx::vpx_codec_control_(&mut *ctx, control, value as c_int) };
            if let Err(e) = check("setting a control", Some(&mut ctx), err) {
                // SAFETY: initialised above, destroyed once.
                unsafe { vpx::vpx_codec_destroy(&mut *ctx) };
                return Err(e);
            }
        }
        Ok(Vp8Encoder {
            ctx,
            cfg,
            config,
            max_bitrate_bps: config.bitrate_bps,
            keyframe_requested: false,
            frames: 0,
        })
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { vpx::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// Lends a [`VideoFrame`]'s planes to libvpx for one call.
fn wrap(frame: &VideoFrame) -> vpx::vpx_image_t {
    // SAFETY: an all-zero vpx_image is a valid empty description; the fields libvpx reads for
    // an 8-bit I420 picture are set below.
    let mut image: vpx::vpx_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
    image.fmt = vpx::vpx_img_fmt::VPX_IMG_FMT_I420;
    image.w = frame.width as c_uint;
    image.h = frame.height as c_uint;
    image.d_w = frame.width as c_uint;
    image.d_h = frame.height as c_uint;
    image.bit_depth = 8;
    image.x_chroma_shift = 1;
    image.y_chroma_shift = 1;
    image.bps = 12;
    // libvpx only reads the planes of a picture it encodes.
    image.planes[0] = frame.y.as_ptr().cast_mut();
    image.planes[1] = frame.u.as_ptr().cast_mut();
    image.planes[2] = frame.v.as_ptr().cast_mut();
    image.stride[0] = frame.stride_y as c_int;
    image.stride[1] = frame.stride_uv as c_int;
    image.stride[2] = frame.stride_uv as c_int;
    image
}

impl VideoEncoder for Vp8Encoder {
    fn config(&self) -> EncoderConfig {
        self.config
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), MediaError> {
        let bps = bps.clamp(MIN_BITRATE_BPS, self.max_bitrate_bps.max(MIN_BITRATE_BPS));
        if bps == self.config.bitrate_bps {
            return Ok(());
        }
        self.cfg.rc_target_bitrate = bps.div_ceil(1000);
        // SAFETY: an initialised encoder and a configuration it was built from; libvpx copies it.
        let err = unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &self.cfg) };
        check("bitrate", Some(&mut self.ctx), err)?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, MediaError> {
        self.config.check_frame(frame)?;
        let chroma = frame.stride_uv * frame.height.div_ceil(2);
        if frame.y.len() < frame.stride_y * frame.height
            || frame.u.len() < chroma
            || frame.v.len() < chroma
        {
            return Err(MediaError::Unsupported(
                "a frame shorter than its size".into(),
            ));
        }
        let image = wrap(frame);
        let tick = u64::from(CLOCK_HZ / self.config.fps.max(1));
        let pts = (self.frames * tick) as vpx::vpx_codec_pts_t;
        self.frames += 1;
        let flags = if std::mem::take(&mut self.keyframe_requested) {
            vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: an initialised encoder; the image's planes were checked to hold its size and
        // outlive the call (libvpx copies what it keeps).
        let err = unsafe {
            vpx::vpx_codec_encode(
                &mut *self.ctx,
                &image,
                pts,
                tick as _,
                flags,
                vpx::VPX_DL_REALTIME as _,
            )
        };
        if let Err(e) = check("encode", Some(&mut self.ctx), err) {
            self.keyframe_requested |= flags != 0;
            return Err(e);
        }
        let mut data = Vec::new();
        let mut keyframe = false;
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: packets are read out of an initialised encoder with its own iterator,
            // before the next call into it.
            let packet = unsafe { vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if packet.is_null() {
                break;
            }
            // SAFETY: non-null packets point at a valid `vpx_codec_cx_pkt` until the next call.
            let packet = unsafe { &*packet };
            if packet.kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: a frame packet's union member is `frame`, whose buffer holds `sz` bytes.
            let frame = unsafe { packet.data.frame };
            let bytes =
                unsafe { std::slice::from_raw_parts(frame.buf.cast::<u8>(), frame.sz as usize) };
            data.extend_from_slice(bytes);
            keyframe |= frame.flags & vpx::VPX_FRAME_IS_KEY != 0;
        }
        if data.is_empty() {
            // Dropped by rate control; a keyframe asked for is still owed.
            self.keyframe_requested |= flags != 0;
            return Ok(None);
        }
        Ok(Some(EncodedFrame { data, keyframe }))
    }
}

pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: the context is used only through `&mut self`.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    pub fn new() -> Result<Self, MediaError> {
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        let mut ctx = Box::new(MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed());
        // SAFETY: `ctx` is writable and boxed for the decoder's life.
        unsafe {
            check(
                "decoder",
                None,
                vpx::vpx_codec_dec_init_ver(
                    ctx.as_mut_ptr(),
                    vpx::vpx_codec_vp8_dx(),
                    &cfg,
                    0,
                    vpx::VPX_DECODER_ABI_VERSION as c_int,
                ),
            )?;
        }
        // SAFETY: initialised above; same layout.
        let ctx = unsafe { Box::from_raw(Box::into_raw(ctx).cast()) };
        Ok(Vp8Decoder { ctx })
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { vpx::vpx_codec_destroy(&mut *self.ctx) };
    }
}

/// Copies `rows` rows of `stride` bytes out of a plane libvpx owns.
///
/// # Safety
/// `plane` must point at `rows * stride` readable bytes.
unsafe fn plane(plane: *const u8, stride: usize, rows: usize) -> Vec<u8> {
    unsafe { std::slice::from_raw_parts(plane, stride * rows) }.to_vec()
}

impl VideoDecoder for Vp8Decoder {
    /// `data` is one VP8 frame, as the RTP depacketizer put it back together.
    fn decode(
        &mut self,
        data: &[u8],
        captured_at: std::time::Duration,
    ) -> Result<Option<VideoFrame>, MediaError> {
        if data.is_empty() {
            return Err(MediaError::Codec("VP8 decode: an empty frame".into()));
        }
        // SAFETY: an initialised decoder; libvpx reads `data` within the call only.
        let err = unsafe {
            vpx::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as c_uint,
                std::ptr::null_mut(),
                0,
            )
        };
        check("decode", Some(&mut self.ctx), err)?;
        let mut iter: vpx::vpx_codec_iter_t = std::ptr::null();
        // SAFETY: frames are read out with the decoder's own iterator before the next decode.
        let image = unsafe { vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
        if image.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-null image is valid until the next decode.
        let image = unsafe { &*image };
        if image.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 {
            return Err(MediaError::Unsupported(format!(
                "VP8 output {:?}",
                image.fmt
            )));
        }
        let (width, height) = (image.d_w as usize, image.d_h as usize);
        let (stride_y, stride_uv) = (image.stride[0] as usize, image.stride[1] as usize);
        let chroma_rows = height.div_ceil(2);
        // SAFETY: an I420 image of d_w x d_h holds `stride` bytes per row, `height` rows of
        // luma and half as many of each chroma plane.
        let (y, u, v) = unsafe {
            (
                plane(image.planes[0], stride_y, height),
                plane(image.planes[1], stride_uv, chroma_rows),
                plane(image.planes[2], stride_uv, chroma_rows),
            )
        };
        Ok(Some(VideoFrame {
            width,
            height,
            y,
            u,
            v,
            stride_y,
            stride_uv,
            captured_at,
        }))
    }
}

/// Whether a VP8 frame (as the decoder takes it) is a keyframe: bit 0 of its first byte is 0
/// (RFC 6386, 9.1).
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::TestPattern;
    use crate::source::VideoConstraints;
    use std::time::Duration;

    fn pattern(width: usize, height: usize) -> TestPattern {
        TestPattern::new(VideoConstraints {
            width,
            height,
            fps: 30,
        })
        .unwrap()
    }

    #[test]
    fn encodes_and_decodes_the_test_pattern_with_its_stamp_intact() {
        crate::video_codec::testing::stamps_survive(
            &mut Vp8Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap(),
            &mut Vp8Decoder::new().unwrap(),
            is_keyframe,
        );
    }

    #[test]
    fn a_requested_keyframe_comes_next() {
        let pattern = pattern(320, 240);
        let mut encoder = Vp8Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap();
        let at = |n: u32| Duration::from_millis(u64::from(n) * 33);
        for n in 0..5 {
            encoder.encode(&pattern.render(n, at(n))).unwrap();
        }
        encoder.request_keyframe();
        let next = encoder.encode(&pattern.render(5, at(5))).unwrap().unwrap();
        assert!(next.keyframe && is_keyframe(&next.data));
        let after = encoder.encode(&pattern.render(6, at(6))).unwrap().unwrap();
        assert!(!after.keyframe, "one keyframe per request");
    }

    #[test]
    fn a_decoder_refuses_garbage_and_a_frame_without_its_keyframe() {
        let pattern = pattern(320, 240);
        let mut encoder = Vp8Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap();
        let frames: Vec<EncodedFrame> = (0..3)
            .map(|n| {
                encoder
                    .encode(&pattern.render(n, Duration::ZERO))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let mut decoder = Vp8Decoder::new().unwrap();
        assert!(decoder.decode(&[], Duration::ZERO).is_err());
        assert!(decoder.decode(&[0xff; 64], Duration::ZERO).is_err());
        assert!(
            decoder.decode(&frames[2].data, Duration::ZERO).is_err(),
            "an inter frame before any keyframe"
        );
        // And it recovers at the keyframe.
        assert!(decoder
            .decode(&frames[0].data, Duration::ZERO)
            .unwrap()
            .is_some());
        let bigger = self::pattern(640, 480).render(0, Duration::ZERO);
        let mut odd = Vp8Encoder::new(EncoderConfig::for_size(320, 240, 30)).unwrap();
        assert!(odd.encode(&bigger).is_err());
        assert!(Vp8Encoder::new(EncoderConfig::for_size(321, 240, 30)).is_err());
    }

    #[test]
    fn after_a_bitrate_cut_the_output_follows_at_once() {
        let pattern = pattern(640, 480);
        let mut encoder = Vp8Encoder::new(EncoderConfig::for_size(640, 480, 30)).unwrap();
        encoder.set_bitrate(800_000).unwrap();
        let bytes = |encoder: &mut Vp8Encoder, from: u32, frames: u32| -> usize {
            (from..from + frames)
                .filter_map(|n| {
                    let at = Duration::from_millis(u64::from(n) * 1000 / 30);
                    encoder.encode(&pattern.render(n, at)).unwrap()
                })
                .map(|f| f.data.len())
                .sum()
        };
        bytes(&mut encoder, 0, 150);
        encoder.set_bitrate(350_000).unwrap();
        // The half second after the cut: 175 kbit at 350 kbit/s. (With a 1000 ms buffer:
        // about 300 kbit, spending what the old rate had left in it.)
        let kbit = bytes(&mut encoder, 150, 15) as f64 * 8.0 / 1000.0;
        assert!(
            kbit < 175.0 * 1.3,
            "{kbit:.0} kbit in the 500 ms after the cut"
        );
    }

    #[test]
    fn a_lower_bitrate_takes_effect_without_a_keyframe() {
        let pattern = pattern(640, 480);
        let config = EncoderConfig::for_size(640, 480, 30);
        let mut encoder = Vp8Encoder::new(config).unwrap();
        let bytes = |encoder: &mut Vp8Encoder, from: u32| -> (usize, bool) {
            let mut total = 0;
            let mut any_key = false;
            for n in from..from + 60 {
                if let Some(f) = encoder.encode(&pattern.render(n, Duration::ZERO)).unwrap() {
                    total += f.data.len();
                    any_key |= f.keyframe && n > 0;
                }
            }
            (total, any_key)
        };
        let (high, _) = bytes(&mut encoder, 0);
        encoder.set_bitrate(150_000).unwrap();
        let (low, keyframe) = bytes(&mut encoder, 60);
        assert!(!keyframe, "no keyframe for a rate change");
        assert!(
            (low as f64) < 0.6 * high as f64,
            "60 frames at {} kbit/s then 150 kbit/s: {high} then {low} bytes",
            config.bitrate_bps / 1000
        );
        encoder.set_bitrate(10_000).unwrap();
        assert_eq!(encoder.config().bitrate_bps, MIN_BITRATE_BPS);
        encoder.set_bitrate(u32::MAX).unwrap();
        assert_eq!(encoder.config().bitrate_bps, config.bitrate_bps);
    }
}
