//! Size limits and encodings: the filter's token limit, Envoy's header limits, and tokens
//! spelled other than JWS prescribes.

use modelgate_e2e::Request;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, FRAUD, IRIS, IRIS_HEADER};
use modelgate_testkit::TestKey;
use serde_json::json;

use crate::forgery::{HEADER, fraud, signature_of};

/// A valid `fraud/detector` token (RS256 by rsa-a) of exactly `len` characters, grown by a
/// padding claim and a header parameter: base64 lengths move by one or two characters per
/// byte, so the two together reach every length.
fn fraud_token_of_length(len: usize) -> String {
    let rsa = TestKey::rsa_a();
    let encoded = |bytes: usize| (4 * bytes).div_ceil(3);
    let signature = signature_of(&rsa.sign(&json!({}))).len();
    for extra in 0..3 {
        let header = json!({"alg": "RS256", "kid": "rsa-a", "x": "y".repeat(extra)}).to_string();
        let mut claims = sample::fraud_claims("mallory");
        claims["padding"] = json!("");
        let base = claims.to_string().len();
        for padding in 0..len {
            let total = encoded(header.len()) + encoded(base + padding) + signature + 2;
            if total == len {
                claims["padding"] = json!("p".repeat(padding));
                let token = rsa.sign_raw(&header, &claims.to_string());
                assert_eq!(token.len(), len, "token length arithmetic");
                return token;
            }
            if total > len {
                break;
            }
        }
    }
    panic!("no token of {len} characters")
}

/// Another way to write a base64url segment.
type Spelling = fn(&str) -> String;

/// Size limits (SPEC 3: tokens over 16 KiB are refused before any parsing; Envoy's own
/// header limits, 60 KiB and 100 headers, answer `431` before the filter), many candidate
/// tokens in one header, a huge routing header, and tokens whose encoding is not the one
/// JWS prescribes (unpadded base64url, three segments).
#[test]
fn sizes_and_encodings_are_held_to_the_limits() {
    let gw = sample::start("attacks-sizes");
    let token = sample::fraud_token("alice");
    let mut cases: Vec<Case> = vec![
        case(
            "token of exactly 16 KiB",
            fraud(&fraud_token_of_length(16 * 1024)),
            Expect::reached(FRAUD),
        ),
        case(
            "token of 16 KiB + 1",
            fraud(&fraud_token_of_length(16 * 1024 + 1)),
            Expect::invalid_token(FRAUD, "token_too_large"),
        ),
        case(
            "junk of 16 KiB + 1",
            fraud(&"a".repeat(16 * 1024 + 1)),
            Expect::invalid_token(FRAUD, "token_too_large"),
        ),
        case(
            "junk of 40 KiB with dots",
            fraud(&"a.".repeat(20 * 1024)),
            Expect::invalid_token(FRAUD, "token_too_large"),
        ),
        case(
            "authorization of 70 KiB: over Envoy's header limit",
            fraud(&"a".repeat(70 * 1024)),
            Expect::Envoy { status: 431 },
        ),
        case(
            "50 candidates in one authorization header",
            Request::predict(FRAUD).header(
                "authorization",
                &vec![format!("Bearer {token}"); 50].join(", "),
            ),
            Expect::invalid_token(FRAUD, "multiple_tokens"),
        ),
        case(
            "a valid token then 50 empty candidates",
            Request::predict(FRAUD).header(
                "authorization",
                &format!("Bearer {token}{}", ", Bearer x".repeat(50)),
            ),
            Expect::invalid_token(FRAUD, "multiple_tokens"),
        ),
        case(
            "20 KiB routing header on a model with override",
            fraud(&token).header(HEADER, &"m".repeat(20 * 1024)),
            Expect::bad_request(Some(FRAUD), "unknown_predictor"),
        ),
        case(
            "20 KiB routing header on a model without override",
            Request::predict(IRIS).header(IRIS_HEADER, &"a".repeat(20 * 1024)),
            Expect::reached(IRIS),
        ),
        case(
            "50 KiB of another header with a valid token",
            fraud(&token).header("x-junk", &"j".repeat(50 * 1024)),
            Expect::reached(FRAUD),
        ),
    ];
    let mut many = fraud(&token);
    for i in 0..80 {
        many = many.header(&format!("x-junk-{i}"), "j");
    }
    cases.push(case("80 extra headers", many, Expect::reached(FRAUD)));
    let mut too_many = Request::predict(FRAUD);
    for i in 0..150 {
        too_many = too_many.header(&format!("x-junk-{i}"), "j");
    }
    cases.push(case(
        "150 extra headers: over Envoy's header count",
        too_many,
        Expect::Envoy { status: 431 },
    ));

    let malformed = || Expect::invalid_token(FRAUD, "malformed_token");
    // Each spelling applied to one segment; header and payload are signed again as
    // spelled, so only the decoding can tell.
    let spellings: [(&str, Spelling); 3] = [
        ("padded with =", |s| format!("{s}==")),
        ("in the standard base64 alphabet", |s| {
            s.replace('-', "+").replace('_', "/") + "+/"
        }),
        ("with a space inside", |s| {
            format!("{} {}", &s[..4], &s[4..])
        }),
    ];
    let rsa = TestKey::rsa_a();
    let parts: Vec<&str> = token.split('.').collect();
    for (what, spell) in spellings {
        cases.push(case(
            format!("header {what}, signed as spelled"),
            fraud(&rsa.sign_segments(&spell(parts[0]), parts[1])),
            malformed(),
        ));
        cases.push(case(
            format!("payload {what}, signed as spelled"),
            fraud(&rsa.sign_segments(parts[0], &spell(parts[1]))),
            malformed(),
        ));
        cases.push(case(
            format!("signature {what}"),
            fraud(&format!("{}.{}.{}", parts[0], parts[1], spell(parts[2]))),
            malformed(),
        ));
    }
    // 256 signature bytes end in a two-character group whose last character carries two
    // bits of the byte and four unused ones: setting the lowest gives another spelling of
    // the same bytes, which strict base64url refuses.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = alphabet
        .iter()
        .position(|c| token.ends_with(char::from(*c)))
        .unwrap_or_default();
    assert_eq!(
        last % 16,
        0,
        "a canonical last character has no unused bit set"
    );
    let sibling = char::from(alphabet[last ^ 1]);
    cases.push(case(
        "signature with its unused trailing bits set",
        fraud(&format!("{}{sibling}", &token[..token.len() - 1])),
        malformed(),
    ));
    cases.push(case(
        "dots percent-encoded",
        fraud(&token.replace('.', "%2E")),
        malformed(),
    ));
    let extra_segments = [
        ("a trailing dot", format!("{token}.")),
        ("a fourth segment", format!("{token}.e30")),
        (
            "the token twice, joined by a dot",
            format!("{token}.{token}"),
        ),
        ("a leading dot", format!(".{token}")),
        ("five segments (JWE shape)", format!("{token}.e30.e30")),
        ("only dots", "..".to_string()),
    ];
    for (what, bad) in extra_segments {
        cases.push(case(what, fraud(&bad), malformed()));
    }
    let bob = sample::fraud_token("bob");
    let bob_parts: Vec<&str> = bob.split('.').collect();
    let spliced = [
        (
            "signature segment empty",
            format!("{}.{}.", parts[0], parts[1]),
        ),
        (
            "another token's payload under this signature",
            format!("{}.{}.{}", parts[0], bob_parts[1], parts[2]),
        ),
    ];
    // An empty payload has no `exp`: refused as malformed when the times are read, before
    // any signature check.
    cases.push(case(
        "payload segment empty",
        fraud(&format!("{}..{}", parts[0], parts[2])),
        malformed(),
    ));
    for (what, bad) in spliced {
        cases.push(case(
            what,
            fraud(&bad),
            Expect::invalid_token(FRAUD, "bad_signature"),
        ));
    }
    assert_table(&gw, "sizes and encodings", &cases);
}
