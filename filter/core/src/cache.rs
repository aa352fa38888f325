//! Per-VM cache of token verdicts: a repeated token costs a hash, a lookup and a comparison
//! instead of a signature check. Bounded, keyed by policy and a fast 64-bit hash of the
//! token, with the token itself kept and compared on a hit (a hash collision, crafted or
//! not, is a miss, never another token's verdict). A verified token is never used past its
//! `exp`; a refused one is remembered briefly, so a client retrying a forged or expired
//! token costs what a cached token costs. A new configuration starts a new cache, so
//! changed keys or policies never see an old verdict.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::reason::DenyReason;

/// Verified tokens kept per VM by default.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Refused tokens kept per VM, and for how long.
const REFUSED_CAPACITY: usize = 256;
const REFUSED_SECS: u64 = 30;
/// Longer refused tokens are not remembered (an attacker must not fill memory with them).
const REFUSED_MAX_BYTES: usize = 4096;

/// The cache key of a token under a policy: (policy index, hash of the token).
pub type Key = (usize, u64);

/// Token verdicts of one configuration generation.
#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
    refused: HashMap<Key, Refused>,
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    exp: u64,
    claims: Rc<Map<String, Value>>,
}

#[derive(Debug)]
struct Refused {
    token: Box<str>,
    until: u64,
    reason: DenyReason,
}

impl TokenCache {
    /// An empty cache holding at most `capacity` verified tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            refused: HashMap::new(),
        }
    }

    /// The cache key of a token under a policy.
    pub fn key(policy: usize, token: &str) -> Key {
        (policy, fast_hash(token.as_bytes()))
    }

    /// The claims of this token verified earlier, if it has not expired.
    pub fn get(&mut self, key: &Key, token: &str, now: u64) -> Option<Rc<Map<String, Value>>> {
        let entry = self.entries.get(key)?;
        if *entry.token != *token {
            return None;
        }
        if entry.exp <= now {
            self.entries.remove(key);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers a verified token until `exp`.
    pub fn insert(
        &mut self,
        key: Key,
        token: &str,
        exp: u64,
        claims: Rc<Map<String, Value>>,
        now: u64,
    ) {
        if exp <= now {
            return;
        }
        if self.entries.len() >= self.capacity || self.order.len() > 2 * self.capacity {
            self.evict(now);
        }
        let entry = Entry {
            token: token.into(),
            exp,
            claims,
        };
        if self.entries.insert(key, entry).is_none() {
            self.order.push_back(key);
        }
    }

    /// Why this token was refused a moment ago, if it was.
    pub fn refused(&mut self, key: &Key, token: &str, now: u64) -> Option<DenyReason> {
        let refused = self.refused.get(key)?;
        if refused.until <= now {
            self.refused.remove(key);
            return None;
        }
        (*refused.token == *token).then_some(refused.reason)
    }

    /// Remembers a refusal for a few seconds, when it can only be repeated: a token that is
    /// not yet valid may become valid, and a long one is not worth its memory.
    pub fn insert_refused(&mut self, key: Key, token: &str, reason: DenyReason, now: u64) {
        if reason == DenyReason::NotYetValid || token.len() > REFUSED_MAX_BYTES {
            return;
        }
        if self.refused.len() >= REFUSED_CAPACITY {
            self.refused.clear();
        }
        let refused = Refused {
            token: token.into(),
            until: now.saturating_add(REFUSED_SECS),
            reason,
        };
        self.refused.insert(key, refused);
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

    /// Number of cached verified tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no verified token is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A fast 64-bit hash (multiply-rotate over 8-byte words). Not cryptographic, and it need
/// not be: a hit is confirmed by comparing the token itself.
fn fast_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    hash = (hash.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    hash ^ (hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Rc<Map<String, Value>> {
        Rc::new(Map::new())
    }

    fn put(cache: &mut TokenCache, policy: usize, token: &str, exp: u64, now: u64) {
        cache.insert(TokenCache::key(policy, token), token, exp, claims(), now);
    }

    fn hit(cache: &mut TokenCache, policy: usize, token: &str, now: u64) -> bool {
        cache
            .get(&TokenCache::key(policy, token), token, now)
            .is_some()
    }

    #[test]
    fn entries_never_outlive_exp() {
        let mut cache = TokenCache::new(4);
        put(&mut cache, 0, "t", 100, 50);
        assert!(hit(&mut cache, 0, "t", 99));
        assert!(!hit(&mut cache, 0, "t", 100));
        assert!(cache.is_empty());
        put(&mut cache, 0, "t", 100, 100);
        assert!(cache.is_empty(), "an already expired token is not cached");
    }

    #[test]
    fn policies_do_not_share_verdicts() {
        let mut cache = TokenCache::new(4);
        put(&mut cache, 0, "t", 100, 0);
        assert!(!hit(&mut cache, 1, "t", 1));
        assert!(!hit(&mut cache, 0, "u", 1));
        assert!(hit(&mut cache, 0, "t", 1));
    }

    #[test]
    fn a_colliding_key_is_a_miss_not_another_tokens_verdict() {
        let mut cache = TokenCache::new(4);
        let key = TokenCache::key(0, "good");
        cache.insert(key, "good", 100, claims(), 0);
        // Another token presented under the same key (as a crafted collision would be).
        assert!(cache.get(&key, "forged", 1).is_none());
        assert!(cache.get(&key, "good", 1).is_some());
        assert!(cache.refused(&key, "good", 1).is_none());
        cache.insert_refused(key, "bad", DenyReason::BadSignature, 0);
        assert_eq!(cache.refused(&key, "good", 1), None);
        assert_eq!(
            cache.refused(&key, "bad", 1),
            Some(DenyReason::BadSignature)
        );
    }

    #[test]
    fn refusals_are_remembered_briefly_and_bounded() {
        let mut cache = TokenCache::new(4);
        let key = TokenCache::key(0, "x");
        cache.insert_refused(key, "x", DenyReason::Expired, 100);
        assert_eq!(cache.refused(&key, "x", 129), Some(DenyReason::Expired));
        assert_eq!(cache.refused(&key, "x", 130), None);
        cache.insert_refused(key, "x", DenyReason::NotYetValid, 100);
        assert_eq!(cache.refused(&key, "x", 101), None, "may become valid");
        let long = "x".repeat(REFUSED_MAX_BYTES + 1);
        let long_key = TokenCache::key(0, &long);
        cache.insert_refused(long_key, &long, DenyReason::BadSignature, 100);
        assert_eq!(cache.refused(&long_key, &long, 101), None);
        for i in 0..1000 {
            let token = i.to_string();
            cache.insert_refused(
                TokenCache::key(0, &token),
                &token,
                DenyReason::BadSignature,
                0,
            );
            assert!(cache.refused.len() <= REFUSED_CAPACITY);
        }
    }

    #[test]
    fn the_hash_sees_every_byte() {
        let base = "a".repeat(37);
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(fast_hash(base.as_bytes())));
        for i in 0..base.len() {
            let mut changed = base.clone().into_bytes();
            changed[i] = b'b';
            assert!(seen.insert(fast_hash(&changed)), "byte {i}");
        }
        assert_ne!(fast_hash(b""), fast_hash(b"\0"));
    }

    #[test]
    fn stays_bounded_dropping_the_oldest() {
        let mut cache = TokenCache::new(3);
        for i in 4..100u64 {
            put(&mut cache, 0, &i.to_string(), 1000, 10);
            assert!(cache.len() <= 3);
        }
        assert!(hit(&mut cache, 0, "99", 10));
        assert!(!hit(&mut cache, 0, "4", 10));
    }

    #[test]
    fn bookkeeping_stays_bounded_when_tokens_expire_and_return() {
        let mut cache = TokenCache::new(2);
        for now in 0..1000u64 {
            let k = TokenCache::key(0, "same");
            cache.get(&k, "same", now);
            cache.insert(k, "same", now + 1, claims(), now);
            assert!(
                cache.order.len() <= 5,
                "order grew to {}",
                cache.order.len()
            );
        }
    }
}
