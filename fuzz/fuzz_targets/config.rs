//! Any bytes as a `pluginConfig` document: compiling never panics, and a document that
//! compiles decides a few fixed requests without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::{CompiledConfig, Environment, Request, TokenCache};

fuzz_target!(|data: &[u8]| {
    let Ok((config, _warnings)) = CompiledConfig::from_json(data) else {
        return;
    };
    let headers = vec![("authorization".to_string(), "Bearer x.y.z".to_string())];
    let mut cache = TokenCache::new(8);
    for model in &config.models {
        let path = format!("/seldon/{}/api/v1.0/predictions", model.id);
        let request = Request {
            method: "POST",
            path: &path,
            headers: &headers,
        };
        let mut env = Environment {
            now: modelgate_fuzz::NOW,
            random: 7,
            cache: &mut cache,
        };
        let decision = config.decide(&request, &mut env);
        modelgate_fuzz::check_decision(&config, &request, &decision);
    }
});
