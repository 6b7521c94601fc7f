//! Start-up and graceful shutdown: stop accepting on SIGTERM/SIGINT, drain sessions for the grace
//! period, and exit by the force-quit deadline whatever happens.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Shared shutdown state: listeners stop on `shutdown`; every listener and session task is tracked.
#[derive(Clone, Default)]
pub struct Lifecycle {
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Lifecycle {
    /// A running lifecycle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns a tracked task (a listener or a session) that the drain waits for.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    /// Resolves when shutdown starts; listeners stop accepting then.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }

    /// Owned form of [`Lifecycle::stopping`], for servers that take a `'static` future.
    pub fn stopping_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shutdown.clone().cancelled_owned()
    }

    /// Number of tracked tasks still running.
    pub fn active(&self) -> usize {
        self.tracker.len()
    }

    /// Stops the listeners and arms the hard exit after `force_quit`.
    pub fn start_shutdown(&self, force_quit: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        // A plain thread, so the deadline holds even if the runtime is wedged.
        std::thread::spawn(move || {
            std::thread::sleep(force_quit);
            warn!("force-quit timeout reached, exiting");
            std::process::exit(1);
        });
    }

    /// Waits up to `grace` for every tracked task to end; true when all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
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
