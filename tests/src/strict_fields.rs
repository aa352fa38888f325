//! A strict reader of JSON objects for the harness's oracles: every key must be one the
//! reader knows, so a field the controller starts writing fails the tests loudly instead
//! of being silently ignored.

use serde_json::{Map, Value};

use crate::HarnessError;

/// A JSON object whose keys must all be known, read field by field; every error names the
/// field's path (`spec.http.0.route`) and goes through the caller's `fail`, which says
/// what object it is in.
pub struct Fields<'v, 'f> {
    path: String,
    map: &'v Map<String, Value>,
    fail: &'f dyn Fn(&str, String) -> HarnessError,
}

impl<'v, 'f> Fields<'v, 'f> {
    /// The object `value` at `path` (empty at the top), refused if it is not an object or
    /// holds a key not in `known`.
    pub fn new(
        value: &'v Value,
        path: &str,
        known: &[&str],
        fail: &'f dyn Fn(&str, String) -> HarnessError,
    ) -> Result<Self, HarnessError> {
        let map = value.as_object().ok_or_else(|| {
            fail(
                if path.is_empty() { "." } else { path },
                format!("{value}: not an object"),
            )
        })?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(fail(
                &join(path, unknown),
                format!("a field the harness does not translate (it knows {known:?})"),
            ));
        }
        Ok(Self {
            path: path.to_string(),
            map,
            fail,
        })
    }

    /// A field, if present.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key)
    }

    /// A field that must be present.
    pub fn required(&self, key: &str) -> Result<&'v Value, HarnessError> {
        self.get(key)
            .ok_or_else(|| (self.fail)(&join(&self.path, key), "missing".into()))
    }

    /// A string field that must be present.
    pub fn string(&self, key: &str) -> Result<&'v str, HarnessError> {
        self.optional_string(key)?
            .ok_or_else(|| (self.fail)(&join(&self.path, key), "missing".into()))
    }

    /// A string field, if present.
    pub fn optional_string(&self, key: &str) -> Result<Option<&'v str>, HarnessError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err((self.fail)(
                &join(&self.path, key),
                format!("{other}: not a string"),
            )),
        }
    }

    /// A list field; empty when absent.
    pub fn array(&self, key: &str) -> Result<&'v [Value], HarnessError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err((self.fail)(
                &join(&self.path, key),
                format!("{other}: not a list"),
            )),
        }
    }

    /// A list of strings; empty when absent.
    pub fn strings(&self, key: &str) -> Result<Vec<&'v str>, HarnessError> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    (self.fail)(&join(&self.path, key), format!("{v}: not a string"))
                })
            })
            .collect()
    }
}

/// `key` under `path`, as the errors name it.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fail(path: &str, what: String) -> HarnessError {
        HarnessError::new(format!("{path}: {what}"))
    }

    #[test]
    fn an_unknown_or_mistyped_field_is_named_by_its_path() {
        let value = json!({"spec": {"hosts": ["a"], "gateway": "x"}});
        let top = Fields::new(&value, "", &["spec"], &fail).unwrap();
        let err = Fields::new(top.required("spec").unwrap(), "spec", &["hosts"], &fail)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("spec.gateway: "), "{err}");
        let spec = Fields::new(&value["spec"], "spec", &["hosts", "gateway"], &fail).unwrap();
        assert_eq!(spec.strings("hosts").unwrap(), ["a"]);
        assert!(spec.array("missing").unwrap().is_empty());
        let err = spec.string("hosts").err().unwrap();
        assert_eq!(err.to_string(), r#"spec.hosts: ["a"]: not a string"#);
    }
}
