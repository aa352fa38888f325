//! The signature checks under `jsonwebtoken`: our own verification-only crypto provider,
//! for exactly the algorithms the filter accepts (RS*, PS*, ES256, ES384, EdDSA).
//!
//! `jsonwebtoken` stays the JWT layer (header, claims, issuer and audience validation); it
//! is built without its `rust_crypto` feature, whose signers, HMAC, key-format parsers and
//! general big-number RSA were a third of the module and never ran. RSA is ours
//! ([`crate::rsa_verify`]); ECDSA and Ed25519 verification use the RustCrypto curve crates
//! with only the verifying half reachable ([`crate::ec_verify`]). Nothing here signs.

use std::cell::Cell;
use std::sync::OnceLock;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::{ec_verify, rsa_verify};

/// Installs the provider once per process (per VM in the filter). It must run before
/// anything else asks `jsonwebtoken` for its provider, which then stays fixed for the
/// process. Returns whether this provider is the one in force.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: no_signer,
        verifier_factory,
        key_utils: KeyUtils {
            rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
            rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidKeyFormat.into()),
            ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidKeyFormat.into()),
            ed_pub_components_from_private_key: no_ed_components,
            compute_digest,
        },
    };
    *INSTALLED.get_or_init(|| PROVIDER.install_default().is_ok())
}

thread_local! {
    static CHECKS: Cell<u64> = const { Cell::new(0) };
}

/// How many signatures this thread checked with this provider (tests and profiling).
pub fn checks() -> u64 {
    CHECKS.with(|c| c.get())
}

pub(crate) fn count_check() {
    CHECKS.with(|c| c.set(c.get() + 1));
}

/// The filter only verifies.
fn no_signer(_: &Algorithm, _: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn no_ed_components(_: &[u8], _: &EllipticCurve) -> JwtResult<Vec<u8>> {
    Err(ErrorKind::InvalidKeyFormat.into())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> JwtResult<Vec<u8>> {
    Ok(match hash {
        ThumbprintHash::SHA256 => Sha256::digest(data).to_vec(),
        ThumbprintHash::SHA384 => Sha384::digest(data).to_vec(),
        ThumbprintHash::SHA512 => Sha512::digest(data).to_vec(),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

/// A verifier for `alg` with `key`, refusing any key of another family: the algorithm
/// never picks how a key is read (no HMAC with a public key, no RSA key as an EC point).
fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    let family_fits = key.family() == alg.family();
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512
            if family_fits =>
        {
            rsa_verify::verifier(*alg, key)
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA if family_fits => {
            ec_verify::verifier(*alg, key)
        }
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(ErrorKind::InvalidAlgorithm.into())
        }
        _ => Err(ErrorKind::InvalidKeyFormat.into()),
    }
}
