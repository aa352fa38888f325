//! Finding the one token a request carries, in the places its policy names
//! (`seldon.io/jwt-from`), as Envoy's jwt_authn `extractor` does; [`super::verifier`] then
//! checks it.

use std::borrow::Cow;

use crate::http::{is_header_name, query_values};
use crate::reason::DenyReason;
use crate::request::Request;

/// Where a token may be (`seldon.io/jwt-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header (lowercase name); a `Bearer ` prefix is stripped.
    Header(String),
    /// A query parameter.
    Query(String),
}

impl TokenSource {
    /// Parses `header:<name>` or `query:<param>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("header", name)) if is_header_name(name) => {
                Ok(TokenSource::Header(name.to_ascii_lowercase()))
            }
            Some(("query", param)) if !param.is_empty() && !param.contains(['&', '=', '#']) => {
                Ok(TokenSource::Query(param.to_string()))
            }
            _ => Err(format!(
                "{text:?} is not a token source: expected header:<name> or query:<param>"
            )),
        }
    }
}

/// Where the token was found, so it can be removed when it must not be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundToken<'t, 's> {
    /// The token text.
    pub token: Cow<'t, str>,
    /// The source it came from.
    pub source: &'s TokenSource,
}

/// The one token a request carries in the given places. More than one candidate is
/// `multiple_tokens`: ambiguity is never resolved in the caller's favour.
pub(crate) fn find_token<'t, 's: 't>(
    request: &Request<'t>,
    sources: &'s [TokenSource],
) -> Result<Option<FoundToken<'t, 's>>, DenyReason> {
    let mut found: Option<FoundToken<'t, 's>> = None;
    let mut put = |token: Cow<'t, str>, source: &'s TokenSource| {
        if found.is_some() {
            return Err(DenyReason::MultipleTokens);
        }
        found = Some(FoundToken { token, source });
        Ok(())
    };
    for source in sources {
        match source {
            TokenSource::Header(name) => {
                // Envoy joins repeated headers with commas (HTTP/1), and a JWS never holds
                // one: every comma-separated part is a candidate of its own.
                for value in request.header_values(name) {
                    for part in value
                        .split(',')
                        .filter(|p| !p.trim().is_empty() || !value.contains(','))
                    {
                        put(Cow::Borrowed(strip_bearer(part)), source)?;
                    }
                }
            }
            TokenSource::Query(param) => {
                for value in query_values(request.query().unwrap_or(""), param) {
                    put(value, source)?;
                }
            }
        }
    }
    Ok(found)
}

fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::headers;

    #[test]
    fn token_sources_parse() {
        assert_eq!(
            TokenSource::parse("header:Authorization"),
            Ok(TokenSource::Header("authorization".into()))
        );
        assert_eq!(
            TokenSource::parse("query:token"),
            Ok(TokenSource::Query("token".into()))
        );
        for bad in [
            "cookie:x",
            "header:",
            "header::path",
            "header:a b",
            "query:",
            "query:a&b",
            "x",
        ] {
            assert!(TokenSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_the_one_token_and_refuses_several() {
        let sources = vec![
            TokenSource::Header("authorization".into()),
            TokenSource::Query("access_token".into()),
        ];
        let one = headers(&[("authorization", "Bearer abc")]);
        let r = Request::test("GET", "/x", &one);
        assert_eq!(find_token(&r, &sources).unwrap().unwrap().token, "abc");

        let lower = headers(&[("authorization", "bearer   abc ")]);
        let r = Request::test("GET", "/x", &lower);
        assert_eq!(find_token(&r, &sources).unwrap().unwrap().token, "abc");

        let none: Vec<(String, String)> = vec![];
        let r = Request::test("GET", "/x?access_token=a%2Eb", &none);
        assert_eq!(find_token(&r, &sources).unwrap().unwrap().token, "a.b");
        let r = Request::test("GET", "/x?other=1", &none);
        assert_eq!(find_token(&r, &sources), Ok(None));

        let both = headers(&[("authorization", "Bearer abc")]);
        let r = Request::test("GET", "/x?access_token=abc", &both);
        assert_eq!(find_token(&r, &sources), Err(DenyReason::MultipleTokens));

        let twice = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        let r = Request::test("GET", "/x", &twice);
        assert_eq!(find_token(&r, &sources), Err(DenyReason::MultipleTokens));

        let r = Request::test("GET", "/x?access_token=a&access_token=a", &none);
        assert_eq!(find_token(&r, &sources), Err(DenyReason::MultipleTokens));
    }
}
