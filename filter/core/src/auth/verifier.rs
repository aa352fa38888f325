//! Verifying a token against a policy: its size, header, algorithm and key, then times,
//! issuer, audience and signature, as Envoy's jwt_authn `verifier`/`authenticator` do. The
//! token was found by [`super::extractor`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation, decode, decode_header};
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::keys::{VerifyingKey, is_accepted_algorithm};
use super::strict_json::UniqueKeys;
use crate::reason::DenyReason;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Signature checks one token may cost, whatever its key set holds. A token with a `kid` is
/// checked against the first keys with that `kid` (one, in a set from
/// [`crate::auth::keys::select_usable`]); a token without one is tried against every key that
/// could verify its algorithm only when there are at most this many, and is otherwise
/// refused as `unknown_key`: no key can be chosen for it.
pub const MAX_KEYS_TRIED: usize = 4;

/// Leeway for `exp` and `nbf`, in seconds.
pub const CLOCK_LEEWAY_SECS: u64 = 60;

/// What a token is checked against.
pub(crate) struct TokenRules<'a> {
    /// The issuer's keys.
    pub keys: &'a [VerifyingKey],
    /// Signature and issuer/audience validation, shared by all keys of the policy.
    pub validation: &'a PolicyValidation,
}

/// `jsonwebtoken` validations of one policy, one per key family (the library insists that
/// every allowed algorithm belongs to the key's family).
#[derive(Debug, Clone)]
pub(crate) struct PolicyValidation {
    rsa: Validation,
    ec: Validation,
    ed: Validation,
}

impl PolicyValidation {
    /// The validation for tokens signed with `alg`.
    fn for_algorithm(&self, alg: Algorithm) -> &Validation {
        match alg.family() {
            AlgorithmFamily::Ec => &self.ec,
            AlgorithmFamily::Ed => &self.ed,
            _ => &self.rsa,
        }
    }
}

/// Builds the `jsonwebtoken` validations for a policy: signature, `iss`, `aud`. Time claims
/// are checked by [`check_times`] against the host's clock instead.
pub(crate) fn validation_for(issuer: &str, audiences: &[String]) -> PolicyValidation {
    let family = |family: AlgorithmFamily| {
        let mut validation = Validation::new_for_family(family);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        if audiences.is_empty() {
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["iss"]);
        } else {
            validation.set_audience(audiences);
            validation.set_required_spec_claims(&["iss", "aud"]);
        }
        validation
    };
    PolicyValidation {
        rsa: family(AlgorithmFamily::Rsa),
        ec: family(AlgorithmFamily::Ec),
        ed: family(AlgorithmFamily::Ed),
    }
}

/// Verifies a token's signature, algorithm, issuer, audience and times; returns its claims
/// and the key whose signature held.
pub(crate) fn verify<'k>(
    token: &str,
    rules: &TokenRules<'k>,
    now: u64,
) -> Result<(Map<String, Value>, &'k VerifyingKey), DenyReason> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(DenyReason::TokenTooLarge);
    }
    if rules.keys.is_empty() {
        return Err(DenyReason::NoKeys);
    }
    let header = decode_header(token).map_err(|_| DenyReason::MalformedToken)?;
    if header.crit.is_some() || names_crit(token) {
        // No critical extension is understood here, so none may be required (RFC 7515 4.1.11).
        return Err(DenyReason::MalformedToken);
    }
    if !is_accepted_algorithm(header.alg) {
        return Err(DenyReason::UnsupportedAlgorithm);
    }
    // The time claims first, as jwt_authn does: an expired or not yet valid token (forged
    // or not) costs no signature check. Read strictly: a payload naming a member twice is
    // refused (see strict_json). Once the signature over these very bytes holds, these are
    // the claims returned.
    let claims = strict_segment(token, 1).ok_or(DenyReason::MalformedToken)?;
    check_times(&claims, now)?;
    check_subject_types(&claims)?;
    let candidates = candidate_keys(rules.keys, header.kid.as_deref(), header.alg)?;
    let mut outcome = Err(DenyReason::UnsupportedAlgorithm);
    for key in candidates {
        // The signature, algorithm, issuer and audience; the payload is not read into
        // claims a second time.
        match decode::<IgnoredAny>(token, &key.key, rules.validation.for_algorithm(header.alg)) {
            Ok(_) => return Ok((claims, key)),
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => outcome = Err(DenyReason::BadSignature),
                ErrorKind::InvalidIssuer => return Err(DenyReason::WrongIssuer),
                ErrorKind::InvalidAudience => return Err(DenyReason::WrongAudience),
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => {
                    return Err(DenyReason::WrongIssuer);
                }
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                    return Err(DenyReason::WrongAudience);
                }
                ErrorKind::InvalidKeyFormat | ErrorKind::InvalidAlgorithm => {
                    outcome = Err(DenyReason::UnsupportedAlgorithm)
                }
                _ => return Err(DenyReason::MalformedToken),
            },
        }
    }
    outcome
}

/// The keys a token is checked against, at most [`MAX_KEYS_TRIED`] of them: with a `kid`,
/// the first keys of that `kid` for its algorithm; without one, every key for its
/// algorithm when there are that few. `unknown_key` when no key has the `kid` or a key
/// cannot be chosen, `unsupported_algorithm` when the keys that could be chosen were not
/// published for the token's algorithm.
fn candidate_keys<'k>(
    keys: &'k [VerifyingKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Vec<&'k VerifyingKey>, DenyReason> {
    let for_alg = |k: &&VerifyingKey| k.algorithms.contains(&alg);
    match kid {
        Some(kid) => {
            let mut with_kid = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .peekable();
            if with_kid.peek().is_none() {
                return Err(DenyReason::UnknownKey);
            }
            let chosen: Vec<_> = with_kid.filter(for_alg).take(MAX_KEYS_TRIED).collect();
            if chosen.is_empty() {
                return Err(DenyReason::UnsupportedAlgorithm);
            }
            Ok(chosen)
        }
        None => {
            let chosen: Vec<_> = keys
                .iter()
                .filter(for_alg)
                .take(MAX_KEYS_TRIED + 1)
                .collect();
            match chosen.len() {
                0 => Err(DenyReason::UnsupportedAlgorithm),
                n if n > MAX_KEYS_TRIED => Err(DenyReason::UnknownKey),
                _ => Ok(chosen),
            }
        }
    }
}

/// `iss` (required) and `sub` (when present) must be JSON strings (RFC 7519 4.1.1, 4.1.2).
/// jsonwebtoken alone would accept an `iss` array holding the issuer among others; any
/// other shape is `malformed_token`, as Envoy's jwt_authn refuses it, so that only a string
/// that differs from the issuer is `wrong_issuer`. A missing `iss` stays `wrong_issuer`.
fn check_subject_types(claims: &Map<String, Value>) -> Result<(), DenyReason> {
    for name in ["iss", "sub"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(DenyReason::MalformedToken);
        }
    }
    Ok(())
}

/// Whether the token's header has a `crit` member at all, whatever its value, or cannot be
/// read strictly. jsonwebtoken reads `"crit": null` as no `crit`; RFC 7515 section 4.1.11
/// allows only a non-empty list there, so a header that mentions it is refused outright.
fn names_crit(token: &str) -> bool {
    strict_segment(token, 0).is_none_or(|header| header.contains_key("crit"))
}

/// Segment `index` of a compact JWS, base64url-decoded and read as a JSON object with
/// unique keys at every depth; `None` when it is missing or not one.
fn strict_segment(token: &str, index: usize) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').nth(index)?).ok()?;
    serde_json::from_slice::<UniqueKeys>(&bytes)
        .ok()
        .map(|UniqueKeys(object)| object)
}

/// `exp` is required and checked with [`CLOCK_LEEWAY_SECS`]; `nbf` when present.
pub(crate) fn check_times(claims: &Map<String, Value>, now: u64) -> Result<(), DenyReason> {
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(DenyReason::MalformedToken)?;
    if exp.saturating_add(CLOCK_LEEWAY_SECS) < now {
        return Err(DenyReason::Expired);
    }
    match claims.get("nbf") {
        None => Ok(()),
        Some(nbf) => {
            let nbf = numeric_date(nbf).ok_or(DenyReason::MalformedToken)?;
            if nbf > now.saturating_add(CLOCK_LEEWAY_SECS) {
                Err(DenyReason::NotYetValid)
            } else {
                Ok(())
            }
        }
    }
}

/// A JWT NumericDate, in whole seconds.
pub(crate) fn numeric_date(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    mod keys_tried {
        use super::*;
        use crate::auth::keys::compile_key;
        use jsonwebtoken::Header;
        use modelgate_testkit::TestKey;
        use serde_json::json;

        const ISS: &str = "https://idp.example";
        const NOW: u64 = 1_800_000_000;

        fn key(signer: &TestKey, kid: Option<&str>) -> VerifyingKey {
            let mut jwk = signer.jwk();
            match kid {
                Some(kid) => jwk["kid"] = json!(kid),
                None => {
                    jwk.as_object_mut().unwrap().remove("kid");
                }
            }
            compile_key(&jwk).unwrap()
        }

        fn payload() -> Value {
            json!({"iss": ISS, "sub": "alice", "exp": NOW + 600})
        }

        /// The verdict, and how many signatures it cost.
        fn check(keys: &[VerifyingKey], token: &str) -> (Result<(), DenyReason>, u64) {
            crate::crypto::install();
            let validation = validation_for(ISS, &[]);
            let rules = TokenRules {
                keys,
                validation: &validation,
            };
            let before = crate::crypto::checks();
            let verdict = verify(token, &rules, NOW).map(|_| ());
            (verdict, crate::crypto::checks() - before)
        }

        fn without_kid(signer: &TestKey, claims: &Value) -> String {
            signer.sign_with_header(&Header::new(signer.alg), claims)
        }

        #[test]
        fn a_kid_repeated_in_the_set_costs_at_most_the_bound() {
            // Built by hand, not through select_usable: verify bounds it on its own.
            let keys = vec![key(&TestKey::rsa_a(), Some("k")); 50];
            let mut forger = TestKey::rsa_b();
            forger.kid = "k".into();
            let (verdict, checks) = check(&keys, &forger.sign(&payload()));
            assert_eq!(verdict, Err(DenyReason::BadSignature));
            assert_eq!(checks, MAX_KEYS_TRIED as u64);
            let mut signer = TestKey::rsa_a();
            signer.kid = "k".into();
            assert_eq!(check(&keys, &signer.sign(&payload())), (Ok(()), 1));
            let mut unknown = TestKey::rsa_a();
            unknown.kid = "other".into();
            assert_eq!(
                check(&keys, &unknown.sign(&payload())),
                (Err(DenyReason::UnknownKey), 0)
            );
        }

        #[test]
        fn without_a_kid_only_a_few_keys_are_tried() {
            let signer = TestKey::rsa_a();
            let token = without_kid(&signer, &payload());
            let mut keys: Vec<_> = (0..3).map(|_| key(&TestKey::rsa_b(), None)).collect();
            keys.push(key(&signer, None));
            assert_eq!(check(&keys, &token), (Ok(()), 4), "the fourth key verifies");
            keys.insert(0, key(&TestKey::rsa_b(), Some("b")));
            assert_eq!(
                check(&keys, &token),
                (Err(DenyReason::UnknownKey), 0),
                "five keys for RS256: none can be chosen"
            );
            // Only the keys that could verify the token's algorithm count.
            let mut mixed: Vec<_> = (0..10).map(|_| key(&TestKey::ec(), None)).collect();
            mixed.push(key(&signer, Some("a")));
            assert_eq!(check(&mixed, &token), (Ok(()), 1));
            let ed = without_kid(&TestKey::ed(), &payload());
            assert_eq!(
                check(&mixed, &ed),
                (Err(DenyReason::UnsupportedAlgorithm), 0)
            );
        }

        #[test]
        fn iss_and_sub_must_be_strings() {
            let signer = TestKey::rsa_a();
            let keys = [key(&signer, Some("rsa-a"))];
            let signed = |claims: Value| signer.sign(&claims);
            assert_eq!(check(&keys, &signed(payload())), (Ok(()), 1));
            for (name, value) in [
                ("iss", json!([ISS])),
                ("iss", json!(["https://someone-else.example", ISS])),
                ("iss", json!({"iss": ISS})),
                ("iss", json!(null)),
                ("sub", json!(["alice"])),
                ("sub", json!(7)),
            ] {
                let mut claims = payload();
                claims[name] = value.clone();
                assert_eq!(
                    check(&keys, &signed(claims)),
                    (Err(DenyReason::MalformedToken), 0),
                    "{name}: {value}"
                );
            }
            let mut claims = payload();
            claims["iss"] = json!("https://someone-else.example");
            assert_eq!(
                check(&keys, &signed(claims)).0,
                Err(DenyReason::WrongIssuer)
            );
            let mut claims = payload();
            claims.as_object_mut().unwrap().remove("iss");
            assert_eq!(
                check(&keys, &signed(claims)).0,
                Err(DenyReason::WrongIssuer)
            );
            let mut claims = payload();
            claims.as_object_mut().unwrap().remove("sub");
            assert_eq!(
                check(&keys, &signed(claims)),
                (Ok(()), 1),
                "sub is optional"
            );
        }
    }

    #[test]
    fn times_need_exp_and_respect_leeway() {
        let now = 1_000_000;
        let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            check_times(&claims(serde_json::json!({})), now),
            Err(DenyReason::MalformedToken)
        );
        assert_eq!(
            check_times(&claims(serde_json::json!({"exp": "soon"})), now),
            Err(DenyReason::MalformedToken)
        );
        assert_eq!(
            check_times(&claims(serde_json::json!({"exp": now - 60})), now),
            Ok(())
        );
        assert_eq!(
            check_times(&claims(serde_json::json!({"exp": now - 61})), now),
            Err(DenyReason::Expired)
        );
        assert_eq!(
            check_times(
                &claims(serde_json::json!({"exp": now + 10, "nbf": now + 60})),
                now
            ),
            Ok(())
        );
        assert_eq!(
            check_times(
                &claims(serde_json::json!({"exp": now + 100, "nbf": now + 61})),
                now
            ),
            Err(DenyReason::NotYetValid)
        );
        assert_eq!(
            check_times(&claims(serde_json::json!({"exp": -5})), now),
            Err(DenyReason::MalformedToken)
        );
    }
}
