//! Signature verification for the modelgate filter, and nothing else: RSA PKCS#1 v1.5 and
//! PSS ([`rsa`]) and ECDSA P-384 over our own Montgomery arithmetic, ECDSA P-256 and
//! Ed25519 through RustCrypto's curve crates ([`curves`]). Plain functions over public
//! inputs (a key, a message, a signature) to a yes or no: no JWT, no configuration, no host.
//!
//! Every input is public, so nothing here is constant-time, deliberately; every input is
//! range-checked instead, and what a check may cost is bounded by the key limits of
//! [`rsa::MAX_MODULUS_BITS`] and [`rsa::public_exponent`]. `README.md` says what is
//! refused and how the code is checked.
//!
//! One `unsafe` block, in `montgomery.rs`: on wasm32 with SIMD (the filter's build) a column
//! of limb products is read with 128-bit loads; everywhere else `unsafe` is denied.

#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod curves;
mod montgomery;
mod p384;
pub mod rsa;
