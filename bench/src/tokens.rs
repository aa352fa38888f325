//! The identity provider of the benchmark: one RSA key (RS256, the common case), the policy
//! every configuration enforces (issuer, audience, a `groups` claim), and the tokens the
//! workloads send: one reused valid token, a pool of fresh ones, and three kinds of
//! rejected ones.

use std::thread;

use jsonwebtoken::{Algorithm, Header};
use modelgate_testkit::{TestKey, jwks, now};
use serde_json::{Value, json};

/// The issuer every configuration trusts (never contacted: its keys are inline).
pub const ISSUER: &str = "https://127.0.0.1/realms/modelgate-bench";
/// The audience every configuration requires.
pub const AUDIENCE: &str = "models";
/// The claim every configuration requires, and the value it must hold.
pub const CLAIM: &str = "groups";
/// See [`CLAIM`].
pub const CLAIM_VALUE: &str = "ml-users";

/// The tokens of one benchmark run.
pub struct Tokens {
    /// The JWKS document of the issuer, as JSON text.
    pub jwks: String,
    /// A valid token, sent on every request of the hot workload.
    pub hot: String,
    /// Valid tokens for the cold workload, each used once per pass over the pool.
    pub pool: Vec<String>,
    /// The hot token's claims signed by another key under the issuer's key id.
    pub bad_signature: String,
    /// A token that expired an hour ago (beyond every clock-skew allowance).
    pub expired: String,
    /// A valid token without the required claim.
    pub missing_claim: String,
}

impl Tokens {
    /// Mints a pool of `pool_size` valid tokens (in parallel: RSA signing is the slow part)
    /// and the fixed tokens, all valid for two hours.
    pub fn mint(pool_size: usize) -> Self {
        let key = TestKey::rsa_a();
        let now = now();
        let valid = |subject: &str| {
            json!({
                "iss": ISSUER, "sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + 7200,
                CLAIM: [CLAIM_VALUE],
            })
        };
        let threads = thread::available_parallelism().map_or(1, usize::from);
        let per_thread = pool_size.div_ceil(threads).max(1);
        let pool = thread::scope(|scope| {
            let workers: Vec<_> = (0..pool_size)
                .step_by(per_thread)
                .map(|start| {
                    let (key, valid) = (&key, &valid);
                    scope.spawn(move || {
                        (start..(start + per_thread).min(pool_size))
                            .map(|i| key.sign(&valid(&format!("user-{i}"))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect::<Vec<_>>()
        });

        let mut forged = Header::new(Algorithm::RS256);
        forged.kid = Some(key.kid.clone());
        let mut missing_claim = valid("user-without-groups");
        if let Some(claims) = missing_claim.as_object_mut() {
            claims.remove(CLAIM);
        }
        let mut expired = valid("user-expired");
        expired["iat"] = json!(now - 7200);
        expired["exp"] = json!(now - 3600);
        Self {
            jwks: jwks(&[&key]).to_string(),
            hot: key.sign(&valid("user-hot")),
            pool,
            bad_signature: TestKey::rsa_b().sign_with_header(&forged, &valid("user-forged")),
            expired: key.sign(&expired),
            missing_claim: key.sign(&missing_claim),
        }
    }

    /// The issuer's JWKS as a JSON value.
    pub fn jwks_value(&self) -> Value {
        serde_json::from_str(&self.jwks).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_distinct_tokens_and_the_rejected_ones_differ_from_the_valid() {
        let tokens = Tokens::mint(5);
        assert_eq!(tokens.pool.len(), 5);
        let mut distinct = tokens.pool.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
        assert_ne!(tokens.hot, tokens.bad_signature);
        assert_eq!(tokens.jwks_value()["keys"][0]["kid"], "rsa-a");
    }
}
