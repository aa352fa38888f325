//! The leader's loop over the shared objects (Gateways, the extension object): after model and
//! key changes and every few seconds, skipping API calls while nothing they depend on
//! changed, except for a periodic full check.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;
use tokio::sync::{Notify, watch};

use super::lead::Watched;
use crate::reconcile::{Context, SHARED_OBJECTS, reconcile_global};
use crate::seldon::SeldonDeployment;
use crate::wasm_server::ServerState;

/// Reconciles the shared objects whenever `wake` fires, and every 5 s (backing off while
/// the pass fails), until `done`. Readiness waits for the SeldonDeployment cache; models
/// whose verdict changed are reconciled again through `again`.
pub(super) async fn shared_objects_loop(
    ctx: Arc<Context>,
    store: Store<SeldonDeployment>,
    watched: Watched,
    wake: Arc<Notify>,
    server: ServerState,
    again: futures::channel::mpsc::UnboundedSender<()>,
    mut done: watch::Receiver<bool>,
) {
    // kube-runtime's readiness signal wakes only the task that polled it last (a
    // oneshot keeps one waker), and the Controller polls it too: poll again every
    // second, which returns at once after anyone has seen the store ready.
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => break,
            Ok(Err(_)) => return,
            Err(_elapsed) => continue,
        }
    }
    server.ready.store(true, Ordering::Relaxed);
    let mut last: Option<(u64, Instant)> = None;
    loop {
        let mut pause = Duration::from_secs(5);
        let sdeps: Vec<SeldonDeployment> = store
            .state()
            .iter()
            .map(|s| (**s).clone())
            .filter(|s| watched.covers(s))
            .collect();
        let fingerprint = fingerprint(&ctx, &sdeps);
        let fresh =
            last.is_some_and(|(f, at)| f == fingerprint && at.elapsed() < Duration::from_secs(300));
        if !fresh {
            match reconcile_global(&ctx, &sdeps).await {
                Ok(outcome) => {
                    if outcome.settled() {
                        last = Some((fingerprint, Instant::now()));
                    } else {
                        // Each failed object waits for its own retry time; the
                        // WasmPlugin keeps being applied meanwhile.
                        last = None;
                        if !outcome.failed.is_empty() {
                            ctx.metrics.reconciled(false);
                        }
                    }
                    if !outcome.changed.is_empty() {
                        let _ = again.unbounded_send(());
                    }
                }
                Err(e) => {
                    // Back off like a model does, so a failing API server is not
                    // asked every 5 s for as long as it fails.
                    pause = ctx.failed(SHARED_OBJECTS);
                    tracing::warn!(retry_in = ?pause, "shared objects: {e}");
                    ctx.metrics.reconciled(false);
                }
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = done.wait_for(|d| *d) => return,
        }
    }
}

/// A hash of what the shared objects depend on, to skip API calls when nothing changed.
fn fingerprint(ctx: &Context, sdeps: &[SeldonDeployment]) -> u64 {
    use std::hash::{Hash, Hasher};
    let generated = ctx.generate_shared(sdeps);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for gateway in &generated.gateways {
        serde_json::to_string(gateway)
            .expect("serialising a Gateway is infallible: derived Serialize, string map keys only")
            .hash(&mut hasher);
    }
    serde_json::to_string(&generated.extension)
        .expect("serialising the extension is infallible: derived Serialize, string map keys only")
        .hash(&mut hasher);
    hasher.finish()
}
