"""The chart's RBAC is the controller's API calls: each is allowed where the controller
makes it, and nothing else is granted (no `*`, no other verb or resource, no wider scope).

The calls are derived from the source (api_calls.py); `test_controller_run.py` also runs
the real binary against a recording API server and checks every request it makes."""

from __future__ import annotations

import re

import pytest

import api_calls
import chart
from rbac import Rbac, Request

VALUE_SETS = {
    "defaults": {},
    "all-options": chart.values_all(),
    "authorization-policy": {"settings": {"authorizationPolicy": True}},
    "watched-namespaces": {"run": {"namespaces": ["team-a", "team-b"]}},
    "owner-reference-enforcement": {"rbac": {"ownerReferencesPermissionEnforcement": True}},
}

# With the OwnerReferencesPermissionEnforcement admission plugin (opt-in value), setting
# `ownerReferences` on an object needs `delete` on it, and `blockOwnerDeletion: true`
# (which the controller sets) needs `update` on the owner's finalizers. VirtualServices,
# DestinationRules and AuthorizationPolicies are deleted by the controller anyway (a
# removed model's routes go before the filter forgets the model).
OWNER_REFERENCE_EXTRAS = {
    ("machinelearning.seldon.io", "seldondeployments/finalizers", "update"),
}

WRITES = {"create", "patch", "update", "delete"}


def setup(values):
    objects = chart.render(values)
    config = chart.controller_config(objects)
    account = chart.one(objects, "ServiceAccount")
    rbac = Rbac(objects, account["metadata"]["namespace"], account["metadata"]["name"])
    return objects, config, rbac


def wasm_plugin_name() -> str:
    text = (api_calls.CONTROLLER_SRC / "generate" / "mod.rs").read_text()
    return re.search(r'WASM_PLUGIN_NAME:\s*&str\s*=\s*"([^"]+)"', text).group(1)


def model_namespaces(config) -> list[str]:
    return config["run"].get("namespaces") or ["models", "team-x"]


def requests_for(call: api_calls.Call, config) -> list[Request]:
    """The concrete requests behind a derived call: where the controller makes it."""
    named = call.verb not in ("create", "list", "watch")
    if call.resource == "customresourcedefinitions":
        return [Request(call.verb, call.group, call.resource, None, n) for n in api_calls.required_crds(config)]
    if call.cluster_wide:
        return [Request(call.verb, call.group, call.resource, None)]
    if call.resource == "wasmplugins":
        places = [(config["gatewayNamespace"], wasm_plugin_name())]
    elif call.resource == "leases":
        places = [(config["run"]["leaseNamespace"], config["run"]["leaseName"])]
    elif call.resource == "gateways":
        # A model may name a Gateway in any namespace.
        places = [("istio-system", "seldon-gateway"), ("edge", "models-gateway")]
    else:
        places = [(ns, "iris") for ns in model_namespaces(config)]
    return [Request(call.verb, call.group, call.resource, ns, name if named else None) for ns, name in places]


def test_the_derivation_sees_every_kind_the_controller_handles():
    calls = api_calls.derive_all()
    resources = {(c.group, c.resource) for c in calls}
    for group, resource in api_calls.custom_kinds().values():
        assert (group, resource) in resources, f"no call derived for {group}/{resource}"
    for builtin in api_calls.BUILTIN_KINDS.values():
        assert builtin in resources, f"no call derived for {builtin}"
    # Generic helpers resolved at their call sites: apply_if_changed = get + apply; a
    # removed model's VirtualService is deleted before the filter forgets the model.
    vs = {c.verb for c in calls if c.resource == "virtualservices" and not c.cluster_wide}
    assert vs == {"get", "patch", "create", "delete"}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_no_wildcards_and_no_non_resource_urls(values):
    objects, _, _ = setup(values)
    roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{role['metadata']['name']}: {field} has *"
                assert not any("*" in v for v in rule.get(field, [])), f"{role['metadata']['name']}: {rule}"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_grants_exactly_the_calls_the_controller_makes(values):
    _, config, rbac = setup(values)
    needed = {(g, r, v) for (g, r), verbs in api_calls.verbs_needed(config).items() for v in verbs}
    if values.get("rbac", {}).get("ownerReferencesPermissionEnforcement"):
        needed |= OWNER_REFERENCE_EXTRAS
    granted = rbac.grants()
    assert not needed - granted, f"missing: {sorted(needed - granted)}"
    assert not granted - needed, f"broader than the controller needs: {sorted(granted - needed)}"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_each_call_is_allowed_where_the_controller_makes_it(values):
    _, config, rbac = setup(values)
    checked = 0
    for call in sorted(api_calls.derive_all()):
        if call.only_with and not config.get(api_calls.snake_to_camel(call.only_with)):
            continue
        for request in requests_for(call, config):
            assert rbac.allows(request), f"denied: {request} ({call.source})"
            checked += 1
    assert checked >= 30


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_nothing_is_allowed_beyond_where_it_is_needed(values):
    _, config, rbac = setup(values)
    denied = [
        Request("get", "", "secrets", "istio-system", "seldon-ssl-cert"),
        Request("list", "", "secrets", None),
        Request("get", "", "configmaps", "modelgate-system", "modelgate"),
        Request("patch", "machinelearning.seldon.io", "seldondeployments", "models", "iris"),
        Request("delete", "machinelearning.seldon.io", "seldondeployments", "models", "iris"),
        Request("get", "apiextensions.k8s.io", "customresourcedefinitions", None, "secrets.example.io"),
        Request("list", "apiextensions.k8s.io", "customresourcedefinitions", None),
        Request("create", "coordination.k8s.io", "leases", "kube-system"),
        Request("get", "coordination.k8s.io", "leases", config["run"]["leaseNamespace"], "kube-controller-manager"),
        Request("patch", "coordination.k8s.io", "leases", config["run"]["leaseNamespace"], "another-lease"),
        Request("patch", "extensions.istio.io", "wasmplugins", config["gatewayNamespace"], "someone-elses-plugin"),
        Request("delete", "extensions.istio.io", "wasmplugins", config["gatewayNamespace"], wasm_plugin_name()),
        Request("create", "extensions.istio.io", "wasmplugins", "kube-system"),
        Request("create", "", "events", "models"),
    ]
    if config["run"].get("namespaces"):
        # Writes to models' objects only where models are watched.
        for resource in ("virtualservices", "destinationrules", "authorizationpolicies"):
            for verb in ("get", "patch", "create", "delete"):
                denied.append(Request(verb, "networking.istio.io" if resource != "authorizationpolicies" else "security.istio.io", resource, "kube-system", "x"))
        denied.append(Request("create", "events.k8s.io", "events", "kube-system"))
    if not config.get("authorizationPolicy"):
        denied.append(Request("patch", "security.istio.io", "authorizationpolicies", "models", "iris"))
        denied.append(Request("watch", "security.istio.io", "authorizationpolicies", None))
    for request in denied:
        assert not rbac.allows(request), f"allowed but not needed: {request}"


def test_model_writes_are_bound_per_watched_namespace():
    objects, _, _ = setup(VALUE_SETS["watched-namespaces"])
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["name"].endswith("-models")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert not [o for o in objects if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"].endswith("-models")]


def test_rbac_can_be_left_to_the_platform():
    objects = chart.render({"rbac": {"create": False}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io")]
