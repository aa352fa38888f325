//! The running controller's state over the in-memory API server ([`FakeApi`]), and its
//! reconcile loop driven by hand until it settles: the set-up the tests of reconciling
//! share.

use modelgate_controller::Settings;
use modelgate_controller::reconcile::{Context, reconcile_global, reconcile_model};
use modelgate_controller::seldon::SeldonDeployment;

use super::fake_api::FakeApi;

/// [`super::plain_settings`] where namespace `edge` is the platform's: models of any
/// namespace may have Gateways created there.
pub fn edge_settings() -> Settings {
    let mut settings = super::plain_settings();
    settings.tenancy.gateway_namespaces = vec!["edge".into()];
    settings
}

/// A fresh controller state over `api` (what a start or a restart begins with), with
/// these settings, the test module and no Events.
pub fn context(api: &FakeApi, settings: Settings) -> Context {
    let wasm = super::test_wasm(&settings);
    Context::new(api.client(&settings), settings, wasm, None)
}

/// The shared objects (the extension object first), then every model, as `run` does,
/// until no model waits for the extension object and nothing is held; fails the test if
/// that takes more than five rounds.
pub async fn reconcile_all(ctx: &Context, sdeps: &[SeldonDeployment]) {
    for _ in 0..5 {
        let settled = reconcile_global(ctx, sdeps).await.unwrap().settled();
        let mut waiting = false;
        for s in sdeps {
            waiting |= reconcile_model(ctx, s).await.unwrap().waiting;
        }
        if settled && !waiting {
            return;
        }
    }
    panic!("does not settle");
}
