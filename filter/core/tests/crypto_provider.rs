//! Our verification-only provider is what `jsonwebtoken` uses once installed. Its own test
//! binary, so nothing asks `jsonwebtoken` for a provider before `install` runs.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, crypto::verify};
use modelgate_core::crypto::{checks, install};
use modelgate_testkit::TestKey;

#[test]
fn tokens_are_verified_by_the_installed_fast_provider() {
    assert!(install(), "the fast provider must be the one in force");
    assert!(install(), "installing twice is harmless");
    let key = TestKey::rsa_b();
    let decoding = modelgate_core::auth::keys::compile_key(&key.jwk())
        .unwrap()
        .key;
    let token = key.sign(&serde_json::json!({"exp": 1}));
    let (message, signature) = token.rsplit_once('.').unwrap();
    let before = checks();
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
    assert_eq!(checks() - before, 2);

    // The provider never signs, and never verifies HMAC, even with a key handed to it.
    let hmac = EncodingKey::from_secret(b"secret");
    assert!(jsonwebtoken::encode(&Header::default(), &serde_json::json!({}), &hmac).is_err());
    let hs = modelgate_testkit::hmac_token(b"secret", "h", &serde_json::json!({"exp": 1}));
    let (message, signature) = hs.rsplit_once('.').unwrap();
    assert!(
        verify(
            signature,
            message.as_bytes(),
            &DecodingKey::from_secret(b"secret"),
            Algorithm::HS256
        )
        .is_err()
    );
}
