//! The modelgate controller: from annotated SeldonDeployments to the Istio objects and the
//! filter configuration that guard and route them. Modules in the order data flows
//! through them (`controller/README.md` draws the two paths, render and run):
//!
//! - [`settings`]: what the controller is told (generation defaults, gateways, run timing).
//! - [`tenancy`]: what tenants may name in their models' JWT annotations.
//! - [`seldon`]: the SeldonDeployment, typed with the fields the controller reads.
//! - [`annotations`]: a model's annotations parsed into [`annotations::ModelOptions`].
//! - [`key_sets`]: tenants' keys reduced to what the filter can use.
//! - [`generate`](mod@generate): the pure function from SeldonDeployments and settings to objects.
//! - [`istio`]: the typed Istio objects it produces (their names follow
//!   [`modelgate_core::names`], the rules the filter reads model ids by), and
//!   [`gateway_api`] the HTTPRoute it produces instead of a VirtualService with
//!   `routing: gateway-api`.
//! - [`manifests`]: YAML in and out for the CLI.
//! - [`from_files`]: generation from manifest files, as `render`, `check` and `explain` do it.
//! - [`explain`]: the filter's decision on a request, natively.
//! - [`jwks`]: fetching issuers' keys, bounded and confined to admitted targets.
//! - [`reconcile`]: applying generated objects to the cluster, per model and shared.
//! - [`run`]: the controller process: CRD check, leader election, the leader's loops.
//! - [`permissions`]: the Kubernetes API requests `run` makes, declared once: the chart's
//!   RBAC grants them and the tests' API-server doubles refuse anything else.
//! - [`metrics`]: the controller's Prometheus metrics.
//! - [`wasm`], [`wasm_server`]: the embedded filter module and the HTTP server that serves it.
//!
//! Tests only (and the `fixtures` feature, which this crate's integration tests enable):
//! `fixtures`, SeldonDeployments built step by step, `SeldonDeployment::fixture(..)`.

pub mod annotations;
pub mod config_documents;
pub mod explain;
pub mod from_files;
pub mod gateway_api;
pub mod generate;
pub mod istio;
pub mod jwks;
pub mod key_sets;
pub mod manifests;
pub mod metrics;
pub mod permissions;
pub mod reconcile;
pub mod run;
pub mod seldon;
pub mod settings;
pub mod tenancy;
pub mod wasm;
pub mod wasm_server;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

pub use generate::{Generated, Inputs, KnownGood, generate};
pub use settings::{RunSettings, Settings};

/// Makes `ring` the TLS crypto provider of the process (kube uses it too); needed once
/// before any HTTPS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
