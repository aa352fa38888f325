//! Per-VM cache of verified tokens: a repeated token costs a hash and a lookup instead of a
//! signature check. Bounded, keyed by policy and a SHA-256 of the token (the token itself is
//! never stored), and an entry is never used past the token's `exp`. A new configuration
//! starts a new cache, so changed keys or policies never see an old verdict.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Entries kept per VM by default.
pub const DEFAULT_CAPACITY: usize = 8192;

type Key = (usize, [u8; 32]);

/// Verified tokens of one configuration generation.
#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
}

#[derive(Debug)]
struct Entry {
    exp: u64,
    claims: Rc<Map<String, Value>>,
}

impl TokenCache {
    /// An empty cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The cache key of a token under a policy.
    pub fn key(policy: usize, token: &str) -> Key {
        (policy, Sha256::digest(token.as_bytes()).into())
    }

    /// The claims of a token verified earlier, if it has not expired.
    pub fn get(&mut self, key: &Key, now: u64) -> Option<Rc<Map<String, Value>>> {
        let entry = self.entries.get(key)?;
        if entry.exp <= now {
            self.entries.remove(key);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers a verified token until `exp`.
    pub fn insert(&mut self, key: Key, exp: u64, claims: Rc<Map<String, Value>>, now: u64) {
        if exp <= now {
            return;
        }
        if self.entries.len() >= self.capacity || self.order.len() > 2 * self.capacity {
            self.evict(now);
        }
        if self.entries.insert(key, Entry { exp, claims }).is_none() {
            self.order.push_back(key);
        }
    }

    /// Makes room by dropping the oldest entry. Keys removed on expiry linger in `order`
    /// until they are popped here or compacted away, which keeps eviction O(1) amortised.
    fn evict(&mut self, now: u64) {
        if self.order.len() > 2 * self.capacity {
            self.entries.retain(|_, e| e.exp > now);
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Rc<Map<String, Value>> {
        Rc::new(Map::new())
    }

    #[test]
    fn entries_never_outlive_exp() {
        let mut cache = TokenCache::new(4);
        let k = TokenCache::key(0, "t");
        cache.insert(k, 100, claims(), 50);
        assert!(cache.get(&k, 99).is_some());
        assert!(cache.get(&k, 100).is_none());
        assert!(cache.is_empty());
        cache.insert(k, 100, claims(), 100);
        assert!(cache.is_empty(), "an already expired token is not cached");
    }

    #[test]
    fn policies_do_not_share_verdicts() {
        let mut cache = TokenCache::new(4);
        cache.insert(TokenCache::key(0, "t"), 100, claims(), 0);
        assert!(cache.get(&TokenCache::key(1, "t"), 1).is_none());
        assert!(cache.get(&TokenCache::key(0, "u"), 1).is_none());
    }

    #[test]
    fn stays_bounded_dropping_the_oldest() {
        let mut cache = TokenCache::new(3);
        for i in 4..100u64 {
            cache.insert(TokenCache::key(0, &i.to_string()), 1000, claims(), 10);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&TokenCache::key(0, "99"), 10).is_some());
        assert!(cache.get(&TokenCache::key(0, "4"), 10).is_none());
    }

    #[test]
    fn bookkeeping_stays_bounded_when_tokens_expire_and_return() {
        let mut cache = TokenCache::new(2);
        for now in 0..1000u64 {
            let k = TokenCache::key(0, "same");
            cache.get(&k, now);
            cache.insert(k, now + 1, claims(), now);
            assert!(
                cache.order.len() <= 5,
                "order grew to {}",
                cache.order.len()
            );
        }
    }
}
