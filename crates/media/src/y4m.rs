//! YUV4MPEG2 files: a video source (looping or not) and a writer for recordings.
//! Only 4:2:0 8-bit content is accepted.
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::frame::wall_clock;
use crate::source::{Pacer, VideoFormat, VideoSource};
use crate::{MediaError, VideoFrame};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    width: usize,
    height: usize,
    fps_num: u32,
    fps_den: u32,
}

fn bad(message: impl Into<String>) -> MediaError {
    MediaError::BadFile(message.into())
}

fn parse_header(line: &str) -> Result<Header, MediaError> {
    let mut fields = line.split_ascii_whitespace();
    if fields.next() != Some("YUV4MPEG2") {
        return Err(bad("not a YUV4MPEG2 file"));
    }
    let (mut width, mut height, mut fps) = (None, None, (30, 1));
    for field in fields {
        let (tag, value) = field.split_at(1);
        match tag {
            "W" => width = value.parse().ok(),
            "H" => height = value.parse().ok(),
            "F" => {
                let (n, d) = value.split_once(':').ok_or_else(|| bad("bad frame rate"))?;
                fps = (
                    n.parse().map_err(|_| bad("bad frame rate"))?,
                    d.parse().map_err(|_| bad("bad frame rate"))?,
                );
            }
            "C" if !value.starts_with("420") => {
                return Err(MediaError::Unsupported(format!(
                    "Y4M colour space {value}: only 4:2:0"
                )))
            }
            _ => {}
        }
    }
    let (width, height): (usize, usize) = (
        width.ok_or_else(|| bad("no width"))?,
        height.ok_or_else(|| bad("no height"))?,
    );
    if width == 0
        || height == 0
        || width % 2 != 0
        || height % 2 != 0
        || width > 8192
        || height > 8192
    {
        return Err(MediaError::Unsupported(format!(
            "Y4M size {width}x{height}"
        )));
    }
    if fps.0 == 0 || fps.1 == 0 {
        return Err(bad("zero frame rate"));
    }
    Ok(Header {
        width,
        height,
        fps_num: fps.0,
        fps_den: fps.1,
    })
}

/// Plays a Y4M file as a camera would, at the file's frame rate.
pub struct Y4mSource {
    reader: BufReader<File>,
    header: Header,
    data_start: u64,
    looping: bool,
    pacer: Pacer,
    describe: String,
}

impl Y4mSource {
    pub fn open(path: &Path, looping: bool) -> Result<Self, MediaError> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = String::new();
        reader.by_ref().take(1024).read_line(&mut line)?;
        let header = parse_header(line.trim_end())?;
        let data_start = reader.stream_position()?;
        let period = Duration::from_secs(header.fps_den as u64) / header.fps_num;
        Ok(Y4mSource {
            reader,
            header,
            data_start,
            looping,
            pacer: Pacer::new(period),
            describe: format!("file {}", path.display()),
        })
    }

    fn read_frame(&mut self) -> Result<Option<VideoFrame>, MediaError> {
        let mut marker = String::new();
        if self.reader.by_ref().take(256).read_line(&mut marker)? == 0 {
            return Ok(None);
        }
        if !marker.starts_with("FRAME") {
            return Err(bad("missing FRAME marker"));
        }
        let Header { width, height, .. } = self.header;
        let mut frame = VideoFrame::black(width, height, wall_clock());
        self.reader.read_exact(&mut frame.y)?;
        self.reader.read_exact(&mut frame.u)?;
        self.reader.read_exact(&mut frame.v)?;
        Ok(Some(frame))
    }
}

impl VideoSource for Y4mSource {
    fn format(&self) -> VideoFormat {
        VideoFormat {
            width: self.header.width,
            height: self.header.height,
            fps: (self.header.fps_num / self.header.fps_den).max(1),
        }
    }

    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        self.pacer.wait();
        match self.read_frame() {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) if self.looping => {
                self.reader.seek(SeekFrom::Start(self.data_start))?;
                self.read_frame()?
                    .ok_or_else(|| bad("the file has no frames"))
            }
            Ok(None) => Err(MediaError::Ended),
            Err(MediaError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(bad("truncated frame"))
            }
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Writes frames to a Y4M file. Frames of another size than the first are refused.
pub struct Y4mWriter {
    out: BufWriter<File>,
    size: Option<(usize, usize)>,
    fps: u32,
    pub frames: u64,
}

impl Y4mWriter {
    pub fn create(path: &Path, fps: u32) -> Result<Self, MediaError> {
        Ok(Y4mWriter {
            out: BufWriter::new(File::create(path)?),
            size: None,
            fps: fps.max(1),
            frames: 0,
        })
    }

    pub fn write(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        match self.size {
            None => {
                writeln!(
                    self.out,
                    "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420jpeg",
                    frame.width, frame.height, self.fps
                )?;
                self.size = Some((frame.width, frame.height));
            }
            Some(size) if size != (frame.width, frame.height) => {
                return Err(MediaError::Unsupported(
                    "frame size changed mid-recording".into(),
                ))
            }
            Some(_) => {}
        }
        let packed = frame.packed();
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&packed.y)?;
        self.out.write_all(&packed.u)?;
        self.out.write_all(&packed.v)?;
        self.frames += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64, MediaError> {
        self.out.flush()?;
        Ok(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{read_stamp, TestPattern};
    use crate::source::VideoConstraints;

    #[test]
    fn written_files_play_back_frame_for_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.y4m");
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 60,
        })
        .unwrap();
        let mut writer = Y4mWriter::create(&path, 60).unwrap();
        for n in 0..3 {
            writer
                .write(&pattern.render(n, Duration::from_secs(5)))
                .unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 3);
        let mut source = Y4mSource::open(&path, true).unwrap();
        assert_eq!(
            source.format(),
            VideoFormat {
                width: 320,
                height: 240,
                fps: 60
            }
        );
        let numbers: Vec<u32> = (0..5)
            .map(|_| {
                read_stamp(&source.next_frame().unwrap())
                    .unwrap()
                    .frame_number
            })
            .collect();
        assert_eq!(numbers, vec![0, 1, 2, 0, 1], "loops");
        let mut once = Y4mSource::open(&path, false).unwrap();
        for _ in 0..3 {
            once.next_frame().unwrap();
        }
        assert!(matches!(once.next_frame(), Err(MediaError::Ended)));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.y4m");
        for (content, what) in [
            (&b"PNG..."[..], "not y4m"),
            (b"YUV4MPEG2 W320 H240 C444\n", "4:4:4"),
            (b"YUV4MPEG2 W321 H240\n", "odd width"),
            (b"YUV4MPEG2 H240\n", "no width"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert!(Y4mSource::open(&path, false).is_err(), "{what}");
        }
        std::fs::write(&path, b"YUV4MPEG2 W320 H240 F30:1\nFRAME\nshort").unwrap();
        let mut source = Y4mSource::open(&path, false).unwrap();
        assert!(matches!(source.next_frame(), Err(MediaError::BadFile(_))));
        assert!(matches!(
            Y4mSource::open(&dir.path().join("missing.y4m"), false),
            Err(MediaError::Io(_))
        ));
    }
}
