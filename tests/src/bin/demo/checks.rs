//! The checks after the tour that need many requests: users stay on their predictor, the
//! split follows the weights `render` wrote into the VirtualServices, and the shadow gets
//! a copy of what reached its model. Each returns how many of its lines deviate.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use modelgate_e2e::render::Rendered;
use modelgate_e2e::weights::within_five_sigma;
use modelgate_e2e::{Gateway, Request};
use modelgate_testkit::TestKey;

use crate::users::{FRAUD, IRIS, SEARCH, fraud_claims, search_token};

const DEVIATES: &str = "   <-- DEVIATES";

/// `users` users of `fraud/detector` send `repeats` requests each: every user's requests
/// reach one predictor (`seldon.io/ab-sticky: claim:sub`), and both predictors get users.
pub fn sticky(gw: &Gateway, users: usize, repeats: usize) -> usize {
    println!();
    println!(
        "Sticky users: {users} users of {FRAUD}, {repeats} requests each (sticky by the token's sub):"
    );
    let key = TestKey::ec();
    let mut client = gw.client();
    let mut per_predictor: BTreeMap<String, usize> = BTreeMap::new();
    let mut moved = Vec::new();
    for user in 0..users {
        let user = format!("user-{user}");
        let token = key.sign(&fraud_claims(&user));
        let mut seen: Vec<String> = (0..repeats)
            .map(|_| {
                client
                    .send(&Request::predict(FRAUD).bearer(&token))
                    .map_or_else(|e| format!("error: {e}"), |r| upstream(&r))
            })
            .collect();
        seen.dedup();
        if seen.len() == 1 {
            *per_predictor.entry(seen.remove(0)).or_default() += 1;
        } else {
            moved.push(format!("{user} moved between {seen:?}"));
        }
    }
    let both = ["main", "canary"]
        .iter()
        .all(|p| per_predictor.contains_key(*p));
    let strays = per_predictor
        .keys()
        .filter(|p| !["main", "canary"].contains(&p.as_str()))
        .count();
    println!(
        "  users per predictor: {per_predictor:?}; users who moved: {}{}",
        moved.len(),
        if moved.is_empty() && both && strays == 0 {
            ""
        } else {
            DEVIATES
        }
    );
    for line in &moved {
        println!("  {line}");
    }
    moved.len() + usize::from(!both) + strays
}

/// Requests without an override: the share of each predictor against the weights of the
/// model's default route as rendered, within 5 standard deviations. `fraud/detector` is
/// sticky, so each of its requests is a new user; `ranking/search` gives its dark launch
/// nothing; `public/iris` chooses at random.
pub fn split(gw: &Gateway, rendered: &Rendered, requests: usize) -> usize {
    println!();
    println!("Traffic split, {requests} requests per model, no override:");
    println!(
        "{:<16} {:<10} {:>8} {:>9} {:>9} {:>9}  within 5 sigma",
        "model", "predictor", "weight", "expected", "answered", "share"
    );
    let key = TestKey::ec();
    let partner = search_token("split");
    let mut deviations = 0;
    for model in [FRAUD, SEARCH, IRIS] {
        let weights = match rendered.default_weights(model) {
            Ok(weights) => weights,
            Err(e) => {
                println!("{model:<16} {e}{DEVIATES}");
                deviations += 1;
                continue;
            }
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut client = gw.client();
        for i in 0..requests {
            let request = match model {
                FRAUD => {
                    Request::predict(model).bearer(&key.sign(&fraud_claims(&format!("split-{i}"))))
                }
                SEARCH => Request::predict(model).bearer(&partner),
                _ => Request::predict(model),
            };
            let answer = client
                .send(&request)
                .map_or_else(|e| format!("error: {e}"), |r| upstream(&r));
            *counts.entry(answer).or_default() += 1;
        }
        let total: u64 = weights.values().sum();
        for (predictor, weight) in &weights {
            let share = *weight as f64 / total as f64;
            let answered = counts.remove(predictor).unwrap_or(0);
            let ok = within_five_sigma(answered, requests, share);
            deviations += usize::from(!ok);
            println!(
                "{:<16} {:<10} {:>8} {:>9.0} {:>9} {:>8.1}%  {}",
                model,
                predictor,
                weight,
                requests as f64 * share,
                answered,
                100.0 * answered as f64 / requests as f64,
                if ok { "yes" } else { "NO" },
            );
        }
        for (other, n) in counts {
            deviations += 1;
            println!(
                "{model:<16} {other:<10} {:>8} {:>9} {n:>9}{DEVIATES}",
                "-", 0
            );
        }
    }
    deviations
}

/// `ranking/search`'s shadow received exactly one copy of each request that reached
/// `current` or `next`, and nothing that the filter refused.
pub fn shadow(gw: &Gateway) -> usize {
    println!();
    let reached: usize = ["current", "next"]
        .iter()
        .map(|p| gw.server(SEARCH, p).count())
        .sum();
    let shadow = gw.server(SEARCH, "shadow");
    // Mirrored copies are sent beside the answer, not before it: wait for them, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    while shadow.count() < reached && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(100));
    let copies = shadow.count();
    let ok = copies == reached;
    println!(
        "Shadow: {SEARCH}'s predictors answered {reached} requests, its shadow got {copies} copies{}",
        if ok { "" } else { DEVIATES }
    );
    usize::from(!ok)
}

/// The predictor that answered, `-` for the gateway's own answers.
fn upstream(response: &modelgate_e2e::Response) -> String {
    response.upstream().unwrap_or("-").to_string()
}
