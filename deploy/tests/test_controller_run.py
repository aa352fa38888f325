"""The real `modelgate run`, with the settings file the chart renders, against a recording
in-memory API server (fake_api.py): every request it makes must be allowed by the
permissions table the same binary prints for that file (`modelgate permissions`), and by
the chart's RBAC. This catches a call the table forgot, such as a library's own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest
import yaml

import chart
import permissions
from fake_api import FakeApi, Recorded
from rbac import Rbac, Request

MANAGED = {"app.kubernetes.io/managed-by": "modelgate"}


def sdep(name: str, annotations: dict, predictors: list[tuple[str, int]]) -> dict:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": "models"},
        "spec": {
            "annotations": annotations,
            "predictors": [{"name": p, "traffic": t, "graph": {"name": "m", "type": "MODEL"}} for p, t in predictors],
        },
    }


def seed(api: FakeApi, authorization_policy: bool) -> None:
    for path in chart.CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd:
                api.add("apiextensions.k8s.io", "customresourcedefinitions", crd)
    # A model on a Gateway that does not exist (created), one on a Gateway that is not the
    # controller's (left alone), and one whose annotations are wrong (a Warning Event).
    api.add("machinelearning.seldon.io", "seldondeployments", sdep("iris", {"seldon.io/istio-gateway": "edge/models-gateway"}, [("main", 75), ("canary", 25)]))
    api.add("machinelearning.seldon.io", "seldondeployments", sdep("wine", {}, [("main", 100)]))
    api.add("machinelearning.seldon.io", "seldondeployments", sdep("broken", {"seldon.io/auth-mode": "permissive"}, [("main", 100)]))
    api.add("networking.istio.io", "gateways", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "seldon-gateway", "namespace": "istio-system", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
    })
    # Leftovers the controller must clean up: an unused managed Gateway, the
    # DestinationRule of a predictor that is gone, and (with the option off) a policy.
    api.add("networking.istio.io", "gateways", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "unused", "namespace": "old", "labels": dict(MANAGED)},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
    })
    api.add("networking.istio.io", "destinationrules", {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "iris-retired", "namespace": "models", "labels": {**MANAGED, "modelgate.seldon.io/seldon-deployment": "iris"}},
        "spec": {
            "host": "iris-retired.models.svc.cluster.local",
            "subsets": [{"name": "retired", "labels": {"version": "retired"}}],
            "trafficPolicy": {"connectionPool": {"http": {"idleTimeout": "60s"}}},
        },
    })
    if not authorization_policy:
        api.add("security.istio.io", "authorizationpolicies", {
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "wine", "namespace": "models", "labels": {**MANAGED, "modelgate.seldon.io/seldon-deployment": "wine"}},
            "spec": {"selector": {"matchLabels": {"seldon-deployment-id": "wine"}}, "action": "ALLOW", "rules": []},
        })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_controller(api: FakeApi, config: dict, tmp_path, done, timeout: float = 60) -> str:
    config = {**config, "run": {**config["run"], "listen": f"127.0.0.1:{free_port()}"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
        "users": [{"name": "fake", "user": {"token": "test"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(KUBECONFIG=str(tmp_path / "kubeconfig"), POD_NAME="modelgate-0", RUST_LOG="info")
    log = tmp_path / "controller.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(chart.modelgate_binary()), "run", "--config", str(tmp_path / "config.yaml")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not done(api) and process.poll() is None:
                time.sleep(0.2)
            time.sleep(1)  # let in-flight requests finish
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return log.read_text()


def has(api: FakeApi, verb: str, resource: str) -> bool:
    return any(r.verb == verb and r.resource == resource for r in api.seen())


# What one pass of the running controller must have done (per-model reconciliation,
# leader election, the start-up check, the watches, a Warning Event).
EXPECTED = {
    ("get", "customresourcedefinitions"), ("get", "leases"), ("create", "leases"), ("patch", "leases"),
    ("list", "seldondeployments"), ("watch", "seldondeployments"), ("list", "virtualservices"), ("watch", "virtualservices"),
    ("patch", "virtualservices"), ("create", "virtualservices"),
    ("patch", "destinationrules"), ("create", "destinationrules"),
    ("list", "destinationrules"), ("watch", "destinationrules"), ("delete", "destinationrules"), ("create", "events"),
}
# Reads of a model's own objects happen only until the watches have listed them (the
# reconciles then compare with their cache, `reconcile/live.rs`): allowed, not expected.
# The shared objects: managed Gateways and the WasmPlugin (reconcile_global).
SHARED = {
    ("get", "gateways"), ("patch", "gateways"), ("create", "gateways"), ("list", "gateways"), ("delete", "gateways"),
    ("get", "wasmplugins"), ("patch", "wasmplugins"), ("create", "wasmplugins"),
}


def observe(authorization_policy: bool, tmp_path, wanted: set, timeout: float = 60):
    # edge is the platform's namespace: iris's Gateway there is created for it.
    values = {"settings": {"defaultAuth": "none", "authorizationPolicy": authorization_policy, "tenancy": {"gatewayNamespaces": ["edge"]}}}
    objects = chart.render(values)
    config = chart.controller_config(objects)
    with FakeApi() as api:
        seed(api, authorization_policy)
        log = run_controller(api, config, tmp_path, lambda a: wanted <= {(r.verb, r.resource) for r in a.seen()}, timeout)
        return objects, config, api.seen(), log


def expected_for(authorization_policy: bool) -> set:
    return set(EXPECTED) | (
        {("patch", "authorizationpolicies"), ("create", "authorizationpolicies"), ("watch", "authorizationpolicies")}
        if authorization_policy
        # Not watched: the managed ones of the models' namespace are listed once (and each
        # model's deleted).
        else {("list", "authorizationpolicies"), ("delete", "authorizationpolicies")}
    )


@pytest.mark.parametrize("authorization_policy", [True, False], ids=["authorization-policy", "defaults"])
def test_every_request_of_the_running_controller_is_in_its_table_and_allowed(authorization_policy, tmp_path):
    expected = expected_for(authorization_policy)
    objects, config, seen, log = observe(authorization_policy, tmp_path, expected)
    grants = permissions.table(config)
    account = chart.one(objects, "ServiceAccount")
    rbac = Rbac(objects, account["metadata"]["namespace"], account["metadata"]["name"])

    observed = {(r.verb, r.resource) for r in seen}
    assert expected <= observed, f"the controller did not get as far as expected: missing {sorted(expected - observed)}\n{log[-3000:]}"

    for recorded in sorted(seen, key=str):
        name = None if recorded.verb in ("create", "list", "watch") else recorded.name
        request = Request(recorded.verb, recorded.group, recorded.resource, recorded.namespace, name)
        assert permissions.allowing(grants, request), (
            f"{recorded} is outside the controller's permissions table (controller/src/permissions.rs)"
        )
        assert rbac.allows(request), f"the chart's RBAC denies {recorded}"
    assert Recorded("delete", "networking.istio.io", "destinationrules", "models", "iris-retired") in seen
    if not authorization_policy:
        # The one list of the namespace, not a read per model.
        assert ("get", "authorizationpolicies") not in observed
        assert Recorded("delete", "security.istio.io", "authorizationpolicies", "models", "wine") in seen
    # The Gateway that is not the controller's is never written.
    assert not [r for r in seen if r.resource == "gateways" and r.name == "seldon-gateway" and r.verb != "get"]


def test_the_running_controller_reconciles_gateways_and_the_wasm_plugin(tmp_path):
    wanted = expected_for(True) | SHARED
    _, _, seen, log = observe(True, tmp_path, wanted, timeout=20)
    observed = {(r.verb, r.resource) for r in seen}
    assert SHARED <= observed, f"missing {sorted(SHARED - observed)}"
    helm_gateway = [r for r in seen if r.resource == "gateways" and r.name == "seldon-gateway"]
    assert helm_gateway and all(r.verb == "get" for r in helm_gateway)
    assert Recorded("delete", "networking.istio.io", "gateways", "old", "unused") in seen


def test_auto_settles_on_trafficextension_when_served_and_replaces_the_old_wasmplugin(tmp_path):
    """extensionKind auto (the chart's default) on an API server that serves
    TrafficExtension: the controller applies a TrafficExtension, then deletes the WasmPlugin
    an earlier version left, and every request it makes is in its table and the RBAC."""
    values = {"settings": {"defaultAuth": "none", "tenancy": {"gatewayNamespaces": ["edge"]}}}
    objects = chart.render(values)
    config = chart.controller_config(objects)
    assert config.get("extensionKind", "auto") == "auto"
    with FakeApi() as api:
        seed(api, False)
        api.serve("extensions.istio.io/v1alpha1", "trafficextensions", "TrafficExtension")
        api.serve("extensions.istio.io/v1alpha1", "wasmplugins", "WasmPlugin")
        api.add("extensions.istio.io", "wasmplugins", {
            "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "modelgate", "namespace": "istio-system", "labels": dict(MANAGED)},
            "spec": {"selector": {"matchLabels": {"istio": "ingressgateway"}}, "url": "oci://old/modelgate:0", "phase": "AUTHN",
                     "failStrategy": "FAIL_CLOSE", "pluginName": "modelgate", "pluginConfig": {"version": 1}},
        })
        deleted = Recorded("delete", "extensions.istio.io", "wasmplugins", "istio-system", "modelgate")
        log = run_controller(api, config, tmp_path, lambda a: deleted in a.seen(), timeout=30)
        seen = api.seen()
        extension = api.get("extensions.istio.io", "trafficextensions", "istio-system", "modelgate")
    assert deleted in seen, log[-3000:]
    assert extension is not None
    assert extension["spec"]["wasm"]["failStrategy"] == "FAIL_CLOSE" and extension["spec"]["phase"] == "AUTHN"
    assert "selector" in extension["spec"] and "targetRefs" not in extension["spec"]
    grants = permissions.table(config)
    account = chart.one(objects, "ServiceAccount")
    rbac = Rbac(objects, account["metadata"]["namespace"], account["metadata"]["name"])
    for recorded in sorted(seen, key=str):
        name = None if recorded.verb in ("create", "list", "watch") else recorded.name
        request = Request(recorded.verb, recorded.group, recorded.resource, recorded.namespace, name)
        assert permissions.allowing(grants, request), f"{recorded} is outside the controller's permissions table"
        assert rbac.allows(request), f"the chart's RBAC denies {recorded}"
    # Applied (patch, or create for the missing object) before the old one went.
    order = [r for r in api.requests if r.resource in ("trafficextensions", "wasmplugins") and r.verb in ("patch", "delete")]
    assert order and order[0].resource == "trafficextensions" and order[0].verb == "patch", order
