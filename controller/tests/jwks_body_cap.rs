//! A tenant's JWKS URI answering 400 MiB (generated on the fly, never stored): the fetch
//! stops at `jwks.maxBytes`, fails, keeps the last good keys, and the process does not
//! grow by more than a few MiB. Alone in its test binary, so nothing else moves the
//! process's memory while it is measured.

mod common;

use std::time::{Duration, Instant};

use common::jwks_server::{Answer, JwksServer, loopback_jwks_settings};
use modelgate_controller::jwks::{Fetcher, JwksCache, Refresher, Schedule};
use modelgate_testkit::TestKey;

const BODY: u64 = 400 * 1024 * 1024;

/// The process's peak resident memory so far, in KiB (Linux).
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_400_mib_body_fails_the_fetch_without_growing_the_process() {
    let issuer = JwksServer::start(Answer::Body(
        200,
        modelgate_testkit::jwks(&[&TestKey::rsa_a()]).to_string(),
    ))
    .await;
    let uri = issuer.uri();
    let fetcher = Fetcher::new(&loopback_jwks_settings(), Duration::from_secs(30)).unwrap();
    let schedule = Schedule {
        refresh: Duration::ZERO,
        retry: Duration::ZERO,
    };
    let refresher = Refresher::new(fetcher.clone(), schedule, 8.try_into().unwrap());
    let cache = JwksCache::default();
    cache.track(&[uri.clone()].into());
    refresher.refresh_due(&cache).await;
    let good = cache.snapshot();
    assert_eq!(good.len(), 1);

    // Warm up allocator and connection paths once before measuring.
    issuer.answer(Answer::Endless {
        bytes: BODY,
        declared: false,
    });
    assert!(fetcher.fetch(&uri).await.is_err());
    // Start the peak afresh where the kernel allows it.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_kib();

    for declared in [false, true] {
        issuer.answer(Answer::Endless {
            bytes: BODY,
            declared,
        });
        let started = Instant::now();
        let report = refresher.refresh_due(&cache).await;
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(
            report.failed[0].1.contains("jwks.maxBytes (1048576 bytes)"),
            "{report:?}"
        );
        // Stopped at the cap: reading 400 MiB takes far longer on this machine.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cache.snapshot(), good, "the last good keys stay");
    }
    let grown = peak_kib().saturating_sub(before);
    assert!(grown < 8 * 1024, "the process grew by {grown} KiB");
}
