//! The leader's JWKS loop: each URI fetched when due on a task of its own, and the shared
//! objects' loop woken as soon as any URI's keys change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::jwks::{Fetched, Refresher};
use crate::reconcile::Context;

/// Starts the fetches due, at least every second, until `done`; `wake` fires on new keys.
pub(super) async fn jwks_refresh_loop(
    ctx: Arc<Context>,
    refresher: Refresher,
    wake: Arc<Notify>,
    mut done: watch::Receiver<bool>,
) {
    // Each URI is fetched on a task of its own and reports here when done, so new
    // keys are applied at once, whatever other URIs are still doing.
    let (results, mut fetched) = tokio::sync::mpsc::unbounded_channel();
    loop {
        refresher.start_due(&ctx.jwks, &results);
        let next = ctx.jwks.next_due().map_or(Duration::from_secs(1), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1))
        });
        tokio::select! {
            Some(Fetched { uri, outcome }) = fetched.recv() => match outcome {
                Ok(changed) => {
                    ctx.metrics.jwks_fetched(true);
                    if changed {
                        tracing::info!(%uri, "JWKS keys changed");
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    let failures = ctx.jwks.backoff(&uri).map_or(0, |(n, _)| n);
                    tracing::warn!(%uri, failures, "JWKS refresh failed, keeping the last good keys: {e}");
                    ctx.metrics.jwks_fetched(false);
                }
            },
            _ = tokio::time::sleep(next) => {}
            _ = done.wait_for(|d| *d) => return,
        }
    }
}
