//! JSON objects whose keys must be unique at every depth.
//!
//! RFC 7515 section 5.2 lets a JWT consumer either refuse a member name that appears twice
//! or take the last one. serde_json takes the last one silently, so a payload with
//! `"groups": ["guest"], "groups": ["admin"]` would be read as `admin` here while a log
//! pipeline, an audit tool or the model behind us that takes the first reads `guest`. Two
//! readings of one signed token is how parser differentials turn into privilege, so the
//! filter refuses such tokens (`malformed_token`) instead of choosing one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON object, read with every object in it (at any depth) refused if a key repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueKeys(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(StrictVisitor)? {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(de::Error::custom("expected a JSON object")),
        }
    }
}

/// A JSON value with unique object keys at every depth.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// Builds a [`Value`] as serde_json's own does, but refuses a repeated key.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
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
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
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
    fn refuses_what_is_not_an_object() {
        for text in ["[]", "1", "\"s\"", "null"] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(parse("{}").unwrap(), Map::new());
        assert_eq!(parse(r#"{"a":[]}"#).unwrap()["a"], json!([]));
    }
}
