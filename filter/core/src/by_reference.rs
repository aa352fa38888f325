//! Configuration by reference: a `pluginConfig` that only names the full configuration
//! ([`ReferenceDocument`]), which the filter fetches from the controller over the channel.
//! Here: telling a reference from an inline document, checking a fetched document against
//! its reference (size, `sha256`), and the backoff between failed fetches. The fetching
//! itself is the host layer's.

use sha2::{Digest, Sha256};

use crate::ConfigError;
use crate::auth::refetch::MAX_CHANNEL_NAME_BYTES;
use crate::config::{CONFIG_VERSION, ConfigReference, ReferenceDocument};

/// The largest referenced document a filter reads: 32 MiB, about six times what 100,000
/// models take. A larger answer is refused unread and the configuration in force stays.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

/// The first wait after a failed fetch, in seconds; it doubles up to [`MAX_RETRY_SECS`].
pub const FIRST_RETRY_SECS: u64 = 1;
/// The longest wait between two fetches of a document that keeps failing.
pub const MAX_RETRY_SECS: u64 = 60;

/// The reference a `pluginConfig` is, if it is one (`None`: an inline configuration, read
/// by [`crate::CompiledConfig::from_json`]). An inline document is told apart at its first
/// field that a reference lacks, so this costs nothing on a large one.
pub fn read_reference(bytes: &[u8]) -> Option<Result<ReferenceDocument, ConfigError>> {
    let document: ReferenceDocument = serde_json::from_slice(bytes).ok()?;
    Some(check(&document).map(|()| document))
}

fn check(document: &ReferenceDocument) -> Result<(), ConfigError> {
    if document.version != CONFIG_VERSION {
        return Err(ConfigError::new(
            "version",
            format!(
                "{} is not supported (this filter reads version {CONFIG_VERSION})",
                document.version
            ),
        ));
    }
    crate::compiled::check_channel(&document.channel)?;
    let reference = &document.reference;
    if !reference.path.starts_with('/')
        || reference.path.contains(['?', '#'])
        || reference.path.len() > MAX_CHANNEL_NAME_BYTES
    {
        return Err(ConfigError::new(
            "reference.path",
            format!("{:?} is not a path without query", reference.path),
        ));
    }
    if !is_sha256_hex(&reference.sha256) {
        return Err(ConfigError::new(
            "reference.sha256",
            "expected 64 lowercase hex digits",
        ));
    }
    if reference.version.len() > MAX_CHANNEL_NAME_BYTES {
        return Err(ConfigError::new(
            "reference.version",
            format!("longer than {MAX_CHANNEL_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The lowercase hex SHA-256 of a document.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a fetched document is not the one referenced; its name is the `result` label of
/// `modelgate_config_fetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over [`MAX_DOCUMENT_BYTES`].
    TooLarge,
    /// Its SHA-256 is not the reference's.
    WrongHash,
}

impl Refused {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::WrongHash => "wrong_hash",
        }
    }
}

/// Whether `bytes` is the document `reference` names (checked before it is compiled).
pub fn verify(bytes: &[u8], reference: &ConfigReference) -> Result<(), Refused> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Refused::TooLarge);
    }
    if sha256_hex(bytes) != reference.sha256 {
        return Err(Refused::WrongHash);
    }
    Ok(())
}

/// When to fetch a referenced document again after failures: at once the first time, then
/// after [`FIRST_RETRY_SECS`], doubling up to [`MAX_RETRY_SECS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    next_at: u64,
}

impl Backoff {
    /// Whether a fetch may start at `now` (seconds).
    pub fn due(&self, now: u64) -> bool {
        now >= self.next_at
    }

    /// A fetch failed at `now`: the next one waits longer.
    pub fn failed(&mut self, now: u64) {
        let wait = FIRST_RETRY_SECS
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_RETRY_SECS);
        self.failures = self.failures.saturating_add(1);
        self.next_at = now.saturating_add(wait);
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyChannel;

    fn reference_json(sha256: &str) -> String {
        serde_json::to_string(&ReferenceDocument {
            version: CONFIG_VERSION,
            channel: KeyChannel {
                cluster: "outbound|8080||modelgate.modelgate-system.svc.cluster.local".into(),
                authority: "modelgate.modelgate-system.svc.cluster.local".into(),
                keys_path: "/keys".into(),
                timeout_ms: 2000,
                refetch_secs: 30,
            },
            reference: ConfigReference {
                path: format!("/config/{sha256}"),
                sha256: sha256.into(),
                version: "7".into(),
            },
        })
        .unwrap()
    }

    #[test]
    fn a_reference_is_told_from_an_inline_configuration() {
        let sha = sha256_hex(b"{}");
        let read = read_reference(reference_json(&sha).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(read.reference.sha256, sha);
        assert!(read_reference(br#"{"version":1,"models":{}}"#).is_none());
        assert!(read_reference(br#"{"version":1}"#).is_none());
        // A reference with a model beside it is no reference: the inline reader refuses it.
        let mixed = reference_json(&sha).replacen('{', r#"{"models":{},"#, 1);
        assert!(read_reference(mixed.as_bytes()).is_none());
        assert!(crate::CompiledConfig::from_json(mixed.as_bytes()).is_err());
    }

    #[test]
    fn a_bad_reference_is_an_error_naming_its_field() {
        let bad = reference_json("ABC");
        let e = read_reference(bad.as_bytes()).unwrap().unwrap_err();
        assert_eq!(e.field, "reference.sha256");
        let sha = sha256_hex(b"{}");
        let query = reference_json(&sha).replace("/config/", "/config?x=");
        let e = read_reference(query.as_bytes()).unwrap().unwrap_err();
        assert_eq!(e.field, "reference.path");
        let slow = reference_json(&sha).replace("2000", "999999");
        let e = read_reference(slow.as_bytes()).unwrap().unwrap_err();
        assert_eq!(e.field, "channel.timeoutMs");
    }

    #[test]
    fn only_the_referenced_bytes_are_accepted() {
        let document = br#"{"version":1}"#;
        let reference = ConfigReference {
            path: "/config/x".into(),
            sha256: sha256_hex(document),
            version: "1".into(),
        };
        assert_eq!(verify(document, &reference), Ok(()));
        assert_eq!(
            verify(br#"{"version":1} "#, &reference),
            Err(Refused::WrongHash)
        );
        let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert_eq!(verify(&huge, &reference), Err(Refused::TooLarge));
    }

    #[test]
    fn failures_back_off_doubling_to_a_ceiling() {
        let mut backoff = Backoff::default();
        assert!(backoff.due(0));
        let mut waits = Vec::new();
        let mut now = 100;
        for _ in 0..10 {
            backoff.failed(now);
            let mut wait = 0;
            while !backoff.due(now + wait) {
                wait += 1;
            }
            waits.push(wait);
            now += wait;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff.failures(), 10);
    }
}
