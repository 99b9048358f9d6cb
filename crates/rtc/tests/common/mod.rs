//! Two peers in one process, wired back to back: what one side emits as signaling the other
//! side applies, as a signaling server would relay it.
#![allow(dead_code)]

pub mod sound;

use std::time::Duration;

use parlor_rtc::{PeerConnection, PeerEvent, RtcClient, RtcConfig};
use tokio::sync::mpsc;

pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Peer {
    pub pc: std::sync::Arc<PeerConnection>,
    /// Events other than ICE candidates, for the test to look at.
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
}

pub async fn peer() -> (
    std::sync::Arc<PeerConnection>,
    mpsc::UnboundedReceiver<PeerEvent>,
) {
    let client = RtcClient::new(RtcConfig::loopback());
    let pc = std::sync::Arc::new(
        client
            .create_peer_connection()
            .await
            .expect("peer connection"),
    );
    let events = pc.take_events().expect("events");
    (pc, events)
}

/// Relays `from`'s candidates to `to`; everything else goes to the returned receiver.
pub fn relay(
    mut events: mpsc::UnboundedReceiver<PeerEvent>,
    to: std::sync::Arc<PeerConnection>,
) -> mpsc::UnboundedReceiver<PeerEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::IceCandidate(candidate) => {
                    if let Err(e) = to.add_ice_candidate(candidate).await {
                        eprintln!("candidate refused: {e}");
                    }
                }
                other => {
                    if tx.send(other).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Creates two peers; `setup` adds tracks and channels to the offerer (a) and answerer (b)
/// before negotiating. Returns both once connected.
pub async fn connected_pair<F, Fut>(setup: F) -> (Peer, Peer)
where
    F: FnOnce(std::sync::Arc<PeerConnection>, std::sync::Arc<PeerConnection>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (a, a_events) = peer().await;
    let (b, b_events) = peer().await;
    setup(a.clone(), b.clone()).await;
    let a_events = relay(a_events, b.clone());
    let b_events = relay(b_events, a.clone());
    negotiate(&a, &b).await;
    a.wait_connected(PATIENCE).await.expect("a connected");
    b.wait_connected(PATIENCE).await.expect("b connected");
    (
        Peer {
            pc: a,
            events: a_events,
        },
        Peer {
            pc: b,
            events: b_events,
        },
    )
}

/// One offer/answer round from `a` to `b`.
pub async fn negotiate(a: &PeerConnection, b: &PeerConnection) {
    let offer = a.create_offer().await.expect("offer");
    a.set_local_description(offer.clone())
        .await
        .expect("a local");
    b.set_remote_description(offer).await.expect("b remote");
    let answer = b.create_answer().await.expect("answer");
    b.set_local_description(answer.clone())
        .await
        .expect("b local");
    a.set_remote_description(answer).await.expect("a remote");
}

/// Waits until `check` holds, looking every 20 ms (a guard against hangs, not a speed check).
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the first event matching `pick`, skipping others.
pub async fn next_matching<T>(
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    what: &str,
    mut pick: impl FnMut(PeerEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .unwrap_or_else(|| panic!("events ended before {what}"));
        if let Some(found) = pick(event) {
            return found;
        }
    }
}
