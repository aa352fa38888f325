//! Any method, path and headers (text: `METHOD PATH` then `name: value` lines) against
//! the fixture configuration: deciding never panics and keeps the decision invariants
//! (see `check_decision`). The last 8 bytes, when present, also pick the random number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::{Environment, TokenCache};
use modelgate_fuzz::{NOW, TextRequest, check_decision, fixture};

fuzz_target!(|data: &[u8]| {
    let config = fixture();
    let text = TextRequest::parse(data);
    let request = text.request();
    let random = data
        .iter()
        .fold(0u64, |acc, &b| acc.rotate_left(8) ^ u64::from(b));
    let mut cache = TokenCache::new(16);
    let mut env = Environment {
        now: NOW,
        random,
        cache: &mut cache,
    };
    let decision = config.decide(&request, &mut env);
    check_decision(config, &request, &decision);
    // A second decision hits the token cache: it must agree with the first.
    let mut env = Environment {
        now: NOW,
        random,
        cache: &mut cache,
    };
    let again = config.decide(&request, &mut env);
    assert_eq!(
        decision.outcome, again.outcome,
        "the token cache changed the outcome"
    );
});
