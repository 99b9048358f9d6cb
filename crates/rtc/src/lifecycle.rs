//! A peer connection's life as its background work sees it: a cancellation that fires when it
//! closes, and a count of the tasks and threads still running (so "close leaves nothing
//! running" can be checked).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct Lifecycle {
    pub(crate) closed: Cancel,
    pub(crate) tasks: Arc<TaskCounter>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle {
            closed: Cancel::new(),
            tasks: Arc::default(),
        }
    }
}

/// A cancellation flag with an async wait (without another dependency).
#[derive(Clone)]
pub(crate) struct Cancel(Arc<watch::Sender<bool>>);

impl Cancel {
    pub(crate) fn new() -> Self {
        Cancel(Arc::new(watch::channel(false).0))
    }
    pub(crate) fn cancel(&self) {
        self.0.send_replace(true);
    }
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Counts the background tasks and threads this crate runs, so "close leaves nothing
/// running" can be checked.
#[derive(Debug, Default)]
pub(crate) struct TaskCounter(AtomicUsize);

pub(crate) struct TaskGuard(Arc<TaskCounter>);

impl TaskCounter {
    pub(crate) fn enter(self: &Arc<Self>) -> TaskGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        TaskGuard(self.clone())
    }
    pub(crate) fn live(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}
