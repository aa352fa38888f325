//! Key rotation through the key channel, in a real Envoy: the filter asks the controller
//! for a key set when a token names a `kid` the set lacks. The controller is the real one's
//! HTTP server (`/keys`, run in process) in front of a loopback identity provider; the
//! gateway reaches it through a cluster, as an Istio gateway reaches the controller's
//! Service.
//!
//! - The issuer rotates to a new key while traffic flows: the first token of the new key is
//!   served, and the old key's tokens never stop being served.
//! - With the controller unreachable, or the issuer down, a token of an unknown key is
//!   refused as without the channel (`401 unknown_key`).
//! - A flood of tokens with made-up `kid`s costs at most one request to the controller and
//!   one fetch at the issuer per interval.
//!
//! Loopback only, one worker (one filter VM), bounded in requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, Header};
use modelgate_controller::jwks::on_demand::OnDemand;
use modelgate_controller::jwks::{Fetcher, JwksCache, Schedule};
use modelgate_controller::metrics::Metrics;
use modelgate_controller::run::KEY_CHANNEL_INTERVAL;
use modelgate_controller::settings::JwksSettings;
use modelgate_controller::wasm_server::{self, KeyEndpoint, ServerState};
use modelgate_core::config::{FilterConfig, KeyChannel, KeySet, Model, Policy};
use modelgate_e2e::answers::{assert_invalid_token, assert_reached};
use modelgate_e2e::routes::{ModelRoutes, RouteTable};
use modelgate_e2e::{Client, Gateway, GatewaySpec, Request, sample};
use modelgate_testkit::{TestKey, jwks, now};
use serde_json::json;

const ISSUER: &str = "https://127.0.0.1/realms/rotating";
const MODEL: &str = "rotating/model";
/// The cluster the filter calls, standing for Istio's `outbound|8080||<controller FQDN>`.
const CONTROLLER_CLUSTER: &str = "outbound|8080||modelgate.modelgate-system.svc.cluster.local";

/// A loopback identity provider and the controller's HTTP server, on a runtime of their
/// own; dropping it stops both.
struct ControlPlane {
    runtime: tokio::runtime::Runtime,
    controller: SocketAddr,
    issuer_uri: String,
    /// What the issuer answers: status, body, and after how long.
    published: Arc<Mutex<(u16, String, Duration)>>,
    /// Fetches the issuer has answered.
    fetches: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl ControlPlane {
    /// The issuer publishing `keys`, and a controller that tracks its URI and already
    /// holds those keys (as after its periodic fetch).
    fn start(keys: &[&TestKey]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let published = Arc::new(Mutex::new((200, jwks(keys).to_string(), Duration::ZERO)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let issuer = {
            let (published, fetches) = (published.clone(), fetches.clone());
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let (status, body, delay) = published.lock().unwrap().clone();
                    fetches.fetch_add(1, Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            [("content-type", "application/json")],
                            body,
                        )
                    }
                }),
            )
        };
        let issuer_listener = listener();
        let issuer_uri = format!("http://{}/jwks", issuer_listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(issuer_listener, issuer).await });

        let cache = JwksCache::default();
        cache.track(&[issuer_uri.clone()].into());
        cache.keep(&issuer_uri, key_set(&issuer_uri, keys));
        // The issuer is on loopback, over http: admitted explicitly, as a platform would.
        let settings: JwksSettings =
            serde_yaml_ng::from_str("allowHttp: true\nallowedTargets: [127.0.0.1/32]\n").unwrap();
        let metrics = Metrics::default();
        let state = ServerState::new(Default::default()).with_key_endpoint(KeyEndpoint {
            on_demand: OnDemand {
                cache,
                fetcher: Fetcher::new(&settings, Duration::from_secs(2)).unwrap(),
                schedule: Schedule {
                    refresh: Duration::from_secs(1200),
                    retry: Duration::from_secs(30),
                },
                interval: KEY_CHANNEL_INTERVAL,
                limits: Default::default(),
            },
            metrics: metrics.clone(),
        });
        let controller_listener = listener();
        let controller = controller_listener.local_addr().unwrap();
        runtime.spawn(wasm_server::serve(
            controller_listener,
            state,
            std::future::pending(),
        ));
        drop(_entered);
        Self {
            runtime,
            controller,
            issuer_uri,
            published,
            fetches,
            metrics,
        }
    }

    /// The issuer publishes these keys from now on, answering after `delay`.
    fn publish(&self, keys: &[&TestKey], delay: Duration) {
        *self.published.lock().unwrap() = (200, jwks(keys).to_string(), delay);
    }

    /// The issuer answers this error from now on, after `delay`.
    fn fail(&self, status: u16, delay: Duration) {
        *self.published.lock().unwrap() = (status, "down".into(), delay);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Requests the controller's `/keys` has answered, whatever their outcome.
    fn keys_requests(&self) -> u64 {
        ["untracked", "changed", "unchanged", "failed", "limited"]
            .iter()
            .map(|outcome| {
                self.metrics
                    .key_refetches
                    .get_or_create(&modelgate_controller::metrics::OutcomeLabel {
                        outcome: outcome.to_string(),
                    })
                    .get()
            })
            .sum()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Stops both servers without waiting for their connections.
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        runtime.shutdown_background();
    }
}

/// A loopback listener for the current runtime.
fn listener() -> tokio::net::TcpListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(listener).unwrap()
}

fn key_set(uri: &str, keys: &[&TestKey]) -> KeySet {
    KeySet {
        source: Some(uri.to_string()),
        keys: jwks(keys)["keys"].as_array().cloned().unwrap_or_default(),
    }
}

/// A gateway with one JWT model whose key set came from `plane`'s issuer (holding
/// `keys`), and a key channel to `controller`.
fn gateway(name: &str, plane: &ControlPlane, keys: &[&TestKey], controller: SocketAddr) -> Gateway {
    let mut config = FilterConfig::new();
    config
        .key_sets
        .insert("issuer".into(), key_set(&plane.issuer_uri, keys));
    config.policies.insert(
        "jwt".into(),
        Policy::Jwt(sample::jwt_policy(ISSUER, "issuer")),
    );
    config.models.insert(
        MODEL.into(),
        Model {
            policy: "jwt".into(),
            routing: None,
        },
    );
    config.channel = Some(KeyChannel {
        cluster: CONTROLLER_CLUSTER.into(),
        authority: "modelgate.modelgate-system.svc.cluster.local".into(),
        keys_path: "/keys".into(),
        timeout_ms: 2000,
        refetch_secs: KEY_CHANNEL_INTERVAL.as_secs() as u32,
    });
    let spec = GatewaySpec {
        routes: RouteTable::new(vec![ModelRoutes::new(
            "rotating",
            "model",
            &[("default", 100)],
        )]),
        filter_config: sample::to_json(&config),
        workers: 1,
    };
    let clusters = BTreeMap::from([(CONTROLLER_CLUSTER.to_string(), controller)]);
    Gateway::start_with_clusters(name, &spec, &clusters)
        .unwrap_or_else(|e| panic!("cannot start the test gateway: {e}"))
}

fn token(key: &TestKey, user: &str) -> String {
    let now = now();
    key.sign(&json!({"iss": ISSUER, "sub": user, "iat": now, "exp": now + 600}))
}

fn predict(token: &str) -> Request {
    Request::predict(MODEL).bearer(token)
}

#[test]
fn the_first_token_of_a_rotated_key_is_served_while_traffic_flows() {
    let (old, new) = (TestKey::rsa_a(), TestKey::rsa_b());
    let plane = ControlPlane::start(&[&old]);
    let gw = gateway("rotation-served", &plane, &[&old], plane.controller);
    assert_reached(&gw.send(&predict(&token(&old, "before"))), "the old key");

    let stop = AtomicBool::new(false);
    let refused = std::thread::scope(|scope| {
        // Traffic of the old key flows all along, on a connection of its own.
        let traffic = scope.spawn(|| {
            let mut client = Client::new(gw.address());
            let mut refused = Vec::new();
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) || sent < 20 {
                let response = client
                    .send(&predict(&token(&old, &format!("u{sent}"))))
                    .unwrap();
                if response.status != 200 {
                    refused.push(response.summary());
                }
                sent += 1;
            }
            refused
        });

        // The issuer rotates: it now publishes the new key beside the old one, slowly
        // enough that the first tokens of the new key, sent at once, all wait for the
        // one request the filter makes (the delay only widens that window; nothing here
        // depends on it).
        plane.publish(&[&old, &new], Duration::from_millis(300));
        let firsts: Vec<_> = (0..6)
            .map(|i| {
                let address = gw.address();
                let token = token(&new, &format!("first{i}"));
                scope.spawn(move || Client::new(address).send(&predict(&token)).unwrap())
            })
            .collect();
        for first in firsts {
            assert_reached(
                &first.join().unwrap(),
                "a first token signed with the new key",
            );
        }
        assert_eq!(plane.keys_requests(), 1, "one request to the controller");
        assert_eq!(plane.fetches(), 1, "one fetch at the issuer");
        for i in 0..20 {
            let response = gw.send(&predict(&token(&new, &format!("later{i}"))));
            assert_reached(&response, "a later token of the new key");
        }
        assert_eq!(
            plane.keys_requests(),
            1,
            "the new key is in force: no more requests"
        );
        stop.store(true, Ordering::SeqCst);
        traffic.join().unwrap()
    });
    assert!(
        refused.is_empty(),
        "the old key's traffic was refused: {refused:?}"
    );
    let metrics = gw.metrics();
    assert_eq!(
        metrics.value("modelgate_key_refetches_total", &[("result", "updated")]),
        1.0
    );
}

#[test]
fn without_the_controller_or_the_issuer_an_unknown_key_is_refused_as_today() {
    let (old, new) = (TestKey::rsa_a(), TestKey::rsa_b());
    let plane = ControlPlane::start(&[&old]);
    plane.publish(&[&old, &new], Duration::ZERO);
    // A port nothing listens on: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway("rotation-unreachable", &plane, &[&old], closed);
    for user in ["a", "b", "c"] {
        let response = gw.send(&predict(&token(&new, user)));
        assert_invalid_token(&response, MODEL, "unknown_key", "controller unreachable");
    }
    assert_reached(&gw.send(&predict(&token(&old, "old"))), "the old key");
    assert_eq!(plane.fetches(), 0);
    assert!(
        gw.metrics()
            .value("modelgate_key_refetches_total", &[("result", "failed")])
            >= 1.0
    );
    drop(gw);

    // The controller is reachable, the issuer is down (and slow to say so): the answer is
    // the keys the controller had, the kid is still unknown, and the tokens held for the
    // answer, sent at once, are all refused.
    plane.fail(503, Duration::from_millis(300));
    let gw = gateway("rotation-issuer-down", &plane, &[&old], plane.controller);
    std::thread::scope(|scope| {
        let held: Vec<_> = ["a", "b", "c", "d"]
            .map(|user| {
                let (address, token) = (gw.address(), token(&new, user));
                scope.spawn(move || Client::new(address).send(&predict(&token)).unwrap())
            })
            .into_iter()
            .collect();
        for response in held {
            let response = response.join().unwrap();
            assert_invalid_token(&response, MODEL, "unknown_key", "issuer down");
        }
    });
    assert_eq!(plane.fetches(), 1);
    assert_eq!(plane.keys_requests(), 1);
    // Remembered: the same kid is refused without asking again.
    let response = gw.send(&predict(&token(&new, "e")));
    assert_invalid_token(&response, MODEL, "unknown_key", "issuer down, again");
    assert_eq!(plane.keys_requests(), 1);
    assert_reached(&gw.send(&predict(&token(&old, "old"))), "the old key");
}

#[test]
fn requests_held_for_a_request_whose_client_left_are_answered() {
    let (old, new) = (TestKey::rsa_a(), TestKey::rsa_b());
    let plane = ControlPlane::start(&[&old]);
    // Slow enough that the first client surely leaves before the issuer answers.
    plane.publish(&[&old, &new], Duration::from_secs(3));
    let gw = gateway("rotation-client-left", &plane, &[&old], plane.controller);

    // The first token of the new key, whose request makes the filter ask the controller;
    // its client leaves once the issuer is being asked.
    let mut first = std::net::TcpStream::connect(gw.address()).unwrap();
    let request = format!(
        "POST /seldon/rotating/model/api/v1.0/predictions HTTP/1.1\r\nhost: models\r\n\
         authorization: Bearer {}\r\ncontent-length: 0\r\n\r\n",
        token(&new, "leaves")
    );
    std::io::Write::write_all(&mut first, request.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while plane.fetches() == 0 {
        assert!(Instant::now() < deadline, "the filter never asked");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::scope(|scope| {
        // A second one waits for the same answer...
        let address = gw.address();
        let second = token(&new, "stays");
        let held = scope.spawn(move || Client::new(address).send(&predict(&second)).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        // ... and the first client leaves: Envoy cancels the request it made, so the
        // second is decided at once with the keys in force, as without the channel
        // (rather than held until its client gives up).
        drop(first);
        let response = held.join().unwrap();
        assert_invalid_token(&response, MODEL, "unknown_key", "held for a call abandoned");
    });
    assert_reached(&gw.send(&predict(&token(&old, "old"))), "the old key");
}

#[test]
fn a_flood_of_made_up_kids_costs_at_most_one_refetch_per_interval() {
    let key = TestKey::rsa_a();
    let plane = ControlPlane::start(&[&key]);
    let gw = gateway("rotation-flood", &plane, &[&key], plane.controller);
    let started = Instant::now();
    let mut client = gw.client();
    for i in 0..300 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("made-up-{i}-{}", now()));
        let now = now();
        let forged = key.sign_with_header(
            &header,
            &json!({"iss": ISSUER, "sub": "flood", "iat": now, "exp": now + 600}),
        );
        let response = client.send(&predict(&forged)).unwrap();
        assert_invalid_token(&response, MODEL, "unknown_key", "a made-up kid");
    }
    // However long the flood took, it is allowed one request per interval begun.
    let intervals = 1 + (started.elapsed().as_secs() / KEY_CHANNEL_INTERVAL.as_secs()) as usize;
    let (asked, fetched) = (plane.keys_requests() as usize, plane.fetches());
    assert!(asked >= 1, "the channel was used");
    assert!(
        asked <= intervals && fetched <= intervals,
        "{asked} requests to the controller and {fetched} fetches in {intervals} interval(s)"
    );
    assert_reached(&gw.send(&predict(&token(&key, "real"))), "a real token");
}
