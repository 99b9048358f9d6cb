//! Opus for voice: 48 kHz, 20 ms frames, in-band FEC, loss concealment on the way out.
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use crate::{AudioFrame, MediaError, SAMPLE_RATE};

/// Samples per channel in one 20 ms frame.
pub const FRAME_SAMPLES: usize = SAMPLE_RATE as usize / 50;

fn channels_of(n: u16) -> Result<Channels, MediaError> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        other => Err(MediaError::Unsupported(format!("{other} audio channels"))),
    }
}

fn codec_error(e: opus::Error) -> MediaError {
    MediaError::Codec(format!("opus: {e}"))
}

/// Whether an encoded packet is one of the DTX encoder's silence packets (its table-of-contents
/// byte, and at most one more), which a sender using DTX does not send, as libwebrtc does not.
pub fn is_silence(packet: &[u8]) -> bool {
    packet.len() <= 2
}

/// Whether a packet carries in-band FEC: a lower-rate copy of the frame before it, which a
/// receiver that lost that frame can decode in its place. libopus puts one in only when it
/// expects loss, and only in its SILK and hybrid modes.
pub fn carries_fec(packet: &[u8]) -> bool {
    // libopus reads the first byte before it looks at the length: an empty packet is answered
    // here (it read past the slice, and crashed the test that tried).
    let Ok(len @ 1..) = i32::try_from(packet.len()) else {
        return false;
    };
    // SAFETY: `packet` is a live slice of `len` (at least one) bytes; libopus parses it within
    // that length, and a malformed packet gives a negative result.
    unsafe { opusic_sys::opus_packet_has_lbrr(packet.as_ptr(), len) > 0 }
}

/// The loss an encoder prepares for until a link has measured one.
pub const DEFAULT_EXPECTED_LOSS_PERCENT: u8 = 10;

pub struct OpusEncoder {
    encoder: Encoder,
    channels: u16,
    /// What `set_packet_loss_perc` was last given.
    expected_loss: u8,
}

impl OpusEncoder {
    pub fn new(channels: u16, bitrate_bps: i32) -> Result<Self, MediaError> {
        let mut encoder = Encoder::new(SAMPLE_RATE, channels_of(channels)?, Application::Voip)
            .map_err(codec_error)?;
        encoder
            .set_bitrate(Bitrate::Bits(bitrate_bps))
            .map_err(codec_error)?;
        encoder.set_inband_fec(true).map_err(codec_error)?;
        // In silence libopus then makes packets of a byte or two (see `is_silence`) with a
        // comfort-noise update every 400 ms; a link whose far side asked for DTX leaves them
        // out, and any Opus decoder reads them as silence where they are sent.
        encoder.set_dtx(true).map_err(codec_error)?;
        // FEC only kicks in when the encoder expects loss.
        encoder
            .set_packet_loss_perc(DEFAULT_EXPECTED_LOSS_PERCENT.into())
            .map_err(codec_error)?;
        Ok(OpusEncoder {
            encoder,
            channels,
            expected_loss: DEFAULT_EXPECTED_LOSS_PERCENT,
        })
    }

    /// The packet loss to prepare for, in per cent: libopus puts a lower-rate copy of each
    /// frame into the next packet (in-band FEC) in proportion, and none at 0. Cheap to call
    /// per frame: libopus is told only of a change.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), MediaError> {
        let percent = percent.min(100);
        if percent != self.expected_loss {
            self.encoder
                .set_packet_loss_perc(percent.into())
                .map_err(codec_error)?;
            self.expected_loss = percent;
        }
        Ok(())
    }

    /// Encodes one 10 or 20 ms frame into one packet.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Vec<u8>, MediaError> {
        if frame.channels != self.channels {
            return Err(MediaError::Unsupported(format!(
                "{}-channel frame into a {}-channel encoder",
                frame.channels, self.channels
            )));
        }
        let per_channel = frame.len_per_channel();
        if per_channel != FRAME_SAMPLES && per_channel != FRAME_SAMPLES / 2 {
            return Err(MediaError::Unsupported(format!(
                "{per_channel}-sample audio frame"
            )));
        }
        self.encoder
            .encode_vec(&frame.samples, 1500)
            .map_err(codec_error)
    }
}

pub struct OpusDecoder {
    decoder: Decoder,
    channels: u16,
    buffer: Vec<i16>,
}

impl OpusDecoder {
    pub fn new(channels: u16) -> Result<Self, MediaError> {
        Ok(OpusDecoder {
            decoder: Decoder::new(SAMPLE_RATE, channels_of(channels)?).map_err(codec_error)?,
            channels,
            buffer: vec![0; FRAME_SAMPLES * 6 * channels as usize],
        })
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// How many samples (per channel, at 48 kHz: ticks of Opus's RTP clock) `packet` holds,
    /// read from its table of contents without decoding it; `None` if it is malformed.
    pub fn samples_in(&self, packet: &[u8]) -> Option<usize> {
        self.decoder.get_nb_samples(packet).ok()
    }

    /// Decodes one packet.
    pub fn decode(
        &mut self,
        packet: &[u8],
        captured_at: std::time::Duration,
    ) -> Result<AudioFrame, MediaError> {
        if packet.is_empty() {
            return Err(MediaError::Codec("empty opus packet".into()));
        }
        let n = self
            .decoder
            .decode(packet, &mut self.buffer, false)
            .map_err(codec_error)?;
        Ok(self.frame(n, captured_at))
    }

    /// Fills in for a lost 20 ms packet: from the next packet's FEC data when it is at hand,
    /// otherwise by concealment.
    pub fn conceal(
        &mut self,
        next: Option<&[u8]>,
        captured_at: std::time::Duration,
    ) -> Result<AudioFrame, MediaError> {
        let output = &mut self.buffer[..FRAME_SAMPLES * self.channels as usize];
        let n = match next {
            Some(next) if !next.is_empty() => self.decoder.decode(next, output, true),
            _ => self.decoder.decode(&[], output, false),
        }
        .map_err(codec_error)?;
        Ok(self.frame(n, captured_at))
    }

    fn frame(&self, per_channel: usize, captured_at: std::time::Duration) -> AudioFrame {
        AudioFrame {
            channels: self.channels,
            samples: self.buffer[..per_channel * self.channels as usize].to_vec(),
            captured_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{dominant_frequency, first_channel};
    use crate::tone::Tone;
    use std::time::Duration;

    /// 100 packets of a 440 Hz tone, from an encoder expecting `loss` per cent.
    fn tone_packets(channels: u16, bitrate: i32, loss: u8) -> Vec<Vec<u8>> {
        let mut tone = Tone::unpaced(440.0, channels, Duration::from_millis(20)).unwrap();
        let mut encoder = OpusEncoder::new(channels, bitrate).unwrap();
        encoder.set_expected_loss(loss).unwrap();
        (0..100)
            .map(|_| encoder.encode(&tone.render()).unwrap())
            .collect()
    }

    /// The rates a call's track uses, mono and stereo.
    const TRACK_RATES: [(u16, i32); 2] = [(1, 32_000), (2, 64_000)];

    #[test]
    fn packets_carry_fec_when_loss_is_expected_and_not_otherwise() {
        for (channels, bitrate) in TRACK_RATES {
            // libopus codes FEC for the frames its voice detector finds active enough: a third
            // of a steady tone's packets at 10 % (measured), most of speech's.
            let with = tone_packets(channels, bitrate, 10)
                .iter()
                .filter(|p| carries_fec(p))
                .count();
            assert!(with >= 20, "{channels} ch: {with} of 100 with FEC");
            let without = tone_packets(channels, bitrate, 0)
                .iter()
                .filter(|p| carries_fec(p))
                .count();
            assert_eq!(without, 0, "{channels} ch, no loss expected");
        }
        assert!(!carries_fec(&[]));
        assert!(!carries_fec(&[0xff]));
    }

    #[test]
    fn a_lost_frame_is_recovered_from_the_next_packets_fec_better_than_concealed() {
        let error = |a: &AudioFrame, b: &AudioFrame| -> f64 {
            a.samples
                .iter()
                .zip(&b.samples)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum()
        };
        for (channels, bitrate) in TRACK_RATES {
            let packets = tone_packets(channels, bitrate, 10);
            // A frame well into the stream whose next packet carries FEC is lost.
            let lost = (20..99)
                .find(|&i| carries_fec(&packets[i + 1]))
                .expect("a packet with FEC");
            let mut decoders: Vec<OpusDecoder> = (0..3)
                .map(|_| OpusDecoder::new(channels).unwrap())
                .collect();
            for packet in &packets[..lost] {
                for decoder in &mut decoders {
                    decoder.decode(packet, Duration::ZERO).unwrap();
                }
            }
            let received = decoders[0].decode(&packets[lost], Duration::ZERO).unwrap();
            let from_fec = decoders[1]
                .conceal(Some(&packets[lost + 1]), Duration::ZERO)
                .unwrap();
            let concealed = decoders[2].conceal(None, Duration::ZERO).unwrap();
            let (fec_error, plc_error) =
                (error(&received, &from_fec), error(&received, &concealed));
            assert!(
                fec_error * 2.0 < plc_error,
                "{channels} ch, frame {lost}: FEC off by {fec_error:.3e}, concealment by {plc_error:.3e}"
            );
        }
    }

    #[test]
    fn a_packet_says_how_long_it_is_without_being_decoded() {
        let mut encoder = OpusEncoder::new(2, 64_000).unwrap();
        let decoder = OpusDecoder::new(2).unwrap();
        for (ms, samples) in [(20, 960), (10, 480)] {
            let mut tone = Tone::unpaced(440.0, 2, Duration::from_millis(ms)).unwrap();
            let packet = encoder.encode(&tone.render()).unwrap();
            assert_eq!(decoder.samples_in(&packet), Some(samples), "{ms} ms");
        }
        // Code 3 (a frame count follows) with nothing after it, and nothing at all.
        assert_eq!(decoder.samples_in(&[0xff]), None);
        assert_eq!(decoder.samples_in(&[]), None);
    }

    #[test]
    fn a_tone_survives_opus_and_lost_packets_are_concealed() {
        let mut tone = Tone::unpaced(440.0, 2, Duration::from_millis(20)).unwrap();
        let mut encoder = OpusEncoder::new(2, 64_000).unwrap();
        let mut decoder = OpusDecoder::new(2).unwrap();
        let packets: Vec<Vec<u8>> = (0..50)
            .map(|_| encoder.encode(&tone.render()).unwrap())
            .collect();
        let mut out = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            let frame = if i % 10 == 5 {
                decoder
                    .conceal(packets.get(i + 1).map(Vec::as_slice), Duration::ZERO)
                    .unwrap()
            } else {
                decoder.decode(packet, Duration::ZERO).unwrap()
            };
            assert_eq!(frame.len_per_channel(), FRAME_SAMPLES);
            out.extend(frame.samples);
        }
        let left = first_channel(&out[out.len() / 2..], 2);
        let found = dominant_frequency(&left, 48_000, 100.0, 4000.0).unwrap();
        assert!((found - 440.0).abs() < 3.0, "found {found}");
    }

    #[test]
    fn bad_packets_and_wrong_frames_are_errors() {
        let mut decoder = OpusDecoder::new(1).unwrap();
        assert!(decoder.decode(&[], Duration::ZERO).is_err());
        let _ = decoder.decode(&[0xff; 3], Duration::ZERO);
        let mut encoder = OpusEncoder::new(1, 32_000).unwrap();
        let stereo = AudioFrame::silence(2, Duration::from_millis(20), Duration::ZERO);
        assert!(encoder.encode(&stereo).is_err());
        let odd = AudioFrame {
            channels: 1,
            samples: vec![0; 100],
            captured_at: Duration::ZERO,
        };
        assert!(encoder.encode(&odd).is_err());
        assert!(OpusEncoder::new(3, 32_000).is_err());
    }
}
