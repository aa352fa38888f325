//! JSON objects whose keys must be unique at every depth.
//!
//! RFC 7515 section 5.2 lets a JWT consumer either refuse a member name that appears twice
//! or take the last one. serde_json takes the last one silently, so a payload with
//! `"groups": ["guest"], "groups": ["admin"]` would be read as `admin` here while a log
//! pipeline, an audit tool or the model behind us that takes the first reads `guest`. Two
//! readings of one signed token is how parser differentials turn into privilege, so the
//! filter refuses such tokens (`malformed_token`) instead of choosing one.
//!
//! A token's issuer may be a tenant, so the document is bounded too: at most
//! [`MAX_MEMBERS`] values in all (object members and array items, at any depth) and at most
//! [`MAX_DEPTH`] levels of nesting. What a verified token's claims cost in the token cache
//! follows from that, and so does the reading itself.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Values (object members and array items, at any depth) one document may hold. Real
/// tokens hold a few dozen; Entra ID puts at most 200 groups in a token before it switches
/// to an overage claim.
pub const MAX_MEMBERS: usize = 512;

/// Objects and arrays nested in one another, the outermost object counting as one.
pub const MAX_DEPTH: usize = 16;

/// A JSON object, read with every object in it (at any depth) refused if a key repeats, and
/// refused whole past [`MAX_MEMBERS`] values or [`MAX_DEPTH`] levels.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueKeys(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let budget = Cell::new(MAX_MEMBERS);
        let root = Strict {
            budget: &budget,
            depth: 0,
        };
        match root.deserialize(deserializer)? {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(de::Error::custom("expected a JSON object")),
        }
    }
}

/// Reads one value with unique object keys at every depth, within what is left of the
/// document's budget. `depth` counts the objects and arrays around this value.
#[derive(Clone, Copy)]
struct Strict<'b> {
    budget: &'b Cell<usize>,
    depth: usize,
}

impl Strict<'_> {
    /// The reader for a value one level further in, once a container is entered.
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }

    /// Counts one more value of the document.
    fn take<E: de::Error>(self) -> Result<(), E> {
        match self.budget.get().checked_sub(1) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom(format_args!("more than {MAX_MEMBERS} values"))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Builds a [`Value`] as serde_json's own does, but refuses a repeated key.
impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without repeated object keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            inner.take()?;
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(inner)?;
            inner.take()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("repeated key {key:?}")));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Map<String, Value>, String> {
        serde_json::from_str::<UniqueKeys>(text)
            .map(|u| u.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_what_serde_json_reads_when_keys_are_unique() {
        let text = r#"{"sub":"a","n":-3,"big":18446744073709551615,"f":1.5,"ok":true,
            "none":null,"aud":["x","y"],"realm":{"roles":["r"],"deep":{"k":[{"a":1}]}}}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Value::Object(parse(text).unwrap()), expected);
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth() {
        for text in [
            r#"{"groups":["guest"],"groups":["admin"]}"#,
            r#"{"exp":1,"sub":"a","exp":2}"#,
            r#"{"realm_access":{"roles":["a"],"roles":["b"]}}"#,
            r#"{"list":[{"k":1,"k":1}]}"#,
            r#"{"a":{"b":{"c":{"d":0,"d":0}}}}"#,
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains("repeated key"), "{text}: {error}");
        }
    }

    #[test]
    fn keys_equal_only_after_unescaping_are_repeats() {
        // "\u0073ub" is "sub": the same member to any conforming reader.
        assert!(parse(r#"{"sub":"a","\u0073ub":"b"}"#).is_err());
        // Case differs: different members.
        assert!(parse(r#"{"sub":"a","Sub":"b"}"#).is_ok());
    }

    #[test]
    fn refuses_documents_with_too_many_values_in_all() {
        let object = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"c{i}\":{i}")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert_eq!(parse(&object(MAX_MEMBERS)).unwrap().len(), MAX_MEMBERS);
        let error = parse(&object(MAX_MEMBERS + 1)).unwrap_err();
        assert!(error.contains("more than 512 values"), "{error}");
        // Array items and nested members count alike, wherever they are.
        let items = vec!["0"; MAX_MEMBERS - 2].join(",");
        assert!(parse(&format!(r#"{{"a":[{items}],"b":{{"c":1}}}}"#)).is_err());
        let items = vec!["0"; MAX_MEMBERS - 3].join(",");
        assert!(parse(&format!(r#"{{"a":[{items}],"b":{{"c":1}}}}"#)).is_ok());
    }

    #[test]
    fn refuses_documents_nested_too_deep() {
        let nested = |depth: usize| {
            // The outer object is level 1; each further array one more.
            format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let error = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.contains("deeper than 16"), "{error}");
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&objects).is_err());
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(parse(&objects).is_ok());
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for text in ["[]", "1", "\"s\"", "null"] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(parse("{}").unwrap(), Map::new());
        assert_eq!(parse(r#"{"a":[]}"#).unwrap()["a"], json!([]));
    }
}
