//! Required claims (`seldon.io/jwt-claims`) and reading claims for stickiness and
//! forwarding.

use serde_json::{Map, Value};

/// A claim name, with its dotted path for nested claims (`realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    name: String,
    path: Vec<String>,
}

impl ClaimPath {
    /// Parses a claim name; empty names and empty path parts are refused.
    pub fn parse(name: &str) -> Result<Self, String> {
        let path: Vec<String> = name.split('.').map(str::to_string).collect();
        if name.is_empty() || path.iter().any(String::is_empty) {
            return Err(format!("{name:?} is not a claim name"));
        }
        Ok(Self {
            name: name.to_string(),
            path,
        })
    }

    /// The claim name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a string value of this claim is a space-separated list: only for the
    /// top-level `scope` (RFC 8693 4.2) and `scp` (its common spelling). Any other string,
    /// nested ones such as `realm_access.scope` included, is one value: a `sub` of
    /// `"mallory alice"` is not `alice`.
    pub(crate) fn is_scope_list(&self) -> bool {
        matches!(self.name.as_str(), "scope" | "scp")
    }

    /// The claim's value: a top-level claim of that exact name first (names such as
    /// `https://example.com/roles` hold dots), else the nested one.
    pub(crate) fn lookup<'c>(&self, claims: &'c Map<String, Value>) -> Option<&'c Value> {
        if let Some(value) = claims.get(&self.name) {
            return Some(value);
        }
        let (first, rest) = self.path.split_first()?;
        rest.iter().try_fold(claims.get(first)?, |value, part| {
            value.as_object()?.get(part)
        })
    }

    /// The claim as a header value or stickiness key: strings as they are, arrays joined
    /// with `,`, numbers and booleans as text. Objects and null give nothing.
    pub fn text(&self, claims: &Map<String, Value>) -> Option<String> {
        match self.lookup(claims)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(items) => {
                let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
                Some(parts.join(","))
            }
            _ => None,
        }
    }
}

/// The top-level claims a policy's decisions read, so the token cache keeps only those:
/// `exp` and `iss`, and for each claim a rule, a forwarded header or a sticky key reads,
/// both its whole name (a top-level claim may hold dots) and its first segment (where a
/// nested claim starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsUsed {
    /// Sorted, without repeats.
    names: Vec<String>,
}

impl Default for ClaimsUsed {
    fn default() -> Self {
        Self {
            names: vec!["exp".into(), "iss".into()],
        }
    }
}

impl ClaimsUsed {
    /// What a policy's required claims and forwarded claims read. Sticky keys belong to
    /// models, which may share a policy: [`ClaimsUsed::add`] each of them to the policy's.
    pub fn of_policy<'a>(
        rules: &'a [ClaimRule],
        forwarded: impl IntoIterator<Item = &'a ClaimPath>,
    ) -> Self {
        let mut used = Self::default();
        for claim in rules.iter().map(|r| &r.claim).chain(forwarded) {
            used.add(claim);
        }
        used
    }

    /// Keeps what `claim` reads, too.
    pub fn add(&mut self, claim: &ClaimPath) {
        for name in [claim.name.as_str(), claim.path[0].as_str()] {
            if let Err(at) = self.names.binary_search_by(|n| n.as_str().cmp(name)) {
                self.names.insert(at, name.to_string());
            }
        }
    }

    /// Whether a top-level claim is kept.
    pub fn contains(&self, name: &str) -> bool {
        self.names
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// A copy of the claims holding only the top-level claims kept.
    pub fn keep(&self, claims: &Map<String, Value>) -> Map<String, Value> {
        self.names
            .iter()
            .filter_map(|name| Some((name.clone(), claims.get(name)?.clone())))
            .collect()
    }
}

/// A required claim and the values it may hold.
#[derive(Debug, Clone)]
pub struct ClaimRule {
    /// The claim.
    pub claim: ClaimPath,
    /// Accepted values; the claim must hold at least one.
    pub values: Vec<String>,
}

impl ClaimRule {
    /// Whether the claims satisfy this rule. An array is a list of values; a string is one
    /// value, except for `scope` and `scp`, space-separated lists
    /// ([`ClaimPath::is_scope_list`]).
    pub(crate) fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(value) = self.claim.lookup(claims) else {
            return false;
        };
        let accepted = |candidate: &str| self.values.iter().any(|v| v == candidate);
        match value {
            Value::String(s) if self.claim.is_scope_list() => {
                s.split(' ').filter(|v| !v.is_empty()).any(accepted)
            }
            Value::String(s) => accepted(s),
            Value::Array(items) => items.iter().filter_map(scalar_text).any(|t| accepted(&t)),
            Value::Number(_) | Value::Bool(_) => scalar_text(value).is_some_and(|t| accepted(&t)),
            _ => false,
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn rule(name: &str, values: &[&str]) -> ClaimRule {
        ClaimRule {
            claim: ClaimPath::parse(name).unwrap(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn strings_arrays_and_scopes_hold_values() {
        let c = claims(json!({
            "group": "ml",
            "roles": ["reader", "writer"],
            "scope": "openid predict:run profile",
            "realm_access": {"roles": ["ml-user"]},
            "https://example.com/team": "fraud",
            "level": 3,
            "admin": true,
            "obj": {"a": 1}
        }));
        assert!(rule("group", &["ml"]).holds(&c));
        assert!(!rule("group", &["m"]).holds(&c));
        assert!(rule("roles", &["admin", "writer"]).holds(&c));
        assert!(!rule("roles", &["admin"]).holds(&c));
        assert!(rule("scope", &["predict:run"]).holds(&c));
        assert!(!rule("scope", &["predict"]).holds(&c));
        assert!(rule("realm_access.roles", &["ml-user"]).holds(&c));
        assert!(!rule("realm_access.roles", &["ml"]).holds(&c));
        assert!(rule("https://example.com/team", &["fraud"]).holds(&c));
        assert!(rule("level", &["3"]).holds(&c));
        assert!(rule("admin", &["true"]).holds(&c));
        assert!(!rule("obj", &["{\"a\":1}"]).holds(&c));
        assert!(!rule("missing", &["x"]).holds(&c));
        assert!(!rule("realm_access.missing", &["x"]).holds(&c));
        assert!(!rule("group.sub", &["x"]).holds(&c));
    }

    #[test]
    fn only_top_level_scope_and_scp_are_space_separated_lists() {
        let c = claims(json!({
            "sub": "mallory alice",
            "email": "a@example.com b@example.com",
            "groups": "marketing fraud-admins",
            "scope": "openid  predict:run",
            "scp": "predict:run\tadmin",
            "realm_access": {"scope": "predict:run other"},
            "a.scope": "predict:run other"
        }));
        assert!(!rule("sub", &["alice"]).holds(&c), "redteam F12");
        assert!(rule("sub", &["mallory alice"]).holds(&c));
        assert!(!rule("email", &["b@example.com"]).holds(&c));
        assert!(!rule("groups", &["fraud-admins"]).holds(&c));
        assert!(rule("scope", &["predict:run"]).holds(&c), "two spaces");
        assert!(!rule("scope", &[""]).holds(&c), "no empty scope");
        assert!(
            rule("scp", &["predict:run\tadmin"]).holds(&c),
            "RFC 8693: spaces only"
        );
        assert!(!rule("scp", &["admin"]).holds(&c));
        assert!(!rule("realm_access.scope", &["predict:run"]).holds(&c));
        assert!(rule("realm_access.scope", &["predict:run other"]).holds(&c));
        assert!(!rule("a.scope", &["predict:run"]).holds(&c));
    }

    #[test]
    fn the_claims_kept_are_those_the_policy_reads() {
        let path = |name: &str| ClaimPath::parse(name).unwrap();
        let rules = [rule("realm_access.roles", &["r"]), rule("scope", &["s"])];
        let forwarded = [path("https://example.com/team"), path("sub")];
        let mut used = ClaimsUsed::of_policy(&rules, &forwarded);
        used.add(&path("tenant"));
        used.add(&path("sub"));
        let c = claims(json!({
            "iss": "https://idp.example", "exp": 5, "aud": "models", "jti": "x",
            "sub": "u", "scope": "s", "tenant": "t", "padding": "x".repeat(1000),
            "realm_access": {"roles": ["r"], "other": 1},
            "https://example.com/team": "fraud", "https://example": "a first segment"
        }));
        let kept = used.keep(&c);
        let mut names: Vec<&str> = kept.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "exp",
                "https://example",
                "https://example.com/team",
                "iss",
                "realm_access",
                "scope",
                "sub",
                "tenant"
            ]
        );
        assert_eq!(
            kept["realm_access"], c["realm_access"],
            "whole, nested parts too"
        );
        // Every rule and every forwarded claim reads the same from what is kept.
        for rule in &rules {
            assert_eq!(rule.holds(&kept), rule.holds(&c));
        }
        for claim in &forwarded {
            assert_eq!(claim.text(&kept), claim.text(&c));
        }
        assert!(used.contains("tenant") && !used.contains("padding"));
        assert_eq!(ClaimsUsed::default().keep(&c).len(), 2, "exp and iss only");
    }

    #[test]
    fn claim_text_for_headers_and_keys() {
        let c = claims(json!({"sub": "u1", "roles": ["a", "b"], "n": 7, "o": {}}));
        assert_eq!(
            ClaimPath::parse("sub").unwrap().text(&c).as_deref(),
            Some("u1")
        );
        assert_eq!(
            ClaimPath::parse("roles").unwrap().text(&c).as_deref(),
            Some("a,b")
        );
        assert_eq!(
            ClaimPath::parse("n").unwrap().text(&c).as_deref(),
            Some("7")
        );
        assert_eq!(ClaimPath::parse("o").unwrap().text(&c), None);
        assert!(ClaimPath::parse("").is_err());
        assert!(ClaimPath::parse("a..b").is_err());
    }
}
