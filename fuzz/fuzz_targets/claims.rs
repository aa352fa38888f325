//! Any bytes as a token payload: the strict reader the filter uses for claims
//! (`strict_json::UniqueKeys`) agrees with serde_json on every object whose keys are unique,
//! and refuses exactly those serde_json reads with a repeated key (last one winning) or
//! past the reader's bounds (`MAX_MEMBERS` values in all, `MAX_DEPTH` levels).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::auth::strict_json::{MAX_DEPTH, MAX_MEMBERS, UniqueKeys};
use serde_json::{Map, Value};

/// Whether an object repeats a key at any depth, judged on a reading that keeps every
/// member (the strict reader's own logic is not reused to judge it).
fn has_repeated_key(value: &RawValueTree) -> bool {
    match value {
        RawValueTree::Object(entries) => {
            let mut seen = std::collections::BTreeSet::new();
            entries
                .iter()
                .any(|(k, v)| !seen.insert(k.as_str()) || has_repeated_key(v))
        }
        RawValueTree::Array(items) => items.iter().any(has_repeated_key),
        RawValueTree::Leaf => false,
    }
}

/// Values below the top (object members and array items) and levels of nesting, counted
/// on the same reading.
fn values_and_depth(value: &RawValueTree) -> (usize, usize) {
    let children: Vec<&RawValueTree> = match value {
        RawValueTree::Object(entries) => entries.iter().map(|(_, v)| v).collect(),
        RawValueTree::Array(items) => items.iter().collect(),
        RawValueTree::Leaf => return (0, 0),
    };
    children
        .iter()
        .map(|c| values_and_depth(c))
        .fold((children.len(), 1), |(n, d), (cn, cd)| (n + cn, d.max(cd + 1)))
}

fn is_within_bounds(value: &RawValueTree) -> bool {
    let (values, depth) = values_and_depth(value);
    values <= MAX_MEMBERS && depth <= MAX_DEPTH
}

/// JSON read keeping every object member in order, duplicates included.
enum RawValueTree {
    Object(Vec<(String, RawValueTree)>),
    Array(Vec<RawValueTree>),
    Leaf,
}

impl<'de> serde::Deserialize<'de> for RawValueTree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawValueTree;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_unit<E>(self) -> Result<RawValueTree, E> {
                Ok(RawValueTree::Leaf)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawValueTree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawValueTree::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawValueTree, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, RawValueTree>()? {
                    entries.push((k, v));
                }
                Ok(RawValueTree::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = serde_json::from_slice::<UniqueKeys>(data);
    let lenient = serde_json::from_slice::<Map<String, Value>>(data);
    let tree = serde_json::from_slice::<RawValueTree>(data);
    match (strict, lenient) {
        (Ok(UniqueKeys(strict)), Ok(lenient)) => {
            assert_eq!(strict, lenient, "the strict reader changed a value");
            let tree = tree.expect("serde_json read it");
            assert!(!has_repeated_key(&tree), "a repeated key was accepted");
            assert!(is_within_bounds(&tree), "a document past the bounds was accepted");
        }
        (Err(_), Ok(_)) => {
            let tree = tree.expect("serde_json read it");
            assert!(
                has_repeated_key(&tree) || !is_within_bounds(&tree),
                "refused an object without repeated keys, within the bounds"
            );
        }
        (Ok(_), Err(e)) => panic!("accepted what serde_json refuses: {e}"),
        (Err(_), Err(_)) => {}
    }
});
