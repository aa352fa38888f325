//! Host-agnostic core of the modelgate filter: the configuration contract shared with the
//! controller, and every decision the filter makes (which model a request addresses,
//! whether it is exempt, whether its token is good, which predictor serves it), as plain
//! functions over plain types that are tested natively. Modules in the order a
//! configuration, then a request, flows through them:
//!
//! - [`config`]: the contract, the document the controller writes; [`headers`]: the header
//!   names it fixes and reserves; [`names`] and [`http`]: the small name and HTTP rules
//!   the contract and the decisions share.
//! - [`compiled`]: the document validated and compiled once, in `on_configure`.
//! - `request`: which model a request addresses, the exemption and CORS preflights.
//! - [`auth`]: finding, verifying and caching the token; required claims.
//! - [`route`]: the predictor's choice.
//! - [`decision`]: all of it for one request, as a value; [`trace`]: how it was reached;
//!   [`reason`]: why a request was refused.
//! - [`crypto`]: the verification-only crypto provider under `jsonwebtoken`, over the
//!   signature checks of the `modelgate-verify` crate.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod by_reference;
pub mod compiled;
pub mod config;
pub mod crypto;
pub mod decision;
pub mod headers;
pub mod http;
pub mod names;
pub mod reason;
mod request;
pub mod route;
pub mod trace;

pub use auth::cache::TokenCache;
pub use compiled::{CompiledConfig, ConfigError};
pub use config::FilterConfig;
pub use decision::{AllowReason, Decision, Edit, Environment, Outcome, Route};
pub use reason::DenyReason;
pub use request::Request;
pub use route::RouteReason;
