//! Any bytes as the bearer token of a request to a JWT model, in the `Authorization`
//! header and in the `access_token` query parameter, against real public keys: never a
//! panic, and never let through. The fuzzer cannot sign, so no input is a valid token;
//! a seed that is one (or a mutation the verifier accepts) is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::{Environment, Outcome, Request, TokenCache};
use modelgate_fuzz::{NOW, check_decision, fixture};

fuzz_target!(|data: &[u8]| {
    let config = fixture();
    let token = String::from_utf8_lossy(data);
    let mut cache = TokenCache::new(16);
    let in_header = [("authorization".to_string(), format!("Bearer {token}"))];
    let path_query = format!("/seldon/prod/audited/api/v1.0/predictions?access_token={token}");
    let cases: [(&str, &[(String, String)]); 4] = [
        ("/seldon/prod/fraud/api/v1.0/predictions", &in_header),
        ("/seldon/prod/audited/api/v1.0/predictions", &in_header),
        (&path_query, &[]),
        (&path_query, &in_header),
    ];
    for (path, headers) in cases {
        let request = Request {
            method: "POST",
            path,
            headers,
        };
        let mut env = Environment {
            now: NOW,
            random: 0,
            cache: &mut cache,
        };
        let decision = config.decide(&request, &mut env);
        check_decision(config, &request, &decision);
        assert!(
            !matches!(decision.outcome, Outcome::Allowed(_)),
            "{path}: a token the fuzzer made was accepted: {:?}",
            decision.outcome
        );
    }
});
