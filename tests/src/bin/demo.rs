//! The modelgate demo: a real Envoy with the built filter in front of the sample models
//! (`modelgate_e2e::sample`), a tour of requests with and without tokens, a traffic split
//! against the configured weights, and the metrics Prometheus would scrape. Every row has
//! an expectation; the exit status is non-zero if any row deviates.
//!
//! `bash scripts/demo.sh`, or `cargo run -p modelgate-e2e --bin demo` once set up.

use std::collections::BTreeMap;
use std::process::ExitCode;

use jsonwebtoken::{Algorithm, Header};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, IRIS, IRIS_HEADER, LEGACY, STICKY_HEADER};
use modelgate_e2e::{Gateway, Request, Response, Scrape};
use modelgate_testkit::{TestKey, hmac_token, now, public_pem, raw_token};
use serde_json::json;

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
    let token = sample::fraud_token("alice");
    let a = TestKey::rsa_a();
    let with = |change: serde_json::Value| {
        let mut claims = sample::fraud_claims("mallory");
        for (k, v) in change.as_object().cloned().unwrap_or_default() {
            claims[k] = v;
        }
        a.sign(&claims)
    };
    let fraud = || Request::predict(FRAUD);
    let prometheus = format!("/seldon/{FRAUD}/prometheus");
    let none_alg = raw_token(
        r#"{"alg":"none","kid":"rsa-a"}"#,
        &sample::fraud_claims("mallory").to_string(),
        b"",
    );
    let hs256 = hmac_token(
        &public_pem("rsa-a"),
        "rsa-a",
        &sample::fraud_claims("mallory"),
    );
    let mut forged_header = Header::new(Algorithm::RS256);
    forged_header.kid = Some("rsa-a".into());
    let forged =
        TestKey::rsa_b().sign_with_header(&forged_header, &sample::fraud_claims("mallory"));
    let credit_token = sample::credit_token("partner-1");
    let credit_query = format!("/seldon/{CREDIT}/api/v1.0/predictions?access_token={credit_token}");
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
            fraud().bearer(&TestKey::ec().sign(&sample::fraud_claims("eve"))),
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
            fraud()
                .bearer(&token)
                .header("x-seldon-predictor", "canary"),
            200,
            &["canary"],
            "allowed/token",
        ),
        row(
            "fraud: dark launch by override",
            fraud().bearer(&token).header("x-seldon-predictor", "dark"),
            200,
            &["dark"],
            "allowed/token",
        ),
        row(
            "fraud: dark launch without a token",
            fraud().header("x-seldon-predictor", "dark"),
            401,
            &[],
            "denied/missing_token",
        ),
        row(
            "fraud: override to unknown predictor",
            fraud().bearer(&token).header("x-seldon-predictor", "nope"),
            400,
            &[],
            "denied/unknown_predictor",
        ),
        row(
            "fraud: sticky user-42",
            fraud().bearer(&token).header(STICKY_HEADER, "user-42"),
            200,
            AB,
            "allowed/token",
        ),
        row(
            "fraud: sticky user-42 again",
            fraud().bearer(&token).header(STICKY_HEADER, "user-42"),
            200,
            AB,
            "allowed/token",
        ),
        row(
            "credit: token in the query (EdDSA)",
            Request::new("POST", &credit_query).body(b"{}".to_vec()),
            200,
            &["default"],
            "allowed/token",
        ),
        row(
            "credit: token in header and query",
            Request::new("POST", &credit_query)
                .bearer(&credit_token)
                .body(b"{}".to_vec()),
            401,
            &[],
            "denied/multiple_tokens",
        ),
        row(
            "legacy (audit): no token",
            Request::predict(LEGACY),
            200,
            &["default"],
            "audit_denied/missing_token",
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

fn run_tour(gw: &Gateway) -> usize {
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

fn run_split(gw: &Gateway, requests: usize) -> usize {
    println!();
    println!("Traffic split, {requests} requests per model, no override or sticky key:");
    println!(
        "{:<16} {:<10} {:>8} {:>9} {:>9} {:>9}  within 5 sigma",
        "model", "predictor", "weight", "expected", "answered", "share"
    );
    let token = sample::fraud_token("split");
    let cases = [
        (
            FRAUD,
            Request::predict(FRAUD).bearer(&token),
            vec![("main", 75), ("canary", 25), ("dark", 0)],
        ),
        (IRIS, Request::predict(IRIS), vec![("a", 50), ("b", 50)]),
    ];
    let mut deviations = 0;
    for (model, request, weights) in cases {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut client = gw.client();
        for _ in 0..requests {
            let answer = client
                .send(&request)
                .map(|r| r.upstream().unwrap_or("-").to_string());
            *counts
                .entry(answer.unwrap_or_else(|e| format!("error: {e}")))
                .or_default() += 1;
        }
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        for (predictor, weight) in &weights {
            let share = f64::from(*weight) / f64::from(total);
            let expected = requests as f64 * share;
            let sigma = (requests as f64 * share * (1.0 - share)).sqrt();
            let answered = counts.remove(*predictor).unwrap_or(0);
            let ok = (answered as f64 - expected).abs() <= 5.0 * sigma;
            deviations += usize::from(!ok);
            println!(
                "{:<16} {:<10} {:>8} {:>9.0} {:>9} {:>8.1}%  {}",
                model,
                predictor,
                weight,
                expected,
                answered,
                100.0 * answered as f64 / requests as f64,
                if ok { "yes" } else { "NO   <-- DEVIATES" }
            );
        }
        for (other, n) in counts {
            deviations += 1;
            println!(
                "{model:<16} {other:<10} {:>8} {:>9} {n:>9}  <-- DEVIATES",
                "-", 0
            );
        }
    }
    deviations
}

fn main() -> ExitCode {
    let gw = match Gateway::start("demo", &sample::spec()) {
        Ok(gw) => gw,
        Err(e) => {
            eprintln!("demo: cannot start the gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let version = gw
        .admin_get("/server_info")
        .map(|r| r.json()["version"].as_str().unwrap_or("?").to_string())
        .unwrap_or_default();
    println!(
        "modelgate demo: Envoy {version} (pid {}) on {}",
        gw.pid(),
        gw.address()
    );
    println!("log and generated config: {}", gw.dir().display());
    println!();
    println!("Sample models:");
    println!(
        "  {FRAUD:<16} JWT (issuer A), audience fraud-api, groups fraud-team|fraud-admins; main 75 / canary 25 / dark 0, sticky {STICKY_HEADER}"
    );
    println!(
        "  {CREDIT:<16} JWT (issuer B), header or ?access_token, token kept from the model, sub -> x-auth-subject"
    );
    println!("  {LEGACY:<16} JWT (issuer A) in audit mode");
    println!("  {IRIS:<16} no auth; a 50 / b 50 on {IRIS_HEADER}, client override disabled");
    println!();

    let mut deviations = run_tour(&gw);
    deviations += run_split(&gw, 2000);

    println!();
    println!("modelgate metrics on /stats/prometheus:");
    for sample in gw.metrics().with_prefix("modelgate_") {
        println!("  {}", sample.line);
    }
    println!();
    if deviations == 0 {
        println!("Every row is as expected.");
        ExitCode::SUCCESS
    } else {
        println!("{deviations} row(s) deviate from their expectation.");
        ExitCode::FAILURE
    }
}
