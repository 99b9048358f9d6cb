#![no_main]
//! Any text, as a client or a server frame: decoding must never panic, and whatever decodes must
//! encode back to a frame that decodes to the same value.
use libfuzzer_sys::fuzz_target;
use parlor_protocol::{
    decode_request, decode_server_frame, encode_error, encode_event, encode_reply, encode_request,
    ServerFrame,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = decode_request(text) {
        let again = decode_request(&encode_request(frame.id, &frame.request)).expect("re-decodes");
        assert_eq!(again, frame);
    }
    if let Ok(frame) = decode_server_frame(text) {
        let encoded = match &frame {
            ServerFrame::Reply { id, reply } => encode_reply(*id, reply),
            ServerFrame::Error { id, error } => encode_error(*id, error),
            ServerFrame::Event(event) => encode_event(event),
        };
        assert_eq!(decode_server_frame(&encoded).expect("re-decodes"), frame);
    }
});
