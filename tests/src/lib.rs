//! modelgate's end-to-end harness: the built filter inside a real Envoy, shaped like the
//! Istio ingress gateway, in front of stand-in model servers, with a blocking HTTP client
//! that sends exactly what a test writes. The tests in `tests/tests/` and the demo
//! (`src/bin/demo.rs`) use it; `tests/README.md` says how to run them.

pub mod answers;
pub mod bootstrap;
pub mod client;
pub mod corpus;
pub mod envoy;
pub mod gateway;
pub mod http_route;
pub mod locate;
pub mod metrics;
pub mod render;
pub mod routes;
pub mod sample;
pub mod strict_fields;
pub mod upstream;
pub mod virtual_service;
pub mod weights;
mod wire;

pub use client::{Client, Request, Response};
pub use gateway::{ConfigOutcome, Gateway, GatewaySpec};
pub use metrics::Scrape;
pub use routes::{ModelRoutes, PredictorRoute, RouteTable, VirtualServiceRoutes};
pub use upstream::{Echo, ModelServer};

/// Why the harness could not do what a test asked: a missing Envoy or filter build, an
/// Envoy that would not start, a configuration never applied. The message says what to do.
#[derive(Debug)]
pub struct HarnessError(String);

impl HarnessError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

impl From<std::io::Error> for HarnessError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<serde_json::Error> for HarnessError {
    fn from(e: serde_json::Error) -> Self {
        Self(e.to_string())
    }
}
