//! What the filter needs to know about a request, and the classification that does not
//! depend on any policy: which model it addresses, whether it is the Prometheus exemption
//! or a CORS preflight.
//!
//! Model addressing deliberately over-matches (empty segments skipped, unreserved
//! percent-escapes decoded, case folded): a request that might reach a model is checked
//! against that model's policy, and over-matching can only cost an extra `401`.

use std::borrow::Cow;

use crate::http::normalise_segment;

/// A request as seen by the filter: the pseudo-headers it needs and all headers, with
/// lowercase names and every repeated header as its own entry (Envoy's header map).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, query string included.
    pub path: &'a str,
    /// Every header, in order.
    pub headers: &'a [(String, String)],
}

impl<'a> Request<'a> {
    /// Every value of a header (names compared without regard to case).
    pub fn header_values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header.
    pub fn header(&self, name: &'a str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &'a str {
        self.path.split_once('?').map_or(self.path, |(p, _)| p)
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    /// An `OPTIONS` CORS preflight (with `Origin` and `Access-Control-Request-Method`).
    pub fn is_cors_preflight(&self) -> bool {
        self.method == "OPTIONS"
            && self.header("origin").is_some()
            && self.header("access-control-request-method").is_some()
    }
}

/// A `(namespace, name)` pair a request names, normalised for lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelName<'a> {
    /// The namespace.
    pub namespace: Cow<'a, str>,
    /// The SeldonDeployment's name.
    pub name: Cow<'a, str>,
}

/// Why a request's model cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressError {
    /// The path and the gRPC headers name different models, or a header is repeated.
    Ambiguous,
}

/// The model a REST path names: `/seldon/<ns>/<name>/...`.
pub(crate) fn model_from_path(path: &str) -> Option<ModelName<'_>> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let mut segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(normalise_segment);
    if segments.next()? != "seldon" {
        return None;
    }
    let namespace = segments.next()?;
    let name = segments.next()?;
    Some(ModelName { namespace, name })
}

/// The model Seldon's gRPC headers name (`seldon: <name>`, `namespace: <ns>`). A repeated
/// header is ambiguous.
///
/// The content type is deliberately not required: Seldon's gRPC routes match the path and
/// these headers only, so a request with any content type can be delivered by them, and
/// what the routes deliver the filter must guard.
pub(crate) fn model_from_grpc_headers<'a>(
    request: &Request<'a>,
) -> Result<Option<ModelName<'a>>, AddressError> {
    let name = single_value(request, "seldon")?;
    let namespace = single_value(request, "namespace")?;
    Ok(match (namespace, name) {
        (Some(namespace), Some(name)) => Some(ModelName {
            namespace: normalise_segment(namespace.trim()),
            name: normalise_segment(name.trim()),
        }),
        _ => None,
    })
}

/// Where a request's model name was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressedBy {
    /// `/seldon/<ns>/<name>/...` (also when the gRPC headers name the same model).
    Path,
    /// Seldon's gRPC headers `seldon` and `namespace`.
    GrpcHeaders,
}

/// The one model a request addresses by path or gRPC headers, if any, and which of them
/// named it.
pub(crate) fn addressed_model<'a>(
    request: &Request<'a>,
) -> Result<Option<(ModelName<'a>, AddressedBy)>, AddressError> {
    let by_path = model_from_path(request.path);
    let by_headers = model_from_grpc_headers(request)?;
    match (by_path, by_headers) {
        (Some(a), Some(b)) if a != b => Err(AddressError::Ambiguous),
        (Some(a), _) => Ok(Some((a, AddressedBy::Path))),
        (None, b) => Ok(b.map(|b| (b, AddressedBy::GrpcHeaders))),
    }
}

fn single_value<'a>(request: &Request<'a>, name: &'a str) -> Result<Option<&'a str>, AddressError> {
    let mut values = request.header_values(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(AddressError::Ambiguous);
    }
    Ok(first)
}

/// Whether a `GET` path is exempt from authentication: exactly `/prometheus` or the model's
/// own `/seldon/<ns>/<name>/prometheus` (`model_id` is `<ns>/<name>`), query string aside.
/// Exact comparison is the whole point: dot-segments, `//`, escapes, case and suffix tricks
/// all fail it.
pub(crate) fn is_exempt(request: &Request<'_>, model_id: &str) -> bool {
    if request.method != "GET" {
        return false;
    }
    let path = request.path_only();
    path == "/prometheus"
        || path
            .strip_prefix("/seldon/")
            .and_then(|rest| rest.strip_prefix(model_id))
            == Some("/prometheus")
}

/// Requests for the core's unit tests, built from string literals.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Request;

    /// Owned header pairs for [`Request::test`].
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    impl<'a> Request<'a> {
        /// A request with these headers (see [`headers`]).
        pub(crate) fn test(
            method: &'a str,
            path: &'a str,
            headers: &'a [(String, String)],
        ) -> Self {
            Request {
                method,
                path,
                headers,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::headers;
    use super::*;

    fn named(ns: &str, name: &str) -> Option<ModelName<'static>> {
        Some(ModelName {
            namespace: Cow::Owned(ns.into()),
            name: Cow::Owned(name.into()),
        })
    }

    fn by_headers(ns: &str, name: &str) -> Option<(ModelName<'static>, AddressedBy)> {
        named(ns, name).map(|n| (n, AddressedBy::GrpcHeaders))
    }

    #[test]
    fn rest_paths_name_their_model() {
        assert_eq!(
            model_from_path("/seldon/ns/m/api/v1.0/predictions"),
            named("ns", "m")
        );
        assert_eq!(model_from_path("/seldon/ns/m/"), named("ns", "m"));
        assert_eq!(model_from_path("/seldon/ns/m"), named("ns", "m"));
        assert_eq!(model_from_path("/seldon/ns/m?x=1"), named("ns", "m"));
        assert_eq!(model_from_path("/seldon/ns"), None);
        assert_eq!(model_from_path("/other/ns/m/"), None);
        assert_eq!(model_from_path("/"), None);
        assert_eq!(model_from_path(""), None);
    }

    #[test]
    fn rest_addressing_over_matches_rather_than_miss_a_model() {
        assert_eq!(model_from_path("//seldon//ns/m/x"), named("ns", "m"));
        assert_eq!(model_from_path("/%73eldon/n%73/%6D/x"), named("ns", "m"));
        assert_eq!(model_from_path("/SELDON/NS/M/x"), named("ns", "m"));
        // Escapes of reserved characters are not decoded: they cannot form a model name.
        assert_eq!(model_from_path("/seldon/ns/m%2Fx/y"), named("ns", "m%2fx"));
        // Truncated escapes are kept as they are.
        assert_eq!(model_from_path("/seldon/ns/m%"), named("ns", "m%"));
        assert_eq!(model_from_path("/seldon/ns/m%4"), named("ns", "m%4"));
    }

    #[test]
    fn seldon_headers_name_a_model_whatever_the_content_type() {
        let grpc = headers(&[
            ("content-type", "application/grpc+proto"),
            ("seldon", "m"),
            ("namespace", "ns"),
        ]);
        let r = Request::test("POST", "/seldon.protos.Seldon/Predict", &grpc);
        assert_eq!(addressed_model(&r), Ok(by_headers("ns", "m")));

        // Whatever the content type: Seldon's gRPC routes do not look at it.
        for content_type in [None, Some("application/json"), Some("text/plain")] {
            let mut headers = headers(&[("seldon", "m"), ("namespace", "ns")]);
            if let Some(ct) = content_type {
                headers.push(("content-type".into(), ct.into()));
            }
            let r = Request::test("POST", "/seldon.protos.Seldon/Predict", &headers);
            assert_eq!(
                addressed_model(&r),
                Ok(by_headers("ns", "m")),
                "{content_type:?}"
            );
        }

        let no_ns = headers(&[("content-type", "application/grpc"), ("seldon", "m")]);
        let r = Request::test("POST", "/seldon.protos.Seldon/Predict", &no_ns);
        assert_eq!(addressed_model(&r), Ok(None));
    }

    #[test]
    fn conflicting_or_repeated_addressing_is_ambiguous() {
        let other = headers(&[
            ("content-type", "application/grpc"),
            ("seldon", "b"),
            ("namespace", "ns"),
        ]);
        let r = Request::test("POST", "/seldon/ns/a/api/v1.0/predictions", &other);
        assert_eq!(addressed_model(&r), Err(AddressError::Ambiguous));

        let same = headers(&[
            ("content-type", "application/grpc"),
            ("seldon", "a"),
            ("namespace", "ns"),
        ]);
        let r = Request::test("POST", "/seldon/ns/a/api/v1.0/predictions", &same);
        assert_eq!(
            addressed_model(&r),
            Ok(named("ns", "a").map(|n| (n, AddressedBy::Path)))
        );

        let twice = headers(&[
            ("content-type", "application/grpc"),
            ("seldon", "a"),
            ("seldon", "b"),
            ("namespace", "ns"),
        ]);
        let r = Request::test("POST", "/seldon.protos.Seldon/Predict", &twice);
        assert_eq!(addressed_model(&r), Err(AddressError::Ambiguous));
    }

    #[test]
    fn only_the_exact_prometheus_paths_are_exempt_and_only_for_get() {
        let own = "ns/m";
        let none: Vec<(String, String)> = vec![];
        for path in [
            "/prometheus",
            "/prometheus?name[]=x",
            "/seldon/ns/m/prometheus",
            "/seldon/ns/m/prometheus?a=b",
        ] {
            assert!(
                is_exempt(&Request::test("GET", path, &none), own),
                "{path} should be exempt"
            );
        }
        for method in ["HEAD", "POST", "PUT", "get", "OPTIONS"] {
            assert!(
                !is_exempt(&Request::test(method, "/prometheus", &none), own),
                "{method}"
            );
        }
        let not_exempt = [
            "/prometheus/",
            "/prometheus/x",
            "/PROMETHEUS",
            "/Prometheus",
            "//prometheus",
            "/./prometheus",
            "/x/../prometheus",
            "/prometheus/..",
            "/prometheus/../seldon/ns/m/api/v1.0/predictions",
            "/%70rometheus",
            "/prometheus%2f",
            "/prometheus%2F..%2Fx",
            "/%2e%2e/prometheus",
            "/prometheus%5c",
            "/prometheus\\",
            "\\prometheus",
            "/prometheus;x=y",
            "/prometheus.",
            "/prometheus%00",
            "/prometheus#x",
            "/seldon/ns/m/prometheus/",
            "/seldon/ns/m//prometheus",
            "/seldon/ns/m/./prometheus",
            "/seldon/ns/m/x/../prometheus",
            "/seldon/ns/other/prometheus",
            "/seldon/ns/mm/prometheus",
            "/seldon/ns/prometheus",
            "/seldon/ns/m",
            "/seldon/ns/m/",
            "/seldon/ns/m/api/prometheus",
            "/seldon/NS/m/prometheus",
            "/seldon/n%73/m/prometheus",
            "prometheus",
            "",
        ];
        for path in not_exempt {
            assert!(
                !is_exempt(&Request::test("GET", path, &none), own),
                "{path} must not be exempt"
            );
        }
    }

    #[test]
    fn preflight_needs_options_origin_and_requested_method() {
        let full = headers(&[
            ("origin", "https://app"),
            ("access-control-request-method", "POST"),
        ]);
        assert!(Request::test("OPTIONS", "/seldon/ns/m/x", &full).is_cors_preflight());
        assert!(!Request::test("POST", "/seldon/ns/m/x", &full).is_cors_preflight());
        let origin_only = headers(&[("origin", "https://app")]);
        assert!(!Request::test("OPTIONS", "/seldon/ns/m/x", &origin_only).is_cors_preflight());
    }
}
