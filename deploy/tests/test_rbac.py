"""The chart's RBAC is the controller's permissions table (controller/src/permissions.rs,
as `modelgate permissions` prints it for the chart's settings file): each row is granted
where the table says, and nothing else (no `*`, no other verb, resource, name or wider
scope).

`test_controller_run.py` also runs the real binary against a recording API server and
checks every request it makes against the same table and this RBAC."""

from __future__ import annotations

import pytest

import chart
import permissions
from permissions import Grant
from rbac import Rbac, Request

VALUE_SETS = {
    "defaults": {},
    "all-options": chart.values_all(),
    "authorization-policy": {"settings": {"authorizationPolicy": True}},
    "watched-namespaces": {"run": {"namespaces": ["team-a", "team-b"]}},
    "owner-reference-enforcement": {"rbac": {"ownerReferencesPermissionEnforcement": True}},
    "traffic-extension": {"settings": {"extensionKind": "traffic-extension"}},
    "wasm-plugin": {"settings": {"extensionKind": "wasm-plugin"}},
    "gateway-api": {"settings": {"routing": "gateway-api"}},
    "config-inline": {"settings": {"configByReference": "never"}},
}

EXTENSION_RESOURCES = {"trafficextensions": "writesTrafficExtension", "wasmplugins": "writesWasmPlugin"}


def written_extensions(config) -> set[str]:
    """The extension kinds (resources) the settings let the controller write: auto, either."""
    kind = config.get("extensionKind", "auto")
    return {
        resource
        for resource, own in (("trafficextensions", "traffic-extension"), ("wasmplugins", "wasm-plugin"))
        if kind in ("auto", own)
    }

# With the OwnerReferencesPermissionEnforcement admission plugin (opt-in value), setting
# `ownerReferences` on an object needs `delete` on it, and `blockOwnerDeletion: true`
# (which the controller sets) needs `update` on the owner's finalizers. This is no request
# the controller makes, so it is not in its table: it is a chart-only extra, granted where
# the models' objects are. VirtualServices, DestinationRules and AuthorizationPolicies are
# deleted by the controller anyway (a removed model's routes go before the filter forgets
# the model).
OWNER_REFERENCE_EXTRA = ("machinelearning.seldon.io", "seldondeployments/finalizers", "update")


def setup(values):
    objects = chart.render(values)
    config = chart.controller_config(objects)
    account = chart.one(objects, "ServiceAccount")
    rbac = Rbac(objects, account["metadata"]["namespace"], account["metadata"]["name"])
    return objects, config, rbac, permissions.table(config)


def one_grant(grants: list[Grant], resource: str, verb: str) -> Grant:
    found = [g for g in grants if g.resource == resource and verb in g.verbs]
    assert len(found) == 1, f"{resource} {verb}: {found}"
    return found[0]


def requests_for(grant: Grant) -> list[Request]:
    """Concrete requests a grant covers: each verb, in each of its namespaces (two sample
    ones for every namespace), on each of its names (a sample one if any)."""
    if grant.scope == "cluster":
        places = [None]
    elif grant.namespaces is not None:
        places = list(grant.namespaces)
    else:
        places = ["models", "edge"]
    out = []
    for verb in grant.verbs:
        names = grant.names or ([None] if verb in ("create", "list", "watch") else ["iris"])
        out += [Request(verb, grant.group, grant.resource, ns, name) for ns in places for name in names]
    return out


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_no_wildcards_and_no_non_resource_urls(values):
    objects = chart.render(values)
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
def test_grants_exactly_the_table(values):
    """(group, resource, verb, where bound, names) of the chart against the table's."""
    _, config, rbac, grants = setup(values)
    needed = {
        (g.group, g.resource, verb, scope, tuple(sorted(g.names)))
        for g in grants
        for verb in g.verbs
        for scope in g.binding_scopes()
    }
    if values.get("rbac", {}).get("ownerReferencesPermissionEnforcement"):
        for scope in config["run"].get("namespaces") or [None]:
            needed.add((*OWNER_REFERENCE_EXTRA, scope, ()))
    granted = {
        (group, resource, verb, scope, tuple(sorted(rule.get("resourceNames", []))))
        for scope, rules in rbac.bindings()
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert not needed - granted, f"missing: {sorted(needed - granted, key=str)}"
    assert not granted - needed, f"broader than the table: {sorted(granted - needed, key=str)}"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_each_row_is_allowed_where_the_table_says(values):
    _, config, rbac, grants = setup(values)
    checked = 0
    for grant in grants:
        for request in requests_for(grant):
            assert grant.allows(request)
            assert rbac.allows(request), f"denied: {request} ({grant.why})"
            checked += 1
    assert checked >= 30
    # Rows that depend on a setting are there exactly when it is on.
    conditional = {g.only_with for g in grants if g.only_with}
    expected = {EXTENSION_RESOURCES[r] for r in written_extensions(config)}
    if config.get("authorizationPolicy"):
        expected.add("authorizationPolicy")
    if config.get("routing") == "gateway-api":
        expected.add("gatewayApiRouting")
    if config.get("configByReference", "never") != "never":
        expected.add("configByReference")
    assert conditional == expected


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_nothing_is_allowed_beyond_where_it_is_needed(values):
    _, config, rbac, grants = setup(values)
    plugin = one_grant(grants, "wasmplugins", "get").names[0]
    denied = [
        Request("get", "", "secrets", "istio-system", "seldon-ssl-cert"),
        Request("list", "", "secrets", None),
        Request("get", "", "configmaps", "kube-system", "modelgate"),
        Request("list", "", "configmaps", None),
        Request("patch", "machinelearning.seldon.io", "seldondeployments", "models", "iris"),
        Request("delete", "machinelearning.seldon.io", "seldondeployments", "models", "iris"),
        Request("get", "apiextensions.k8s.io", "customresourcedefinitions", None, "secrets.example.io"),
        Request("list", "apiextensions.k8s.io", "customresourcedefinitions", None),
        Request("create", "coordination.k8s.io", "leases", "kube-system"),
        Request("get", "coordination.k8s.io", "leases", config["run"]["leaseNamespace"], "kube-controller-manager"),
        Request("patch", "coordination.k8s.io", "leases", config["run"]["leaseNamespace"], "another-lease"),
        Request("patch", "extensions.istio.io", "wasmplugins", config["gatewayNamespace"], "someone-elses-plugin"),
        Request("delete", "extensions.istio.io", "wasmplugins", config["gatewayNamespace"], "someone-elses-plugin"),
        Request("delete", "extensions.istio.io", "trafficextensions", config["gatewayNamespace"], "someone-elses-plugin"),
        Request("get", "extensions.istio.io", "trafficextensions", "kube-system", plugin),
        Request("create", "extensions.istio.io", "wasmplugins", "kube-system"),
        Request("create", "extensions.istio.io", "trafficextensions", "kube-system"),
        Request("create", "", "events", "models"),
    ]
    # The kind extensionKind rules out is read and deleted (a change of kind), never written.
    for resource in set(EXTENSION_RESOURCES) - written_extensions(config):
        denied.append(Request("create", "extensions.istio.io", resource, config["gatewayNamespace"]))
        denied.append(Request("patch", "extensions.istio.io", resource, config["gatewayNamespace"], plugin))
    if config["run"].get("namespaces"):
        # Writes to models' objects only where models are watched.
        for resource in ("virtualservices", "destinationrules", "authorizationpolicies"):
            for verb in ("get", "patch", "create", "delete"):
                denied.append(Request(verb, "networking.istio.io" if resource != "authorizationpolicies" else "security.istio.io", resource, "kube-system", "x"))
        denied.append(Request("create", "events.k8s.io", "events", "kube-system"))
    if config.get("routing", "istio") != "gateway-api":
        # HTTPRoutes are read and deleted (a switch back to istio), never written.
        denied.append(Request("patch", "gateway.networking.k8s.io", "httproutes", "models", "iris"))
        denied.append(Request("create", "gateway.networking.k8s.io", "httproutes", "models"))
        denied.append(Request("watch", "gateway.networking.k8s.io", "httproutes", None))
    if config.get("configByReference", "never") == "never":
        # ConfigMaps only hold referenced configurations.
        denied.append(Request("get", "", "configmaps", config["run"]["leaseNamespace"], "modelgate"))
    if not config.get("authorizationPolicy"):
        denied.append(Request("patch", "security.istio.io", "authorizationpolicies", "models", "iris"))
        denied.append(Request("watch", "security.istio.io", "authorizationpolicies", None))
    for request in denied:
        assert not permissions.allowing(grants, request), f"the table allows {request}"
        assert not rbac.allows(request), f"allowed but not needed: {request}"


def test_model_writes_are_bound_per_watched_namespace():
    objects, _, _, _ = setup(VALUE_SETS["watched-namespaces"])
    bindings = [o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["name"].endswith("-models")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert not [o for o in objects if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"].endswith("-models")]


def test_rbac_can_be_left_to_the_platform():
    objects = chart.render({"rbac": {"create": False}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io")]
