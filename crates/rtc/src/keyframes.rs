//! Keyframe requests (PLI and FIR) stop inside webrtc-rs's interceptor chain; this hook copies
//! the SSRCs they name to a channel the local video tracks listen on, so the encoder can answer
//! with an IDR frame. Packets pass through unchanged.
use rtc::interceptor::{Interceptor, Packet, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::broadcast;

use crate::packet_hook::PacketHook;

/// The tap, as an interceptor for the chain.
pub(crate) fn keyframe_request_tap(requests: broadcast::Sender<u32>) -> impl Interceptor {
    PacketHook::new(
        move |msg: &TaggedPacket| {
            if let Packet::Rtcp(packets) = &msg.message.packet {
                for packet in packets {
                    let any = packet.as_any();
                    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                        let _ = requests.send(pli.media_ssrc);
                    } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                        for entry in &fir.fir {
                            let _ = requests.send(entry.ssrc);
                        }
                    }
                }
            }
        },
        |_: &TaggedPacket| true,
    )
}
