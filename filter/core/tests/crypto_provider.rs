//! The fast RSA check is what `jsonwebtoken` uses once installed. Its own test binary, so
//! nothing asks `jsonwebtoken` for a provider before `install` runs.

use jsonwebtoken::{Algorithm, DecodingKey, crypto::verify};
use modelgate_core::rsa_verify::{fast_checks, install};
use modelgate_testkit::TestKey;

#[test]
fn tokens_are_verified_by_the_installed_fast_provider() {
    assert!(install(), "the fast provider must be the one in force");
    assert!(install(), "installing twice is harmless");
    let key = TestKey::rsa_b();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
    let decoding = DecodingKey::from_jwk(&jwk).unwrap();
    let token = key.sign(&serde_json::json!({"exp": 1}));
    let (message, signature) = token.rsplit_once('.').unwrap();
    let before = fast_checks();
    assert!(verify(signature, message.as_bytes(), &decoding, Algorithm::RS256).unwrap());
    let wrong = TestKey::rsa_a().sign(&serde_json::json!({"exp": 1}));
    let (_, wrong_signature) = wrong.rsplit_once('.').unwrap();
    assert!(
        !verify(
            wrong_signature,
            message.as_bytes(),
            &decoding,
            Algorithm::RS256
        )
        .unwrap()
    );
    assert_eq!(fast_checks() - before, 2);
}
