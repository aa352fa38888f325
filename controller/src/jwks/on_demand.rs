//! Fetches the filter's key channel asks for (`GET /keys?uri=<JWKS URI>`, when a token
//! names a `kid` its key set lacks): only for URIs the controller tracks anyway (a tenant
//! must not turn the controller into a fetch proxy), and at most once per interval per URI
//! whatever the number of gateways, VMs and tokens asking; otherwise the current keys are
//! the answer. A fetch made here is recorded like a periodic one, so new keys also go into
//! the next configuration.

use std::time::{Duration, Instant};

use modelgate_core::auth::keys::KeyLimits;
use modelgate_core::config::KeySet;

use super::{Fetcher, JwksCache, Schedule};

/// What became of a request for a URI's keys; its name is the `outcome` label of
/// `modelgate_controller_key_refetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a URI in use: nothing fetched, nothing answered.
    Untracked,
    /// Fetched now, and the keys changed.
    Changed,
    /// Fetched now, the same keys.
    Unchanged,
    /// Fetched now, and the fetch failed: the last good keys are the answer.
    Failed,
    /// Fetched less than an interval ago, or being fetched: the current keys are the answer.
    Limited,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Untracked => "untracked",
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
            Outcome::Limited => "limited",
        }
    }
}

/// Fetches on the key channel's request.
#[derive(Debug, Clone)]
pub struct OnDemand {
    /// The keys in use, shared with the periodic refresh and generation.
    pub cache: JwksCache,
    /// How to fetch.
    pub fetcher: Fetcher,
    /// When a URI fetched here comes due again (as after a periodic fetch).
    pub schedule: Schedule,
    /// At most one fetch per URI in this long.
    pub interval: Duration,
    /// What keys may cost (`maxRsaBits`): answers are reduced to the usable keys, as the
    /// configuration's are.
    pub limits: KeyLimits,
}

impl OnDemand {
    /// The keys to answer for `uri` (none known: `None`), fetching them first when allowed.
    pub async fn keys(&self, uri: &str) -> (Outcome, Option<KeySet>) {
        if !self.claim(uri) {
            let outcome = if self.cache.lock().contains_key(uri) {
                Outcome::Limited
            } else {
                Outcome::Untracked
            };
            return (outcome, self.current(uri));
        }
        // On a task of its own: a gateway that stops waiting (its timeout is 2 s) drops this
        // request, and the fetch must still end and be recorded, or the URI would stay
        // marked in flight and never be fetched again.
        let (fetcher, cache, schedule, owned) = (
            self.fetcher.clone(),
            self.cache.clone(),
            self.schedule,
            uri.to_string(),
        );
        let fetch = tokio::spawn(async move {
            let result = fetcher.fetch(&owned).await;
            cache.record(&owned, result, schedule)
        });
        let outcome = match fetch.await {
            Ok(Ok(true)) => Outcome::Changed,
            Ok(Ok(false)) => Outcome::Unchanged,
            Ok(Err(e)) => {
                tracing::warn!(%uri, "JWKS fetch for the key channel failed, answering the last good keys: {e}");
                Outcome::Failed
            }
            Err(e) => {
                tracing::warn!(%uri, "JWKS fetch for the key channel did not finish: {e}");
                Outcome::Failed
            }
        };
        (outcome, self.current(uri))
    }

    /// Marks `uri` as being fetched now, if it is tracked, not being fetched, and was not
    /// fetched here less than an interval ago.
    fn claim(&self, uri: &str) -> bool {
        let mut entries = self.cache.lock();
        let Some(entry) = entries.get_mut(uri) else {
            return false;
        };
        let now = Instant::now();
        if entry.in_flight
            || entry
                .asked
                .is_some_and(|at| now.duration_since(at) < self.interval)
        {
            return false;
        }
        entry.asked = Some(now);
        entry.in_flight = true;
        true
    }

    /// The keys known for `uri`, reduced to what the filter can use ([`crate::key_sets`]):
    /// what the issuer published never reaches the filter verbatim, here as in the
    /// configuration.
    fn current(&self, uri: &str) -> Option<KeySet> {
        let raw = self.cache.lock().get(uri).and_then(|e| e.keys.clone())?;
        Some(KeySet {
            source: Some(uri.to_string()),
            keys: crate::key_sets::reduce(&raw.keys, &self.limits).set.keys,
        })
    }
}
