//! The leader's loop over the shared objects (Gateways, the extension object): after model and
//! key changes and every few seconds, skipping API calls while nothing they depend on
//! changed, except for a periodic full check.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Notify, watch};

use super::lead::Watched;
use crate::reconcile::{Context, SHARED_OBJECTS, reconcile_global};
use crate::seldon::SeldonDeployment;
use crate::wasm_server::ServerState;

/// Reconciles the shared objects whenever `wake` fires, and every 5 s (backing off while
/// the pass fails), until `done`. Readiness waits for the SeldonDeployment cache; models
/// whose verdict changed, and those it admits, are reconciled again through `again`.
pub(super) async fn shared_objects_loop(
    ctx: Arc<Context>,
    store: Store<SeldonDeployment>,
    watched: Watched,
    wake: Arc<Notify>,
    server: ServerState,
    again: futures::channel::mpsc::UnboundedSender<ObjectRef<SeldonDeployment>>,
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
    let mut pace = Duration::ZERO;
    let mut passed = Instant::now();
    loop {
        let mut pause = Duration::from_secs(5);
        // What the pass depends on, from the cache's objects as they are: no copy, no
        // generation, while nothing changed.
        let inputs = fingerprint(&ctx, &store, &watched);
        let fresh =
            last.is_some_and(|(f, at)| f == inputs && at.elapsed() < Duration::from_secs(300));
        if !fresh {
            let started = Instant::now();
            // The cache's own objects, shared: no copy of any.
            let sdeps: Vec<Arc<SeldonDeployment>> = store
                .state()
                .into_iter()
                .filter(|s| watched.covers(s))
                .collect();
            match reconcile_global(&ctx, &sdeps).await {
                Ok(outcome) => {
                    if outcome.settled() {
                        last = Some((inputs, Instant::now()));
                    } else {
                        // Each failed object waits for its own retry time; the
                        // WasmPlugin keeps being applied meanwhile.
                        last = None;
                        if !outcome.failed.is_empty() {
                            ctx.metrics.reconciled(false);
                        }
                    }
                    for id in outcome.changed.iter().chain(&outcome.admitted) {
                        if let Some((namespace, name)) = id.split_once('/') {
                            let _ = again.unbounded_send(ObjectRef::new(name).within(namespace));
                        }
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
            drop(sdeps);
            // A pass over many models takes long, and each model's reconcile wakes the
            // loop: at least as long again goes to everything else before the next one.
            passed = Instant::now();
            pace = passed.duration_since(started).min(MAX_PACE);
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = done.wait_for(|d| *d) => return,
        }
        let rest = pace.saturating_sub(passed.elapsed());
        if !rest.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(rest) => {}
                _ = done.wait_for(|d| *d) => return,
            }
        }
    }
}

/// The longest a pass's length holds the next one back.
const MAX_PACE: Duration = Duration::from_secs(10);

/// A hash of what the shared objects are generated from, to skip passes while nothing
/// changed: the watched SeldonDeployments' identities and versions, the fetched keys'
/// changes and the last good configurations taken from the cluster. Settings and the
/// module do not change while the process runs; what the cluster holds is checked by the
/// pass itself, which runs again soon while anything is unsettled, and every 5 minutes.
fn fingerprint(ctx: &Context, store: &Store<SeldonDeployment>, watched: &Watched) -> u64 {
    use std::hash::{Hash, Hasher};
    // The cache's order is its own: a sum of each object's hash does not depend on it.
    let mut sum = 0u64;
    let mut count = 0u64;
    for sdep in store.state().iter().filter(|s| watched.covers(s)) {
        let meta = &sdep.metadata;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (
            &meta.namespace,
            &meta.name,
            &meta.uid,
            &meta.resource_version,
        )
            .hash(&mut hasher);
        sum = sum.wrapping_add(hasher.finish());
        count += 1;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (sum, count).hash(&mut hasher);
    ctx.jwks.changes().hash(&mut hasher);
    ctx.recovered.load(Ordering::Acquire).hash(&mut hasher);
    hasher.finish()
}
