//! The API-server double enforces the controller's permissions (`permissions::TABLE`) the
//! way the API server's authorizer enforces the chart's RBAC: a request outside them is
//! answered 403 Forbidden, naming the call, and fails the test that made it. This is what
//! makes a new API call in the controller fail the reconcile tests until the table (and
//! with it the chart) grants it.

mod common;

use common::fake_api::FakeApi;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, WatchParams};
use modelgate_controller::Settings;
use modelgate_controller::istio::{Gateway, WasmPlugin};
use modelgate_controller::seldon::SeldonDeployment;
use serde_json::json;

fn forbidden(result: Result<impl Sized, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => status.message,
        Err(e) => panic!("expected 403 Forbidden, got {e}"),
        Ok(_) => panic!("expected 403 Forbidden, got an answer"),
    }
}

#[tokio::test]
async fn a_call_outside_the_table_is_refused_and_named() {
    let api = FakeApi::default();
    let client = api.client(&Settings::default());
    let secrets: Api<Secret> = Api::all(client);
    let message = forbidden(secrets.list(&ListParams::default()).await);
    assert!(
        message.starts_with("list core/secrets cluster-wide is forbidden"),
        "{message}"
    );
    assert!(
        message.contains("controller/src/permissions.rs"),
        "{message}"
    );
    assert_eq!(api.take_refused(), vec![message]);
}

#[tokio::test]
#[should_panic(expected = "the controller made requests outside its permissions")]
async fn a_test_that_made_a_refused_call_fails() {
    let api = FakeApi::default();
    let secrets: Api<Secret> = Api::namespaced(api.client(&Settings::default()), "models");
    // The controller under test might swallow the error; the double does not.
    let _ = secrets.get_opt("tls").await;
}

#[tokio::test]
async fn verbs_are_those_the_api_server_authorizes() {
    let api = FakeApi::default();
    let client = api.client(&Settings::default());

    // A collection GET is a list, or with watch=true a watch: Gateways are listed across
    // namespaces, never watched.
    let gateways: Api<Gateway> = Api::all(client.clone());
    gateways.list(&ListParams::default()).await.unwrap();
    let message = forbidden(gateways.watch(&WatchParams::default(), "0").await);
    assert!(
        message.starts_with("watch networking.istio.io/gateways"),
        "{message}"
    );
    let sdeps: Api<SeldonDeployment> = Api::all(client.clone());
    sdeps.list(&ListParams::default()).await.unwrap();

    // A server-side apply is a patch of the named object, and a create too when it does
    // not exist yet; creates carry no name to restrict.
    let apply = PatchParams::apply("modelgate").force();
    let plugin = |name: &str| {
        json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
               "metadata": {"name": name}, "spec": {}})
    };
    let resource = ApiResource::erase::<WasmPlugin>(&());
    let plugins: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "istio-system", &resource);
    plugins
        .patch("modelgate", &apply, &Patch::Apply(plugin("modelgate")))
        .await
        .unwrap();
    let message = forbidden(
        plugins
            .patch(
                "someone-elses",
                &apply,
                &Patch::Apply(plugin("someone-elses")),
            )
            .await,
    );
    assert!(
        message.starts_with(
            "patch extensions.istio.io/wasmplugins \"someone-elses\" in namespace \"istio-system\""
        ),
        "{message}"
    );
    let elsewhere: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "kube-system", &resource);
    forbidden(
        elsewhere
            .patch("modelgate", &apply, &Patch::Apply(plugin("modelgate")))
            .await,
    );

    // The Lease: only its own, only in the lease namespace.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "modelgate-system");
    assert!(leases.get_opt("modelgate-leader").await.unwrap().is_none());
    forbidden(leases.get_opt("kube-controller-manager").await);
    let refused = api.take_refused();
    assert_eq!(refused.len(), 4, "{refused:#?}");
}
