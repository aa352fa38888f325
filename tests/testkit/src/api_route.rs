//! Where a request to a Kubernetes API server goes, read from its URL: the one parser
//! behind both API server doubles, the controller tests' in-memory one
//! (`controller/tests/common/fake_api.rs`) and the benchmark's HTTP one
//! (`bench/src/api_double.rs`). What each double does with a route stays its own.

/// Where a request goes: `/api/v1/...` (the core group) or `/apis/<group>/<version>/...`,
/// then `[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The API group, `""` for the core group.
    pub group: String,
    /// `<group>/<version>`, or the version alone for the core group (`v1`): what a list of
    /// this resource says as its `apiVersion`.
    pub api_version: String,
    /// The resource's plural.
    pub plural: String,
    /// The subresource after a name (`status`, `scale`, ...), if any.
    pub subresource: Option<String>,
    /// The namespace, for a namespaced request.
    pub namespace: Option<String>,
    /// The object's name, for a request to one object.
    pub name: Option<String>,
}

impl Route {
    /// Reads a URL path; `None` when it is not a resource request (discovery of a group
    /// version included) or has more segments than a subresource's.
    pub fn parse(path: &str) -> Option<Route> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, api_version, rest) = match parts.as_slice() {
            ["apis", group, version, rest @ ..] => {
                (group.to_string(), format!("{group}/{version}"), rest)
            }
            ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [plural] => (plural.to_string(), None, None),
            [plural, name] => (plural.to_string(), Some(name.to_string()), None),
            [plural, name, sub] => (
                plural.to_string(),
                Some(name.to_string()),
                Some(sub.to_string()),
            ),
            _ => return None,
        };
        Some(Route {
            group,
            api_version,
            plural,
            subresource,
            namespace,
            name,
        })
    }

    /// The resource as RBAC names it: the plural, with `/<subresource>` if any.
    pub fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.plural),
            None => self.plural.clone(),
        }
    }
}

/// A query string's key or value percent-decoded (`+` is a space); a `%` not followed by
/// two hex digits stays as it is.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Option<(String, String, String, Option<&'static str>)> {
        let r = Route::parse(path)?;
        let name = r.name.clone().unwrap_or_default();
        let ns = r.namespace.clone().unwrap_or_default();
        Some((
            r.api_version.clone(),
            r.rbac_resource(),
            format!("{ns}/{name}"),
            r.subresource.is_some().then_some("sub"),
        ))
    }

    #[test]
    fn core_and_named_groups_namespaced_or_not_down_to_a_subresource() {
        let r =
            Route::parse("/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/gw").unwrap();
        assert_eq!(r.group, "gateway.networking.k8s.io");
        assert_eq!(r.api_version, "gateway.networking.k8s.io/v1");
        assert_eq!(r.plural, "gateways");
        assert_eq!(r.namespace.as_deref(), Some("a"));
        assert_eq!(r.name.as_deref(), Some("gw"));
        assert_eq!(r.subresource, None);

        let core = Route::parse("/api/v1/configmaps").unwrap();
        assert_eq!((core.group.as_str(), core.api_version.as_str()), ("", "v1"));
        assert_eq!((core.namespace, core.name), (None, None));

        assert_eq!(
            route("/apis/machinelearning.seldon.io/v1/namespaces/m/seldondeployments/x/status"),
            Some((
                "machinelearning.seldon.io/v1".into(),
                "seldondeployments/status".into(),
                "m/x".into(),
                Some("sub")
            ))
        );
        // `namespaces` alone is the cluster-scoped resource, a namespace's name its object.
        assert_eq!(
            route("/api/v1/namespaces/team"),
            Some(("v1".into(), "namespaces".into(), "/team".into(), None))
        );
        assert_eq!(
            route("/api/v1/namespaces"),
            Some(("v1".into(), "namespaces".into(), "/".into(), None))
        );
    }

    #[test]
    fn discovery_other_paths_and_too_many_segments_are_not_routes() {
        for path in [
            "/apis/extensions.istio.io/v1alpha1",
            "/api/v1",
            "/version",
            "/healthz",
            "/apis/g/v1/namespaces/a/things/x/status/more",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(decode("a%3Db%2Cc%21%3Dd"), "a=b,c!=d");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("app+in+%28a%29"), "app in (a)");
        assert_eq!(decode("%zz%é"), "%zz%é");
    }
}
