//! Algorithm confusion: a token signed with HMAC keyed by a public key, `alg: none`, or an
//! algorithm its key was not published for never verifies.

use jsonwebtoken::Algorithm;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, FRAUD};
use modelgate_testkit::{
    TestKey, base64url, base64url_decode, hmac_raw_token, public_der, public_pem, raw_token,
};
use serde_json::json;

use crate::forgery::{fraud, good_payload, signature_of};

/// A header JSON with `alg` and, when given, `kid`.
fn header_json(alg: &str, kid: Option<&str>) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    header.to_string()
}

/// Algorithm confusion (SPEC 3 "Tokens": the algorithm must match the key; `alg: none` and
/// HMAC are always refused): HMAC keyed with every public form of the issuer's keys, every
/// spelling of `none`, and real signatures under algorithms the key was not published for.
#[test]
fn algorithm_confusion_never_verifies() {
    let gw = sample::start("attacks-algorithms");
    let payload = good_payload();
    let claims = sample::fraud_claims("mallory");
    let (rsa, ec, ed) = (TestKey::rsa_a(), TestKey::ec(), TestKey::ed());
    let rsa_jwk = rsa.jwk();
    let n_text = rsa_jwk["n"].as_str().unwrap_or_default().to_string();
    let pem = public_pem("rsa-a");
    let pem_text = String::from_utf8_lossy(&pem).trim_end().to_string();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("RSA PEM", pem.clone()),
        ("RSA PEM without final newline", pem_text.into_bytes()),
        ("RSA DER", public_der("rsa-a")),
        ("RSA JWK n bytes", base64url_decode(&n_text)),
        ("RSA JWK n text", n_text.into_bytes()),
        ("RSA JWK JSON", rsa_jwk.to_string().into_bytes()),
        ("EC PEM", public_pem("ec-p256")),
        ("EC DER", public_der("ec-p256")),
        ("empty secret", Vec::new()),
    ];

    let mut cases: Vec<Case> = vec![
        case(
            "control: RS256 by rsa-a",
            fraud(&sample::fraud_token("alice")),
            Expect::reached(FRAUD),
        ),
        case(
            "control: ES256 by ec-1",
            fraud(&ec.sign(&claims)),
            Expect::reached(FRAUD),
        ),
        case(
            "control: ES256 without kid (keys tried in turn)",
            fraud(&ec.sign_raw(&header_json("ES256", None), &payload)),
            Expect::reached(FRAUD),
        ),
    ];
    for (what, secret) in &secrets {
        for kid in [Some("rsa-a"), Some("ec-1"), None] {
            cases.push(case(
                format!("HS256 keyed with the {what}, kid {kid:?}"),
                fraud(&hmac_raw_token(
                    secret,
                    &header_json("HS256", kid),
                    &payload,
                )),
                Expect::invalid_token(FRAUD, "unsupported_algorithm"),
            ));
        }
    }
    for alg in ["HS384", "HS512"] {
        cases.push(case(
            format!("{alg} header on rsa-a"),
            fraud(&hmac_raw_token(
                &pem,
                &header_json(alg, Some("rsa-a")),
                &payload,
            )),
            Expect::invalid_token(FRAUD, "unsupported_algorithm"),
        ));
    }

    // `none` in every spelling, with no signature, a junk one, and a real RS256 one.
    let real_signature = signature_of(&sample::fraud_token("alice")).to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for (what, signature) in [
            ("empty signature", String::new()),
            ("junk signature", base64url(b"junk")),
            ("real RS256 signature", real_signature.clone()),
        ] {
            for kid in [Some("rsa-a"), None] {
                let unsigned = raw_token(&header_json(alg, kid), &payload, b"");
                cases.push(case(
                    format!("alg {alg:?}, kid {kid:?}, {what}"),
                    fraud(&format!("{unsigned}{signature}")),
                    Expect::invalid_token(FRAUD, "malformed_token"),
                ));
            }
        }
    }
    let unsigned = raw_token(&header_json("none", None), &payload, b"");
    cases.push(case(
        "alg none without the signature segment",
        fraud(unsigned.trim_end_matches('.')),
        Expect::invalid_token(FRAUD, "malformed_token"),
    ));

    // `alg` that is not an algorithm name: a real rsa-a signature cannot save it.
    let odd_algs: Vec<(&str, String)> = vec![
        (
            "alg missing",
            json!({"typ": "JWT", "kid": "rsa-a"}).to_string(),
        ),
        ("alg empty", header_json("", Some("rsa-a"))),
        ("alg null", json!({"alg": null, "kid": "rsa-a"}).to_string()),
        (
            "alg array",
            json!({"alg": ["RS256"], "kid": "rsa-a"}).to_string(),
        ),
        (
            "alg number",
            json!({"alg": 256, "kid": "rsa-a"}).to_string(),
        ),
        ("alg lowercase rs256", header_json("rs256", Some("rsa-a"))),
        (
            "alg with a trailing space",
            header_json("RS256 ", Some("rsa-a")),
        ),
        ("alg RSA", header_json("RSA", Some("rsa-a"))),
        ("alg lowercase hs256", header_json("hs256", Some("rsa-a"))),
        ("alg ES256K", header_json("ES256K", Some("ec-1"))),
    ];
    for (what, header) in odd_algs {
        cases.push(case(
            what,
            fraud(&rsa.sign_raw(&header, &payload)),
            Expect::invalid_token(FRAUD, "malformed_token"),
        ));
    }

    // Real signatures under an algorithm the key was not published for (the JWKS publishes
    // rsa-a for RS256 only, ec-1 for ES256 only).
    let mismatched: Vec<(&str, String)> = vec![
        (
            "ES256 header on the RSA kid",
            ec.sign_raw(&header_json("ES256", Some("rsa-a")), &payload),
        ),
        (
            "ES384 header on the P-256 kid",
            ec.sign_raw(&header_json("ES384", Some("ec-1")), &payload),
        ),
        (
            "EdDSA header on the RSA kid",
            ed.sign_raw(&header_json("EdDSA", Some("rsa-a")), &payload),
        ),
        (
            "EdDSA header on the EC kid",
            ed.sign_raw(&header_json("EdDSA", Some("ec-1")), &payload),
        ),
        (
            "EdDSA without kid",
            ed.sign_raw(&header_json("EdDSA", None), &payload),
        ),
    ];
    for (what, token) in mismatched {
        cases.push(case(
            what,
            fraud(&token),
            Expect::invalid_token(FRAUD, "unsupported_algorithm"),
        ));
    }
    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        let key = TestKey::load("rsa-a.pem", alg, "rsa-a");
        cases.push(case(
            format!("{alg:?} by rsa-a, a key published for RS256"),
            fraud(&key.sign(&claims)),
            Expect::invalid_token(FRAUD, "unsupported_algorithm"),
        ));
        cases.push(case(
            format!("{alg:?} by rsa-a without kid"),
            fraud(&key.sign_raw(&header_json(&format!("{alg:?}"), None), &payload)),
            Expect::invalid_token(FRAUD, "unsupported_algorithm"),
        ));
    }
    // The header's algorithm fits a key, the signature bytes are another algorithm's.
    cases.push(case(
        "RS256 header without kid, ES256 signature bytes",
        fraud(&ec.sign_raw(&header_json("RS256", None), &payload)),
        Expect::invalid_token(FRAUD, "bad_signature"),
    ));
    cases.push(case(
        "ES256 header without kid, RS256 signature bytes",
        fraud(&rsa.sign_raw(&header_json("ES256", None), &payload)),
        Expect::invalid_token(FRAUD, "bad_signature"),
    ));
    assert_table(&gw, "algorithm confusion", &cases);
}
