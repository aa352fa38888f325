//! Any annotations on a SeldonDeployment (text: `key=value` lines go to
//! `spec.annotations`, `meta key=value` lines to `metadata.annotations`, and
//! `predictor name=traffic` or `predictor name=shadow` lines add predictors): reading them
//! never panics, and every value also goes through the gateway and JWKS URI parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_controller::Settings;
use modelgate_controller::annotations::{parse, parse_gateway, parse_jwks_uri};
use modelgate_fuzz::seldon_deployment;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let sdep = seldon_deployment(&text, "models", "iris", |value| {
        let _ = parse_gateway(value, "models");
        let _ = parse_jwks_uri(value);
    });
    let _ = parse(&sdep, &Settings::default());
});
