//! An interceptor that only looks at packets going by, or drops some of the outgoing ones: the
//! queues and the four stream bindings webrtc-rs's `Interceptor` asks for, written once. What
//! it does with a packet is a closure; the chain is composed in `peer::interceptors`.
use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::rtx::RepairStreams;

/// `on_read` sees every incoming packet; `on_write` sees every outgoing one and says whether
/// it goes on.
pub(crate) struct PacketHook<R, W> {
    on_read: R,
    on_write: W,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    repair_streams: Option<RepairStreams>,
}

impl<R, W> PacketHook<R, W>
where
    R: FnMut(&TaggedPacket) + Send + Sync + 'static,
    W: FnMut(&TaggedPacket) -> bool + Send + Sync + 'static,
{
    pub(crate) fn new(on_read: R, on_write: W) -> Self {
        PacketHook {
            on_read,
            on_write,
            read: VecDeque::new(),
            write: VecDeque::new(),
            repair_streams: None,
        }
    }

    /// Keeps `streams` up to date with the local streams bound.
    pub(crate) fn with_repair_streams(mut self, streams: RepairStreams) -> Self {
        self.repair_streams = Some(streams);
        self
    }
}

impl<R, W> Protocol<TaggedPacket, TaggedPacket, ()> for PacketHook<R, W>
where
    R: FnMut(&TaggedPacket) + Send + Sync + 'static,
    W: FnMut(&TaggedPacket) -> bool + Send + Sync + 'static,
{
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        (self.on_read)(&msg);
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if (self.on_write)(&msg) {
            self.write.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl<R, W> Interceptor for PacketHook<R, W>
where
    R: FnMut(&TaggedPacket) + Send + Sync + 'static,
    W: FnMut(&TaggedPacket) -> bool + Send + Sync + 'static,
{
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(streams) = &self.repair_streams {
            streams.bind(info);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(streams) = &self.repair_streams {
            streams.unbind(info);
        }
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
