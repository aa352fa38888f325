//! Changing the filter configuration while Envoy serves (SPEC section 3, "Fail closed";
//! section 5's `pluginConfig`): a new configuration takes effect without a restart and
//! without a failed request, and one the filter cannot use is refused while the previous
//! one keeps serving.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use modelgate_core::config::{FilterConfig, JwtPolicy, Model, Policy};
use modelgate_e2e::answers::{assert_invalid_token, assert_no_token, assert_reached};
use modelgate_e2e::sample::{self, CREDIT, FRAUD, IRIS, STAGING, STICKY_HEADER};
use modelgate_e2e::{Client, ConfigOutcome, Gateway, GatewaySpec, Request};
use modelgate_testkit::TestKey;

fn two_workers() -> GatewaySpec {
    GatewaySpec {
        workers: 2,
        ..sample::spec()
    }
}

fn set_weights(config: &mut FilterConfig, model: &str, weights: &[u32]) {
    let routing = config
        .models
        .get_mut(model)
        .and_then(|m| m.routing.as_mut())
        .expect("a routed model");
    for (predictor, traffic) in routing.predictors.iter_mut().zip(weights) {
        predictor.traffic = *traffic;
    }
}

fn add_staging(config: &mut FilterConfig) {
    let Some(Policy::Jwt(fraud)) = config.policies.get("fraud") else {
        panic!("sample fraud policy");
    };
    let staging = JwtPolicy {
        audiences: vec![],
        claims: BTreeMap::new(),
        ..fraud.clone()
    };
    config
        .policies
        .insert("staging".into(), Policy::Jwt(staging));
    config.models.insert(
        STAGING.into(),
        Model {
            policy: "staging".into(),
            routing: None,
        },
    );
}

/// Requests that are answered `200` by a model under every configuration the live test
/// goes through, sent in a loop until told to stop (bounded in count and time).
struct Traffic {
    stop: AtomicBool,
    sent: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Traffic {
    fn run(&self, gw: &Gateway, keep_alive: bool) {
        let requests = [
            Request::predict(FRAUD).bearer(&sample::fraud_token("steady")),
            Request::predict(CREDIT).bearer(&sample::credit_token("steady")),
            Request::predict(IRIS),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = gw.client();
        let mut i = 0;
        while !self.stop.load(Ordering::SeqCst) && i < 50_000 && Instant::now() < deadline {
            if !keep_alive {
                client = gw.client();
            }
            let request = &requests[i % requests.len()];
            match client.send(request) {
                Ok(r) if r.status == 200 && r.upstream().is_some() => {}
                Ok(r) => self.fail(format!("{}: {}", request.target, r.summary())),
                Err(e) => {
                    self.fail(format!("{}: {e}", request.target));
                    client = gw.client();
                }
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
    }

    fn fail(&self, what: String) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(what);
        }
    }

    fn wait_for(&self, more: usize) {
        let target = self.sent.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sent.load(Ordering::SeqCst) < target && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn changes_apply_without_a_restart_and_without_a_failed_request() {
    let gw = sample::start_with("reconfig-live", &two_workers());
    let pid = gw.pid();
    let mut config = sample::filter_config();

    // Routed by the gateway but unknown to the filter: its routes need the filter's route
    // tag, so the request falls through to the gateway's other application.
    let echo = assert_reached(&gw.send(&Request::predict(STAGING)), "staging before");
    assert_eq!(echo.server, "other-app");
    let rotated_in = TestKey::rsa_b().sign(&sample::fraud_claims("new-key"));
    let r = gw.send(&Request::predict(FRAUD).bearer(&rotated_in));
    assert_invalid_token(&r, FRAUD, "unknown_key", "new key before rotation");

    let traffic = Traffic {
        stop: AtomicBool::new(false),
        sent: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
    };
    // Requests answered while each change was being applied, per change.
    let overlapping = thread::scope(|scope| {
        scope.spawn(|| traffic.run(&gw, true));
        scope.spawn(|| traffic.run(&gw, false));
        traffic.wait_for(100);
        let mut overlapping = Vec::new();
        let mut swap = |document: String, expected: ConfigOutcome| {
            let before = traffic.sent.load(Ordering::SeqCst);
            assert_eq!(gw.try_reconfigure(&document).unwrap(), expected);
            overlapping.push(traffic.sent.load(Ordering::SeqCst) - before);
            traffic.wait_for(50);
        };

        // A model added (its VirtualService came first).
        add_staging(&mut config);
        swap(sample::to_json(&config), ConfigOutcome::Accepted);
        // A key rotation, first step: the new key is published beside the old one.
        let mut keys = sample::team_keys();
        keys.push(TestKey::rsa_b());
        config
            .key_sets
            .insert("team".into(), sample::key_set(&keys));
        swap(sample::to_json(&config), ConfigOutcome::Accepted);
        // The canary takes all traffic.
        set_weights(&mut config, FRAUD, &[0, 100, 0]);
        swap(sample::to_json(&config), ConfigOutcome::Accepted);
        // A broken document is refused without disturbing anything.
        swap(
            r#"{"version": 1, "models": {"#.into(),
            ConfigOutcome::Refused,
        );

        traffic.stop.store(true, Ordering::SeqCst);
        overlapping
    });
    let failures = traffic.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests during the swaps, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        overlapping.iter().all(|n| *n > 0),
        "a change was applied while no request was in flight: {overlapping:?}"
    );
    assert_eq!(gw.pid(), pid, "Envoy was not restarted");

    // Every change is in force.
    assert_no_token(
        &gw.send(&Request::predict(STAGING)),
        STAGING,
        "staging after",
    );
    let r = gw.send(&Request::predict(STAGING).bearer(&sample::team_token("u")));
    assert_eq!(assert_reached(&r, "staging with token").server, "v1");
    assert_reached(
        &gw.send(&Request::predict(FRAUD).bearer(&rotated_in)),
        "new key",
    );
    let old_key = sample::fraud_token("old-key");
    let mut client = gw.client();
    for _ in 0..100 {
        let r = client
            .send(&Request::predict(FRAUD).bearer(&old_key))
            .unwrap();
        assert_eq!(assert_reached(&r, "weights").server, "canary");
    }

    // Rotation, last step: the old key is withdrawn, and the token it signed, verified
    // and cached a moment ago, is refused at once.
    config.key_sets.insert(
        "team".into(),
        sample::key_set(&[TestKey::ec(), TestKey::rsa_b()]),
    );
    gw.reconfigure(&sample::to_json(&config)).unwrap();
    let r = gw.send(&Request::predict(FRAUD).bearer(&old_key));
    assert_invalid_token(&r, FRAUD, "unknown_key", "withdrawn key");
    assert_reached(
        &gw.send(&Request::predict(FRAUD).bearer(&rotated_in)),
        "new key only",
    );
    assert_eq!(gw.pid(), pid);
}

#[test]
fn a_configuration_the_filter_cannot_use_is_refused_and_a_bad_entry_denies_only_its_model() {
    let gw = sample::start("reconfig-refused");
    let good = sample::filter_config();
    let mut zero_weights = good.clone();
    set_weights(&mut zero_weights, IRIS, &[0, 0]);
    let mut missing_policy = good.clone();
    missing_policy.models.get_mut(CREDIT).unwrap().policy = "nonexistent".into();
    let mut bad_key = good.clone();
    let model = bad_key.models.remove(FRAUD).unwrap();
    bad_key.models.insert("Fraud/Detector".into(), model);

    let mut unknown_field = serde_json::to_value(&good).unwrap();
    unknown_field["modles"] = serde_json::json!({});
    let mut version_2 = serde_json::to_value(&good).unwrap();
    version_2["version"] = serde_json::json!(2);

    let cases = [
        (
            "not JSON",
            "{\"version\": 1,".to_string(),
            "pluginConfig (line",
        ),
        ("unknown field", unknown_field.to_string(), "modles"),
        (
            "version 2",
            version_2.to_string(),
            "version: 2 is not supported",
        ),
    ];
    // A bad entry is its model's problem alone: the document is taken, that model is
    // denied (or, unreadable as a model, no longer routable), and every other model keeps
    // serving.
    let local_cases = [
        (
            "all weights 0",
            sample::to_json(&zero_weights),
            "models[\"public/iris\"].routing.predictors",
            IRIS,
        ),
        (
            "missing policy",
            sample::to_json(&missing_policy),
            "models[\"credit/scorer\"].policy",
            CREDIT,
        ),
        (
            "bad model key",
            sample::to_json(&bad_key),
            "models[\"Fraud/Detector\"]",
            FRAUD,
        ),
    ];
    let token = sample::fraud_token("alice");
    for (what, document, logged) in &cases {
        let outcome = gw.try_reconfigure(document).unwrap();
        assert_eq!(outcome, ConfigOutcome::Refused, "{what}");
        let log = gw.log();
        assert!(
            log.lines()
                .any(|l| l.contains("modelgate: configuration refused:") && l.contains(logged)),
            "{what}: no refusal naming {logged:?} in the log:\n{log}"
        );
        // Behaviour is unchanged.
        assert_no_token(&gw.send(&Request::predict(FRAUD)), FRAUD, what);
        assert_reached(&gw.send(&Request::predict(FRAUD).bearer(&token)), what);
        assert_reached(&gw.send(&Request::predict(IRIS)), what);
        let r = gw.send(&Request::predict(CREDIT).bearer(&sample::credit_token("p")));
        assert_reached(&r, what);
    }
    let metrics = gw.metrics();
    assert!(
        metrics.value("modelgate_config_loads_total", &[("result", "refused")])
            >= cases.len() as f64
    );
    assert_eq!(metrics.value("modelgate_config_models", &[]), 4.0);

    let request_for = |model: &str| match model {
        FRAUD => Request::predict(FRAUD).bearer(&token),
        CREDIT => Request::predict(CREDIT).bearer(&sample::credit_token("p")),
        _ => Request::predict(model),
    };
    for (what, document, logged, model) in &local_cases {
        let outcome = gw.try_reconfigure(document).unwrap();
        assert_eq!(outcome, ConfigOutcome::Accepted, "{what}");
        let log = gw.log();
        assert!(
            log.lines()
                .any(|l| l.contains("modelgate: configuration: ") && l.contains(logged)),
            "{what}: no warning naming {logged:?} in the log:\n{log}"
        );
        let before = gw.requests_to_models();
        let r = gw.send(&request_for(model));
        assert!(
            r.upstream().is_none() || r.upstream() == Some("other-app"),
            "{what}: {}",
            r.summary()
        );
        assert_eq!(gw.requests_to_models(), before, "{what}");
        for other in [FRAUD, IRIS, CREDIT].into_iter().filter(|m| m != model) {
            assert_reached(&gw.send(&request_for(other)), &format!("{what}: {other}"));
        }
    }

    // A good configuration still applies after the refusals.
    let mut all_b = good.clone();
    set_weights(&mut all_b, IRIS, &[0, 100]);
    gw.reconfigure(&sample::to_json(&all_b)).unwrap();
    let mut client: Client = gw.client();
    for _ in 0..50 {
        let r = client.send(&Request::predict(IRIS)).unwrap();
        assert_eq!(assert_reached(&r, "after refusals").server, "b");
    }
}

#[test]
fn growing_the_canary_moves_only_sticky_users_into_it() {
    let gw = sample::start("reconfig-sticky");
    let token = sample::fraud_token("alice");
    let mut client = gw.client();
    let mut placement = |users: usize| -> Vec<String> {
        (0..users)
            .map(|u| {
                let r = client
                    .send(
                        &Request::predict(FRAUD)
                            .bearer(&token)
                            .header(STICKY_HEADER, &format!("user-{u}")),
                    )
                    .unwrap();
                assert_reached(&r, "sticky").server
            })
            .collect()
    };
    let before = placement(400);
    let mut config = sample::filter_config();
    set_weights(&mut config, FRAUD, &[50, 50, 0]);
    gw.reconfigure(&sample::to_json(&config)).unwrap();
    let after = placement(400);

    let mut moved = 0;
    for (user, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(
            !(b == "canary" && a == "main"),
            "user-{user} left the canary when it grew"
        );
        moved += usize::from(b != a);
    }
    let canary = |placed: &[String]| placed.iter().filter(|p| *p == "canary").count();
    assert_eq!(moved, canary(&after) - canary(&before));
    // 25 % more of 400 users: about 100 move.
    assert!((50..150).contains(&moved), "{moved} moved");
}

/// The refusal is logged with what happens next (SPEC 3: "Envoy keeps the previous one").
/// Envoy gives every configuration update a new root context, so a filter that judged
/// "is there a previous configuration?" by its root context's own state would log every
/// refused update as leaving the gateway unconfigured while the old one goes on serving.
#[test]
fn a_refused_update_is_logged_as_keeping_the_previous_configuration() {
    let gw = sample::start("reconfig-refusal-log");
    let outcome = gw.try_reconfigure(r#"{"version": 2}"#).unwrap();
    assert_eq!(outcome, ConfigOutcome::Refused);
    assert_reached(&gw.send(&Request::predict(IRIS)), "still serving");
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("modelgate: configuration refused:"))
        .expect("a refusal line");
    assert!(
        !line.contains("every request is refused"),
        "the log says the gateway refuses everything while it serves: {line}"
    );
}
