//! The HTTP side of `run`: the served module hashes to the WasmPlugin's `sha256`, health
//! and metrics; JWKS fetching against a local server: refresh, rotation, outage, timeout.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use modelgate_controller::generate::WasmSource;
use modelgate_controller::jwks::{Fetcher, JwksCache, Refresher, Schedule};
use modelgate_controller::metrics::Metrics;
use modelgate_controller::wasm::filter_sha256;
use modelgate_controller::wasm_server::ServerState;
use modelgate_controller::{Settings, wasm_server};
use modelgate_testkit::TestKey;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

async fn local(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn the_served_module_hashes_to_the_wasm_plugins_sha256() {
    let mut registry = Registry::default();
    let metrics = Metrics::default();
    metrics.register(&mut registry);
    metrics.reconciled(true);
    let state = ServerState::new(registry);
    let base = common::serve_on_loopback(state.clone()).await;
    let settings = Settings {
        service_url: base.clone(),
        ..Settings::default()
    };
    let source = WasmSource::from_settings(&settings, &filter_sha256());
    let plugin = modelgate_controller::generate::render_wasm_plugin(
        &Default::default(),
        &settings,
        &source,
        &[],
    );
    modelgate_controller::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let body = client
        .get(&plugin.spec.url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let hash: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(Some(hash), plugin.spec.sha256);
    assert_eq!(&body[..4], b"\0asm");

    let get = async |path: &str| client.get(format!("{base}{path}")).send().await.unwrap();
    let wrong = get(&format!("/filter/modelgate-{}.wasm", "f".repeat(64))).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    assert_eq!(get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(
        get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(get("/readyz").await.status(), StatusCode::OK);
    let text = get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("modelgate_controller_reconciliations_total{result=\"ok\"} 1"),
        "{text}"
    );
}

/// What the local issuer answers.
#[derive(Clone)]
enum Issuer {
    Keys(serde_json::Value),
    Down,
    Slow,
}

#[tokio::test]
async fn jwks_refresh_rotation_and_outage_keep_the_last_good_keys() {
    let issuer = Arc::new(Mutex::new(Issuer::Keys(modelgate_testkit::jwks(&[
        &TestKey::rsa_a(),
    ]))));
    let state = issuer.clone();
    let base = local(Router::new().route(
        "/jwks",
        get(move || {
            let state = state.clone();
            async move {
                let now = state.lock().unwrap().clone();
                match now {
                    Issuer::Keys(v) => (StatusCode::OK, v.to_string()),
                    Issuer::Down => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    Issuer::Slow => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        (StatusCode::OK, "{}".into())
                    }
                }
            }
        }),
    ))
    .await;
    let uri = format!("{base}/jwks");
    let cache = JwksCache::default();
    cache.track(&[uri.clone()].into());
    let fetcher = Fetcher::new(
        &common::jwks_server::loopback_jwks_settings(),
        Duration::from_millis(500),
    )
    .unwrap();
    let on = |refresh, retry| {
        Refresher::new(
            fetcher.clone(),
            Schedule { refresh, retry },
            8.try_into().unwrap(),
        )
    };
    let kid = |cache: &JwksCache| {
        cache.snapshot()[&uri].keys[0]["kid"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // First fetch, then nothing is due until the refresh interval passes.
    let report = on(Duration::from_secs(3600), Duration::ZERO)
        .refresh_due(&cache)
        .await;
    assert_eq!(report.changed, std::slice::from_ref(&uri));
    assert_eq!(kid(&cache), "rsa-a");
    let report = on(Duration::from_secs(3600), Duration::ZERO)
        .refresh_due(&cache)
        .await;
    assert!(report.changed.is_empty() && report.failed.is_empty());

    // Rotation: with a zero refresh interval every round fetches.
    let cache = JwksCache::default();
    cache.track(&[uri.clone()].into());
    on(Duration::ZERO, Duration::ZERO).refresh_due(&cache).await;
    *issuer.lock().unwrap() = Issuer::Keys(modelgate_testkit::jwks(&[&TestKey::rsa_b()]));
    let report = on(Duration::ZERO, Duration::ZERO).refresh_due(&cache).await;
    assert_eq!(report.changed, std::slice::from_ref(&uri));
    assert_eq!(kid(&cache), "rsa-b");

    // Outage, a broken document and a timeout: the last good keys stay.
    for answer in [
        Issuer::Down,
        Issuer::Keys(serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
        Issuer::Slow,
    ] {
        *issuer.lock().unwrap() = answer;
        let report = on(Duration::ZERO, Duration::ZERO).refresh_due(&cache).await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert_eq!(kid(&cache), "rsa-b");
    }
    // A failure is retried after the retry delay, doubled by each failure in a row, not
    // the refresh interval.
    let schedule = Schedule {
        refresh: Duration::from_secs(3600),
        retry: Duration::from_secs(60),
    };
    on(schedule.refresh, schedule.retry)
        .refresh_due(&cache)
        .await;
    let (failures, due) = cache.backoff(&uri).unwrap();
    assert_eq!(failures, 4);
    let wait = schedule.after_failures(failures);
    assert_eq!(wait, Duration::from_secs(480));
    let due = due.unwrap();
    assert!(due <= std::time::Instant::now() + wait);
    assert!(due > std::time::Instant::now() + wait - Duration::from_secs(30));
}

/// Configuration by reference: the document a rendered reference names is served byte for
/// byte at the reference's path, with its hash; the previous ones while they are kept, not
/// older ones, nor anything else.
#[tokio::test]
async fn a_referenced_configuration_is_served_at_its_path_while_it_is_kept() {
    use modelgate_controller::config_documents::{ConfigDocuments, KEPT_DOCUMENTS};
    use modelgate_controller::generate::by_reference::ConfigByReference;
    use modelgate_core::config::{FilterConfig, Model, Policy, ReferenceDocument};

    let documents = ConfigDocuments::default();
    let state = ServerState::new(Registry::default()).with_config_documents(documents.clone());
    let base = local(wasm_server::router(state)).await;
    let settings = Settings {
        config_by_reference: ConfigByReference::Always,
        ..Settings::default()
    };
    let source = WasmSource::from_settings(&settings, &filter_sha256());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut references = Vec::new();
    for generation in 0..KEPT_DOCUMENTS + 2 {
        let mut config = FilterConfig::new();
        config.policies.insert("open".into(), Policy::None);
        for i in 0..=generation {
            config.models.insert(
                format!("team/m{i}"),
                Model {
                    policy: "open".into(),
                    routing: None,
                },
            );
        }
        let (extension, document) = modelgate_controller::generate::render_extension_with_document(
            &config,
            &settings,
            &source,
            &[],
        );
        documents
            .publish(document.expect("always by reference"))
            .await
            .unwrap();
        let reference: ReferenceDocument =
            serde_json::from_value(extension.plugin_config().clone()).unwrap();
        references.push(reference.reference);
    }
    let fetch = async |path: &str| {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap())
    };
    for (generation, reference) in references.iter().enumerate() {
        let (status, body) = fetch(&reference.path).await;
        if generation < references.len() - KEPT_DOCUMENTS {
            assert_eq!(status, StatusCode::NOT_FOUND, "generation {generation}");
            continue;
        }
        assert_eq!(status, StatusCode::OK, "generation {generation}");
        modelgate_core::by_reference::verify(&body, reference).unwrap();
        let config: FilterConfig = serde_json::from_slice(&body).unwrap();
        assert_eq!(config.models.len(), generation + 1);
    }
    let (status, _) = fetch(&format!("/config/{}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = fetch("/config/../keys").await;
    assert_ne!(status, StatusCode::OK);
}
