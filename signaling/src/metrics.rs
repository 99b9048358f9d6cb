//! Counters for `GET /metrics`, rendered in the Prometheus text format.
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use parlor_protocol::ErrorCode;

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub frames_received: AtomicU64,
    pub messages_stored: AtomicU64,
    pub events_sent: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Metrics {
    pub fn error(&self, code: ErrorCode) {
        let index = ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .expect("ALL lists every code");
        self.errors[index].fetch_add(1, Relaxed);
    }

    pub fn errors(&self, code: ErrorCode) -> u64 {
        let index = ErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0);
        self.errors[index].load(Relaxed)
    }

    pub fn render(&self, active_calls: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "parlor_connections",
            "gauge",
            "Open WebSocket connections.",
            self.connections.load(Relaxed).to_string(),
        );
        metric(
            "parlor_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed).to_string(),
        );
        metric(
            "parlor_frames_received_total",
            "counter",
            "Frames received from clients.",
            self.frames_received.load(Relaxed).to_string(),
        );
        metric(
            "parlor_messages_total",
            "counter",
            "Chat messages stored.",
            self.messages_stored.load(Relaxed).to_string(),
        );
        metric(
            "parlor_events_sent_total",
            "counter",
            "Events queued to sockets.",
            self.events_sent.load(Relaxed).to_string(),
        );
        metric(
            "parlor_slow_consumers_closed_total",
            "counter",
            "Sockets closed because they did not read their events.",
            self.slow_consumers_closed.load(Relaxed).to_string(),
        );
        metric(
            "parlor_active_calls",
            "gauge",
            "Rooms with a call in progress.",
            active_calls.to_string(),
        );
        if let Some(bytes) = resident_memory_bytes() {
            // Prometheus's conventional name, so dashboards find it.
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the server process, in bytes.",
                bytes.to_string(),
            );
        }
        let _ = writeln!(
            out,
            "# HELP parlor_errors_total Error replies sent, by code.\n# TYPE parlor_errors_total counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "parlor_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                count.load(Relaxed)
            );
        }
        out
    }
}

/// The process's resident set size: the second field of `/proc/self/statm`, in pages. Linux
/// only; elsewhere the metric is left out rather than reported wrong.
fn resident_memory_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(page_size).ok().map(|size| pages * size)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_memory_is_reported_and_grows_with_what_is_touched() {
        let before = resident_memory_bytes().expect("read on Linux");
        // 256 MiB written page by page is resident whatever the allocator does. The reading
        // is the whole process's, and the tests beside this one in it allocate and free too
        // (each argon2 hash in the credentials tests takes 19 MiB and gives it back): with
        // 64 MiB touched, one loaded run read 46 MiB of growth. A wrong unit (pages, KiB)
        // would be off by a factor of a thousand or more; a margin of 64 MiB costs nothing.
        let block = vec![1u8; 256 << 20];
        let after = resident_memory_bytes().unwrap();
        assert!(
            after >= before + (192 << 20),
            "{before} then {after} with 256 MiB touched"
        );
        drop(block);
        assert!(Metrics::default()
            .render(0)
            .contains("\nprocess_resident_memory_bytes "));
    }
}
