//! What every video codec here has in common: how an encoder is set up and driven, and what it
//! gives back, so that the sending pipeline is written once for H.264 and VP8.
use crate::{MediaError, VideoFrame};

/// The least an encoder's bitrate goes to: below 50 kbit/s nothing useful is left of a
/// picture. (The most is what it was built with.)
pub const MIN_BITRATE_BPS: u32 = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Frames between keyframes; 0 for none but the first (and those asked for).
    pub keyframe_interval: u32,
}

impl EncoderConfig {
    /// A sensible bitrate for a resolution at 30 fps (≈ 0.1 bit per pixel per frame), and no
    /// periodic keyframes: receivers ask for one when they need it (PLI, FIR; a new receiver,
    /// a loss that could not be repaired), as libwebrtc's encoders are used. A keyframe every
    /// 10 s put several frames' worth into a thin link at once for nobody's benefit; on
    /// drop300 one came just as the link narrowed.
    pub fn for_size(width: usize, height: usize, fps: u32) -> Self {
        let bitrate = (width * height * fps as usize / 10).clamp(150_000, 4_000_000) as u32;
        EncoderConfig {
            width,
            height,
            fps,
            bitrate_bps: bitrate,
            keyframe_interval: 0,
        }
    }

    /// Both codecs take only even, non-zero sizes (4:2:0 chroma).
    pub(crate) fn check_size(&self, codec: &str) -> Result<(), MediaError> {
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
        {
            return Err(MediaError::Unsupported(format!(
                "{codec} size {}x{}",
                self.width, self.height
            )));
        }
        Ok(())
    }

    /// A frame of another size than the encoder's is refused, not scaled.
    pub(crate) fn check_frame(&self, frame: &VideoFrame) -> Result<(), MediaError> {
        if frame.width != self.width || frame.height != self.height {
            return Err(MediaError::Unsupported(format!(
                "frame {}x{} into a {}x{} encoder",
                frame.width, frame.height, self.width, self.height
            )));
        }
        Ok(())
    }
}

/// One encoded picture, in the codec's own bitstream (an Annex B access unit for H.264, a
/// frame for VP8).
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// A real-time video encoder.
pub trait VideoEncoder: Send {
    fn config(&self) -> EncoderConfig;

    /// Changes the target bitrate from the next frame on, without a keyframe (the congestion
    /// controller's estimate moves it several times a second), within [`MIN_BITRATE_BPS`] and
    /// the bitrate the encoder was built with.
    fn set_bitrate(&mut self, bps: u32) -> Result<(), MediaError>;

    /// Makes the next encoded frame a keyframe (answering a PLI or FIR).
    fn request_keyframe(&mut self);

    /// Encodes one frame. `None` when the encoder chose to skip it to hold its bitrate.
    fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedFrame>, MediaError>;
}

/// A video decoder.
pub trait VideoDecoder: Send {
    /// Decodes one encoded picture. `Ok(None)` when it completed no picture; an error when the
    /// data is corrupt or refers to a picture the decoder does not have, after which the
    /// caller should ask the sender for a keyframe.
    fn decode(
        &mut self,
        data: &[u8],
        captured_at: std::time::Duration,
    ) -> Result<Option<VideoFrame>, MediaError>;
}

/// What every codec's tests check the same way.
#[cfg(test)]
pub(crate) mod testing {
    use super::{VideoDecoder, VideoEncoder};
    use crate::pattern::{read_stamp, TestPattern};
    use crate::source::VideoConstraints;
    use std::time::Duration;

    /// 30 frames of a 320x240 test pattern through `encoder` and `decoder`: only the first is a
    /// keyframe (as both the encoder and `is_keyframe`, reading the bitstream, say), none is
    /// dropped, and each comes out with its stamp (number and capture time) intact.
    pub(crate) fn stamps_survive(
        encoder: &mut dyn VideoEncoder,
        decoder: &mut dyn VideoDecoder,
        is_keyframe: fn(&[u8]) -> bool,
    ) {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        for n in 0..30 {
            let at = Duration::from_micros(1_000_000 + n as u64 * 33_333);
            let encoded = encoder
                .encode(&pattern.render(n, at))
                .unwrap()
                .expect("no dropped frames");
            assert_eq!(encoded.keyframe, n == 0, "frame {n}");
            assert_eq!(is_keyframe(&encoded.data), n == 0, "frame {n}");
            let out = decoder
                .decode(&encoded.data, Duration::ZERO)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!((out.width, out.height), (320, 240));
            let stamp = read_stamp(&out).expect("the stamp survives");
            assert_eq!((stamp.frame_number, stamp.captured_at), (n, at));
        }
    }
}
