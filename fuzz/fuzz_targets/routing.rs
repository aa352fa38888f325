//! Any predictors, weights, override and sticky settings, keys and random numbers: a
//! routing that compiles always picks a predictor within bounds, and a predictor with
//! traffic 0 only when the client asked for it by name.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use modelgate_core::config::{Predictor, Routing};
use modelgate_core::route::CompiledRouting;
use modelgate_core::{Request, RouteReason};
use serde_json::{Map, Value};

#[derive(Debug)]
struct Input {
    routing: Routing,
    model_id: String,
    headers: Vec<(String, String)>,
    claims: Map<String, Value>,
    random: u64,
    keys: Vec<String>,
}

/// A weight: mostly small, often 0, sometimes huge (overflow of the cumulative table).
fn weight(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => 0,
        1 => u.int_in_range(1..=100)?,
        2 => u32::MAX - u.int_in_range(0..=3)?,
        _ => u32::arbitrary(u)?,
    })
}

fn input(u: &mut Unstructured<'_>) -> Result<Input> {
    let count = u.int_in_range(1usize..=10)?;
    let mut predictors = Vec::with_capacity(count);
    for i in 0..count {
        let name = if bool::arbitrary(u)? {
            format!("p{i}")
        } else {
            String::arbitrary(u)?
        };
        predictors.push(Predictor {
            name,
            traffic: weight(u)?,
        });
    }
    let header = if bool::arbitrary(u)? {
        "x-seldon-predictor".to_string()
    } else {
        String::arbitrary(u)?
    };
    let sticky = match u.int_in_range(0u8..=4)? {
        0 => None,
        1 => Some("header:x-user".to_string()),
        2 => Some("claim:sub".to_string()),
        3 => Some("cookie:session".to_string()),
        _ => Some(String::arbitrary(u)?),
    };
    let routing = Routing {
        header: header.clone(),
        override_allowed: bool::arbitrary(u)?,
        sticky,
        predictors,
    };
    let mut headers = Vec::new();
    for _ in 0..u.int_in_range(0u8..=3)? {
        let name = match u.int_in_range(0u8..=3)? {
            0 => header.to_ascii_lowercase(),
            1 => "x-user".to_string(),
            2 => "cookie".to_string(),
            _ => String::arbitrary(u)?,
        };
        headers.push((name, String::arbitrary(u)?));
    }
    let mut claims = Map::new();
    if bool::arbitrary(u)? {
        claims.insert("sub".into(), Value::String(String::arbitrary(u)?));
    }
    Ok(Input {
        routing,
        model_id: String::arbitrary(u)?,
        headers,
        claims,
        random: u64::arbitrary(u)?,
        keys: Vec::arbitrary(u)?,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = input(&mut Unstructured::new(data)) else {
        return;
    };
    let Ok(routing) = CompiledRouting::compile(&input.routing) else {
        return;
    };
    let count = routing.predictors.len();
    let weighted = |i: usize| {
        assert!(i < count, "choice {i} of {count} predictors");
        assert!(
            routing.predictors[i].traffic > 0,
            "traffic-0 predictor {i} chosen by weight"
        );
    };
    weighted(routing.random_choice(input.random));
    weighted(routing.random_choice(u64::MAX));
    for key in &input.keys {
        weighted(routing.sticky_choice(&input.model_id, key));
    }
    let request = Request {
        method: "POST",
        path: "/",
        headers: &input.headers,
    };
    if let Ok((i, why)) =
        routing.choose(&input.model_id, &request, Some(&input.claims), input.random)
    {
        assert!(i < count, "choice {i} of {count} predictors");
        if why.reason() == RouteReason::Override {
            assert!(
                routing.override_allowed,
                "override chosen while not allowed"
            );
        } else {
            weighted(i);
        }
    }
});
