//! Fetching the JWKS of issuers named by `seldon.io/jwt-jwks-uri` (or the default): each
//! URI on its own task with its own timeout, refreshed periodically, backing off while it
//! fails, and keeping the last good keys when a fetch fails. What may be fetched and how
//! much is read is decided in [`fetch`] and [`target`].

pub mod fetch;
pub mod on_demand;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelgate_core::config::KeySet;
use tokio::sync::{Semaphore, mpsc};

pub use fetch::{Fetcher, JwksError};

#[derive(Debug, Default)]
struct Entry {
    keys: Option<KeySet>,
    /// When to fetch next (`None`: now).
    due: Option<Instant>,
    /// Failed fetches in a row: each doubles the wait before the next one.
    failures: u32,
    /// Whether the last fetch succeeded: such URIs have a pool of fetches of their own.
    healthy: bool,
    /// A fetch is under way (or waiting for its pool).
    in_flight: bool,
    /// When the key channel last had it fetched ([`on_demand`]).
    asked: Option<Instant>,
}

/// The keys of every JWKS URI in use, shared by the fetcher and generation.
#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    /// Counts the changes of what [`JwksCache::snapshot`] returns, so a caller can tell
    /// that nothing changed without taking one.
    changes: Arc<std::sync::atomic::AtomicU64>,
}

/// What a refresh round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// URIs whose keys changed.
    pub changed: Vec<String>,
    /// URIs that failed, with the error.
    pub failed: Vec<(String, String)>,
}

/// The outcome of one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The URI.
    pub uri: String,
    /// Whether its keys changed, or why the fetch failed (the last good keys stay).
    pub outcome: Result<bool, String>,
}

/// When fetches come due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// After a success.
    pub refresh: Duration,
    /// After a first failure; doubled by each further one, up to `refresh`.
    pub retry: Duration,
}

impl Schedule {
    /// The wait after `failures` failed fetches in a row.
    pub fn after_failures(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.retry
            .saturating_mul(1 << doublings)
            .min(self.refresh.max(self.retry))
    }
}

impl JwksCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last good keys of every URI fetched so far.
    pub fn snapshot(&self) -> BTreeMap<String, KeySet> {
        self.lock()
            .iter()
            .filter_map(|(uri, e)| e.keys.clone().map(|k| (uri.clone(), k)))
            .collect()
    }

    /// How many times what [`JwksCache::snapshot`] returns has changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Sets the URIs in use: new ones are due now, unused ones are forgotten.
    pub fn track(&self, uris: &BTreeSet<String>) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|uri, _| uris.contains(uri));
        if entries.len() != before {
            self.changed();
        }
        for uri in uris {
            entries.entry(uri.clone()).or_default();
        }
    }

    /// Takes keys a tracked URI has not been fetched for yet from elsewhere (the filter
    /// configuration in the cluster, after a restart); they count as its last good keys
    /// until a fetch replaces them, and the fetch stays due. Returns whether they were
    /// taken.
    pub fn keep(&self, uri: &str, keys: KeySet) -> bool {
        match self.lock().get_mut(uri) {
            Some(entry) if entry.keys.is_none() => {
                entry.keys = Some(keys);
                self.changed();
                true
            }
            _ => false,
        }
    }

    /// When the next fetch is due (`None`: nothing to fetch that is not being fetched).
    pub fn next_due(&self) -> Option<Instant> {
        self.lock()
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| e.due.unwrap_or_else(Instant::now))
            .min()
    }

    /// How many failed fetches in a row `uri` has had, and when it is due (tests, logs).
    pub fn backoff(&self, uri: &str) -> Option<(u32, Option<Instant>)> {
        self.lock().get(uri).map(|e| (e.failures, e.due))
    }

    /// Marks every due URI not being fetched as being fetched; returns them, those with
    /// the fewest failures first, and whether each is healthy.
    fn take_due(&self) -> Vec<(String, bool)> {
        let now = Instant::now();
        let mut due: Vec<(u32, Option<Instant>, String, bool)> = self
            .lock()
            .iter_mut()
            .filter(|(_, e)| !e.in_flight && e.due.is_none_or(|d| d <= now))
            .map(|(uri, e)| {
                e.in_flight = true;
                (e.failures, e.due, uri.clone(), e.healthy)
            })
            .collect();
        due.sort();
        due.into_iter()
            .map(|(_, _, uri, healthy)| (uri, healthy))
            .collect()
    }

    /// Records a fetch: a success is due again after `refresh`, a failure after its
    /// backoff, keeping the keys it had.
    fn record(
        &self,
        uri: &str,
        result: Result<KeySet, JwksError>,
        schedule: Schedule,
    ) -> Result<bool, String> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(uri) else {
            // No longer in use: nothing to keep.
            return Ok(false);
        };
        entry.in_flight = false;
        match result {
            Ok(keys) => {
                let changed = entry.keys.as_ref() != Some(&keys);
                if changed {
                    self.changed();
                }
                entry.keys = Some(keys);
                entry.failures = 0;
                entry.healthy = true;
                entry.due = Some(Instant::now() + schedule.refresh);
                Ok(changed)
            }
            Err(e) => {
                entry.failures = entry.failures.saturating_add(1);
                entry.healthy = false;
                entry.due = Some(Instant::now() + schedule.after_failures(entry.failures));
                Err(e.to_string())
            }
        }
    }
}

/// Runs the fetches of a [`JwksCache`]: every URI on a task of its own, at most
/// `concurrency` at once among healthy URIs and as many among the others (new or
/// failing), so a tenant's dead or slow URIs delay no issuer that answers.
#[derive(Debug, Clone)]
pub struct Refresher {
    fetcher: Fetcher,
    schedule: Schedule,
    healthy: Arc<Semaphore>,
    others: Arc<Semaphore>,
}

impl Refresher {
    /// A refresher fetching with `fetcher` on `schedule`.
    pub fn new(fetcher: Fetcher, schedule: Schedule, concurrency: std::num::NonZeroU16) -> Self {
        let permits = usize::from(concurrency.get());
        Self {
            fetcher,
            schedule,
            healthy: Arc::new(Semaphore::new(permits)),
            others: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Starts a fetch for every due URI not already being fetched; each reports on
    /// `results` as soon as it is done. Returns how many were started.
    pub fn start_due(&self, cache: &JwksCache, results: &mpsc::UnboundedSender<Fetched>) -> usize {
        let due = cache.take_due();
        let started = due.len();
        for (uri, healthy) in due {
            let pool = if healthy { &self.healthy } else { &self.others }.clone();
            let (fetcher, cache, results) = (self.fetcher.clone(), cache.clone(), results.clone());
            let schedule = self.schedule;
            tokio::spawn(async move {
                let Ok(_permit) = pool.acquire_owned().await else {
                    return;
                };
                let result = fetcher.fetch(&uri).await;
                let outcome = cache.record(&uri, result, schedule);
                let _ = results.send(Fetched { uri, outcome });
            });
        }
        started
    }

    /// Fetches every due URI and waits for all of them (`render`, tests).
    pub async fn refresh_due(&self, cache: &JwksCache) -> Refreshed {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        self.start_due(cache, &sender);
        drop(sender);
        let mut report = Refreshed::default();
        while let Some(fetched) = receiver.recv().await {
            match fetched.outcome {
                Ok(true) => report.changed.push(fetched.uri),
                Ok(false) => {}
                Err(e) => report.failed.push((fetched.uri, e)),
            }
        }
        report.changed.sort();
        report.failed.sort();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_up_to_the_refresh_interval() {
        let schedule = Schedule {
            refresh: Duration::from_secs(20 * 60),
            retry: Duration::from_secs(30),
        };
        let waits: Vec<u64> = (1..=8)
            .map(|n| schedule.after_failures(n).as_secs())
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1200, 1200]);
        assert_eq!(schedule.after_failures(u32::MAX).as_secs(), 1200);
    }
}
