//! Per-VM cache of token verdicts: a repeated token costs a hash, a lookup and a comparison
//! instead of a signature check. Bounded, keyed by policy and a fast 64-bit hash of the
//! token, with the token itself kept and compared on a hit (a hash collision, crafted or
//! not, is a miss, never another token's verdict). A verified token is never used past its
//! `exp`; a refused one is remembered briefly, so a client retrying a forged or expired
//! token costs what a cached token costs. A new configuration starts a new cache, so
//! changed keys or policies never see an old verdict.
//!
//! Any tenant with its own issuer can mint valid tokens of 16 KiB with hundreds of claims,
//! and a VM's memory never shrinks, so the cache is bounded in bytes as well as entries:
//! each entry counts its token, an estimate of its claims' heap ([`claims_bytes`]) and a
//! fixed overhead, and the oldest entries go to keep the total under the budget.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::reason::DenyReason;

/// Verified tokens kept per VM by default.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Bytes the verified tokens of a VM may hold by default (tokens, claims and bookkeeping).
pub const DEFAULT_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// Refused tokens kept per VM, and for how long.
const REFUSED_CAPACITY: usize = 256;
const REFUSED_SECS: u64 = 30;
/// Bytes the refused tokens of a VM may hold (tokens and bookkeeping).
pub const REFUSED_BUDGET_BYTES: usize = 512 * 1024;
/// Longer refused tokens are not remembered (an attacker must not fill memory with them).
const REFUSED_MAX_BYTES: usize = 4096;

/// What the allocator adds to each allocation, at most (header and rounding).
const ALLOCATION_BYTES: usize = 16;

/// Bookkeeping of one verified entry besides its token and claims: its slot in the hash
/// table (at most 16/7 slots per entry: the table grows by doubling and is at most 7/8
/// full), up to four keys in `order` (stale keys linger until compaction at twice the
/// capacity, and the deque grows by doubling), the `Rc` around the claims, the two
/// allocations.
const ENTRY_OVERHEAD_BYTES: usize = (size_of::<(Key, Entry)>() + 1) * 16 / 7
    + 4 * size_of::<Key>()
    + 2 * size_of::<usize>()
    + size_of::<Map<String, Value>>()
    + 2 * ALLOCATION_BYTES;

/// The same for a refused entry (no claims; no `order`).
const REFUSED_OVERHEAD_BYTES: usize = (size_of::<(Key, Refused)>() + 1) * 16 / 7 + ALLOCATION_BYTES;

/// The cache key of a token under a policy: (policy index, hash of the token).
pub type Key = (usize, u64);

/// Token verdicts of one configuration generation.
#[derive(Debug)]
pub struct TokenCache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
    budget: usize,
    /// The sum of the entries' `bytes`.
    bytes: usize,
    refused: HashMap<Key, Refused>,
    refused_bytes: usize,
}

#[derive(Debug)]
struct Entry {
    token: Box<str>,
    exp: u64,
    claims: Rc<Map<String, Value>>,
    /// What this entry counts against the budget.
    bytes: usize,
}

#[derive(Debug)]
struct Refused {
    token: Box<str>,
    until: u64,
    reason: DenyReason,
}

impl TokenCache {
    /// An empty cache holding at most `capacity` verified tokens, in
    /// [`DEFAULT_BUDGET_BYTES`].
    pub fn new(capacity: usize) -> Self {
        Self::with_budget(capacity, DEFAULT_BUDGET_BYTES)
    }

    /// An empty cache holding at most `capacity` verified tokens, counted at most
    /// `budget` bytes in all.
    pub fn with_budget(capacity: usize, budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            budget,
            bytes: 0,
            refused: HashMap::new(),
            refused_bytes: 0,
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
            self.remove(key);
            return None;
        }
        Some(entry.claims.clone())
    }

    /// Remembers a verified token until `exp`, with only the claims `keep` names at the
    /// top level (see [`crate::auth::claims::ClaimsUsed`]): what the policy's decisions read.
    /// Returns those claims, for the caller to decide on exactly what a later hit gets.
    pub fn insert_keeping(
        &mut self,
        key: Key,
        token: &str,
        exp: u64,
        claims: &Map<String, Value>,
        keep: &crate::auth::claims::ClaimsUsed,
        now: u64,
    ) -> Rc<Map<String, Value>> {
        let kept = Rc::new(keep.keep(claims));
        self.insert(key, token, exp, kept.clone(), now);
        kept
    }

    /// Remembers a verified token until `exp`. An entry counted over the whole budget is
    /// not kept.
    pub fn insert(
        &mut self,
        key: Key,
        token: &str,
        exp: u64,
        claims: Rc<Map<String, Value>>,
        now: u64,
    ) {
        let bytes = ENTRY_OVERHEAD_BYTES + token.len() + claims_bytes(&claims);
        if exp <= now || bytes > self.budget {
            return;
        }
        // A token cached again under its key replaces its entry (and its bytes).
        self.remove(&key);
        if self.entries.len() >= self.capacity
            || self.bytes + bytes > self.budget
            || self.order.len() > 2 * self.capacity
        {
            self.evict(now, bytes);
        }
        let entry = Entry {
            token: token.into(),
            exp,
            claims,
            bytes,
        };
        self.bytes += bytes;
        self.entries.insert(key, entry);
        self.order.push_back(key);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.bytes;
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
    /// not yet valid may become valid, and a long one is not worth its memory. When the
    /// refusals reach `REFUSED_CAPACITY` or `REFUSED_BUDGET_BYTES`, they start afresh.
    pub fn insert_refused(&mut self, key: Key, token: &str, reason: DenyReason, now: u64) {
        if reason == DenyReason::NotYetValid || token.len() > REFUSED_MAX_BYTES {
            return;
        }
        let bytes = REFUSED_OVERHEAD_BYTES + token.len();
        if self.refused.len() >= REFUSED_CAPACITY
            || self.refused_bytes + bytes > REFUSED_BUDGET_BYTES
        {
            self.refused.clear();
            self.refused_bytes = 0;
        }
        let refused = Refused {
            token: token.into(),
            until: now.saturating_add(REFUSED_SECS),
            reason,
        };
        if let Some(old) = self.refused.insert(key, refused) {
            self.refused_bytes -= REFUSED_OVERHEAD_BYTES + old.token.len();
        }
        self.refused_bytes += bytes;
    }

    /// Forgets every refusal (keys came that may verify them now); verified tokens stay.
    pub fn forget_refusals(&mut self) {
        self.refused.clear();
        self.refused_bytes = 0;
    }

    /// Makes room for an entry of `incoming` bytes by dropping the oldest entries. Keys
    /// removed on expiry or replaced linger in `order` until they are popped here or
    /// compacted away, which keeps eviction O(1) amortised.
    fn evict(&mut self, now: u64, incoming: usize) {
        if self.order.len() > 2 * self.capacity {
            let expired: Vec<Key> = self
                .entries
                .iter()
                .filter(|(_, e)| e.exp <= now)
                .map(|(k, _)| *k)
                .collect();
            for key in expired {
                self.remove(&key);
            }
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
        while self.entries.len() >= self.capacity || self.bytes + incoming > self.budget {
            match self.order.pop_front() {
                Some(oldest) => self.remove(&oldest),
                None => break,
            }
        }
    }

    /// Bytes the verified tokens count against the budget.
    pub fn bytes(&self) -> usize {
        self.bytes
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

/// An estimate of the heap a claims map holds, never below it: keys and strings as their
/// bytes, every array's and object's storage (serde_json's `Map` is a B-tree whose nodes
/// hold up to 11 members and, but for the root, at least 5), one allocation's overhead each.
pub fn claims_bytes(claims: &Map<String, Value>) -> usize {
    // A node with room for 11 members, as an internal node (12 edges) to be safe.
    const NODE: usize = 11 * (size_of::<String>() + size_of::<Value>())
        + 12 * size_of::<usize>()
        + 4 * size_of::<usize>()
        + ALLOCATION_BYTES;
    let nodes = if claims.is_empty() {
        0
    } else {
        claims.len() / 5 + 1
    };
    nodes * NODE
        + claims
            .iter()
            .map(|(name, value)| text_bytes(name) + value_bytes(value))
            .sum::<usize>()
}

fn text_bytes(text: &String) -> usize {
    match text.capacity() {
        0 => 0,
        capacity => capacity + ALLOCATION_BYTES,
    }
}

/// The heap below a value (the value itself lives in its parent's storage).
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(text) => text_bytes(text),
        Value::Array(items) => {
            let storage = if items.capacity() == 0 {
                0
            } else {
                items.capacity() * size_of::<Value>() + ALLOCATION_BYTES
            };
            storage + items.iter().map(value_bytes).sum::<usize>()
        }
        Value::Object(map) => claims_bytes(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
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
        put(&mut cache, 0, "good", 1000, 0);
        cache.forget_refusals();
        assert_eq!(cache.refused(&TokenCache::key(0, "999"), "999", 1), None);
        assert!(hit(&mut cache, 0, "good", 1), "verified tokens stay");
    }

    #[test]
    fn refusals_stay_within_their_byte_budget() {
        let mut cache = TokenCache::new(4);
        for i in 0..1000 {
            let token = format!("{i:0>4000}");
            cache.insert_refused(
                TokenCache::key(0, &token),
                &token,
                DenyReason::BadSignature,
                0,
            );
            assert!(cache.refused_bytes <= REFUSED_BUDGET_BYTES);
            let counted: usize = cache
                .refused
                .values()
                .map(|r| REFUSED_OVERHEAD_BYTES + r.token.len())
                .sum();
            assert_eq!(cache.refused_bytes, counted);
        }
        assert!(cache.refused.len() > 100, "the budget is used, not wasted");
        let last = format!("{:0>4000}", 999);
        assert_eq!(
            cache.refused(&TokenCache::key(0, &last), &last, 1),
            Some(DenyReason::BadSignature)
        );
    }

    fn token(i: usize, len: usize) -> String {
        format!("{i:0>len$}")
    }

    #[test]
    fn stays_within_its_byte_budget_dropping_the_oldest() {
        let entry = ENTRY_OVERHEAD_BYTES + 1000;
        let mut cache = TokenCache::with_budget(1000, 20 * entry);
        for i in 0..100 {
            put(&mut cache, 0, &token(i, 1000), 1000, 10);
            assert!(cache.bytes() <= 20 * entry);
        }
        assert_eq!(cache.len(), 20);
        assert!(hit(&mut cache, 0, &token(99, 1000), 10));
        assert!(hit(&mut cache, 0, &token(80, 1000), 10));
        assert!(!hit(&mut cache, 0, &token(79, 1000), 10));
        // One large entry makes room for itself by dropping as many old ones as it takes.
        put(&mut cache, 0, &token(1, 10 * 1000), 1000, 10);
        assert!(cache.bytes() <= 20 * entry);
        let dropped = (ENTRY_OVERHEAD_BYTES + 10 * 1000).div_ceil(entry);
        assert_eq!(cache.len(), 20 - dropped + 1);
        assert!(hit(&mut cache, 0, &token(1, 10 * 1000), 10));
        assert!(!hit(&mut cache, 0, &token(80 + dropped - 1, 1000), 10));
        assert!(hit(&mut cache, 0, &token(80 + dropped, 1000), 10));
        // One larger than the whole budget is not kept, and drops nothing.
        let before = cache.len();
        put(&mut cache, 0, &token(2, 21 * entry), 1000, 10);
        assert!(!hit(&mut cache, 0, &token(2, 21 * entry), 10));
        assert_eq!(cache.len(), before);
    }

    #[test]
    fn claims_count_against_the_budget() {
        let mut cache = TokenCache::with_budget(100, DEFAULT_BUDGET_BYTES);
        put(&mut cache, 0, "t", 1000, 10);
        let bare = cache.bytes();
        let mut claims = Map::new();
        claims.insert("roles".into(), Value::from(vec!["x".repeat(5000); 10]));
        cache.insert(TokenCache::key(0, "u"), "u", 1000, Rc::new(claims), 10);
        assert!(
            cache.bytes() - bare > 2 * bare + 50_000,
            "{}",
            cache.bytes()
        );
    }

    #[test]
    fn bytes_are_given_back_on_expiry_replacement_and_eviction() {
        let mut cache = TokenCache::with_budget(3, DEFAULT_BUDGET_BYTES);
        put(&mut cache, 0, "t", 100, 10);
        let one = cache.bytes();
        put(&mut cache, 0, "t", 200, 10);
        assert_eq!(cache.bytes(), one, "replaced, not added");
        assert!(!hit(&mut cache, 0, "t", 200));
        assert_eq!(cache.bytes(), 0, "expired");
        for now in 0..500u64 {
            let t = token(now as usize % 7, 10 + now as usize % 5);
            put(&mut cache, 0, &t, now + 3, now);
            hit(&mut cache, 0, &token(now as usize % 3, 12), now);
            let counted: usize = cache.entries.values().map(|e| e.bytes).sum();
            assert_eq!(cache.bytes(), counted);
            assert!(cache.len() <= 3);
        }
    }

    #[test]
    fn only_the_claims_a_policy_reads_are_kept() {
        let mut used = crate::auth::claims::ClaimsUsed::default();
        used.add(&crate::auth::claims::ClaimPath::parse("groups").unwrap());
        let claims = serde_json::json!({
            "iss": "i", "exp": 100, "groups": ["ml"], "bulk": "x".repeat(10_000)
        });
        let mut cache = TokenCache::new(4);
        let key = TokenCache::key(0, "t");
        let returned = cache.insert_keeping(key, "t", 100, claims.as_object().unwrap(), &used, 0);
        let kept = cache.get(&key, "t", 1).unwrap();
        assert_eq!(returned, kept, "a miss decides on what a hit gets");
        assert_eq!(
            Value::Object((*kept).clone()),
            serde_json::json!({"iss": "i", "exp": 100, "groups": ["ml"]})
        );
        assert!(cache.bytes() < 2 * ENTRY_OVERHEAD_BYTES + 2048);
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
