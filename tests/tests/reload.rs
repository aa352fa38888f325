//! Reload under load (issue 5; SPEC section 3, "Fail closed", and section 5's
//! `pluginConfig`): for a bounded time (20 s by default, `MODELGATE_RELOAD_SECONDS`), several
//! clients keep sending requests on loopback while the filter configuration is replaced
//! again and again, each time changing something a request can see: a model added or
//! removed, a key rotated in or out, the weights of an A/B split flipped, a fleet of
//! 2,000 other models sliding by 25. The test holds the gateway to three things:
//!
//! - no request fails: every answer is the one the configuration in force gives it (the
//!   clients only send requests whose answer every configuration agrees on);
//! - every change is in force as soon as Envoy reports the new version (a probe right after
//!   each reload sees exactly the new configuration, never the one before);
//! - Envoy's memory does not grow with the number of reloads: its resident set after the
//!   last reload is within [`MEMORY_BOUND_MIB`] of what it was once the first reloads had
//!   warmed it up (peak linear memory of each VM, the allocator's pools).
//!
//! The figures (requests, reloads, memory) are printed for the README's reliability section.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use modelgate_core::config::{FilterConfig, Model, Policy};
use modelgate_e2e::client::Response;
use modelgate_e2e::sample::{self, FRAUD, IRIS, STAGING};
use modelgate_e2e::{Gateway, GatewaySpec, Request};
use modelgate_testkit::TestKey;

/// How far Envoy's resident set may grow from the warmed-up reloads to the last one (about
/// 100 more). Measured: under 1 MiB. Keeping even the JSON of every configuration (85 KB,
/// in two VMs) would exceed it within 50 reloads.
const MEMORY_BOUND_MIB: f64 = 8.0;

/// Reloads after which the resident set is taken as the baseline.
const WARM_UP_RELOADS: usize = 10;

/// Models beside the sample ones, so that each configuration has a realistic size.
const FLEET: usize = 2_000;

/// How far the fleet window slides per reload: that many models leave, that many arrive.
const SLIDE: usize = 25;

/// A model of the fleet's policy that every configuration of the run holds.
const STEADY_FLEET_MODEL: &str = "fleet/steady";

fn load_duration() -> Duration {
    let seconds = std::env::var("MODELGATE_RELOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(seconds)
}

fn fleet_model(index: usize) -> String {
    format!("fleet/model-{index}")
}

/// What a reload changes, as four independent switches and a position of the fleet window.
#[derive(Debug, Clone, Copy)]
struct State {
    /// `staging/newmodel` is configured (it asks for a token) or not (it passes untouched).
    staging: bool,
    /// Issuer A's key set also holds the rotated-in key `rsa_b`.
    rotated_key: bool,
    /// `public/iris` sends everything to `b` rather than everything to `a`.
    iris_to_b: bool,
    /// The fleet holds models `first .. first + FLEET`.
    first: usize,
}

impl State {
    /// The state of reload `round`: each switch flips at its own pace, so that every
    /// combination occurs and each reload changes at least the fleet.
    fn of(round: usize) -> Self {
        Self {
            staging: round % 2 == 1,
            rotated_key: (round / 2) % 2 == 1,
            iris_to_b: (round / 3) % 2 == 1,
            first: round * SLIDE,
        }
    }

    fn config(&self) -> FilterConfig {
        let mut config = sample::filter_config();
        if self.staging {
            config.models.insert(
                STAGING.into(),
                Model {
                    policy: "team-only".into(),
                    routing: None,
                },
            );
        }
        let Some(Policy::Jwt(fraud)) = config.policies.get("fraud") else {
            panic!("the sample has a fraud policy");
        };
        let mut team_only = fraud.clone();
        team_only.audiences.clear();
        team_only.claims.clear();
        config
            .policies
            .insert("team-only".into(), Policy::Jwt(team_only));
        let mut keys = sample::team_keys();
        if self.rotated_key {
            keys.push(TestKey::rsa_b());
        }
        config
            .key_sets
            .insert("team".into(), sample::key_set(&keys));
        let weights = if self.iris_to_b { [0, 100] } else { [100, 0] };
        let iris = config
            .models
            .get_mut(IRIS)
            .and_then(|m| m.routing.as_mut())
            .expect("iris is routed");
        for (predictor, traffic) in iris.predictors.iter_mut().zip(weights) {
            predictor.traffic = traffic;
        }
        let fleet = (self.first..self.first + FLEET).map(fleet_model);
        for id in fleet.chain([STEADY_FLEET_MODEL.to_string()]) {
            config.models.insert(
                id,
                Model {
                    policy: "team-only".into(),
                    routing: None,
                },
            );
        }
        config
    }
}

/// Who must have answered a request.
#[derive(Debug, Clone, Copy)]
enum By {
    /// The filter itself: no server was reached.
    Filter,
    /// Any model server (the predictor is the weighted choice).
    AnyServer,
    /// This server.
    Server(&'static str),
}

/// Checks one answer; `Err` says what was wrong.
fn expect(what: &str, response: &Response, status: u16, by: By) -> Result<(), String> {
    let server = response
        .upstream()
        .map(|_| response.echo().map(|e| e.server).unwrap_or_default());
    let ok = response.status == status
        && match (by, server.as_deref()) {
            (By::Filter, None) | (By::AnyServer, Some(_)) => true,
            (By::Server(name), Some(reached)) => reached == name,
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {status} from {by:?}, got {}",
            response.summary()
        ))
    }
}

/// The probe after a reload: everything that reload may have changed, checked against the
/// new state (never the previous one, which differs from it in at least one answer).
fn probe(gw: &Gateway, state: State, round: usize) -> Vec<String> {
    let mut client = gw.client();
    let mut failures = Vec::new();
    let mut check =
        |what: String, request: &Request, status: u16, by: By| match client.send(request) {
            Ok(response) => {
                if let Err(e) = expect(&what, &response, status, by) {
                    failures.push(format!("reload {round}: {e}"));
                }
            }
            Err(e) => failures.push(format!("reload {round}: {what}: {e}")),
        };
    let staging = Request::predict(STAGING);
    if state.staging {
        check("staging without a token".into(), &staging, 401, By::Filter);
    } else {
        // Its routes need the filter's route tag: the gateway's other application answers.
        check(
            "staging unconfigured".into(),
            &staging,
            200,
            By::Server("other-app"),
        );
    }
    let rotated = TestKey::rsa_b().sign(&sample::fraud_claims("rotated"));
    let with_rotated = Request::predict(FRAUD).bearer(&rotated);
    if state.rotated_key {
        check(
            "token of the rotated-in key".into(),
            &with_rotated,
            200,
            By::AnyServer,
        );
    } else {
        check(
            "token of the withdrawn key".into(),
            &with_rotated,
            401,
            By::Filter,
        );
    }
    let iris = if state.iris_to_b { "b" } else { "a" };
    check(
        "iris split".into(),
        &Request::predict(IRIS),
        200,
        By::Server(iris),
    );
    // The newest fleet model asks for a token; the one that just left passes untouched to
    // the other application behind the gateway.
    let newest = Request::predict(&fleet_model(state.first + FLEET - 1));
    check("newest fleet model".into(), &newest, 401, By::Filter);
    if let Some(gone) = state.first.checked_sub(1) {
        let gone = Request::predict(&fleet_model(gone));
        check(
            "fleet model removed".into(),
            &gone,
            200,
            By::Server("other-app"),
        );
    }
    failures
}

/// Requests whose answer every configuration of the run agrees on.
fn steady_requests() -> Vec<(Request, u16, By)> {
    vec![
        (
            Request::predict(FRAUD).bearer(&sample::fraud_token("steady")),
            200,
            By::AnyServer,
        ),
        (Request::predict(FRAUD), 401, By::Filter),
        (
            Request::predict(FRAUD).bearer(&TestKey::rsa_a().sign(&serde_json::json!({
                "iss": sample::ISSUER, "sub": "late", "exp": 1_000_000
            }))),
            401,
            By::Filter,
        ),
        (
            Request::predict(sample::CREDIT).bearer(&sample::credit_token("steady")),
            200,
            By::Server("default"),
        ),
        (Request::get("/prometheus"), 200, By::Server("prometheus")),
        (Request::predict(STEADY_FLEET_MODEL), 401, By::Filter),
    ]
}

struct Load {
    stop: AtomicBool,
    sent: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn run(&self, gw: &Gateway, keep_alive: bool, deadline: Instant) {
        let requests = steady_requests();
        let mut client = gw.client();
        let mut i = 0usize;
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            if !keep_alive {
                client = gw.client();
            }
            let (request, status, by) = &requests[i % requests.len()];
            let what = format!("{} {}", request.method, request.target);
            let outcome = match client.send(request) {
                Ok(response) => expect(&what, &response, *status, *by),
                Err(e) => {
                    client = gw.client();
                    Err(format!("{what}: {e}"))
                }
            };
            if let Err(e) = outcome
                && let Ok(mut failures) = self.failures.lock()
            {
                failures.push(e);
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
    }
}

#[test]
fn reloads_under_load_lose_no_request_apply_at_once_and_do_not_grow_memory() {
    let first = State::of(0);
    let spec = GatewaySpec {
        workers: 2,
        filter_config: sample::to_json(&first.config()),
        ..sample::spec()
    };
    let gw = sample::start_with("reload-under-load", &spec);
    let pid = gw.pid();
    let load = Load {
        stop: AtomicBool::new(false),
        sent: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
    };
    let duration = load_duration();
    let started = Instant::now();
    let deadline = started + duration;

    let mut probe_failures = probe(&gw, first, 0);
    let mut reloads = 0usize;
    let mut refused = Vec::new();
    let mut rss = Vec::new();
    thread::scope(|scope| {
        // Stops the clients however this thread leaves the scope.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = StopOnDrop(&load.stop);
        for keep_alive in [true, true, false] {
            let (load, gw) = (&load, &gw);
            scope.spawn(move || load.run(gw, keep_alive, deadline + Duration::from_secs(5)));
        }
        let mut round = 0;
        while Instant::now() < deadline {
            round += 1;
            let state = State::of(round);
            match gw.try_reconfigure(&sample::to_json(&state.config())) {
                Ok(modelgate_e2e::ConfigOutcome::Accepted) => {}
                Ok(outcome) => refused.push(format!("reload {round}: {outcome:?}")),
                Err(e) => refused.push(format!("reload {round}: {e}")),
            }
            reloads += 1;
            probe_failures.extend(probe(&gw, state, round));
            rss.push(gw.rss_mib());
        }
    });

    let sent = load.sent.load(Ordering::SeqCst);
    let failures = load.failures.lock().unwrap();
    let baseline = rss.get(WARM_UP_RELOADS - 1).copied().unwrap_or(f64::NAN);
    let last = rss.last().copied().unwrap_or(f64::NAN);
    let peak = rss.iter().copied().fold(f64::NAN, f64::max);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "reload under load: {:.0} s, {sent} requests from 3 clients, {reloads} reloads \
         ({} fleet models each, {:.0} KB of pluginConfig), {} failed requests, \
         {} probe failures; Envoy RSS after reload {WARM_UP_RELOADS} {baseline:.1} MiB, \
         peak {peak:.1} MiB, after the last {last:.1} MiB",
        started.elapsed().as_secs_f64(),
        FLEET,
        sample::to_json(&first.config()).len() as f64 / 1000.0,
        failures.len(),
        probe_failures.len(),
    );
    println!("{report}");

    assert!(refused.is_empty(), "reloads not applied: {refused:?}");
    assert!(
        reloads > 2 * WARM_UP_RELOADS,
        "only {reloads} reloads in {duration:?}: too few to judge memory"
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed during the reloads, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        probe_failures.is_empty(),
        "a reload was not in force at once: {:?}",
        &probe_failures[..probe_failures.len().min(5)]
    );
    assert!(
        last - baseline <= MEMORY_BOUND_MIB,
        "Envoy grew by {:.1} MiB from reload {WARM_UP_RELOADS} to reload {reloads} \
         (bound {MEMORY_BOUND_MIB} MiB): {rss:?}",
        last - baseline
    );
    assert_eq!(gw.pid(), pid, "Envoy was not restarted");
}
