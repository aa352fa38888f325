//! The modelgate controller: from annotated SeldonDeployments to the Istio objects and the
//! filter configuration that guard and route them.
//!
//! - [`settings`]: what the controller is told (defaults, gateway and TLS choices);
//!   [`tenancy`]: what tenants may name in their models' JWT annotations.
//! - [`seldon`], [`annotations`]: what it reads, parsed into [`annotations::ModelOptions`].
//! - [`generate`](mod@generate): the pure function from SeldonDeployments and settings to objects,
//!   shared by `render` and `run`; [`generate::filter_config`] builds the filter's configuration,
//!   from keys [`key_sets`] reduced to what the filter can use.
//! - [`jwks`]: fetching issuers' keys, bounded and confined to admitted targets.
//! - [`manifests`]: YAML in and out for the CLI; [`explain`]: the filter's decision, natively.

pub mod annotations;
pub mod explain;
pub mod from_files;
pub mod generate;
pub mod istio;
pub mod jwks;
pub mod key_sets;
pub mod manifests;
pub mod metrics;
pub mod names;
pub mod reconcile;
pub mod run;
pub mod seldon;
pub mod settings;
pub mod tenancy;
pub mod wasm;
pub mod wasm_server;

pub use generate::{Generated, Inputs, KnownGood, generate};
pub use settings::{RunSettings, Settings};

/// Makes `ring` the TLS crypto provider of the process (kube uses it too); needed once
/// before any HTTPS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
