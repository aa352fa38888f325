//! One JWKS fetch a tenant cannot turn against the controller: the target passes
//! [`TargetPolicy`] (by name before any lookup, by every resolved address before
//! connecting, and the connection goes to a checked address), no redirect is followed,
//! and the body is read chunk by chunk up to a cap, then refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use modelgate_core::config::KeySet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::target::TargetPolicy;
use crate::settings::JwksSettings;

/// Why a JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The URI is not one the controller may fetch (scheme, host or address).
    #[error("fetching JWKS {uri}: refused: {reason}")]
    Refused {
        /// The URI.
        uri: String,
        /// Which rule refuses it.
        reason: String,
    },
    /// The request failed (connection, timeout, TLS, a refused resolved address).
    #[error("fetching JWKS {uri}: {}", with_causes(source))]
    Request {
        /// The URI.
        uri: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The issuer answered with an error status.
    #[error("fetching JWKS {uri}: status {status}")]
    Status {
        /// The URI.
        uri: String,
        /// The status.
        status: u16,
    },
    /// The issuer answered with a redirect, which is never followed.
    #[error(
        "fetching JWKS {uri}: status {status}, redirecting to {location:?}: redirects are not followed, name the final URI"
    )]
    Redirect {
        /// The URI.
        uri: String,
        /// The status.
        status: u16,
        /// The `location` header.
        location: String,
    },
    /// The body is larger than `jwks.maxBytes`.
    #[error("fetching JWKS {uri}: the body exceeds the controller's jwks.maxBytes ({limit} bytes)")]
    TooLarge {
        /// The URI.
        uri: String,
        /// The cap.
        limit: u64,
    },
    /// The body is not a JWKS.
    #[error("fetching JWKS {uri}: not a JWKS document ({reason})")]
    Document {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
}

/// Fetches JWKS documents under the `jwks` settings, each within a timeout.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
    max_bytes: u64,
}

/// The HTTP client could not be built (no TLS backend, for example).
#[derive(Debug, thiserror::Error)]
#[error("building the JWKS HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

impl Fetcher {
    /// A fetcher following `settings`, each fetch (connection, answer and body) bounded
    /// by `timeout`.
    pub fn new(settings: &JwksSettings, timeout: Duration) -> Result<Self, ClientError> {
        crate::install_crypto_provider();
        let policy = Arc::new(settings.target_policy());
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
            // A redirect would be a second target chosen by whoever answers the first.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, past the checked resolver.
            .no_proxy()
            .retry(reqwest::retry::never())
            .dns_resolver(CheckedResolver(policy.clone()))
            .build()
            .map_err(ClientError)?;
        Ok(Self {
            client,
            policy,
            max_bytes: settings.max_bytes,
        })
    }

    /// Fetches one JWKS. A document without a single key the filter can use is refused,
    /// so a broken answer never replaces good keys.
    pub async fn fetch(&self, uri: &str) -> Result<KeySet, JwksError> {
        let refused = |reason: String| JwksError::Refused {
            uri: uri.into(),
            reason,
        };
        let url = reqwest::Url::parse(uri).map_err(|e| refused(e.to_string()))?;
        // Names and literal addresses are judged here: reqwest connects to a literal
        // address without asking the resolver.
        self.policy.check_uri(&url).map_err(refused)?;
        let request = |source| JwksError::Request {
            uri: uri.into(),
            source,
        };
        let mut response = self.client.get(url).send().await.map_err(request)?;
        let status = response.status();
        if status.is_redirection() {
            // Shortened: whoever answers chooses it, and it ends up in logs and Events.
            let location: String = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| {
                    String::from_utf8_lossy(l.as_bytes())
                        .chars()
                        .take(200)
                        .collect()
                })
                .unwrap_or_default();
            return Err(JwksError::Redirect {
                uri: uri.into(),
                status: status.as_u16(),
                location,
            });
        }
        if !status.is_success() {
            return Err(JwksError::Status {
                uri: uri.into(),
                status: status.as_u16(),
            });
        }
        let too_large = || JwksError::TooLarge {
            uri: uri.into(),
            limit: self.max_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request)? {
            if (body.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let set: KeySet = serde_json::from_slice(&body).map_err(|e| JwksError::Document {
            uri: uri.into(),
            reason: e.to_string(),
        })?;
        if !set
            .keys
            .iter()
            .any(|k| modelgate_core::auth::keys::compile_key(k).is_ok())
        {
            return Err(JwksError::Document {
                uri: uri.into(),
                reason: "no key the filter can use".into(),
            });
        }
        Ok(set)
    }
}

/// reqwest's message and its causes: "error sending request" alone hides which rule
/// refused a resolved address, or that the connection was refused.
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Resolves once, checks every address, and hands reqwest only checked addresses, so a
/// name that answers differently the second time (DNS rebinding) is never asked twice.
struct CheckedResolver(Arc<TargetPolicy>);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().trim_end_matches('.').to_string();
        Box::pin(async move {
            // Absolute (a trailing dot): the cluster's search domains must not turn a
            // tenant's `keycloak.auth` into a Service name.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((format!("{host}."), 0))
                .await?
                .collect();
            let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
            policy.check_resolved(&host, &ips)?;
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}
