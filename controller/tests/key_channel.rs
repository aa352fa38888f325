//! The key channel's endpoint (`GET /keys?uri=<JWKS URI>`) against a loopback issuer: it
//! answers only for URIs the controller tracks, with the usable keys only, fetches each at most once per interval
//! however many ask at once, answers the current keys in between, and wakes the shared
//! loop when a fetch brought new keys; a follower answers for the URIs of the live
//! WasmPlugin.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_api::FakeApi;
use common::jwks_server::{Answer, JwksServer, loopback_jwks_settings};
use modelgate_controller::generate::render_wasm_plugin;
use modelgate_controller::jwks::on_demand::OnDemand;
use modelgate_controller::jwks::{Fetcher, JwksCache, Schedule};
use modelgate_controller::metrics::Metrics;
use modelgate_controller::reconcile::{Context, follow_live_key_sets};
use modelgate_controller::wasm_server::{KeyEndpoint, ServerState};
use modelgate_core::config::{FilterConfig, KeySet};
use modelgate_testkit::TestKey;
use prometheus_client::registry::Registry;

fn keys_of(keys: &[&TestKey]) -> Answer {
    Answer::Body(200, modelgate_testkit::jwks(keys).to_string())
}

fn requests(server: &JwksServer) -> usize {
    *server.requests.lock().unwrap()
}

/// A controller's HTTP server answering `/keys` for the URIs `cache` tracks, fetching each
/// at most once per `interval`; its base URL.
async fn controller(cache: &JwksCache, interval: Duration) -> (String, ServerState, Metrics) {
    let fetcher = Fetcher::new(&loopback_jwks_settings(), Duration::from_secs(2)).unwrap();
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let state = ServerState::new(registry).with_key_endpoint(KeyEndpoint {
        on_demand: OnDemand {
            cache: cache.clone(),
            fetcher,
            schedule: Schedule {
                refresh: Duration::from_secs(1200),
                retry: Duration::from_secs(30),
            },
            interval,
            limits: Default::default(),
        },
        metrics: metrics.clone(),
    });
    let base = common::serve_on_loopback(state.clone()).await;
    (base, state, metrics)
}

fn client() -> reqwest::Client {
    modelgate_controller::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `GET /keys?uri=<uri>`: status and, for 200, the key ids.
async fn ask(client: &reqwest::Client, base: &str, uri: &str) -> (u16, Vec<String>) {
    let url = reqwest::Url::parse_with_params(&format!("{base}/keys"), &[("uri", uri)]).unwrap();
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return (status, Vec::new());
    }
    let set: KeySet = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let kids = set
        .keys
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or("").to_string())
        .collect();
    (status, kids)
}

fn refetches(metrics: &Metrics, outcome: &str) -> u64 {
    metrics
        .key_refetches
        .get_or_create(&modelgate_controller::metrics::OutcomeLabel {
            outcome: outcome.into(),
        })
        .get()
}

#[tokio::test]
async fn only_tracked_uris_are_fetched_and_answered() {
    // The issuer also publishes a key the filter never uses: it is not in the answer.
    let published = serde_json::json!({"keys": [
        TestKey::rsa_a().jwk(),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
    ]});
    let issuer = JwksServer::start(Answer::Body(200, published.to_string())).await;
    let other = JwksServer::start(keys_of(&[&TestKey::rsa_b()])).await;
    let cache = JwksCache::default();
    cache.track(&[issuer.uri()].into());
    let (base, _, metrics) = controller(&cache, Duration::from_secs(3600)).await;
    let client = client();

    // A URI nobody's model names, even one that answers, is neither fetched nor answered.
    assert_eq!(ask(&client, &base, &other.uri()).await.0, 404);
    assert_eq!(
        ask(&client, &base, "http://169.254.169.254/latest").await.0,
        404
    );
    assert_eq!(requests(&other), 0, "an untracked URI is never fetched");
    assert_eq!(refetches(&metrics, "untracked"), 2);
    // No uri, or two: a bad request.
    let bare = client.get(format!("{base}/keys")).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 400);
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/keys"),
        &[("uri", issuer.uri()), ("uri", issuer.uri())],
    )
    .unwrap();
    let twice = client.get(url).send().await.unwrap();
    assert_eq!(twice.status().as_u16(), 400);

    assert_eq!(
        ask(&client, &base, &issuer.uri()).await,
        (200, vec!["rsa-a".to_string()])
    );
    assert_eq!(requests(&issuer), 1);
    assert_eq!(refetches(&metrics, "changed"), 1);
}

#[tokio::test]
async fn a_uri_is_fetched_at_most_once_per_interval_however_many_ask() {
    let issuer = JwksServer::start(keys_of(&[&TestKey::rsa_a()])).await;
    let cache = JwksCache::default();
    cache.track(&[issuer.uri()].into());
    // The interval is kept by the cache, per URI: a second server over the same cache with
    // a zero interval stands for the first one once its interval is over (no test waits).
    let (base, _, metrics) = controller(&cache, Duration::from_secs(3600)).await;
    let (later, later_state, later_metrics) = controller(&cache, Duration::ZERO).await;
    let client = Arc::new(client());

    // Fifty at once (fifty gateway VMs, say): one fetch.
    let asks: Vec<_> = (0..50)
        .map(|_| {
            let (client, base, uri) = (client.clone(), base.clone(), issuer.uri());
            tokio::spawn(async move { ask(&client, &base, &uri).await.0 })
        })
        .collect();
    for a in asks {
        let status = a.await.unwrap();
        // The one that fetched answers the keys; the others answer the keys known when
        // they ask: none before the fetch is done (503), the fetched ones after.
        assert!(status == 200 || status == 503, "{status}");
    }
    assert_eq!(requests(&issuer), 1);
    assert_eq!(refetches(&metrics, "limited"), 49);

    // The issuer rotates: within the interval the answer is the keys fetched before.
    issuer.answer(keys_of(&[&TestKey::rsa_a(), &TestKey::rsa_b()]));
    assert_eq!(
        ask(&client, &base, &issuer.uri()).await,
        (200, vec!["rsa-a".to_string()])
    );
    assert_eq!(requests(&issuer), 1);

    // Once the interval is over, one fetch brings the new key, for the next configuration
    // too: the shared loop is woken, and the cache generation reads holds it.
    let woken = later_state.keys_changed.clone();
    assert_eq!(
        ask(&client, &later, &issuer.uri()).await,
        (200, vec!["rsa-a".to_string(), "rsa-b".to_string()])
    );
    assert_eq!(requests(&issuer), 2);
    tokio::time::timeout(Duration::from_secs(5), woken.notified())
        .await
        .expect("the shared loop is woken by new keys");
    assert_eq!(cache.snapshot()[&issuer.uri()].keys.len(), 2);

    // An issuer that fails: the last good keys are still the answer.
    issuer.answer(Answer::Body(500, "down".into()));
    assert_eq!(ask(&client, &later, &issuer.uri()).await.1.len(), 2);
    assert_eq!(requests(&issuer), 3);
    assert_eq!(refetches(&later_metrics, "failed"), 1);
}

#[tokio::test]
async fn the_endpoint_is_off_unless_the_key_channel_is_on() {
    let state = ServerState::new(Registry::default());
    let base = common::serve_on_loopback(state).await;
    let response = client()
        .get(format!("{base}/keys?uri=https%3A%2F%2Fidp.example%2Fjwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn a_follower_answers_for_the_uris_of_the_live_configuration() {
    let issuer = JwksServer::start(keys_of(&[&TestKey::rsa_a(), &TestKey::rsa_b()])).await;
    let api = FakeApi::default();
    let settings = common::plain_settings();
    let wasm = common::test_wasm(&settings);
    // What the leader wrote: a set fetched from the issuer, and a model's inline keys.
    let keys = |key: TestKey| {
        modelgate_testkit::jwks(&[&key])["keys"]
            .as_array()
            .cloned()
            .unwrap()
    };
    let mut live = FilterConfig::new();
    live.key_sets.insert(
        "k0".into(),
        KeySet {
            source: Some(issuer.uri()),
            keys: keys(TestKey::rsa_a()),
        },
    );
    live.key_sets.insert(
        "k1".into(),
        KeySet {
            source: Some("inline".into()),
            keys: keys(TestKey::ec()),
        },
    );
    let plugin = render_wasm_plugin(&live, &settings, &wasm, &[]);
    api.insert("wasmplugins", serde_json::to_value(&plugin).unwrap());
    let follower = Context::new(api.client(&settings), settings, wasm, None);

    assert_eq!(follow_live_key_sets(&follower).await.unwrap(), 1);
    let known = follower.jwks.snapshot();
    assert_eq!(known.keys().collect::<Vec<_>>(), [&issuer.uri()]);
    assert_eq!(
        known[&issuer.uri()].keys.len(),
        1,
        "the live keys, before any fetch"
    );

    let (base, _, _) = controller(&follower.jwks, Duration::from_secs(3600)).await;
    let client = client();
    assert_eq!(
        ask(&client, &base, &issuer.uri()).await,
        (200, vec!["rsa-a".to_string(), "rsa-b".to_string()])
    );
    assert_eq!(ask(&client, &base, "inline").await.0, 404);
    assert_eq!(requests(&issuer), 1);
}

#[tokio::test]
async fn a_gateway_that_stops_waiting_does_not_leave_the_uri_stuck() {
    let body = modelgate_testkit::jwks(&[&TestKey::rsa_a()]).to_string();
    let issuer = JwksServer::start(Answer::Slow(Duration::from_millis(800), body)).await;
    let cache = JwksCache::default();
    cache.track(&[issuer.uri()].into());
    let (base, _, _) = controller(&cache, Duration::from_secs(3600)).await;
    let (later, _, _) = controller(&cache, Duration::ZERO).await;

    // The gateway gives up long before the issuer answers.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let url =
        reqwest::Url::parse_with_params(&format!("{base}/keys"), &[("uri", issuer.uri())]).unwrap();
    assert!(impatient.get(url).send().await.is_err());
    // The fetch still ends and is recorded...
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cache.snapshot().contains_key(&issuer.uri()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the abandoned fetch is recorded");
    // ... so the URI is not left in flight: the next request past the interval fetches.
    assert_eq!(ask(&client(), &later, &issuer.uri()).await.0, 200);
    assert_eq!(requests(&issuer), 2);
}
