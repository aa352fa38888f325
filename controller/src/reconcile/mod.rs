//! Applying generated objects to the cluster. Per SeldonDeployment ([`reconcile_model`]):
//! its VirtualService, DestinationRules and AuthorizationPolicy, and the removal of
//! DestinationRules of predictors that are gone. Shared by all ([`reconcile_global`]):
//! managed Gateways and the extension object (WasmPlugin or TrafficExtension). Writes are
//! server-side applies that happen only when the live object differs; after a restart,
//! the live extension object stands in for what the process has not learned yet.
//!
//! - `context`: the state reconciles share ([`Context`]): keys, last good configurations,
//!   failures and their backoff.
//! - `model`: one SeldonDeployment's own objects.
//! - `shared`: the extension object and what the filter must keep for routes still live;
//!   `gateways`: the Gateways models name; `verdict`: what that pass tells each model.
//! - `extension`: the extension object of the kind in use, and removing the other kind's.
//! - `recovery`: what a restarted controller takes from the live extension object.
//! - `events`: problems reported to users as Events.
//! - `live`: digests of the owned objects, kept from watches, instead of reading them
//!   model by model; `unwatched`: the managed objects of kinds not watched with the
//!   settings, listed once per namespace.
//! - `apply`: server-side apply, delete, and the timeout of every API call.

mod apply;
mod context;
mod events;
mod extension;
mod gateways;
pub mod live;
mod model;
mod recovery;
mod shared;
mod unwatched;
mod verdict;

pub use apply::{DEFAULT_API_TIMEOUT, FIELD_MANAGER};
pub use context::{Context, SHARED_OBJECTS};
pub use model::reconcile_model;
pub use recovery::follow_live_key_sets;
pub use shared::{SharedOutcome, reconcile_global};
pub use verdict::{Verdict, shape};

/// A failed reconciliation: the API call and object concerned.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {namespace}/{name}: {source}")]
pub struct ReconcileError {
    /// What was attempted (`get`, `apply`, `delete`, `list`).
    pub action: &'static str,
    /// The object's kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name (or `*` for lists).
    pub name: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// What a reconciliation wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Writes {
    /// `<Kind> <ns>/<name>` applied.
    pub applied: Vec<String>,
    /// `<Kind> <ns>/<name>` deleted.
    pub deleted: Vec<String>,
    /// The model waits for the shared objects' loop: no WasmPlugin holding it as it is
    /// now has been applied yet, so its routes are not (all) written; try again soon.
    pub waiting: bool,
}
