//! Rough native cost of one cold RS256 verification and one cached decision (profiling aid,
//! not a benchmark: see the benchmark harness for figures).
use std::time::Instant;

use modelgate_core::config::{FilterConfig, JwtPolicy, KeySet, Model, Policy};
use modelgate_core::{CompiledConfig, Environment, Request, TokenCache};
use modelgate_testkit::{TestKey, claims, jwks};

fn main() {
    assert!(modelgate_core::crypto::install());
    let key = TestKey::rsa_a();
    let mut config = FilterConfig::new();
    config.key_sets.insert(
        "k".into(),
        KeySet {
            source: None,
            keys: jwks(&[&key])["keys"].as_array().unwrap().clone(),
        },
    );
    config.policies.insert(
        "p".into(),
        Policy::Jwt(JwtPolicy {
            mode: Default::default(),
            issuer: "iss".into(),
            audiences: vec![],
            key_set: "k".into(),
            claims: Default::default(),
            token_from: vec![],
            forward_claims: Default::default(),
            forward_token: true,
        }),
    );
    config.models.insert(
        "ns/m".into(),
        Model {
            policy: "p".into(),
            routing: None,
        },
    );
    let (compiled, _) = CompiledConfig::compile(&config).unwrap();
    let now = modelgate_testkit::now();
    let tokens: Vec<String> = (0..200)
        .map(|i| key.sign(&claims("iss", &format!("u{i}"), "a", now)))
        .collect();
    let headers: Vec<Vec<(String, String)>> = tokens
        .iter()
        .map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))])
        .collect();
    let mut cache = TokenCache::new(1);
    let start = Instant::now();
    for h in &headers {
        let r = Request {
            method: "POST",
            path: "/seldon/ns/m/api",
            headers: h,
        };
        let d = compiled.decide(
            &r,
            &mut Environment {
                now,
                random: 1,
                cache: &mut cache,
            },
        );
        assert!(d.refusal().is_none());
    }
    println!(
        "cold: {:?} per request",
        start.elapsed() / headers.len() as u32
    );
    // Hot: the same token, after a warm-up that puts it in the cache.
    let mut cache = TokenCache::new(1000);
    let mut hot = || {
        let r = Request {
            method: "POST",
            path: "/seldon/ns/m/api",
            headers: &headers[0],
        };
        compiled.decide(
            &r,
            &mut Environment {
                now,
                random: 1,
                cache: &mut cache,
            },
        );
    };
    (0..50).for_each(|_| hot());
    let start = Instant::now();
    (0..20000).for_each(|_| hot());
    println!("hot: {:?} per request", start.elapsed() / 20000);
}
