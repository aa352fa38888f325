//! JWKS fetching against loopback issuers a tenant controls: redirects are not followed,
//! internal targets are refused before any connection, dead URIs do not hold up working
//! ones, and a failing URI backs off. (The body cap is in `jwks_body_cap.rs`, alone in
//! its process so its memory can be measured.)

mod common;

use std::time::{Duration, Instant};

use common::jwks_server::{Answer, JwksServer, loopback_jwks_settings};
use modelgate_controller::jwks::{Fetched, Fetcher, JwksCache, JwksError, Refresher, Schedule};
use modelgate_controller::settings::JwksSettings;
use modelgate_testkit::TestKey;

const TIMEOUT: Duration = Duration::from_secs(2);

fn good_keys() -> Answer {
    Answer::Body(
        200,
        modelgate_testkit::jwks(&[&TestKey::rsa_a()]).to_string(),
    )
}

fn requests(server: &JwksServer) -> usize {
    *server.requests.lock().unwrap()
}

#[tokio::test]
async fn a_redirect_is_not_followed_to_another_origin_nor_the_same_one() {
    let target = JwksServer::start(good_keys()).await;
    let fetcher = Fetcher::new(&loopback_jwks_settings(), TIMEOUT).unwrap();
    for (what, location) in [
        ("another origin", format!("{}?x=1", target.uri())),
        ("the same origin", "/jwks?again=1".to_string()),
    ] {
        let redirecting = JwksServer::start(Answer::Redirect(302, location.clone())).await;
        let err = fetcher.fetch(&redirecting.uri()).await.unwrap_err();
        assert!(
            matches!(&err, JwksError::Redirect { status: 302, location: l, .. } if *l == location),
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("redirects are not followed"),
            "{err}"
        );
        assert_eq!(requests(&redirecting), 1, "{what}");
    }
    assert_eq!(requests(&target), 0, "the redirect target was reached");
}

#[tokio::test]
async fn internal_targets_are_refused_without_a_connection_unless_allowed() {
    let issuer = JwksServer::start(good_keys()).await;
    let uri = issuer.uri();
    let strict = JwksSettings::default();
    let http_only: JwksSettings = serde_yaml_ng::from_str("allowHttp: true").unwrap();
    let other_net: JwksSettings =
        serde_yaml_ng::from_str("allowHttp: true\nallowedTargets: [10.0.0.0/8, idp.example]")
            .unwrap();
    for (what, settings, reason) in [
        ("defaults", &strict, "jwks.allowHttp"),
        ("http allowed", &http_only, "loopback"),
        ("another network allowed", &other_net, "loopback"),
    ] {
        let fetcher = Fetcher::new(settings, TIMEOUT).unwrap();
        let err = fetcher.fetch(&uri).await.unwrap_err();
        assert!(
            matches!(err, JwksError::Refused { .. }) && err.to_string().contains(reason),
            "{what}: {err}"
        );
    }
    for internal in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/jwks",
        "https://[::1]:15000/",
        "https://kubernetes.default.svc/api",
        "https://keycloak.auth.svc.cluster.local/certs",
        "https://localhost/jwks",
    ] {
        let started = Instant::now();
        let err = Fetcher::new(&strict, TIMEOUT)
            .unwrap()
            .fetch(internal)
            .await
            .unwrap_err();
        assert!(
            matches!(err, JwksError::Refused { .. }),
            "{internal}: {err}"
        );
        assert!(
            started.elapsed() < TIMEOUT / 4,
            "{internal}: no connection, no lookup"
        );
    }
    assert_eq!(requests(&issuer), 0, "a refused target was connected to");

    // Admitted explicitly, the same issuer is fetched.
    let keys = Fetcher::new(&loopback_jwks_settings(), TIMEOUT)
        .unwrap()
        .fetch(&uri)
        .await
        .unwrap();
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(requests(&issuer), 1);
}

/// Waits for `uri`'s result among fetches that report on `results`.
async fn result_of(
    uri: &str,
    results: &mut tokio::sync::mpsc::UnboundedReceiver<Fetched>,
) -> Result<bool, String> {
    loop {
        let fetched = results.recv().await.unwrap();
        if fetched.uri == uri {
            return fetched.outcome;
        }
    }
}

#[tokio::test]
async fn never_answering_uris_do_not_delay_a_working_one() {
    let good = JwksServer::start(good_keys()).await;
    let dead = JwksServer::start(Answer::Slow(Duration::from_secs(3600), String::new())).await;
    let dead_uri = |i: usize| format!("{}?tenant={i}", dead.uri());
    let schedule = Schedule {
        refresh: Duration::ZERO,
        retry: Duration::from_secs(3600),
    };
    let fetcher = Fetcher::new(&loopback_jwks_settings(), TIMEOUT).unwrap();
    let refresher = Refresher::new(fetcher, schedule, 8.try_into().unwrap());
    let cache = JwksCache::default();
    let (sender, mut results) = tokio::sync::mpsc::unbounded_channel();

    // Five dead URIs (sorting before the good one) and the good one, all new.
    let mut uris: std::collections::BTreeSet<String> = (0..5).map(dead_uri).collect();
    uris.insert(good.uri());
    cache.track(&uris);
    let started = Instant::now();
    assert_eq!(refresher.start_due(&cache, &sender), 6);
    assert_eq!(result_of(&good.uri(), &mut results).await, Ok(true));
    assert!(
        started.elapsed() < TIMEOUT / 2,
        "the good URI waited {:?}",
        started.elapsed()
    );

    // Far more dead URIs than fetches at once: they fill their pool, while the good URI
    // (it answered last time) is fetched from its own at once.
    uris.extend((5..40).map(dead_uri));
    cache.track(&uris);
    let started = Instant::now();
    assert_eq!(
        refresher.start_due(&cache, &sender),
        36,
        "35 new and the good one"
    );
    assert_eq!(result_of(&good.uri(), &mut results).await, Ok(false));
    assert!(
        started.elapsed() < TIMEOUT / 2,
        "the good URI waited {:?}",
        started.elapsed()
    );
    assert!(cache.snapshot().contains_key(&good.uri()));

    // Each dead URI fails after its own timeout, not later.
    let first_dead = result_of(&dead_uri(0), &mut results).await;
    assert!(first_dead.is_err());
    assert!(started.elapsed() < TIMEOUT * 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_failing_uri_backs_off_exponentially_and_keeps_its_keys() {
    let issuer = JwksServer::start(good_keys()).await;
    let uri = issuer.uri();
    let schedule = Schedule {
        refresh: Duration::from_secs(3600),
        retry: Duration::from_millis(50),
    };
    let fetcher = Fetcher::new(&loopback_jwks_settings(), TIMEOUT).unwrap();
    let refresher = Refresher::new(fetcher, schedule, 8.try_into().unwrap());
    let cache = JwksCache::default();
    cache.track(&[uri.clone()].into());
    assert_eq!(refresher.refresh_due(&cache).await.changed, [uri.as_str()]);
    let good = cache.snapshot();

    // From now on the issuer fails: the controller's loop asks every 5 ms what is due.
    issuer.answer(Answer::Body(503, String::new()));
    let (sender, mut results) = tokio::sync::mpsc::unbounded_channel();
    // Due now, as after a refresh interval, with the keys it had.
    let fresh = JwksCache::default();
    fresh.track(&[uri.clone()].into());
    fresh.keep(&uri, good[&uri].clone());
    let before = requests(&issuer);
    let started = Instant::now();
    let mut failures = Vec::new();
    while started.elapsed() < Duration::from_millis(700) {
        refresher.start_due(&fresh, &sender);
        while let Ok(fetched) = results.try_recv() {
            failures.push((started.elapsed(), fetched.outcome));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Fetches at about 0, 50, 150, 350 ms (and 750): a handful, not one every 5 ms.
    let asked = requests(&issuer) - before;
    assert!((3..=5).contains(&asked), "{asked} fetches: {failures:?}");
    assert!(
        failures
            .iter()
            .all(|(_, o)| o.as_ref().is_err_and(|e| e.contains("503")))
    );
    let (count, due) = fresh.backoff(&uri).unwrap();
    assert_eq!(count as usize, asked);
    let wait = due.unwrap().saturating_duration_since(Instant::now());
    assert!(wait <= schedule.after_failures(count), "{wait:?}");
    assert_eq!(fresh.snapshot(), good, "the last good keys stay");
}
