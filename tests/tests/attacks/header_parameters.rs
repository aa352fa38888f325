//! Header parameters an attacker controls (`crit`, `kid`, embedded keys and key URLs) never
//! choose the key a token is checked with.

use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, FRAUD};
use modelgate_testkit::{TestKey, base64url, hmac_raw_token, public_der};
use serde_json::{Value, json};

use crate::forgery::{fraud, good_payload};

/// Header parameters an attacker controls: `crit` (SECURITY.md: any `crit` is refused,
/// no extension being understood), `kid` values built to reach a file, a query or a type
/// confusion (only ever compared with the JWKS's ids), and embedded keys or key URLs
/// (`jku`, `x5u`, `jwk`, `x5c`), which must never be trusted: the key comes from the
/// model's JWKS by `kid`, whatever the token says about itself.
#[test]
fn header_parameters_never_choose_the_key() {
    let gw = sample::start("attacks-header-parameters");
    let payload = good_payload();
    let rsa = TestKey::rsa_a();
    // Issuer B's key: an attacker's own key as far as fraud/detector is concerned.
    let attacker = TestKey::rsa_b();
    let signed = |header: Value| rsa.sign_raw(&header.to_string(), &payload);
    let forged = |header: Value| attacker.sign_raw(&header.to_string(), &payload);

    let mut cases: Vec<Case> = Vec::new();
    let crits = [
        (
            "crit [exp]",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": ["exp"]}),
        ),
        (
            "crit []",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": []}),
        ),
        (
            "crit [b64] with b64 false",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": ["b64"], "b64": false}),
        ),
        (
            "crit naming an unknown extension",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": ["x-mallory"], "x-mallory": 1}),
        ),
        (
            "crit as a string",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": "exp"}),
        ),
        (
            "crit as an object",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": {}}),
        ),
        // jsonwebtoken reads `null` as no `crit` at all; RFC 7515 4.1.11 allows only a
        // non-empty array, and SECURITY.md promises that a `crit` header is refused. Found
        // by this corpus, fixed in the filter.
        (
            "crit null",
            json!({"alg": "RS256", "kid": "rsa-a", "crit": null}),
        ),
    ];
    for (what, header) in crits {
        cases.push(case(
            format!("{what}, signed by rsa-a"),
            fraud(&signed(header)),
            Expect::invalid_token(FRAUD, "malformed_token"),
        ));
    }

    let long_kid = "k".repeat(8 * 1024);
    let unknown_kids: Vec<(&str, &str)> = vec![
        ("path", "../../etc/passwd"),
        (
            "path to the key file",
            "../../tests/fixtures/keys/rsa-a.pub.pem",
        ),
        ("backslash path", "..\\..\\keys\\rsa-a"),
        ("file URL", "file:///dev/null"),
        ("SQL", "' OR 1=1 --"),
        ("SQL after the real id", "rsa-a' --"),
        ("empty", ""),
        ("8 KiB", &long_kid),
        ("NUL after the real id", "rsa-a\u{0}"),
        ("upper case of the real id", "RSA-A"),
        ("leading space", " rsa-a"),
        ("path back to the real id", "x/../rsa-a"),
        ("wildcard", "*"),
        ("regex", ".*"),
    ];
    for (what, kid) in unknown_kids {
        cases.push(case(
            format!("kid {what}, signed by rsa-a"),
            fraud(&signed(json!({"alg": "RS256", "kid": kid}))),
            Expect::invalid_token(FRAUD, "unknown_key"),
        ));
    }
    let typed_kids = [
        ("number", json!(1)),
        ("boolean", json!(true)),
        ("array of the real id", json!(["rsa-a"])),
        ("object", json!({"$ne": ""})),
    ];
    for (what, kid) in typed_kids {
        cases.push(case(
            format!("kid {what}, signed by rsa-a"),
            fraud(&signed(json!({"alg": "RS256", "kid": kid}))),
            Expect::invalid_token(FRAUD, "malformed_token"),
        ));
    }
    cases.push(case(
        "kid null is no kid: keys tried in turn",
        fraud(&signed(json!({"alg": "RS256", "kid": null}))),
        Expect::reached(FRAUD),
    ));

    let attacker_jwk = attacker.jwk();
    let attacker_url = "http://127.0.0.1:9/keys.json";
    let embedded: Vec<(&str, Value)> = vec![
        ("jku", json!({"alg": "RS256", "jku": attacker_url})),
        ("x5u", json!({"alg": "RS256", "x5u": attacker_url})),
        ("jwk", json!({"alg": "RS256", "jwk": attacker_jwk})),
        (
            "x5c",
            json!({"alg": "RS256", "x5c": [base64url(&public_der("rsa-b"))]}),
        ),
    ];
    for (what, header) in &embedded {
        cases.push(case(
            format!("{what} naming the attacker's key, no kid"),
            fraud(&forged(header.clone())),
            Expect::invalid_token(FRAUD, "bad_signature"),
        ));
        let mut with_kid = header.clone();
        with_kid["kid"] = json!("rsa-a");
        cases.push(case(
            format!("{what} naming the attacker's key, kid rsa-a"),
            fraud(&forged(with_kid)),
            Expect::invalid_token(FRAUD, "bad_signature"),
        ));
        let mut own_kid = header.clone();
        own_kid["kid"] = json!("rsa-b");
        cases.push(case(
            format!("{what} naming the attacker's key, the attacker's kid"),
            fraud(&forged(own_kid)),
            Expect::invalid_token(FRAUD, "unknown_key"),
        ));
        let mut genuine = header.clone();
        genuine["kid"] = json!("rsa-a");
        cases.push(case(
            format!("{what} on a token the issuer signed: ignored"),
            fraud(&signed(genuine)),
            Expect::reached(FRAUD),
        ));
    }
    let secret = b"attacker-secret";
    let oct_jwk = json!({"kty": "oct", "k": base64url(secret), "alg": "HS256"});
    cases.push(case(
        "embedded oct jwk with an HS256 token keyed by it",
        fraud(&hmac_raw_token(
            secret,
            &json!({"alg": "HS256", "jwk": oct_jwk}).to_string(),
            &payload,
        )),
        Expect::invalid_token(FRAUD, "unsupported_algorithm"),
    ));
    assert_table(&gw, "header parameters", &cases);
}
