//! Test-only signing keys (committed under `tests/fixtures/keys/`, never used anywhere
//! else) and helpers to mint the tokens an identity provider would issue, plus the broken
//! and hostile ones an attacker would send; and [`api_route`], how the Kubernetes API server
//! doubles of the controller's tests and of the benchmark read a request's URL.

pub mod api_route;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The directory holding the test keys.
pub fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keys")
}

/// A test signing key.
#[derive(Clone)]
pub struct TestKey {
    /// The key id published in the JWKS.
    pub kid: String,
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The private key.
    pub encoding: EncodingKey,
    /// The PEM file's bytes.
    pub pem: Vec<u8>,
}

impl TestKey {
    /// Loads `tests/fixtures/keys/<file>` as a key for `alg` with id `kid`.
    pub fn load(file: &str, alg: Algorithm, kid: &str) -> Self {
        let pem = std::fs::read(keys_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let encoding = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            _ => panic!("no test key for {alg:?}"),
        }
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        Self {
            kid: kid.to_string(),
            alg,
            encoding,
            pem,
        }
    }

    /// RSA key "rsa-a", RS256.
    pub fn rsa_a() -> Self {
        Self::load("rsa-a.pem", Algorithm::RS256, "rsa-a")
    }

    /// RSA key "rsa-b", RS256 (a second issuer, or the rotated key).
    pub fn rsa_b() -> Self {
        Self::load("rsa-b.pem", Algorithm::RS256, "rsa-b")
    }

    /// EC P-256 key, ES256.
    pub fn ec() -> Self {
        Self::load("ec-p256.pem", Algorithm::ES256, "ec-1")
    }

    /// EC P-384 key, ES384.
    pub fn ec_p384() -> Self {
        Self::load("ec-p384.pem", Algorithm::ES384, "ec-384")
    }

    /// Ed25519 key, EdDSA.
    pub fn ed() -> Self {
        Self::load("ed25519.pem", Algorithm::EdDSA, "ed-1")
    }

    /// A 1024-bit RSA key, which the filter must refuse to trust.
    pub fn weak_rsa() -> Self {
        Self::load("rsa-1024-weak.pem", Algorithm::RS256, "weak")
    }

    /// The public JWK, with `kid`, `alg` and `use: sig`. Computed with the RustCrypto
    /// provider itself, not the process's default one: the filter's core installs a
    /// verification-only provider in the processes that test it.
    pub fn jwk(&self) -> Value {
        let utils = &DEFAULT_PROVIDER.key_utils;
        let der = self.encoding.as_bytes();
        let mut jwk = match self.alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (curve, x, y) =
                    (utils.ec_pub_components_from_private_key)(der, self.alg).expect("ec key");
                let crv = if curve == EllipticCurve::P256 {
                    "P-256"
                } else {
                    "P-384"
                };
                json!({"kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y)})
            }
            Algorithm::EdDSA => {
                let x = (utils.ed_pub_components_from_private_key)(der, &EllipticCurve::Ed25519)
                    .expect("ed25519 key");
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)})
            }
            _ => {
                let (n, e) = (utils.rsa_pub_components_from_private_key)(der).expect("rsa key");
                json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)})
            }
        };
        jwk["alg"] = serde_json::to_value(self.alg).expect("alg");
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// Signs claims with this key (header `kid` set).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(&header, claims)
    }

    /// Signs claims with a header of the caller's choosing (with the RustCrypto provider
    /// itself, whatever provider the process installed).
    pub fn sign_with_header(&self, header: &Header, claims: &Value) -> String {
        sign_raw(header, claims, &self.encoding)
    }

    /// Signs header and payload JSON exactly as written, with this key's algorithm: a real
    /// signature over shapes no honest library would serialise (duplicate keys, odd `kid`
    /// types, `crit`, any `alg` text), so only the filter's parsing can refuse them.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        self.sign_segments(
            &URL_SAFE_NO_PAD.encode(header_json),
            &URL_SAFE_NO_PAD.encode(payload_json),
        )
    }

    /// Signs two segments exactly as written (`<header>.<payload>`, whatever their
    /// encoding): a real signature over text that is not canonical base64url, so only the
    /// filter's decoding can refuse it.
    pub fn sign_segments(&self, header_segment: &str, payload_segment: &str) -> String {
        let message = format!("{header_segment}.{payload_segment}");
        // RustCrypto's signer, not the process's provider: the filter's core installs one
        // that only verifies.
        let signer = (DEFAULT_PROVIDER.signer_factory)(&self.alg, &self.encoding).expect("signer");
        let signature = signer.try_sign(message.as_bytes()).expect("sign");
        format!("{message}.{}", b64(&signature))
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWS of `header` and `claims` signed with `key`, as `jsonwebtoken::encode` makes it.
fn sign_raw(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    let header_json = serde_json::to_vec(header).expect("header json");
    let claims_json = serde_json::to_vec(claims).expect("claims json");
    let message = format!("{}.{}", b64(&header_json), b64(&claims_json));
    let signer = (DEFAULT_PROVIDER.signer_factory)(&header.alg, key).expect("signer");
    let signature = signer.try_sign(message.as_bytes()).expect("sign");
    format!("{message}.{}", b64(&signature))
}

/// A JWKS document holding the given keys' public halves.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Standard claims: issuer, subject, audience, valid for an hour from `now`.
pub fn claims(issuer: &str, subject: &str, audience: &str, now: u64) -> Value {
    json!({"iss": issuer, "sub": subject, "aud": audience, "iat": now, "exp": now + 3600})
}

/// `claims` with some replaced or added by `changes` (an object; `null` removes a claim).
pub fn changed_claims(mut claims: Value, changes: &Value) -> Value {
    for (name, value) in changes.as_object().into_iter().flatten() {
        match claims.as_object_mut() {
            Some(all) if value.is_null() => {
                all.remove(name);
            }
            _ => claims[name] = value.clone(),
        }
    }
    claims
}

/// Builds a token from raw header and payload JSON and a raw signature: for `alg: none`,
/// duplicate keys and other shapes no honest library would produce.
pub fn raw_token(header_json: &str, payload_json: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(payload_json),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// An HS256 token whose secret is the given bytes (an RSA public key in PEM or JWK form
/// is the classic algorithm-confusion attack).
pub fn hmac_token(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    sign_raw(&header, claims, &EncodingKey::from_secret(secret))
}

/// Signs header and payload JSON exactly as written with HMAC-SHA256 keyed by `secret`:
/// algorithm confusion with any `alg` spelling and any key bytes an attacker can find.
pub fn hmac_raw_token(secret: &[u8], header_json: &str, payload_json: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(payload_json)
    );
    let key = EncodingKey::from_secret(secret);
    let signer = (DEFAULT_PROVIDER.signer_factory)(&Algorithm::HS256, &key).expect("hs256");
    let signature = signer.try_sign(message.as_bytes()).expect("hs256");
    format!("{message}.{}", b64(&signature))
}

/// The public half of a key as DER (SubjectPublicKeyInfo), the body of `<file>.pub.pem`
/// decoded: the other byte form an attacker tries as an HMAC secret.
pub fn public_der(file_stem: &str) -> Vec<u8> {
    let pem = String::from_utf8(public_pem(file_stem)).expect("PEM is text");
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("PEM body is base64")
}

/// Decodes base64url text with or without padding (a JWK's `n`, a token's segments).
pub fn base64url_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .expect("base64url")
}

/// Encodes bytes as unpadded base64url, the way JWS segments are written.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public half of a key as SPKI PEM, read from `<file>.pub.pem` (what an attacker
/// downloads and tries as an HMAC secret).
pub fn public_pem(file_stem: &str) -> Vec<u8> {
    let path = keys_dir().join(format!("{file_stem}.pub.pem"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
