//! The controller under faults: API writes that fail (500, 409, 429, late answers, dropped
//! connections, stalls) are retried with a growing backoff and end in exactly the objects a
//! fault-free run makes; a restart in the middle of a reconcile converges to them too; a
//! JWKS endpoint that is down, slow or talks garbage never takes a model's keys away; and a
//! SeldonDeployment with broken annotations changes nothing of anyone else.
//!
//! The retry loop here is the controller's own policy (`error_policy` in `run`): a failed
//! reconcile is retried after `Context::failed`'s delay, so the tests assert those delays
//! and the attempt counts rather than wall-clock time.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fake_api::{FakeApi, Fault};
use common::jwks_server::{Answer, JwksServer};
use http::Method;
use kube::runtime::events::Reporter;
use modelgate_controller::annotations::{
    AB_STICKY, AUTH, AUTH_MODE, ISTIO_HOST, ISTIO_RETRIES, JWT_AUDIENCES, JWT_CLAIMS, JWT_ISSUER,
    JWT_JWKS, JWT_JWKS_URI,
};
use modelgate_controller::jwks::{Fetcher, Refresher, Schedule};
use modelgate_controller::reconcile::{Context, SHARED_OBJECTS, reconcile_global, reconcile_model};
use modelgate_controller::seldon::SeldonDeployment;
use modelgate_testkit::TestKey;
use serde_json::Value;

/// The kinds the controller writes, as the API server names them.
const KINDS: [&str; 4] = [
    "gateways",
    "virtualservices",
    "destinationrules",
    "wasmplugins",
];

/// `models/<name>` on `gateway`.
fn model(name: &str, gateway: &str) -> SeldonDeployment {
    SeldonDeployment::fixture("models", name).gateway(gateway)
}

/// A fresh controller state over the API server (what a restart starts from), with a
/// short API timeout so late answers fail fast. Namespace `edge` is the platform's: models
/// of any namespace may have Gateways created there.
fn context(api: &FakeApi) -> Context {
    let mut settings = common::reconciling::edge_settings();
    settings.jwks = common::jwks_server::loopback_jwks_settings();
    let mut ctx = common::reconciling::context(api, settings);
    ctx.api_timeout = Duration::from_millis(200);
    ctx
}

/// How a convergence went: per model (and [`SHARED_OBJECTS`], and each shared object that
/// failed on its own) the delays the controller asked for before each retry.
#[derive(Debug, Default)]
struct Retries {
    delays: BTreeMap<String, Vec<Duration>>,
}

impl Retries {
    fn of(&self, id: &str) -> Vec<u64> {
        self.delays
            .get(id)
            .map(|d| d.iter().map(Duration::as_secs).collect())
            .unwrap_or_default()
    }
}

/// Runs the controller's two loops as `run` does, until nothing waits or fails: the
/// shared objects (the WasmPlugin first), then every model, each retried after
/// `Context::failed`'s delay (here not waited for: a shared object's own retry time is
/// cleared instead).
async fn converge(ctx: &Context, sdeps: &[SeldonDeployment]) -> Retries {
    let mut retries = Retries::default();
    for round in 0.. {
        assert!(round < 20, "does not converge: {retries:?}");
        let settled = loop {
            match reconcile_global(ctx, sdeps).await {
                Ok(outcome) => {
                    for e in &outcome.failed {
                        let key = format!("{} {}/{}", e.kind, e.namespace, e.name);
                        let delay =
                            ctx.retry_at.lock().unwrap().get(&key).map(|(at, _)| {
                                at.saturating_duration_since(std::time::Instant::now())
                            });
                        eprintln!("{key}: {e}; retry in {delay:?}");
                        // Rounded up: the time left is a hair under the delay asked for.
                        let delay = delay.map_or(Duration::ZERO, |d| {
                            Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
                        });
                        retries.delays.entry(key).or_default().push(delay);
                    }
                    ctx.retry_at.lock().unwrap().clear();
                    break outcome.settled();
                }
                Err(e) => {
                    let delay = ctx.failed(SHARED_OBJECTS);
                    eprintln!("shared objects: {e}; retry in {delay:?}");
                    let delays = retries.delays.entry(SHARED_OBJECTS.into()).or_default();
                    delays.push(delay);
                    assert!(delays.len() < 20, "the shared objects do not converge: {e}");
                }
            }
        };
        let mut waiting = false;
        for sdep in sdeps {
            let id = sdep.model_id();
            loop {
                match reconcile_model(ctx, sdep).await {
                    Ok(writes) => {
                        waiting |= writes.waiting;
                        break;
                    }
                    Err(e) => {
                        let delay = ctx.failed(&id);
                        eprintln!("{id}: {e}; retry in {delay:?}");
                        let delays = retries.delays.entry(id.clone()).or_default();
                        delays.push(delay);
                        assert!(delays.len() < 20, "{id} does not converge: {e}");
                    }
                }
            }
        }
        if settled && !waiting {
            break;
        }
    }
    retries
}

/// Every object the controller writes, by kind and `ns/name`.
fn cluster(api: &FakeApi) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    KINDS.iter().map(|k| (*k, api.objects(k))).collect()
}

/// What a fault-free run makes of these SeldonDeployments.
async fn fault_free(sdeps: &[SeldonDeployment]) -> BTreeMap<&'static str, BTreeMap<String, Value>> {
    let api = FakeApi::default();
    let retries = converge(&context(&api), sdeps).await;
    assert!(retries.delays.is_empty(), "{retries:?}");
    cluster(&api)
}

fn three_models() -> Vec<SeldonDeployment> {
    vec![
        model("a", "seldon-gateway")
            .predictor("main", 75)
            .predictor("canary", 25),
        open("b", "edge/public"),
        model("c", "seldon-gateway")
            .predictor("p", 100)
            .annotate(JWT_AUDIENCES, "team-c"),
    ]
}

/// `models/<name>` on `gateway`, with one predictor and no authentication.
fn open(name: &str, gateway: &str) -> SeldonDeployment {
    model(name, gateway)
        .predictor("p", 100)
        .annotate(AUTH, "none")
}

#[tokio::test]
async fn failed_writes_are_retried_with_a_growing_backoff_and_end_in_the_fault_free_objects() {
    let all = three_models();
    let expected = fault_free(&all).await;
    assert_eq!(expected["destinationrules"].len(), 4, "{expected:?}");

    let api = FakeApi::default();
    let ctx = context(&api);
    // a: every kind of failure on its own objects, one after the other.
    api.inject(Method::PATCH, "virtualservices/a", Fault::Status(500));
    api.inject(Method::PATCH, "virtualservices/a", Fault::Status(409));
    api.inject(
        Method::PATCH,
        "destinationrules/a-canary",
        Fault::Delay(Duration::from_secs(2)),
    );
    api.inject(Method::PATCH, "destinationrules/a-main", Fault::Drop);
    api.inject(
        Method::GET,
        "destinationrules/a-main",
        Fault::TooManyRequests(1),
    );
    // b: one conflict.
    api.inject(Method::PATCH, "virtualservices/b", Fault::Status(409));
    // The shared objects: the Gateway, the list of managed Gateways, the WasmPlugin.
    api.inject(Method::PATCH, "gateways/public", Fault::Status(500));
    api.inject(Method::GET, "v1/gateways", Fault::Status(503));
    api.inject(Method::PATCH, "wasmplugins/modelgate", Fault::Status(409));
    api.inject(
        Method::PATCH,
        "wasmplugins/modelgate",
        Fault::Delay(Duration::from_secs(2)),
    );
    api.inject(Method::GET, "wasmplugins/modelgate", Fault::Drop);

    let retries = converge(&ctx, &all).await;
    assert_eq!(api.pending_faults(), 0, "every fault was met");
    // The delays double from 5 s, per model, one per failure.
    assert_eq!(retries.of("models/a"), [5, 10, 20, 40, 80]);
    assert_eq!(retries.of("models/b"), [5]);
    assert_eq!(retries.of("models/c"), Vec::<u64>::new());
    // The WasmPlugin's own failures back off together; the Gateway's on its own, and it
    // never held the WasmPlugin back.
    assert_eq!(retries.of(SHARED_OBJECTS), [5, 10, 20]);
    assert_eq!(retries.of("Gateway edge/public"), [5]);
    // A 429's Retry-After (1 s) is never undercut.
    assert!(
        retries.delays["models/a"]
            .iter()
            .all(|d| *d >= Duration::from_secs(1))
    );
    assert_eq!(cluster(&api), expected);

    // Success resets the backoff: the next failure waits 5 s again.
    api.inject(Method::GET, "virtualservices/a", Fault::Status(500));
    api.inject(Method::GET, "wasmplugins/modelgate", Fault::Status(500));
    let again = converge(&ctx, &all).await;
    assert_eq!(again.of("models/a"), [5]);
    assert_eq!(again.of(SHARED_OBJECTS), [5]);
    // And nothing was written twice: the late writes landed and the retries saw them.
    api.take_writes();
    converge(&ctx, &all).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn a_stalled_api_server_fails_the_call_after_the_timeout_instead_of_holding_the_reconcile() {
    let all = three_models();
    let api = FakeApi::default();
    let ctx = context(&api);
    reconcile_global(&ctx, &all).await.unwrap();
    api.inject(Method::GET, "virtualservices/a", Fault::Stall);
    let first = tokio::time::timeout(Duration::from_secs(10), reconcile_model(&ctx, &all[0]))
        .await
        .expect("the reconcile ends on its own");
    let err = first.unwrap_err();
    assert_eq!(api.stalled(), 1);
    assert!(
        err.to_string().starts_with("get VirtualService models/a")
            && err
                .to_string()
                .contains("no answer from the API server within 200ms"),
        "{err}"
    );
    api.inject(Method::GET, "wasmplugins/modelgate", Fault::Stall);
    let shared = tokio::time::timeout(Duration::from_secs(10), reconcile_global(&ctx, &all))
        .await
        .expect("the shared objects' reconcile ends on its own");
    assert!(shared.is_err());
    let retries = converge(&ctx, &all).await;
    assert!(retries.delays.is_empty(), "{retries:?}");
    assert_eq!(cluster(&api), fault_free(&all).await);
}

/// Runs `work` until the API server holds one request stalled, then drops it: the process
/// dies in the middle of a reconcile, after the writes before that request landed.
async fn kill_when_stalled(api: &FakeApi, work: impl Future<Output = ()>) {
    let stalled = api.stalled();
    tokio::select! {
        () = work => panic!("the reconcile was to stall"),
        () = async {
            while api.stalled() == stalled {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } => {}
    }
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_reconcile_converges_to_the_same_objects_without_orphans() {
    let b = model("b", "seldon-gateway").predictor("p", 100);
    let before = [
        model("a", "edge/old")
            .predictor("main", 75)
            .predictor("canary", 25),
        b.clone(),
    ];
    // a moves to another gateway and replaces its canary by a new predictor.
    let after = [
        model("a", "edge/new")
            .predictor("main", 50)
            .predictor("next", 50),
        b,
    ];
    let expected = fault_free(&after).await;

    let api = FakeApi::default();
    // Processes that get killed wait for ever on a stalled call, so only the test decides
    // when they die.
    let killable = |api: &FakeApi| {
        let mut ctx = context(api);
        ctx.api_timeout = Duration::from_secs(3600);
        ctx
    };
    let ctx = killable(&api);
    converge(&ctx, &before).await;
    api.take_writes();

    // The next process dies while the shared objects are half done: the WasmPlugin (always
    // first) and the new Gateway are there, the old Gateway not yet deleted.
    api.inject(Method::DELETE, "gateways/old", Fault::Stall);
    kill_when_stalled(&api, async {
        let _ = reconcile_global(&ctx, &after).await;
    })
    .await;
    assert!(api.get("gateways", "edge", "new").is_some());
    assert!(api.get("gateways", "edge", "old").is_some());
    assert!(
        plugin_config(&api)["models"]["models/a"]
            .to_string()
            .contains("next")
    );
    drop(ctx);

    // Killed after a's VirtualService landed, while its new DestinationRule is written.
    let ctx = killable(&api);
    reconcile_global(&ctx, &after).await.unwrap();
    api.take_writes();
    api.inject(Method::PATCH, "destinationrules/a-next", Fault::Stall);
    kill_when_stalled(&api, async {
        let _ = reconcile_model(&ctx, &after[0]).await;
    })
    .await;
    let writes = api.take_writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| w.split('?').next().unwrap())
            .collect::<Vec<_>>(),
        ["PATCH virtualservices models/a"],
        "{writes:?}"
    );
    assert!(api.get("destinationrules", "models", "a-canary").is_some());
    drop(ctx);

    // The third one finishes the job: the same objects as a fault-free run, the canary's
    // DestinationRule and the unreferenced Gateway gone.
    let ctx = context(&api);
    converge(&ctx, &after).await;
    assert_eq!(cluster(&api), expected);
    assert!(api.get("destinationrules", "models", "a-canary").is_none());
    assert!(api.get("gateways", "edge", "old").is_none());
    // Converged means quiet: another round writes nothing.
    api.take_writes();
    converge(&ctx, &after).await;
    assert_eq!(api.take_writes(), Vec::<String>::new());
}

/// The filter configuration in the WasmPlugin, as stored.
fn plugin_config(api: &FakeApi) -> Value {
    api.get("wasmplugins", "istio-system", "modelgate").unwrap()["spec"]["pluginConfig"].clone()
}

/// The `kid`s of the keys the filter configuration gives a model.
fn model_kids(api: &FakeApi, id: &str) -> Vec<String> {
    let config = plugin_config(api);
    let policy = &config["policies"][config["models"][id]["policy"].as_str().unwrap()];
    let keys = &config["keySets"][policy["keySet"].as_str().unwrap()]["keys"];
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn jwks_of(key: &TestKey) -> String {
    modelgate_testkit::jwks(&[key]).to_string()
}

/// The JWKS fetch timeout of the tests: short, with room for a loaded machine.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// What a broken issuer can answer, with what the failure report must say.
fn broken_answers() -> Vec<(&'static str, Answer, &'static str)> {
    let body = |status, text: &str| Answer::Body(status, text.to_string());
    vec![
        (
            "HTTP 500",
            body(500, &jwks_of(&TestKey::rsa_b())),
            "status 500",
        ),
        (
            "not JSON",
            body(200, "<html>oops</html>"),
            "not a JWKS document",
        ),
        (
            "JSON without keys",
            body(200, r#"{"issuer": "x"}"#),
            "not a JWKS document",
        ),
        (
            "keys that do not parse",
            body(
                200,
                r#"{"keys": [{"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"}, {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}"#,
            ),
            "no key the filter can use",
        ),
        (
            "an empty key set",
            body(200, r#"{"keys": []}"#),
            "no key the filter can use",
        ),
        (
            "slower than the fetch timeout",
            Answer::Slow(FETCH_TIMEOUT * 10, jwks_of(&TestKey::rsa_b())),
            "fetching JWKS",
        ),
        ("a dropped connection", Answer::HangUp, "fetching JWKS"),
    ]
}

/// Fetches JWKS from the loopback issuers with the test timeout, on `schedule`.
fn refresher(schedule: Schedule) -> Refresher {
    let fetcher = Fetcher::new(
        &common::jwks_server::loopback_jwks_settings(),
        FETCH_TIMEOUT,
    );
    Refresher::new(fetcher.unwrap(), schedule, 8.try_into().unwrap())
}

/// Fetches what is due now (every URI: refresh and retry are zero).
fn every_time() -> Refresher {
    refresher(Schedule {
        refresh: Duration::ZERO,
        retry: Duration::ZERO,
    })
}

/// `models/<name>` on the default Gateway, whose keys are fetched from `jwks_uri`.
fn jwt_model(name: &str, jwks_uri: &str) -> SeldonDeployment {
    model(name, "seldon-gateway")
        .predictor("p", 100)
        .annotate(JWT_JWKS_URI, jwks_uri)
}

/// Fetches what is due and applies the result.
async fn refresh_and_apply(
    ctx: &Context,
    http: &Refresher,
    all: &[SeldonDeployment],
) -> modelgate_controller::jwks::Refreshed {
    let report = http.refresh_due(&ctx.jwks).await;
    reconcile_global(ctx, all).await.unwrap();
    report
}

#[tokio::test]
async fn a_failing_jwks_endpoint_never_empties_or_replaces_a_models_last_good_keys() {
    let mut issuer = JwksServer::start(Answer::Body(200, jwks_of(&TestKey::rsa_a()))).await;
    let uri = issuer.uri();
    let all = [jwt_model("a", &uri), open("open", "seldon-gateway")];
    let api = FakeApi::default();
    let ctx = context(&api);
    let http = every_time();
    converge(&ctx, &all).await;
    // Not fetched yet: no keys, so a is denied (fail closed), never open.
    assert_eq!(model_kids(&api, "models/a"), Vec::<String>::new());
    let report = refresh_and_apply(&ctx, &http, &all).await;
    assert_eq!(report.changed, [uri.as_str()]);
    let kid_a = TestKey::rsa_a().jwk()["kid"].as_str().unwrap().to_string();
    assert_eq!(model_kids(&api, "models/a"), [kid_a.as_str()]);
    let good = serde_json::to_string(&plugin_config(&api)).unwrap();
    api.take_writes();

    for (what, answer, reason) in broken_answers() {
        issuer.answer(answer);
        let report = refresh_and_apply(&ctx, &http, &all).await;
        assert!(report.changed.is_empty(), "{what}: {report:?}");
        assert_eq!(report.failed.len(), 1, "{what}: {report:?}");
        assert!(
            report.failed[0].0 == uri && report.failed[0].1.contains(reason),
            "{what}: {report:?}"
        );
        assert_eq!(
            serde_json::to_string(&plugin_config(&api)).unwrap(),
            good,
            "{what} changed the filter configuration"
        );
        assert_eq!(api.take_writes(), Vec::<String>::new(), "{what}");
    }
    issuer.down().await;
    let report = refresh_and_apply(&ctx, &http, &all).await;
    assert_eq!(report.failed.len(), 1, "down: {report:?}");
    assert_eq!(serde_json::to_string(&plugin_config(&api)).unwrap(), good);
    // A failure is retried on the retry schedule, not the refresh one, backing off
    // exponentially with every failure in a row.
    let schedule = Schedule {
        refresh: Duration::from_secs(3600),
        retry: Duration::from_millis(1),
    };
    let before = std::time::Instant::now();
    refresher(schedule).refresh_due(&ctx.jwks).await;
    let (failures, due) = ctx.jwks.backoff(&uri).unwrap();
    let due = due.unwrap();
    let wait = schedule.after_failures(failures);
    assert_eq!(failures, broken_answers().len() as u32 + 2);
    assert_eq!(wait, Duration::from_millis(1 << (failures - 1)));
    assert!(
        due >= before + wait && due <= std::time::Instant::now() + wait,
        "a failed fetch is due again after its backoff"
    );
    tokio::time::sleep(due.saturating_duration_since(std::time::Instant::now())).await;

    // The issuer comes back with a rotated key: it is picked up, and only it.
    issuer.up().await;
    issuer.answer(Answer::Body(200, jwks_of(&TestKey::rsa_b())));
    let report = refresh_and_apply(&ctx, &http, &all).await;
    assert_eq!(report.changed, [uri.as_str()]);
    let kid_b = TestKey::rsa_b().jwk()["kid"].as_str().unwrap().to_string();
    assert_ne!(kid_a, kid_b);
    assert_eq!(model_kids(&api, "models/a"), [kid_b]);
    assert_eq!(
        api.take_writes()
            .iter()
            .map(|w| w.split('?').next().unwrap())
            .collect::<Vec<_>>(),
        ["PATCH wasmplugins istio-system/modelgate"]
    );
}

#[tokio::test]
async fn a_restart_while_the_jwks_endpoint_is_down_keeps_the_keys_the_filter_has() {
    let mut issuer = JwksServer::start(Answer::Body(200, jwks_of(&TestKey::rsa_a()))).await;
    let uri = issuer.uri();
    let all = [
        jwt_model("a", &uri),
        jwt_model("b", &uri).annotate(JWT_AUDIENCES, "b"),
    ];
    let api = FakeApi::default();
    let http = every_time();
    let ctx = context(&api);
    converge(&ctx, &all).await;
    refresh_and_apply(&ctx, &http, &all).await;
    let kid_a = TestKey::rsa_a().jwk()["kid"].as_str().unwrap().to_string();
    assert_eq!(model_kids(&api, "models/a"), [kid_a.as_str()]);
    assert_eq!(model_kids(&api, "models/b"), [kid_a.as_str()]);
    let good = serde_json::to_string(&plugin_config(&api)).unwrap();
    drop(ctx);

    // A new leader starts while the issuer is down: its cache is empty, the filter's is not.
    issuer.down().await;
    let ctx = context(&api);
    api.take_writes();
    converge(&ctx, &all).await;
    let report = refresh_and_apply(&ctx, &http, &all).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(
        serde_json::to_string(&plugin_config(&api)).unwrap(),
        good,
        "a restart emptied the keys"
    );
    assert_eq!(api.take_writes(), Vec::<String>::new());

    // Once the issuer answers, its keys replace the kept ones.
    issuer.up().await;
    issuer.answer(Answer::Body(200, jwks_of(&TestKey::rsa_b())));
    let report = refresh_and_apply(&ctx, &http, &all).await;
    assert_eq!(report.changed, [uri]);
    let kid_b = TestKey::rsa_b().jwk()["kid"].as_str().unwrap().to_string();
    assert_eq!(model_kids(&api, "models/a"), [kid_b.as_str()]);
    assert_eq!(model_kids(&api, "models/b"), [kid_b]);
}

/// A model's entry in the filter configuration, with the policy and key set it points at.
fn filter_entry(config: &Value, id: &str) -> String {
    let model = &config["models"][id];
    let policy = &config["policies"][model["policy"].as_str().unwrap()];
    let keys = policy["keySet"]
        .as_str()
        .map_or(Value::Null, |k| config["keySets"][k].clone());
    serde_json::to_string(&(model, policy, keys)).unwrap()
}

/// A fresh controller state, as [`context`], that posts Events.
fn context_with_events(api: &FakeApi) -> Context {
    let mut ctx = context(api);
    ctx.reporter = Some(Reporter {
        controller: "modelgate".into(),
        instance: None,
    });
    ctx
}

/// Converges `good` (models `a`, `b` and `c`) and returns what a broken `a` must leave as
/// it is: every object, and each model's [`footprint`].
async fn converged_with_footprints(
    api: &FakeApi,
    ctx: &Context,
    good: &[SeldonDeployment],
) -> (BTreeMap<&'static str, BTreeMap<String, Value>>, Vec<String>) {
    converge(ctx, good).await;
    let whole = cluster(api);
    let footprints: Vec<String> = ["a", "b", "c"].iter().map(|m| footprint(api, m)).collect();
    api.take_writes();
    (whole, footprints)
}

/// Reconciles `now`, where model `a` broke (`line` says how), and checks that nothing at
/// all changed (not the other models, not a's last good objects and entry) and that the
/// user is told once, on a, with a Warning Event, which it returns.
async fn only_a_is_told(
    api: &FakeApi,
    ctx: &Context,
    now: &[SeldonDeployment],
    line: &str,
    whole: &BTreeMap<&'static str, BTreeMap<String, Value>>,
    footprints: &[String],
) -> Value {
    let events = api.events().len();
    let retries = converge(ctx, now).await;
    assert!(retries.delays.is_empty(), "{line}: {retries:?}");
    let writes: Vec<String> = api
        .take_writes()
        .into_iter()
        .filter(|w| !w.starts_with("PATCH events "))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "{line}");
    assert_eq!(&cluster(api), whole, "{line}");
    for (m, before) in ["a", "b", "c"].iter().zip(footprints) {
        assert_eq!(&footprint(api, m), before, "{line} changed {m}");
    }
    let new: Vec<Value> = api.events()[events..].to_vec();
    assert_eq!(new.len(), 1, "{line}: {new:?}");
    assert_eq!(new[0]["type"], "Warning");
    assert_eq!(new[0]["regarding"]["name"], "a");
    new[0].clone()
}

/// Everything of one model that the cluster holds: its objects and its filter entry.
fn footprint(api: &FakeApi, name: &str) -> String {
    let mine = |kind: &str| -> Vec<Value> {
        api.objects(kind)
            .into_iter()
            .filter(|(_, o)| {
                o["metadata"]["labels"]["modelgate.seldon.io/seldon-deployment"] == name
            })
            .map(|(_, o)| o)
            .collect()
    };
    let objects = (mine("virtualservices"), mine("destinationrules"));
    assert!(!objects.0.is_empty() && !objects.1.is_empty(), "{name}");
    format!(
        "{}\n{}",
        serde_json::to_string(&objects).unwrap(),
        filter_entry(&plugin_config(api), &format!("models/{name}"))
    )
}

#[tokio::test]
async fn broken_annotations_change_nothing_of_other_models_and_keep_their_own_last_good_entry() {
    let a = model("a", "seldon-gateway")
        .predictor("main", 90)
        .predictor("canary", 10)
        .annotate(JWT_AUDIENCES, "team-a")
        .annotate(AB_STICKY, "header:x-user");
    let b = open("b", "edge/public");
    let c = model("c", "seldon-gateway")
        .predictor("main", 50)
        .predictor("shadow", 0)
        .annotate(JWT_CLAIMS, r#"{"scope": ["predict"]}"#);
    let with = |a: SeldonDeployment| [a, b.clone(), c.clone()];
    let api = FakeApi::default();
    let ctx = context_with_events(&api);
    let (whole, footprints) = converged_with_footprints(&api, &ctx, &with(a.clone())).await;

    let broken = [
        (AUTH_MODE, "permissive"),
        (JWT_CLAIMS, "scope=predict"),
        (ISTIO_RETRIES, "lots"),
        (JWT_JWKS_URI, "ftp://idp/jwks"),
        (ISTIO_HOST, "a.example.com,,b.example.com"),
        (AB_STICKY, "ip:client"),
        (AUTH, "maybe"),
    ];
    for (annotation, value) in broken {
        let line = format!("{annotation}: {value}");
        let now = with(a.clone().annotate(annotation, value));
        let event = only_a_is_told(&api, &ctx, &now, &line, &whole, &footprints).await;
        // With the annotation and what happens.
        assert_eq!(event["reason"], "InvalidAnnotation");
        assert_eq!(event["regarding"]["name"], "a");
        let note = event["note"].as_str().unwrap();
        assert!(
            note.contains(annotation) && note.contains("its last good configuration is kept"),
            "{note}"
        );
        assert_eq!(ctx.metrics.invalid_models.get(), 1);
    }

    // A model broken from the start is denied, and still nobody else changes.
    let d = model("d", "seldon-gateway")
        .predictor("p", 100)
        .annotate(ISTIO_RETRIES, "-1");
    let now = [a, d, b, c];
    let events = api.events().len();
    converge(&ctx, &now).await;
    for (m, before) in ["a", "b", "c"].iter().zip(&footprints) {
        assert_eq!(&footprint(&api, m), before, "d changed {m}");
    }
    assert!(api.get("virtualservices", "models", "d").is_none());
    let config = plugin_config(&api);
    let policy = &config["policies"][config["models"]["models/d"]["policy"].as_str().unwrap()];
    assert_eq!(policy["auth"], "deny", "{config}");
    let new: Vec<Value> = api.events()[events..].to_vec();
    assert!(
        new.iter().any(|e| e["regarding"]["name"] == "d"
            && e["note"]
                .as_str()
                .unwrap()
                .contains("seldon.io/istio-retries")
            && e["note"]
                .as_str()
                .unwrap()
                .contains("never had a valid configuration")),
        "{new:?}"
    );
}

#[tokio::test]
async fn a_restart_keeps_a_broken_models_last_good_entry_and_its_gateway() {
    let mut issuer = JwksServer::start(Answer::Body(200, jwks_of(&TestKey::rsa_a()))).await;
    let a = model("a", "edge/only-a")
        .predictor("main", 90)
        .predictor("canary", 10)
        .annotate(JWT_JWKS_URI, &issuer.uri())
        .annotate(AB_STICKY, "header:x-user");
    let b = open("b", "seldon-gateway");
    let good = [a.clone(), b.clone()];
    let api = FakeApi::default();
    let http = every_time();
    let ctx = context(&api);
    converge(&ctx, &good).await;
    refresh_and_apply(&ctx, &http, &good).await;
    let whole = cluster(&api);
    let footprints: Vec<String> = ["a", "b"].iter().map(|m| footprint(&api, m)).collect();
    assert_eq!(model_kids(&api, "models/a"), ["rsa-a"]);

    // a's annotations break; the controller restarts; the issuer is down meanwhile.
    let broken = [a.annotate(AUTH_MODE, "permissive"), b];
    drop(ctx);
    issuer.down().await;
    let ctx = context_with_events(&api);
    api.take_writes();
    let retries = converge(&ctx, &broken).await;
    assert!(retries.delays.is_empty(), "{retries:?}");
    let report = refresh_and_apply(&ctx, &http, &broken).await;
    assert!(report.changed.is_empty(), "{report:?}");
    let writes: Vec<String> = api
        .take_writes()
        .into_iter()
        .filter(|w| !w.starts_with("PATCH events "))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(cluster(&api), whole);
    for (m, before) in ["a", "b"].iter().zip(&footprints) {
        assert_eq!(&footprint(&api, m), before, "the restart changed {m}");
    }
    let events = api.events();
    assert!(
        events.iter().any(|e| e["regarding"]["name"] == "a"
            && e["note"]
                .as_str()
                .unwrap()
                .contains("its last good configuration is kept")),
        "{events:?}"
    );

    // Fixed again, a follows its JWKS URI as before.
    issuer.up().await;
    issuer.answer(Answer::Body(200, jwks_of(&TestKey::rsa_b())));
    converge(&ctx, &good).await;
    refresh_and_apply(&ctx, &http, &good).await;
    assert_eq!(model_kids(&api, "models/a"), ["rsa-b"]);
}

#[tokio::test]
async fn a_model_breaking_a_platform_rule_gets_its_own_error_and_is_never_fetched() {
    let a = model("a", "seldon-gateway")
        .predictor("p", 100)
        .annotate(JWT_AUDIENCES, "team-a");
    let b = open("b", "edge/public");
    let c = model("c", "seldon-gateway").predictor("p", 100).jwt(
        "https://idp.models.example/team-c",
        "https://idp.models.example/team-c/certs",
    );
    let with = |a: SeldonDeployment| [a, b.clone(), c.clone()];
    let api = FakeApi::default();
    let mut ctx = context_with_events(&api);
    // The platform's rules, with the default (strict) JWKS target rules.
    ctx.settings.jwks = Default::default();
    ctx.settings.tenancy = serde_yaml_ng::from_str(
        "gatewayNamespaces: [edge]\n\
         allowedIssuers: {'*': ['https://idp.models.example/*']}\n\
         allowedJwksUris: {'*': ['https://idp.models.example/*']}\n\
         allowInlineJwks: false\n",
    )
    .unwrap();
    ctx.settings.validate().unwrap();
    let (whole, footprints) = converged_with_footprints(&api, &ctx, &with(a.clone())).await;

    let inline = jwks_of(&TestKey::rsa_b());
    let broken = [
        (
            JWT_ISSUER,
            "https://idp.bank.example",
            "tenancy.allowedIssuers",
            None,
        ),
        (
            JWT_JWKS_URI,
            "https://idp.bank.example/jwks",
            "tenancy.allowedJwksUris",
            Some("https://idp.bank.example/jwks"),
        ),
        (JWT_JWKS, inline.as_str(), "tenancy.allowInlineJwks", None),
        (
            JWT_JWKS_URI,
            "http://idp.models.example/team-a/certs",
            "jwks.allowHttp",
            Some("http://idp.models.example/team-a/certs"),
        ),
        (
            JWT_JWKS_URI,
            "https://169.254.169.254/latest/meta-data",
            "jwks.allowedTargets",
            Some("https://169.254.169.254/latest/meta-data"),
        ),
        (
            JWT_JWKS_URI,
            "https://keycloak.auth.svc.cluster.local/certs",
            "jwks.allowedTargets",
            Some("https://keycloak.auth.svc.cluster.local/certs"),
        ),
    ];
    for (annotation, value, rule, uri) in broken {
        let line = format!("{annotation}: {value}");
        let now = with(a.clone().annotate(annotation, value));
        let event = only_a_is_told(&api, &ctx, &now, &line, &whole, &footprints).await;
        // Naming the annotation and the rule.
        let note = event["note"].as_str().unwrap();
        assert!(note.contains(annotation) && note.contains(rule), "{note}");
        // The refused URI is not among those fetched.
        let fetched = ctx.generate(&now).jwks_uris;
        if let Some(uri) = uri {
            assert!(!fetched.contains(uri), "{line}: {fetched:?}");
        }
        assert!(fetched.contains("https://idp.models.example/team-c/certs"));
    }
}
