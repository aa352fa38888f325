//! Fetching the JWKS of issuers named by `seldon.io/jwt-jwks-uri` (or the default): with a
//! timeout, refreshed periodically, and keeping the last good keys when a fetch fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelgate_core::config::KeySet;

/// Why a JWKS could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request failed (connection, timeout, TLS).
    #[error("fetching JWKS {uri}: {source}")]
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
    /// The body is not a JWKS.
    #[error("fetching JWKS {uri}: not a JWKS document ({reason})")]
    Document {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
}

/// An HTTP client for JWKS fetches.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("modelgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Fetches one JWKS. A document without a single key the filter can use is refused, so a
/// broken answer never replaces good keys.
pub async fn fetch(client: &reqwest::Client, uri: &str) -> Result<KeySet, JwksError> {
    let response = client
        .get(uri)
        .send()
        .await
        .map_err(|source| JwksError::Request {
            uri: uri.into(),
            source,
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(JwksError::Status {
            uri: uri.into(),
            status: status.as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| JwksError::Request {
            uri: uri.into(),
            source,
        })?;
    let set: KeySet = serde_json::from_slice(&body).map_err(|e| JwksError::Document {
        uri: uri.into(),
        reason: e.to_string(),
    })?;
    if !set
        .keys
        .iter()
        .any(|k| modelgate_core::keys::compile_key(k).is_ok())
    {
        return Err(JwksError::Document {
            uri: uri.into(),
            reason: "no key the filter can use".into(),
        });
    }
    Ok(set)
}

#[derive(Debug, Default)]
struct Entry {
    keys: Option<KeySet>,
    /// When to fetch next.
    due: Option<Instant>,
}

/// The keys of every JWKS URI in use, shared by the fetcher and generation.
#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

/// What a refresh round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// URIs whose keys changed.
    pub changed: Vec<String>,
    /// URIs that failed, with the error.
    pub failed: Vec<(String, String)>,
}

impl JwksCache {
    /// The last good keys of every URI fetched so far.
    pub fn snapshot(&self) -> BTreeMap<String, KeySet> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter_map(|(uri, e)| e.keys.clone().map(|k| (uri.clone(), k)))
            .collect()
    }

    /// Sets the URIs in use: new ones are due now, unused ones are forgotten.
    pub fn track(&self, uris: &BTreeSet<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|uri, _| uris.contains(uri));
        for uri in uris {
            entries.entry(uri.clone()).or_default();
        }
    }

    /// Takes keys a tracked URI has not been fetched for yet from elsewhere (the filter
    /// configuration in the cluster, after a restart); they count as its last good keys
    /// until a fetch replaces them, and the fetch stays due. Returns whether they were
    /// taken.
    pub fn keep(&self, uri: &str, keys: KeySet) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(uri) {
            Some(entry) if entry.keys.is_none() => {
                entry.keys = Some(keys);
                true
            }
            _ => false,
        }
    }

    /// When the next fetch is due (`None`: nothing tracked).
    pub fn next_due(&self) -> Option<Instant> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .map(|e| e.due.unwrap_or_else(Instant::now))
            .min()
    }

    /// Fetches every URI that is due; a success is due again after `refresh`, a failure
    /// after `retry`, keeping the keys it had.
    pub async fn refresh_due(
        &self,
        client: &reqwest::Client,
        refresh: Duration,
        retry: Duration,
    ) -> Refreshed {
        let now = Instant::now();
        let due: Vec<String> = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries
                .iter()
                .filter(|(_, e)| e.due.is_none_or(|d| d <= now))
                .map(|(uri, _)| uri.clone())
                .collect()
        };
        let mut report = Refreshed::default();
        for uri in due {
            let result = fetch(client, &uri).await;
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = entries.get_mut(&uri) else {
                continue;
            };
            match result {
                Ok(keys) => {
                    if entry.keys.as_ref() != Some(&keys) {
                        report.changed.push(uri.clone());
                    }
                    entry.keys = Some(keys);
                    entry.due = Some(Instant::now() + refresh);
                }
                Err(e) => {
                    report.failed.push((uri.clone(), e.to_string()));
                    entry.due = Some(Instant::now() + retry);
                }
            }
        }
        report
    }
}
