//! The CEL rules of the CRDs (`x-kubernetes-validations`), evaluated on generated objects
//! the way the API server does before it stores them: each rule with `self` bound to the
//! value at the schema node that carries it. The `cel` crate has CEL's standard library;
//! the few functions of Kubernetes' URL library the vendored CRDs use (`isURL`, `url`,
//! `getScheme`) are defined here for absolute URLs and absolute paths, as Go's
//! `url.ParseRequestURI` takes them.

use std::sync::Arc;

use cel::extractors::This;
use cel::{Context, Program};
use serde_json::Value;

/// The scheme of an absolute URL (`http` of `http://x/`), if it has one.
fn scheme(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && !rest.is_empty()).then_some(scheme)
}

fn context() -> Context<'static, 'static> {
    let mut context = Context::default();
    context
        .add_function("isURL", |text: Arc<String>| {
            scheme(&text).is_some() || text.starts_with('/')
        })
        .expect("isURL is no standard function");
    context
        .add_function("url", |text: Arc<String>| text)
        .expect("url is no standard function");
    context
        .add_function("getScheme", |This(text): This<Arc<String>>| {
            scheme(&text).unwrap_or("").to_ascii_lowercase()
        })
        .expect("getScheme is no standard function");
    context
}

/// The CEL problems of an object under its CRD schema, `<who>: <path>: <message>`.
pub fn validate(who: &str, schema: &Value, object: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(who, schema, object, "", &mut problems);
    problems
}

/// How many rules a schema holds (so a test can tell rules are there to check).
pub fn rule_count(schema: &Value) -> usize {
    let own = schema["x-kubernetes-validations"]
        .as_array()
        .map_or(0, Vec::len);
    let children: usize = ["properties"]
        .iter()
        .filter_map(|k| schema[*k].as_object())
        .flat_map(|props| props.values())
        .chain(
            ["items", "additionalProperties"]
                .iter()
                .map(|k| &schema[*k])
                .filter(|s| s.is_object()),
        )
        .map(rule_count)
        .sum();
    own + children
}

fn walk(who: &str, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let source = rule["rule"].as_str().expect("a CEL rule is a string");
        let message = rule["message"].as_str().unwrap_or(source);
        let program = Program::compile(source)
            .unwrap_or_else(|e| panic!("{who}: {path}: the CRD's rule {source:?}: {e}"));
        let mut context = context();
        context
            .add_variable("self", value.clone())
            .expect("JSON converts to CEL values");
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => {}
            Ok(other) => problems.push(format!("{who}: {path}: {message} (rule gave {other:?})")),
            Err(e) => problems.push(format!("{who}: {path}: {message} (rule failed: {e})")),
        }
    }
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                let child_path = format!("{path}/{key}");
                if let Some(property) = schema["properties"].get(key) {
                    walk(who, property, child, &child_path, problems);
                } else if schema["additionalProperties"].is_object() {
                    walk(
                        who,
                        &schema["additionalProperties"],
                        child,
                        &child_path,
                        problems,
                    );
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                walk(
                    who,
                    &schema["items"],
                    item,
                    &format!("{path}/{i}"),
                    problems,
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_as_url_parse_reads_them() {
        assert_eq!(scheme("oci://registry/filter:1"), Some("oci"));
        assert_eq!(scheme("http://modelgate.svc:8080/x"), Some("http"));
        assert_eq!(scheme("registry/filter:1"), None);
        assert_eq!(scheme("1http://x"), None);
    }
}
