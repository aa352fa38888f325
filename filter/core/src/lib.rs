//! Host-agnostic core of the modelgate filter: the configuration contract shared with the
//! controller, and every decision the filter makes (which model a request addresses,
//! whether it is exempt, whether its token is good, which predictor serves it), as plain
//! functions over plain types that are tested natively.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cache;
pub mod claims;
pub mod compiled;
pub mod config;
pub mod crypto;
pub mod decision;
pub mod ec_verify;
mod ecdsa;
pub mod headers;
pub mod keys;
mod montgomery;
pub mod reason;
mod request;
pub mod routing;
pub mod rsa_verify;
pub mod strict_json;
pub mod token;
pub mod trace;

pub use cache::TokenCache;
pub use compiled::{CompiledConfig, ConfigError};
pub use config::FilterConfig;
pub use decision::{AllowReason, Decision, Edit, Environment, Outcome, Route};
pub use reason::DenyReason;
pub use request::Request;
pub use routing::RouteReason;
