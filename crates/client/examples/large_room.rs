//! Benchmark (prints figures, never fails on time): a room of 100,000 messages in the local
//! store. How long the room takes to open at its newest page, to page back through it, to
//! search it and to list the rooms with their unread counts, all from the SQLite file alone
//! (no server, no window: the app's commands call exactly these), and the process's memory
//! before and after.
//!
//!     cargo run --release -p parlor-client --example large_room [MESSAGES]
use std::time::{Duration, Instant};

use parlor_client::store::{Gap, Store};
use parlor_protocol::{Message, Room, RoomKind};

const PAGE: u32 = 50;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let count: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
    let room = Room {
        id: 1,
        name: "archive".into(),
        kind: RoomKind::Public,
        owner_id: Some(1),
        created_at: 0,
    };
    store.upsert_room(&room).await.unwrap();
    let words = [
        "deploy", "retro", "numbers", "coffee", "release", "incident", "lunch",
    ];
    let started = Instant::now();
    // Written through the gap-filling path (one transaction per 1,000), newest block first, as
    // a reader scrolling back to the beginning would have fetched them.
    let mut upper = count + 1;
    while upper > 1 {
        let lower = (upper - 1000).max(1);
        let page: Vec<Message> = (lower..upper)
            .map(|seq| Message {
                room_id: 1,
                seq,
                client_id: format!("c-{seq}"),
                author_id: 1 + seq % 7,
                text: format!(
                    "message {seq} about the {} and the {}",
                    words[seq as usize % words.len()],
                    words[(seq as usize / 7) % words.len()]
                ),
                sent_at: 1_700_000_000_000 + seq * 1000,
                edited_at: None,
                deleted: false,
            })
            .collect();
        let gap = Gap {
            after: 0,
            before: upper,
        };
        store.fill_gap(1, gap, &page, lower > 1).await.unwrap();
        upper = lower;
    }
    println!(
        "wrote {count} messages in {:.1} s; process RSS {} MiB",
        started.elapsed().as_secs_f64(),
        rss_kib() / 1024
    );
    let rss_before = rss_kib();

    let mut open = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let newest = store.history_to_gap(1, None, PAGE).await.unwrap().0;
        open.push(t.elapsed());
        assert_eq!(newest.len(), PAGE as usize);
    }
    let mut pages = Vec::new();
    let mut before = None;
    let t = Instant::now();
    // Bounded: count / PAGE pages at most.
    for _ in 0..=count / i64::from(PAGE) {
        let t = Instant::now();
        let page = store.history_to_gap(1, before, PAGE).await.unwrap().0;
        pages.push(t.elapsed());
        match page.first() {
            Some(m) => before = Some(m.seq),
            None => break,
        }
    }
    let scroll_all = t.elapsed();
    let mut search = Vec::new();
    for query in ["incident", "retro numbers", "message 99999", "coffee lunch"] {
        let t = Instant::now();
        let _ = store.search(query).await.unwrap();
        search.push(t.elapsed());
    }
    let mut rooms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let _ = store.rooms(99).await.unwrap();
        rooms.push(t.elapsed());
    }
    println!(
        "open at the newest {PAGE} (local store, 50 runs): p50 {:.2} ms, p95 {:.2} ms",
        ms(percentile(&mut open, 0.5)),
        ms(percentile(&mut open, 0.95))
    );
    println!(
        "page back {PAGE} at a time through all {count} ({} pages in {:.1} s): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        pages.len(),
        scroll_all.as_secs_f64(),
        ms(percentile(&mut pages, 0.5)),
        ms(percentile(&mut pages, 0.95)),
        ms(percentile(&mut pages, 1.0))
    );
    println!(
        "search (4 queries): p50 {:.2} ms, max {:.2} ms",
        ms(percentile(&mut search, 0.5)),
        ms(percentile(&mut search, 1.0))
    );
    println!(
        "room list with unread counts over {count} unread: p50 {:.2} ms, max {:.2} ms",
        ms(percentile(&mut rooms, 0.5)),
        ms(percentile(&mut rooms, 1.0))
    );
    println!(
        "process RSS after paging through everything: {} MiB (before: {} MiB)",
        rss_kib() / 1024,
        rss_before / 1024
    );
}
