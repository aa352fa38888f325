//! Authentication, in the order a request meets it: the [`extractor`] finds the one token,
//! the [`verifier`] checks it against the policy's [`keys`] (reading its JSON strictly,
//! [`strict_json`]), the [`cache`] remembers the verdict, and the policy's required
//! [`claims`] are checked on every request.

pub mod cache;
pub mod claims;
pub mod extractor;
pub mod keys;
pub mod refetch;
pub mod strict_json;
pub mod verifier;
