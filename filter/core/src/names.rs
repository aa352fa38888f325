//! Kubernetes name rules: the contract's model ids are `<namespace>/<name>` of a
//! SeldonDeployment, so the filter reads them by these rules, and the controller writes
//! every name of the objects it generates by them.

/// An RFC 1123 label: lowercase alphanumerics and `-`, at most 63, starting and ending
/// alphanumeric (namespaces, Services, subset names).
pub fn is_dns_label(text: &str) -> bool {
    text.len() <= 63 && is_label_shaped(text)
}

/// A Kubernetes object name (RFC 1123 subdomain as Kubernetes checks it): dot-separated
/// parts of lowercase alphanumerics and `-`, at most 253 in all (Kubernetes does not bound
/// each part to 63).
pub fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && text.split('.').all(is_label_shaped)
}

/// Lowercase alphanumerics and `-`, not empty, starting and ending alphanumeric.
fn is_label_shaped(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !part.starts_with('-')
        && !part.ends_with('-')
}

/// A model id of the contract, `<namespace>/<name>`: a namespace (DNS label) and a
/// SeldonDeployment's name (DNS subdomain), as Kubernetes admits them.
pub fn is_model_id(id: &str) -> bool {
    id.split_once('/')
        .is_some_and(|(ns, name)| is_dns_label(ns) && is_dns_subdomain(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label("A"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("seldon.io"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_dns_subdomain(&"a".repeat(70)));
    }

    #[test]
    fn model_ids() {
        assert!(is_model_id("prod/fraud"));
        assert!(is_model_id("prod/fraud.v2"));
        for bad in [
            "prod",
            "prod/",
            "/fraud",
            "Prod/fraud",
            "a.b/fraud",
            "prod/a..b",
            "prod/a.-b",
            "prod/-a",
            "prod/a/b",
        ] {
            assert!(!is_model_id(bad), "{bad}");
        }
    }
}
