//! Sticky keys: where a user's key is read (`seldon.io/ab-sticky`) and the bucket it hashes
//! to. A key's bucket depends only on the model and the key, so a user keeps their
//! predictor across requests, VMs and releases.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::claims::ClaimPath;
use crate::http::is_header_name;
use crate::request::Request;

/// Sticky keys are hashed into this many buckets.
pub const BUCKETS: u64 = 10_000;

/// Where the stickiness key comes from (`seldon.io/ab-sticky`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header.
    Header(String),
    /// A claim of the verified token (only after successful authentication).
    Claim(ClaimPath),
    /// A cookie.
    Cookie(String),
}

impl StickyKey {
    /// Parses `header:<name>`, `claim:<name>` or `cookie:<name>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("header", name)) if is_header_name(name) => {
                Ok(StickyKey::Header(name.to_ascii_lowercase()))
            }
            Some(("claim", name)) => ClaimPath::parse(name).map(StickyKey::Claim),
            Some(("cookie", name)) if is_header_name(name) => Ok(StickyKey::Cookie(name.into())),
            _ => Err(format!(
                "{text:?} is not a sticky key: expected header:<name>, claim:<name> or cookie:<name>"
            )),
        }
    }

    /// The key's value in this request, if present and not empty.
    pub fn value(
        &self,
        request: &Request<'_>,
        claims: Option<&Map<String, Value>>,
    ) -> Option<String> {
        let value = match self {
            StickyKey::Header(name) => request.header(name).map(str::to_string),
            StickyKey::Claim(claim) => claims.and_then(|c| claim.text(c)),
            StickyKey::Cookie(name) => cookie(request, name).map(str::to_string),
        };
        value.filter(|v| !v.is_empty())
    }
}

fn cookie<'a>(request: &Request<'a>, name: &str) -> Option<&'a str> {
    request
        .header_values("cookie")
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The bucket in `[0, BUCKETS)` of a key for a model: stable across VMs and releases.
pub(crate) fn sticky_bucket(model_id: &str, key: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(model_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::headers;

    const PREDICT: &str = "/seldon/ns/m/api/v1.0/predictions";

    #[test]
    fn keys_from_cookies_and_claims() {
        let cookies = headers(&[("cookie", "x=1; session=abc"), ("cookie", "y=2")]);
        let request = Request::test("POST", PREDICT, &cookies);
        let key = StickyKey::parse("cookie:session").unwrap();
        assert_eq!(key.value(&request, None).as_deref(), Some("abc"));
        let key = StickyKey::parse("claim:sub").unwrap();
        let claims = serde_json::json!({"sub": "u1"})
            .as_object()
            .unwrap()
            .clone();
        let bare = Request::test("POST", PREDICT, &[]);
        assert_eq!(key.value(&bare, Some(&claims)).as_deref(), Some("u1"));
        assert_eq!(key.value(&bare, None), None);
    }

    // SHA-256("ns/m\0alice"), first 8 bytes big-endian, mod 10 000 (checked independently).
    const PINNED_ALICE: u64 = 7691;

    #[test]
    fn buckets_are_stable_across_builds() {
        // Pinned: changing the hash would move every sticky user.
        assert_eq!(
            sticky_bucket("ns/m", "user-1"),
            sticky_bucket("ns/m", "user-1")
        );
        assert_ne!(
            sticky_bucket("ns/m", "user-1"),
            sticky_bucket("ns/other", "user-1")
        );
        assert_eq!(sticky_bucket("ns/m", "alice"), PINNED_ALICE);
    }
}
