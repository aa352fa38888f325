//! Any annotations on a SeldonDeployment (text: `key=value` lines go to
//! `spec.annotations`, `meta key=value` lines to `metadata.annotations`, and
//! `predictor name=traffic` or `predictor name=shadow` lines add predictors): reading them
//! never panics, and every value also goes through the gateway and JWKS URI parsers.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use modelgate_controller::Settings;
use modelgate_controller::annotations::{parse, parse_gateway, parse_jwks_uri};
use modelgate_controller::seldon::{PredictorSpec, SeldonDeployment, SeldonDeploymentSpec};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut spec_annotations = BTreeMap::new();
    let mut metadata_annotations = BTreeMap::new();
    let mut predictors = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix("predictor ") {
            let (name, weight) = rest.split_once('=').unwrap_or((rest, ""));
            predictors.push(PredictorSpec {
                name: name.to_string(),
                traffic: weight.parse().ok(),
                shadow: (weight == "shadow").then_some(true),
                ..Default::default()
            });
            continue;
        }
        let (target, line) = match line.strip_prefix("meta ") {
            Some(rest) => (&mut metadata_annotations, rest),
            None => (&mut spec_annotations, line),
        };
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let _ = parse_gateway(value, "models");
        let _ = parse_jwks_uri(value);
        target.insert(key.to_string(), value.to_string());
    }
    if predictors.is_empty() {
        predictors.push(PredictorSpec {
            name: "default".into(),
            ..Default::default()
        });
    }
    let mut sdep = SeldonDeployment::new(
        "iris",
        SeldonDeploymentSpec {
            name: None,
            predictors,
            annotations: (!spec_annotations.is_empty()).then_some(spec_annotations),
        },
    );
    sdep.metadata.namespace = Some("models".into());
    sdep.metadata.annotations = (!metadata_annotations.is_empty()).then_some(metadata_annotations);
    let _ = parse(&sdep, &Settings::default());
});
