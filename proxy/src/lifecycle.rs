//! Start-up and graceful shutdown (docs/design.md §7). Shutdown has two signals:
//! - *stop admitting*: on SIGTERM/SIGINT listeners stop accepting and UDP endpoints stop taking
//!   new flows, while every session already relaying goes on;
//! - *stop*: once the sessions have drained (or the grace period is over), tasks that carry many
//!   sessions at once, such as a UDP socket task, end.
//!
//! The drain counts sessions ([`SessionTicket`]), not tasks: one UDP socket task carries many
//! flows, and an HTTP connection task may carry none. The process exits by the force-quit
//! deadline whatever happens.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Shared shutdown state of one proxy process.
#[derive(Clone, Default)]
pub struct Lifecycle {
    admitting: CancellationToken,
    stop: CancellationToken,
    tracker: TaskTracker,
    sessions: Arc<Sessions>,
}

#[derive(Default)]
struct Sessions {
    active: AtomicUsize,
    changed: Notify,
}

/// One active session, counted by the drain until dropped.
pub struct SessionTicket {
    sessions: Arc<Sessions>,
}

impl Drop for SessionTicket {
    fn drop(&mut self) {
        if self.sessions.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.sessions.changed.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// A running lifecycle, admitting sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a task (a listener, a connection, a socket task). Tasks are not what the drain
    /// waits for; they end on [`Lifecycle::no_longer_admitting`] or [`Lifecycle::stopping`].
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    /// Counts a new session until the ticket drops.
    pub fn session(&self) -> SessionTicket {
        self.sessions.active.fetch_add(1, Ordering::AcqRel);
        SessionTicket {
            sessions: Arc::clone(&self.sessions),
        }
    }

    /// Sessions active now.
    pub fn active_sessions(&self) -> usize {
        self.sessions.active.load(Ordering::Acquire)
    }

    /// Whether new sessions are still admitted.
    pub fn is_admitting(&self) -> bool {
        !self.admitting.is_cancelled()
    }

    /// Resolves when admission stops; listeners stop accepting then.
    pub fn no_longer_admitting(&self) -> WaitForCancellationFutureOwned {
        self.admitting.clone().cancelled_owned()
    }

    /// Resolves on the final stop, after the drain; multi-session tasks end then.
    pub fn stopping(&self) -> WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// Stops admitting new sessions and arms the hard exit after `force_quit`.
    pub fn stop_admitting(&self, force_quit: Duration) {
        self.admitting.cancel();
        self.tracker.close();
        // A plain thread, so the deadline holds even if the runtime is wedged.
        std::thread::spawn(move || {
            std::thread::sleep(force_quit);
            warn!("force-quit timeout reached, exiting");
            std::process::exit(1);
        });
    }

    /// Waits up to `grace` for every session to end; true when all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let drained = async {
            loop {
                let changed = self.sessions.changed.notified();
                if self.active_sessions() == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(grace, drained).await.is_ok()
    }

    /// Ends every multi-session task and waits up to `limit` for the tasks to finish.
    pub async fn stop(&self, limit: Duration) {
        self.stop.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(limit, self.tracker.wait()).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C); a second one exits at once.
pub async fn wait_for_signal() {
    wait_one().await;
    tokio::spawn(async {
        wait_one().await;
        warn!("second signal, exiting now");
        std::process::exit(130);
    });
}

#[cfg(unix)]
async fn wait_one() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_one() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_sessions_not_tasks() {
        let lifecycle = Lifecycle::new();
        // A task that carries no session does not hold up the drain.
        let stopping = lifecycle.stopping();
        lifecycle.spawn(stopping);
        let a = lifecycle.session();
        let b = lifecycle.session();
        lifecycle.stop_admitting(Duration::from_secs(3600));
        assert!(!lifecycle.is_admitting());
        assert_eq!(lifecycle.active_sessions(), 2);
        assert!(!lifecycle.drain(Duration::from_millis(10)).await);
        drop(a);
        assert!(!lifecycle.drain(Duration::from_millis(10)).await);
        let drain = {
            let l = lifecycle.clone();
            tokio::spawn(async move { l.drain(Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        drop(b);
        assert!(drain.await.unwrap());
        lifecycle.stop(Duration::from_secs(1)).await;
        assert!(lifecycle.tracker.is_empty());
    }
}
