//! `explain` runs the filter's decision code on the configuration `render` produces: real
//! tokens from the testkit against the golden examples.

mod common;

use modelgate_controller::explain::{ExplainRequest, explain};
use modelgate_testkit::TestKey;
use serde_json::json;

fn example(name: &str) -> modelgate_core::FilterConfig {
    let (generated, _) = common::render_file(&common::test_data().join(name));
    generated.filter_config
}

fn run(
    config: &modelgate_core::FilterConfig,
    request: &str,
    headers: &[String],
) -> (Vec<String>, bool) {
    let request = ExplainRequest::parse(request, headers).unwrap();
    let e = explain(config, &request, modelgate_testkit::now(), 7).unwrap();
    (e.lines, e.forwarded)
}

fn token(claims: serde_json::Value) -> String {
    format!("authorization: Bearer {}", TestKey::rsa_a().sign(&claims))
}

fn good_claims() -> serde_json::Value {
    let now = modelgate_testkit::now();
    json!({"iss": common::DEFAULT_ISSUER, "sub": "alice", "aud": "fraud-api", "exp": now + 600,
           "groups": ["risk-team"], "scope": "predict read"})
}

#[test]
fn an_allowed_request_is_explained_claim_by_claim_with_its_predictor() {
    let config = example("10-jwt-ab-sticky-shadow.yaml");
    let (lines, forwarded) = run(
        &config,
        "POST /seldon/risk/fraud/api/v1.0/predictions",
        &[token(good_claims())],
    );
    let text = lines.join("\n");
    assert!(forwarded, "{text}");
    assert!(
        text.contains("model: risk/fraud (addressed by path)"),
        "{text}"
    );
    assert!(text.contains("exemption: none"), "{text}");
    assert!(text.contains("claim groups: needs one of [\"risk-team\", \"ml-platform\"], token has [\"risk-team\"]: holds"), "{text}");
    assert!(text.contains("claim scope:"), "{text}");
    assert!(text.contains("verdict: allowed (token)"), "{text}");
    assert!(text.contains("sticky key hashes to bucket"), "{text}");
    assert!(text.contains("edit: set header x-user-id: alice"), "{text}");
    assert!(text.contains("edit: remove header authorization"), "{text}");
}

#[test]
fn denials_say_why() {
    let config = example("10-jwt-ab-sticky-shadow.yaml");
    let (lines, forwarded) = run(&config, "POST /seldon/risk/fraud/api/v1.0/predictions", &[]);
    let text = lines.join("\n");
    assert!(!forwarded);
    assert!(
        text.contains("token: none in header authorization"),
        "{text}"
    );
    assert!(
        text.contains("verdict: denied (missing_token), status 401"),
        "{text}"
    );
    assert!(
        text.contains("www-authenticate: Bearer realm=\"risk/fraud\""),
        "{text}"
    );

    let mut claims = good_claims();
    claims["groups"] = json!(["marketing"]);
    let (lines, _) = run(
        &config,
        "POST /seldon/risk/fraud/api/v1.0/predictions",
        &[token(claims)],
    );
    let text = lines.join("\n");
    assert!(text.contains("token has [\"marketing\"]: FAILS"), "{text}");
    assert!(
        text.contains("verdict: denied (insufficient_scope), status 403"),
        "{text}"
    );

    let mut claims = good_claims();
    claims["exp"] = json!(1000);
    let (lines, _) = run(
        &config,
        "POST /seldon/risk/fraud/api/v1.0/predictions",
        &[token(claims)],
    );
    assert!(
        lines.join("\n").contains("rejected: token_expired"),
        "{lines:?}"
    );
}

#[test]
fn exemption_override_and_unknown_models() {
    let config = example("10-jwt-ab-sticky-shadow.yaml");
    let (lines, forwarded) = run(&config, "GET /seldon/risk/fraud/prometheus", &[]);
    assert!(forwarded);
    assert!(
        lines.join("\n").contains("verdict: allowed (exempt)"),
        "{lines:?}"
    );

    let headers = [token(good_claims()), "x-fraud-variant: dark".to_string()];
    let (lines, _) = run(
        &config,
        "POST /seldon/risk/fraud/api/v1.0/predictions",
        &headers,
    );
    assert!(
        lines
            .join("\n")
            .contains("route: predictor dark (the client named it in x-fraud-variant"),
        "{lines:?}"
    );

    // The filter answers 400 when the path and the gRPC headers disagree, whether or not
    // the path's model is known: explain tells what the filter decided, not a walk beside it.
    let grpc = ["seldon: fraud".to_string(), "namespace: risk".to_string()];
    let (lines, forwarded) = run(&config, "POST /seldon/other/model/api", &grpc);
    assert!(!forwarded, "{lines:?}");
    let text = lines.join("\n");
    assert!(text.contains("model: ambiguous"), "{text}");
    assert!(
        text.contains("verdict: denied (ambiguous_model), status 400"),
        "{text}"
    );

    let (lines, forwarded) = run(&config, "GET /seldon/other/model/api", &[]);
    assert!(forwarded);
    assert!(
        lines
            .join("\n")
            .contains("other/model is not a known model"),
        "{lines:?}"
    );
}

#[test]
fn a_model_with_broken_annotations_is_denied_and_audit_mode_lets_through() {
    let config = example("11-bad-annotations.yaml");
    let (lines, forwarded) = run(
        &config,
        "POST /seldon/team-a/broken/api/v1.0/predictions",
        &[],
    );
    assert!(!forwarded);
    let text = lines.join("\n");
    assert!(text.contains("deny every request (no valid configuration yet: seldon.io/auth-mode, seldon.io/istio-retries, seldon.io/jwt-claims)"), "{text}");

    let config = example("12-open-mesh-audit-inline.yaml");
    let (lines, forwarded) = run(
        &config,
        "POST /seldon/sandbox/migrating/api/v1.0/predictions",
        &[],
    );
    assert!(forwarded, "{lines:?}");
    assert!(
        lines
            .join("\n")
            .contains("let through because the model is in audit mode"),
        "{lines:?}"
    );
}

#[test]
fn ten_thousand_models_fit_well_under_a_mebibyte() {
    use modelgate_controller::annotations::JWT_AUDIENCES;
    use modelgate_controller::seldon::SeldonDeployment;
    let mut sdeps = Vec::new();
    for i in 0..10_000 {
        let namespace = format!("team-{}", i % 50);
        // One predictor takes everything, whatever its traffic says.
        let s = SeldonDeployment::fixture(&namespace, &format!("model-{i:05}"))
            .predictor("default", 100);
        sdeps.push(if i % 10 == 0 {
            s.annotate(JWT_AUDIENCES, &format!("aud-{}", i % 7))
        } else {
            s
        });
    }
    let generated = common::generate_first(&sdeps, &common::plain_settings());
    let plugin = serde_json::to_vec(&generated.extension).unwrap();
    assert!(plugin.len() < 1024 * 1024, "{} bytes", plugin.len());
    assert_eq!(generated.filter_config.policies.len(), 8);
    assert_eq!(generated.filter_config.key_sets.len(), 1);
}
