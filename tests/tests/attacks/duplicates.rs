//! Duplicate member names in a token's header or payload: one signed token must have one
//! reading.

use modelgate_e2e::Request;
use modelgate_e2e::corpus::{Case, Expect, assert_table, case};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, ISSUER};
use modelgate_testkit::TestKey;

use crate::forgery::{fraud, good_payload};

/// Duplicate member names (SECURITY.md: duplicate keys in the token header, or in its
/// payload at any depth, are `401 malformed_token` even under a valid signature). RFC 7519
/// section 4 would also let a parser take the last one; the filter refuses, because the
/// model behind it may read the first: two readings of one signed token are two identities.
#[test]
fn duplicate_member_names_are_refused() {
    let gw = sample::start("attacks-duplicates");
    let rsa = TestKey::rsa_a();
    let now = modelgate_testkit::now();
    let good_header = r#"{"alg":"RS256","typ":"JWT","kid":"rsa-a"}"#;
    let malformed = || Expect::invalid_token(FRAUD, "malformed_token");

    let headers = [
        (
            "alg none then RS256",
            r#"{"alg":"none","alg":"RS256","kid":"rsa-a"}"#,
        ),
        (
            "alg RS256 then none",
            r#"{"alg":"RS256","alg":"none","kid":"rsa-a"}"#,
        ),
        (
            "alg HS256 then RS256",
            r#"{"alg":"HS256","alg":"RS256","kid":"rsa-a"}"#,
        ),
        (
            "alg RS256 twice",
            r#"{"alg":"RS256","alg":"RS256","kid":"rsa-a"}"#,
        ),
        (
            "kid unknown then rsa-a",
            r#"{"alg":"RS256","kid":"nope","kid":"rsa-a"}"#,
        ),
        (
            "kid rsa-a then unknown",
            r#"{"alg":"RS256","kid":"rsa-a","kid":"nope"}"#,
        ),
        (
            "kid rsa-a twice",
            r#"{"alg":"RS256","kid":"rsa-a","kid":"rsa-a"}"#,
        ),
        (
            "typ twice",
            r#"{"alg":"RS256","typ":"JWT","typ":"JWT","kid":"rsa-a"}"#,
        ),
        (
            "crit then no crit",
            r#"{"alg":"RS256","kid":"rsa-a","crit":["exp"],"crit":null}"#,
        ),
    ];
    let payload = good_payload();
    let mut cases: Vec<Case> = vec![case(
        "control: the raw header signed by rsa-a",
        fraud(&rsa.sign_raw(good_header, &payload)),
        Expect::reached(FRAUD),
    )];
    for (what, header) in headers {
        cases.push(case(
            format!("header: {what}"),
            fraud(&rsa.sign_raw(header, &payload)),
            malformed(),
        ));
    }

    // The payload's members, written out so a name can repeat.
    let (exp, old, future) = (now + 3600, now - 3600, now + 7200);
    let aud = r#"["fraud-api","reporting"]"#;
    let groups = r#"["fraud-team"]"#;
    let payload_with = |middle: &str| format!(r#"{{"sub":"mallory","iat":{now},{middle}}}"#,);
    let base = |iss: &str, aud: &str, exp: u64, groups: &str| {
        format!(r#""iss":"{iss}","aud":{aud},"exp":{exp},"groups":{groups}"#)
    };
    let valid = base(ISSUER, aud, exp, groups);
    let other_issuer = "https://127.0.0.1/realms/other";
    let registered: Vec<(&str, String)> = vec![
        (
            "iss wrong then right",
            format!(r#""iss":"{other_issuer}",{valid}"#),
        ),
        (
            "iss right then wrong",
            format!(r#"{valid},"iss":"{other_issuer}""#),
        ),
        (
            "aud wrong then right",
            format!(r#""aud":"billing",{valid}"#),
        ),
        (
            "aud right then wrong",
            format!(r#"{valid},"aud":"billing""#),
        ),
        ("exp past then future", format!(r#""exp":{old},{valid}"#)),
        ("exp future then past", format!(r#"{valid},"exp":{old}"#)),
        ("exp twice the same", format!(r#"{valid},"exp":{exp}"#)),
        (
            "nbf future then past",
            format!(r#""nbf":{future},"nbf":{old},{valid}"#),
        ),
        ("sub twice", format!(r#""sub":"admin",{valid}"#)),
    ];
    for (what, members) in registered {
        cases.push(case(
            format!("payload: {what}"),
            fraud(&rsa.sign_raw(good_header, &payload_with(&members))),
            malformed(),
        ));
    }

    // `groups` is the policy's required claim: whichever copy a reader takes, the token is
    // refused, also when both copies agree.
    let without_groups = format!(r#""iss":"{ISSUER}","aud":{aud},"exp":{exp}"#);
    let required: Vec<(&str, String)> = vec![
        (
            "groups marketing then fraud-team",
            format!(r#"{without_groups},"groups":["marketing"],"groups":["fraud-team"]"#),
        ),
        (
            "groups fraud-team then marketing",
            format!(r#"{without_groups},"groups":["fraud-team"],"groups":["marketing"]"#),
        ),
        (
            "groups string then array",
            format!(r#"{without_groups},"groups":"marketing","groups":["fraud-admins"]"#),
        ),
        (
            "groups fraud-team twice",
            format!(r#"{without_groups},"groups":["fraud-team"],"groups":["fraud-team"]"#),
        ),
        (
            "a member repeated inside a nested object",
            format!(r#"{valid},"realm_access":{{"roles":["guest"],"roles":["admin"]}}"#),
        ),
        (
            "a member repeated in an object inside an array",
            format!(r#"{valid},"acr":[{{"level":1,"level":2}}]"#),
        ),
    ];
    for (what, members) in required {
        cases.push(case(
            format!("payload: {what}"),
            fraud(&rsa.sign_raw(good_header, &payload_with(&members))),
            malformed(),
        ));
    }
    // credit/scorer requires `realm_access.roles`, a nested claim, and forwards it.
    let now_claims = format!(
        r#""iss":"{}","sub":"partner-1","aud":"{}","iat":{now},"exp":{exp}"#,
        sample::PARTNER_ISSUER,
        sample::CREDIT_AUDIENCE
    );
    let nested = [
        (
            "nested required claim viewer then scorer",
            r#""realm_access":{"roles":["viewer"],"roles":["scorer"]}"#,
        ),
        (
            "nested required claim scorer then viewer",
            r#""realm_access":{"roles":["scorer"],"roles":["viewer"]}"#,
        ),
        (
            "the nested claim's parent twice",
            r#""realm_access":{"roles":["viewer"]},"realm_access":{"roles":["scorer"]}"#,
        ),
    ];
    let ed = TestKey::ed();
    let ed_header = r#"{"alg":"EdDSA","typ":"JWT","kid":"ed-1"}"#;
    cases.push(case(
        "control: credit/scorer raw payload signed by ed-1",
        Request::predict(CREDIT).bearer(&ed.sign_raw(
            ed_header,
            &format!(r#"{{{now_claims},"realm_access":{{"roles":["scorer"]}}}}"#),
        )),
        Expect::reached(CREDIT),
    ));
    for (what, members) in nested {
        cases.push(case(
            format!("payload: {what}"),
            Request::predict(CREDIT)
                .bearer(&ed.sign_raw(ed_header, &format!("{{{now_claims},{members}}}"))),
            Expect::invalid_token(CREDIT, "malformed_token"),
        ));
    }
    assert_table(&gw, "duplicate member names", &cases);
}
