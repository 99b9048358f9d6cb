//! Raw frames: I420 video and 48 kHz interleaved 16-bit audio.
use std::time::Duration;

/// A planar YUV 4:2:0 frame. Width and height are even.
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    pub stride_y: usize,
    pub stride_uv: usize,
    /// When the frame was captured, as time since the Unix epoch (comparable across processes on
    /// one machine, which is what latency measurement needs).
    pub captured_at: Duration,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VideoFrame({}x{} @ {:?})",
            self.width, self.height, self.captured_at
        )
    }
}

impl VideoFrame {
    /// A black frame.
    pub fn black(width: usize, height: usize, captured_at: Duration) -> Self {
        assert!(
            width.is_multiple_of(2) && height.is_multiple_of(2),
            "I420 needs even dimensions"
        );
        let (cw, ch) = (width / 2, height / 2);
        VideoFrame {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; cw * ch],
            v: vec![128; cw * ch],
            stride_y: width,
            stride_uv: cw,
            captured_at,
        }
    }

    pub fn luma(&self, x: usize, y: usize) -> u8 {
        self.y[y * self.stride_y + x]
    }

    /// Copies the planes into tightly packed buffers (stride == width).
    pub fn packed(&self) -> VideoFrame {
        if self.stride_y == self.width && self.stride_uv == self.width / 2 {
            return self.clone();
        }
        let copy = |plane: &[u8], stride: usize, w: usize, h: usize| {
            let mut out = Vec::with_capacity(w * h);
            for row in 0..h {
                out.extend_from_slice(&plane[row * stride..row * stride + w]);
            }
            out
        };
        let (cw, ch) = (self.width / 2, self.height / 2);
        VideoFrame {
            width: self.width,
            height: self.height,
            y: copy(&self.y, self.stride_y, self.width, self.height),
            u: copy(&self.u, self.stride_uv, cw, ch),
            v: copy(&self.v, self.stride_uv, cw, ch),
            stride_y: self.width,
            stride_uv: cw,
            captured_at: self.captured_at,
        }
    }
}

/// Interleaved signed 16-bit PCM at [`crate::SAMPLE_RATE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    pub channels: u16,
    pub samples: Vec<i16>,
    pub captured_at: Duration,
}

impl AudioFrame {
    /// Samples per channel.
    pub fn len_per_channel(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.len_per_channel() as u64 * 1_000_000 / crate::SAMPLE_RATE as u64)
    }

    pub fn silence(channels: u16, duration: Duration, captured_at: Duration) -> Self {
        let per_channel = (crate::SAMPLE_RATE as u128 * duration.as_micros() / 1_000_000) as usize;
        AudioFrame {
            channels,
            samples: vec![0; per_channel * channels as usize],
            captured_at,
        }
    }
}

/// Time since the Unix epoch, the clock every frame is stamped with.
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
