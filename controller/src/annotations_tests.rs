//! One test per annotation: good values, each kind of bad value with its message, and the
//! precedence of `spec.annotations` over `metadata.annotations` over settings; and that
//! the docs name only annotations of [`ANNOTATIONS`].

use super::*;

const RSA_JWK: &str = r#"{"kty":"RSA","kid":"a","alg":"RS256","n":"u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw","e":"AQAB"}"#;

/// `models/iris` with predictors `a` (80) and `b` (20) and these annotations.
fn sdep(spec: &[(&str, &str)], metadata: &[(&str, &str)]) -> SeldonDeployment {
    let s = SeldonDeployment::fixture("models", "iris")
        .predictor("a", 80)
        .predictor("b", 20);
    let s = spec.iter().fold(s, |s, (k, v)| s.annotate(k, v));
    metadata
        .iter()
        .fold(s, |s, (k, v)| s.annotate_metadata(k, v))
}

fn settings() -> Settings {
    Settings {
        default_issuer: Some("https://default-issuer".into()),
        default_jwks_uri: Some("https://default-issuer/jwks".into()),
        ..Settings::default()
    }
}

fn ok(annotations: &[(&str, &str)]) -> ModelOptions {
    let parsed = parse(&sdep(annotations, &[]), &settings());
    parsed
        .options
        .unwrap_or_else(|e| panic!("{annotations:?}: {e:?}"))
}

fn jwt(annotations: &[(&str, &str)]) -> (JwtPolicy, KeySource) {
    match ok(annotations).policy {
        PolicySpec::Jwt(p, k) => (std::sync::Arc::unwrap_or_clone(p), k),
        other => panic!("not jwt: {other:?}"),
    }
}

/// The error messages of a bad value, each checked to name the object and annotation.
fn errors(annotations: &[(&str, &str)]) -> Vec<String> {
    let parsed = parse(&sdep(annotations, &[]), &settings());
    let errors = parsed.options.expect_err("should fail");
    errors
        .iter()
        .map(|e| {
            let text = e.to_string();
            assert!(text.starts_with("SeldonDeployment models/iris: "), "{text}");
            text
        })
        .collect()
}

fn fails(annotation: &str, value: &str, expected: &str) {
    let errors = errors(&[(annotation, value)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let want = format!("spec.annotations {annotation}={value:?}: ");
    assert!(errors[0].contains(&want), "{} lacks {want}", errors[0]);
    assert!(
        errors[0].contains(expected),
        "{} lacks {expected}",
        errors[0]
    );
}

#[test]
fn gateway() {
    assert_eq!(ok(&[]).gateway.to_string(), "istio-system/seldon-gateway");
    assert_eq!(
        ok(&[(ISTIO_GATEWAY, "gw")]).gateway.to_string(),
        "models/gw"
    );
    assert_eq!(
        ok(&[(ISTIO_GATEWAY, "edge/gw")]).gateway.to_string(),
        "edge/gw"
    );
    assert_eq!(
        ok(&[(ISTIO_GATEWAY, "mesh"), (AUTH, "none")]).gateway,
        GatewayRef::Mesh
    );
    // In-mesh traffic never passes the ingress filter: a JWT model there would be open.
    fails(ISTIO_GATEWAY, "mesh", "seldon.io/auth is jwt");
    for bad in ["", "a/b/c", "Edge/gw", "/gw", "gw/"] {
        fails(
            ISTIO_GATEWAY,
            bad,
            "expected [<namespace>/]<gateway name> or mesh",
        );
    }
}

#[test]
fn retries_and_their_timeout() {
    assert_eq!(ok(&[]).retries, None);
    assert_eq!(ok(&[(ISTIO_RETRIES, "")]).retries, None);
    assert_eq!(
        ok(&[(ISTIO_RETRIES, "3")]).retries,
        Some(Retries {
            attempts: 3,
            per_try_timeout_secs: 1
        })
    );
    assert_eq!(
        ok(&[(ISTIO_RETRIES, "0")]).retries,
        Some(Retries {
            attempts: 0,
            per_try_timeout_secs: 1
        })
    );
    assert_eq!(
        ok(&[(ISTIO_RETRIES, "2"), (ISTIO_RETRIES_TIMEOUT, "5")]).retries,
        Some(Retries {
            attempts: 2,
            per_try_timeout_secs: 5
        })
    );
    for bad in ["-1", "three", "1.5"] {
        fails(ISTIO_RETRIES, bad, "expected a number of retry attempts");
    }
    for bad in ["0", "1s", "-2", ""] {
        let errors = errors(&[(ISTIO_RETRIES, "1"), (ISTIO_RETRIES_TIMEOUT, bad)]);
        assert!(
            errors[0].contains("expected a whole number of seconds, 1 or more"),
            "{errors:?}"
        );
    }
    let parsed = parse(&sdep(&[(ISTIO_RETRIES_TIMEOUT, "3")], &[]), &settings());
    assert!(
        parsed.warnings[0].to_string().contains("applies only when"),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn host() {
    assert_eq!(ok(&[]).hosts, ["*"]);
    assert_eq!(ok(&[(ISTIO_HOST, "seldon.io")]).hosts, ["seldon.io"]);
    assert_eq!(
        ok(&[(ISTIO_HOST, " a.example.com , *.b.example.com ")]).hosts,
        ["a.example.com", "*.b.example.com"]
    );
    fails(ISTIO_HOST, "a.example.com,,b", "without empty items");
    fails(ISTIO_HOST, "", "without empty items");
    fails(ISTIO_HOST, "bad host", "is not a host");
}

#[test]
fn auth() {
    assert!(matches!(ok(&[]).policy, PolicySpec::Jwt(..)));
    assert_eq!(ok(&[(AUTH, "none")]).policy, PolicySpec::None);
    fails(AUTH, "JWT", "expected jwt or none");
    fails(AUTH, "", "expected jwt or none");
    let none_by_default = Settings {
        default_auth: AuthKind::None,
        ..settings()
    };
    let parsed = parse(&sdep(&[], &[]), &none_by_default);
    assert_eq!(parsed.options.unwrap().policy, PolicySpec::None);
    let parsed = parse(
        &sdep(&[(AUTH, "none"), (JWT_ISSUER, "x")], &[]),
        &settings(),
    );
    assert!(
        parsed.warnings[0]
            .to_string()
            .contains("ignored: seldon.io/auth is none")
    );
}

#[test]
fn issuer() {
    assert_eq!(jwt(&[]).0.issuer, "https://default-issuer");
    assert_eq!(
        jwt(&[(JWT_ISSUER, "https://other")]).0.issuer,
        "https://other"
    );
    fails(JWT_ISSUER, " ", "not empty");
    let no_default = Settings {
        default_issuer: None,
        ..settings()
    };
    let err = parse(&sdep(&[], &[]), &no_default).options.unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("set the annotation or the controller's defaultIssuer"),
        "{err:?}"
    );
}

#[test]
fn audiences() {
    assert!(jwt(&[]).0.audiences.is_empty());
    assert_eq!(jwt(&[(JWT_AUDIENCES, "a, b")]).0.audiences, ["a", "b"]);
    fails(JWT_AUDIENCES, "a,", "without empty items");
}

#[test]
fn jwks_uri_and_inline_jwks() {
    assert_eq!(
        jwt(&[]).1,
        KeySource::Uri("https://default-issuer/jwks".into())
    );
    assert_eq!(
        jwt(&[(JWT_JWKS_URI, "https://idp.example.com:8443/certs")]).1,
        KeySource::Uri("https://idp.example.com:8443/certs".into())
    );
    // Plain http and internal targets are refused by default (see tenancy.rs).
    fails(
        JWT_JWKS_URI,
        "http://keycloak.auth:8080/certs",
        "jwks.allowHttp",
    );
    for bad in ["ftp://x/jwks", "not a url", "https://"] {
        fails(JWT_JWKS_URI, bad, "expected an http:// or https:// URL");
    }
    let inline = format!(r#"{{"keys":[{RSA_JWK}]}}"#);
    match jwt(&[(JWT_JWKS, &inline)]).1 {
        KeySource::Inline(set) => assert_eq!(set.keys.len(), 1),
        other => panic!("{other:?}"),
    }
    fails(JWT_JWKS, "{", "expected a JWKS JSON document");
    fails(
        JWT_JWKS,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
        "expected a JWKS with a usable signing key",
    );
    let both = errors(&[(JWT_JWKS, &inline), (JWT_JWKS_URI, "https://x/jwks")]);
    assert!(
        both[0].contains("set either seldon.io/jwt-jwks or seldon.io/jwt-jwks-uri, not both"),
        "{both:?}"
    );
}

#[test]
fn claims() {
    let (p, _) = jwt(&[(
        JWT_CLAIMS,
        r#"{"groups": ["ml", "ops"], "realm_access.roles": ["x"]}"#,
    )]);
    assert_eq!(p.claims["groups"], ["ml", "ops"]);
    assert_eq!(p.claims["realm_access.roles"], ["x"]);
    fails(
        JWT_CLAIMS,
        "groups=ml",
        "expected a JSON object of claim names",
    );
    fails(
        JWT_CLAIMS,
        r#"{"groups": "ml"}"#,
        "groups is \"ml\", not a list",
    );
    fails(JWT_CLAIMS, r#"{"groups": []}"#, "groups lists no value");
    fails(
        JWT_CLAIMS,
        r#"{"groups": [1]}"#,
        "groups lists 1, not a string",
    );
    fails(JWT_CLAIMS, r#"{"a..b": ["x"]}"#, "is not a claim name");
}

#[test]
fn token_from() {
    assert!(jwt(&[]).0.token_from.is_empty());
    assert_eq!(
        jwt(&[(JWT_FROM, "header:x-token, query:access_token")])
            .0
            .token_from,
        ["header:x-token", "query:access_token"]
    );
    fails(
        JWT_FROM,
        "cookie:x",
        "expected header:<name> or query:<param> items",
    );
    fails(JWT_FROM, "header:a,header:a", "listed twice");
    fails(JWT_FROM, "header:a,", "without empty items");
}

#[test]
fn forward_claims() {
    let (p, _) = jwt(&[(
        JWT_FORWARD_CLAIMS,
        "sub:X-User, https://example.com/team:x-team",
    )]);
    assert_eq!(p.forward_claims["sub"], "x-user");
    assert_eq!(p.forward_claims["https://example.com/team"], "x-team");
    fails(JWT_FORWARD_CLAIMS, "sub", "has no ':'");
    fails(JWT_FORWARD_CLAIMS, "sub:bad header", "is not a header name");
    fails(
        JWT_FORWARD_CLAIMS,
        "sub:x-a,email:x-a",
        "header x-a is used twice",
    );
    fails(
        JWT_FORWARD_CLAIMS,
        "sub:x-a,sub:x-b",
        "claim sub is listed twice",
    );
}

#[test]
fn forward_token() {
    assert!(jwt(&[]).0.forward_token);
    assert!(!jwt(&[(JWT_FORWARD_TOKEN, "false")]).0.forward_token);
    assert!(jwt(&[(JWT_FORWARD_TOKEN, "true")]).0.forward_token);
    fails(JWT_FORWARD_TOKEN, "no", "expected true or false");
}

#[test]
fn auth_mode() {
    assert_eq!(jwt(&[]).0.mode, AuthMode::Enforce);
    assert_eq!(jwt(&[(AUTH_MODE, "audit")]).0.mode, AuthMode::Audit);
    assert_eq!(jwt(&[(AUTH_MODE, "enforce")]).0.mode, AuthMode::Enforce);
    fails(AUTH_MODE, "permissive", "expected enforce or audit");
}

#[test]
fn ab_header_override_and_sticky() {
    let r = ok(&[]).routing;
    assert_eq!(r.header, "x-seldon-predictor");
    assert!(r.override_allowed);
    assert_eq!(r.sticky, None);
    let r = ok(&[
        (AB_HEADER, "X-Variant"),
        (AB_OVERRIDE, "false"),
        (AB_STICKY, "claim:sub"),
    ])
    .routing;
    assert_eq!(r.header, "x-variant");
    assert!(!r.override_allowed);
    assert_eq!(r.sticky.as_deref(), Some("claim:sub"));
    assert_eq!(
        ok(&[(AB_STICKY, "cookie:session")])
            .routing
            .sticky
            .as_deref(),
        Some("cookie:session")
    );
    fails(AB_HEADER, "x variant", "expected an HTTP header name");
    fails(
        AB_HEADER,
        "Authorization",
        "authorization is a header that carries credentials",
    );
    fails(AB_OVERRIDE, "yes", "expected true or false");
    fails(AB_STICKY, "user", "is not a sticky key");
}

#[test]
fn spec_annotations_win_over_metadata_even_when_empty() {
    let s = sdep(&[(ISTIO_GATEWAY, "spec-gw")], &[(ISTIO_GATEWAY, "meta-gw")]);
    assert_eq!(
        parse(&s, &settings()).options.unwrap().gateway.to_string(),
        "models/spec-gw"
    );
    let s = sdep(&[], &[(ISTIO_GATEWAY, "meta-gw")]);
    assert_eq!(
        parse(&s, &settings()).options.unwrap().gateway.to_string(),
        "models/meta-gw"
    );
    // An empty spec value is used, not skipped: no retries although metadata asks for 3.
    let s = sdep(&[(ISTIO_RETRIES, "")], &[(ISTIO_RETRIES, "3")]);
    assert_eq!(parse(&s, &settings()).options.unwrap().retries, None);
    // An empty spec issuer is an error even though metadata has a good one.
    let s = sdep(&[(JWT_ISSUER, "")], &[(JWT_ISSUER, "https://meta")]);
    let err = parse(&s, &settings()).options.unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("spec.annotations seldon.io/jwt-issuer=\"\""),
        "{err:?}"
    );
    // Errors say where the bad value is.
    let s = sdep(&[], &[(AUTH, "maybe")]);
    let err = parse(&s, &settings()).options.unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("metadata.annotations seldon.io/auth=\"maybe\""),
        "{err:?}"
    );
}

#[test]
fn every_bad_annotation_is_reported_not_only_the_first() {
    let errors = errors(&[(AUTH_MODE, "x"), (AB_OVERRIDE, "x"), (ISTIO_RETRIES, "x")]);
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn typos_of_our_annotations_are_warned_about() {
    let s = sdep(
        &[
            ("seldon.io/jwt-isuer", "x"),
            ("seldon.io/ab-stiky", "header:x"),
        ],
        &[("seldon.io/jwt-extra", "y")],
    );
    let parsed = parse(&s, &settings());
    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.contains(
            "seldon.io/jwt-isuer: unknown annotation: did you mean seldon.io/jwt-issuer?"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("did you mean seldon.io/ab-sticky?")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("seldon.io/jwt-extra: unknown annotation")),
        "{warnings:?}"
    );
    // Seldon's own annotations are not ours to warn about.
    let s = sdep(
        &[
            ("seldon.io/engine-separate-pod", "true"),
            ("seldon.io/ambassador-retries", "3"),
        ],
        &[],
    );
    assert!(parse(&s, &settings()).warnings.is_empty());
}

#[test]
fn the_table_names_each_annotation_once() {
    for (i, a) in ANNOTATIONS.iter().enumerate() {
        assert!(a.name.starts_with("seldon.io/"), "{a:?}");
        assert!(ANNOTATIONS[..i].iter().all(|b| b.name != a.name), "{a:?}");
    }
}

/// The documentation names only annotations the controller reads, so a renamed or removed
/// one cannot linger there.
#[test]
fn the_docs_name_only_annotations_of_the_table() {
    // Named in the docs on purpose: Seldon's predictor annotation, and the README's
    // example of a misspelt annotation.
    const OTHERS: [&str; 2] = [crate::seldon::SVC_NAME_ANNOTATION, "seldon.io/jwt-isuer"];
    let docs = [
        ("README.md", include_str!("../../README.md")),
        ("deploy/README.md", include_str!("../../deploy/README.md")),
        ("SECURITY.md", include_str!("../../SECURITY.md")),
        ("filter/README.md", include_str!("../../filter/README.md")),
        ("BENCHMARKS.md", include_str!("../../BENCHMARKS.md")),
    ];
    for (path, text) in docs {
        for (at, _) in text.match_indices("seldon.io/") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-'))
                .collect();
            let name = name.trim_end_matches(['.', '-']);
            assert!(
                ANNOTATIONS.iter().any(|a| a.name == name) || OTHERS.contains(&name),
                "{path} names {name}, which is not in ANNOTATIONS"
            );
        }
    }
}

#[test]
fn spec_problems_are_reported_before_the_annotations() {
    let mut s = sdep(&[(AUTH_MODE, "x")], &[]);
    s.spec.predictors[1].name = "a".into();
    let errors = parse(&s, &settings()).options.unwrap_err();
    let subjects: Vec<&str> = errors.iter().map(ModelError::subject).collect();
    assert_eq!(subjects, ["spec.predictors[1].name", AUTH_MODE]);
}
