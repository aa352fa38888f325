//! The tour: one request per row, each with the answer, the predictor and the decision
//! the filter must count for it, against the models of `deploy/examples/demo/`.

use jsonwebtoken::{Algorithm, Header};
use modelgate_e2e::{Gateway, Request, Response, Scrape};
use modelgate_testkit::{TestKey, hmac_token, now, public_pem, raw_token};
use serde_json::json;

use crate::users::{
    FRAUD, HEADER, IRIS, IRIS_HEADER, LEGACY, SEARCH, fraud_claims, fraud_token, search_token,
    team_token,
};

/// What a row of the tour should show.
struct Expect {
    status: u16,
    /// The predictors that may answer (empty: none may).
    predictors: &'static [&'static str],
    /// `decision/reason` as counted by the filter, or `passthrough`.
    decision: &'static str,
}

struct Row {
    label: String,
    request: Request,
    expect: Expect,
}

fn row(
    label: &str,
    request: Request,
    status: u16,
    predictors: &'static [&'static str],
    decision: &'static str,
) -> Row {
    Row {
        label: label.to_string(),
        request,
        expect: Expect {
            status,
            predictors,
            decision,
        },
    }
}

fn tour() -> Vec<Row> {
    let token = fraud_token("alice");
    let a = TestKey::rsa_a();
    let with = |change: serde_json::Value| {
        let mut claims = fraud_claims("mallory");
        for (k, v) in change.as_object().cloned().unwrap_or_default() {
            claims[k] = v;
        }
        a.sign(&claims)
    };
    let fraud = || Request::predict(FRAUD);
    let prometheus = format!("/seldon/{FRAUD}/prometheus");
    let none_alg = raw_token(
        r#"{"alg":"none","kid":"rsa-a"}"#,
        &fraud_claims("mallory").to_string(),
        b"",
    );
    let hs256 = hmac_token(&public_pem("rsa-a"), "rsa-a", &fraud_claims("mallory"));
    let mut forged_header = Header::new(Algorithm::RS256);
    forged_header.kid = Some("rsa-a".into());
    let forged = TestKey::rsa_b().sign_with_header(&forged_header, &fraud_claims("mallory"));
    let search = || Request::predict(SEARCH);
    let partner = search_token("partner-1");
    let search_query = format!("/seldon/{SEARCH}/api/v1.0/predictions?access_token={partner}");
    const AB: &[&str] = &["main", "canary"];

    vec![
        row(
            "fraud: valid token (RS256)",
            fraud().bearer(&token),
            200,
            AB,
            "allowed/token",
        ),
        row(
            "fraud: valid token (ES256)",
            fraud().bearer(&TestKey::ec().sign(&fraud_claims("eve"))),
            200,
            AB,
            "allowed/token",
        ),
        row("fraud: no token", fraud(), 401, &[], "denied/missing_token"),
        row(
            "fraud: expired token",
            fraud().bearer(&with(json!({"exp": now() - 3600}))),
            401,
            &[],
            "denied/token_expired",
        ),
        row(
            "fraud: token for another audience",
            fraud().bearer(&with(json!({"aud": "billing"}))),
            401,
            &[],
            "denied/wrong_audience",
        ),
        row(
            "fraud: token from another issuer",
            fraud().bearer(&with(json!({"iss": "https://127.0.0.1/other"}))),
            401,
            &[],
            "denied/wrong_issuer",
        ),
        row(
            "fraud: valid token, wrong group",
            fraud().bearer(&with(json!({"groups": ["marketing"]}))),
            403,
            &[],
            "denied/insufficient_scope",
        ),
        row(
            "fraud: forged signature",
            fraud().bearer(&forged),
            401,
            &[],
            "denied/bad_signature",
        ),
        row(
            "fraud: alg none",
            fraud().bearer(&none_alg),
            401,
            &[],
            "denied/malformed_token",
        ),
        row(
            "fraud: HS256 keyed with the public key",
            fraud().bearer(&hs256),
            401,
            &[],
            "denied/unsupported_algorithm",
        ),
        row(
            "fraud: GET .../prometheus, no token",
            Request::get(&prometheus),
            200,
            AB,
            "allowed/exempt",
        ),
        row(
            "fraud: HEAD .../prometheus, no token",
            Request::new("HEAD", &prometheus),
            401,
            &[],
            "denied/missing_token",
        ),
        row(
            "fraud: GET .../prometheus/, no token",
            Request::get(&format!("{prometheus}/")),
            401,
            &[],
            "denied/missing_token",
        ),
        row(
            "fraud: GET .../prometheus%2f..%2fapi",
            Request::get(&format!("/seldon/{FRAUD}/prometheus%2f..%2fapi")),
            401,
            &[],
            "denied/missing_token",
        ),
        row(
            "fraud: CORS preflight, no token",
            Request::new("OPTIONS", &format!("/seldon/{FRAUD}/api/v1.0/predictions"))
                .header("origin", "http://127.0.0.1:3000")
                .header("access-control-request-method", "POST"),
            200,
            AB,
            "allowed/preflight",
        ),
        row(
            "fraud: override to canary",
            fraud().bearer(&token).header(HEADER, "canary"),
            200,
            &["canary"],
            "allowed/token",
        ),
        row(
            "fraud: override to unknown predictor",
            fraud().bearer(&token).header(HEADER, "nope"),
            400,
            &[],
            "denied/unknown_predictor",
        ),
        row(
            "search: token in the header (EdDSA)",
            search().bearer(&partner),
            200,
            &["current"],
            "allowed/token",
        ),
        row(
            "search: token in the query",
            Request::new("POST", &search_query).body(b"{}".to_vec()),
            200,
            &["current"],
            "allowed/token",
        ),
        row(
            "search: token in header and query",
            Request::new("POST", &search_query)
                .bearer(&partner)
                .body(b"{}".to_vec()),
            401,
            &[],
            "denied/multiple_tokens",
        ),
        row(
            "search: the team's token",
            search().bearer(&token),
            401,
            &[],
            "denied/unknown_key",
        ),
        row(
            "search: dark launch by override",
            search().bearer(&partner).header(HEADER, "next"),
            200,
            &["next"],
            "allowed/token",
        ),
        row(
            "search: dark launch without a token",
            search().header(HEADER, "next"),
            401,
            &[],
            "denied/missing_token",
        ),
        row(
            "legacy (audit): no token",
            Request::predict(LEGACY),
            200,
            &["default"],
            "audit_denied/missing_token",
        ),
        row(
            "legacy (audit): valid token",
            Request::predict(LEGACY).bearer(&team_token("bob")),
            200,
            &["default"],
            "allowed/token",
        ),
        row(
            "iris (open): asks for b, override off",
            Request::predict(IRIS).header(IRIS_HEADER, "b"),
            200,
            &["a", "b"],
            "allowed/no_auth",
        ),
        row(
            "unknown model: passes untouched",
            Request::predict("other/app").bearer("not-a-jwt"),
            200,
            &["other-app"],
            "passthrough",
        ),
    ]
}

/// The filter's own account of one request: the counters it moved.
fn counted(before: &Scrape, after: &Scrape) -> (String, String) {
    let moved = |name: &str, keys: &[&str]| -> Vec<String> {
        after
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                let old = before
                    .samples
                    .iter()
                    .find(|b| b.name == s.name && b.labels == s.labels)
                    .map_or(0.0, |b| b.value);
                s.value > old
            })
            .map(|s| {
                keys.iter()
                    .filter_map(|k| {
                        s.labels
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.as_str())
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    };
    let mut decision = moved("modelgate_requests_total", &["decision", "reason"]);
    if !moved("modelgate_passthrough_total", &[]).is_empty() {
        decision.push("passthrough".into());
    }
    let route = moved("modelgate_routed_total", &["predictor", "reason"]);
    (decision.join(","), route.join(","))
}

fn what_the_model_saw(response: &Response) -> String {
    let Some(echo) = response.echo() else {
        return String::new();
    };
    let token = if echo.received.header("authorization").is_some()
        || echo.received.path.contains("access_token")
    {
        "token forwarded"
    } else {
        "no token"
    };
    match echo.received.header("x-auth-subject") {
        Some(subject) => format!("{token}, x-auth-subject: {subject}"),
        None => token.to_string(),
    }
}

/// Sends every row of the tour, prints what happened, and returns how many rows deviate.
pub fn run_tour(gw: &Gateway) -> usize {
    println!(
        "{:>2}  {:<40} {:<34} {:>6}  {:<10} {:<30} {:<16} model saw",
        "#", "request", "expected", "status", "predictor", "decision (counted)", "route"
    );
    let mut deviations = 0;
    for (i, row) in tour().into_iter().enumerate() {
        let before = gw.metrics();
        let response = gw.send(&row.request);
        let after = gw.metrics();
        let (decision, route) = counted(&before, &after);
        let predictor = response.upstream().unwrap_or("-").to_string();
        let expected_predictor = if row.expect.predictors.is_empty() {
            predictor == "-"
        } else {
            row.expect.predictors.contains(&predictor.as_str())
        };
        let ok = response.status == row.expect.status
            && expected_predictor
            && decision == row.expect.decision;
        if !ok {
            deviations += 1;
        }
        let expected = format!(
            "{} {}",
            row.expect.status,
            if row.expect.predictors.is_empty() {
                row.expect.decision.to_string()
            } else {
                row.expect.predictors.join("|")
            }
        );
        println!(
            "{:>2}  {:<40} {:<34} {:>6}  {:<10} {:<30} {:<16} {}{}",
            i + 1,
            row.label,
            expected,
            response.status,
            predictor,
            decision,
            route,
            what_the_model_saw(&response),
            if ok { "" } else { "   <-- DEVIATES" }
        );
    }
    deviations
}
