"""The chart renders with Helm's engine, every object validates against its schema, the
Deployment is hardened, and the settings file it writes is the controller's own: every
setting has a value with the controller's default, and the controller accepts the file."""

from __future__ import annotations

import re

import helm_python as helm
import kubernetes_validate
import pytest

import chart

VALUE_SETS = {
    "defaults": {},
    "all-options": chart.values_all(),
    "gateway-api": {"settings": {"routing": "gateway-api"}, "gateway": {"create": True, "https": {"enabled": True}}},
}

CONTROLLER_SRC = chart.REPO / "controller" / "src"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_is_clean(values):
    report = helm.lint(chart.CHART, values, strict=True, kube_version="v1.33.0")
    assert not report["errors"], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_validates_against_its_schema(values):
    objects = chart.render(values)
    report = chart.validate_all(objects)
    assert len(report) == len(objects)
    kinds = {o["kind"] for o in objects}
    expected = {"Deployment", "Service", "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert expected <= kinds
    if values is VALUE_SETS["all-options"]:
        assert {"Gateway", "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    if values is VALUE_SETS["gateway-api"]:
        (gateway,) = [o for o in objects if o["kind"] == "Gateway"]
        assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"


def test_the_validators_reject_what_the_api_server_would():
    objects = chart.render(chart.values_all())
    deployment = chart.one(objects, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, chart.KUBE_VERSIONS[-1], strict=True)
    gateway = chart.one(objects, "Gateway")
    gateway["spec"]["servers"][1]["tls"]["credentialNmae"] = "x"
    with pytest.raises(AssertionError, match="credentialNmae"):
        chart.validate_crd_object(gateway)
    monitor = chart.one(objects, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "every 15 seconds"
    with pytest.raises(AssertionError, match="interval"):
        chart.validate_service_monitors([monitor])


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_deployment_runs_two_hardened_replicas_with_probes(values):
    objects = chart.render(values)
    deployment = chart.one(objects, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == values.get("replicaCount", 2)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert container["args"] == ["run", "--config", "/etc/modelgate/config.yaml"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The only MODELGATE_* variable: every setting comes from the config file.
    assert [n for n in env if n.startswith("MODELGATE_")] == ["MODELGATE_LOG_JSON"]
    config = chart.controller_config(objects)
    (port,) = container["ports"]
    assert config["run"]["listen"] == f"0.0.0.0:{port['containerPort']}"
    assert port["name"] == "http"
    assert spec["serviceAccountName"] == chart.one(objects, "ServiceAccount")["metadata"]["name"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"


@pytest.mark.parametrize(
    "release, namespace", [("modelgate", "modelgate-system"), ("mg", "ml-platform"), ("prod-modelgate", "gateways")]
)
def test_service_url_is_the_services_dns_name(release, namespace):
    objects = chart.render({}, name=release, namespace=namespace)
    config = chart.controller_config(objects)
    service = chart.one(objects, "Service")
    (port,) = service["spec"]["ports"]
    assert service["metadata"]["namespace"] == namespace
    assert config["serviceUrl"] == f"http://{service['metadata']['name']}.{namespace}.svc.cluster.local:{port['port']}"
    assert port["targetPort"] == "http"
    deployment = chart.one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    # Leader election in the release's namespace, where the chart's Role for it is.
    assert config["run"]["leaseNamespace"] == namespace
    lease_role = chart.one(objects, "Role", f"{chart.one(objects, 'Deployment')['metadata']['name']}-leader")
    assert lease_role["metadata"]["namespace"] == namespace
    assert config["run"]["leaseName"] in lease_role["rules"][1]["resourceNames"]


def chart_values() -> dict:
    with helm.Chart.load(chart.CHART) as loaded:
        return loaded.values


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def rust_struct_fields(name: str) -> list[str]:
    text = (CONTROLLER_SRC / "settings.rs").read_text()
    body = re.search(r"pub struct " + name + r"\s*\{(.*?)\n\}", text, flags=re.S).group(1)
    return [snake_to_camel(f) for f in re.findall(r"pub\s+(\w+)\s*:", body)]


def rust_string_defaults(name: str) -> dict[str, str]:
    """The string-literal defaults in `impl Default for <name>` (settings.rs)."""
    text = (CONTROLLER_SRC / "settings.rs").read_text()
    body = re.search(r"impl Default for " + name + r"\s*\{(.*?)\n\}", text, flags=re.S).group(1)
    return {snake_to_camel(k): v for k, v in re.findall(r"(\w+):\s*\"([^\"]*)\"\s*\.into\(\)", body)}


def test_values_hold_every_controller_setting_and_nothing_else():
    values = chart_values()
    settings, run = rust_struct_fields("Settings"), rust_struct_fields("RunSettings")
    assert len(settings) >= 14 and len(run) >= 7
    assert sorted(values["settings"]) == sorted(settings)
    # listen and leaseNamespace follow from containerPort and the release namespace.
    derived = {"listen", "leaseNamespace"}
    assert sorted(values["run"]) == sorted(set(run) - derived)
    config = chart.controller_config(chart.render({}))
    assert derived <= set(config["run"])


def test_default_values_are_the_controllers_defaults():
    values = chart_values()
    config = chart.controller_config(chart.render({}))
    defaults = rust_string_defaults("Settings")
    assert defaults, "no defaults read from settings.rs"
    # serviceUrl is derived from the release (its Service); the others are values.
    for key, default in defaults.items():
        assert values["settings"][key] == ("" if key == "serviceUrl" else default), key
        assert config[key] == default, key
    run_defaults = rust_string_defaults("RunSettings")
    for key, default in run_defaults.items():
        assert config["run"][key] == default, key
    # Settings the controller leaves unset are left out of the file, not set to "".
    for key in ("defaultIssuer", "defaultJwksUri", "destinationTlsMode", "gatewayTlsSecret", "wasmUrl", "wasmSha256"):
        assert values["settings"][key] == "" and key not in config, key
    # The rest, as SPEC states them.
    assert config["defaultAuth"] == "jwt"
    assert config["gatewaySelector"] == {"istio": "ingressgateway"}
    assert config["authorizationPolicy"] is False
    # The key channel is opt-in: its Istio cluster name is to be checked on the mesh first.
    assert config["keyChannel"] is False
    # Configuration by reference is on over 256 KiB: every replica serves the documents (stored in ConfigMaps).
    assert (config["configByReference"], config["configByReferenceBytes"], config["referencedConfigMaxBytes"]) == ("auto", 262144, 16777216)
    assert config["run"]["namespaces"] == []
    assert (config["run"]["jwksRefresh"], config["run"]["jwksRetry"], config["run"]["jwksTimeout"]) == ("20m", "30s", "10s")
    assert config["run"]["concurrency"] == 16
    assert config["run"]["jwksConcurrency"] == 8
    # JWKS fetching is https-only, capped at 1 MiB and refuses internal targets; tenants
    # are unrestricted but for that (controller/src/settings.rs, tenancy.rs).
    assert config["jwks"] == {"allowHttp": False, "maxBytes": 1048576, "allowedTargets": []}
    assert config["tenancy"] == {
        "gatewayNamespaces": [],
        "hosts": {},
        "ungrantedHosts": "firstClaim",
        "allowedIssuers": {},
        "allowedJwksUris": {},
        "allowInlineJwks": True,
    }


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_controller_accepts_the_settings_file(values, tmp_path):
    config = chart.controller_config(chart.render(values))
    # A model with its own issuer, so that the defaults (no default issuer) pass too.
    result = chart.modelgate("check", "-f", str(chart.EXAMPLES / "move-to-jwt" / "1-audit.yaml"), config=config, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "0 error(s)" in result.stderr


def test_the_controller_refuses_a_settings_file_with_a_typo(tmp_path):
    config = chart.controller_config(chart.render({}))
    config["defaultIsuer"] = "https://idp.example.com"
    result = chart.modelgate("check", "-f", str(chart.EXAMPLES / "move-to-jwt" / "1-audit.yaml"), config=config, tmp=tmp_path)
    assert result.returncode != 0 and "defaultIsuer" in result.stderr


def managed_by_label() -> tuple[str, str]:
    text = (CONTROLLER_SRC / "generate" / "mod.rs").read_text()
    m = re.search(r'MANAGED_BY:\s*\(&str,\s*&str\)\s*=\s*\("([^"]+)",\s*"([^"]+)"\)', text)
    return m.group(1), m.group(2)


def test_the_charts_gateway_is_the_default_gateway_and_not_the_controllers(tmp_path):
    values = {"gateway": {"create": True, "https": {"enabled": True}}, "settings": {"defaultAuth": "none"}}
    objects = chart.render(values)
    gateway = chart.one(objects, "Gateway")
    chart.validate_crd_object(gateway)
    config = chart.controller_config(objects)
    assert f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}" == config["defaultGateway"] == "istio-system/seldon-gateway"
    assert gateway["spec"]["selector"] == config["gatewaySelector"]
    servers = {s["port"]["number"]: s for s in gateway["spec"]["servers"]}
    assert servers[80]["port"]["protocol"] == "HTTP"
    assert servers[443]["port"]["protocol"] == "HTTPS"
    assert servers[443]["tls"] == {"mode": "SIMPLE", "credentialName": "seldon-ssl-cert"}
    # The controller treats a Gateway as its own by this label, and would delete it when
    # no model names it: the chart's Gateway must not carry it.
    key, value = managed_by_label()
    assert gateway["metadata"]["labels"].get(key) != value
    # ...whereas the Gateway the controller creates for the same name carries it.
    rendered = chart.modelgate("render", "--offline", "-f", str(chart.EXAMPLES / "dark-launch.yaml"), config=config, tmp=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    managed = [d for d in chart.yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Gateway"]
    assert [(g["metadata"]["namespace"], g["metadata"]["name"]) for g in managed] == [("istio-system", "seldon-gateway")]
    assert managed[0]["metadata"]["labels"][key] == value


def test_with_gateway_api_routing_the_charts_gateway_is_a_gateway_api_gateway(tmp_path):
    values = {
        "gateway": {"create": True, "hosts": ["*", "models.example.com"], "https": {"enabled": True}},
        "settings": {"defaultAuth": "none", "routing": "gateway-api"},
    }
    objects = chart.render(values)
    gateway = chart.one(objects, "Gateway")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    chart.validate_crd_object(gateway)
    config = chart.controller_config(objects)
    assert config["routing"] == "gateway-api"
    assert f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}" == config["defaultGateway"]
    assert gateway["spec"]["gatewayClassName"] == "istio"
    listeners = {(l["port"], l.get("hostname")) for l in gateway["spec"]["listeners"]}
    assert listeners == {(80, None), (443, None), (80, "models.example.com"), (443, "models.example.com")}
    # The models' HTTPRoutes are in their own namespaces.
    assert all(l["allowedRoutes"]["namespaces"]["from"] == "All" for l in gateway["spec"]["listeners"])
    # The controller attaches its routes and the filter to it. What it renders as the Gateway
    # to create when missing is the chart's own: found existing, it is never modified.
    rendered = chart.modelgate("render", "--offline", "-f", str(chart.EXAMPLES / "dark-launch.yaml"), config=config, tmp=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in chart.yaml.safe_load_all(rendered.stdout) if d]
    assert not [d for d in docs if d["kind"] == "VirtualService"]
    for created in [d for d in docs if d["kind"] == "Gateway"]:
        assert created["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert created["metadata"]["name"] == gateway["metadata"]["name"]
        assert created["metadata"]["namespace"] == gateway["metadata"]["namespace"]
        chart.validate_crd_object(created)
    parents = {(p["namespace"], p["name"]) for d in docs if d["kind"] == "HTTPRoute" for p in d["spec"]["parentRefs"]}
    assert parents == {(gateway["metadata"]["namespace"], gateway["metadata"]["name"])}
    (extension,) = [d for d in docs if d["kind"] in ("WasmPlugin", "TrafficExtension")]
    assert "selector" not in extension["spec"]
    assert extension["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["metadata"]["name"]}
    ]


def test_the_chart_creates_no_gateway_it_cannot_name():
    for gateway in ("mesh", "seldon-gateway"):
        with pytest.raises(helm.HelmRenderError, match="defaultGateway"):
            chart.render({"gateway": {"create": True}, "settings": {"defaultGateway": gateway}})


def test_values_schema_refuses_what_the_controller_would_refuse():
    for bad in (
        {"settings": {"destinationTlsMode": "STRICT"}},
        {"settings": {"defaultAuth": "basic"}},
        {"settings": {"defaultIsuer": "x"}},
        {"run": {"namespace": ["x"]}},
        {"settings": {"wasmSha256": "ABC"}},
        {"settings": {"gatewayApi": {"maxCreatedGateways": 16}}},
        {"settings": {"gatewayApi": {"className": "Istio Class"}}},
        {"settings": {"gatewayApi": {"classname": "istio"}}},
    ):
        with pytest.raises(helm.HelmValuesError):
            chart.render(bad)


def test_network_policy_admits_the_gateway_and_the_scrapers_on_the_controller_port():
    values = chart.values_all()
    objects = chart.render(values)
    policy = chart.one(objects, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    gateway_peer, scraper = rule["from"]
    assert gateway_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": values["settings"]["gatewayNamespace"]}
    assert gateway_peer["podSelector"]["matchLabels"] == values["settings"]["gatewaySelector"]
    assert scraper == values["networkPolicy"]["metricsFrom"][0]
    deployment = chart.one(objects, "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_service_monitor_scrapes_the_services_metrics_port():
    objects = chart.render(chart.values_all())
    monitor = chart.one(objects, "ServiceMonitor")
    service = chart.one(objects, "Service")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_a_changed_setting_rolls_the_pods():
    def checksum(values):
        deployment = chart.one(chart.render(values), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"settings": {"defaultIssuer": "https://idp.example.com"}})


def test_the_tenant_rules_of_the_values_reach_the_controller(tmp_path):
    """values-all lets namespace risk name its own issuer; the same model in shop breaks
    tenancy.allowedIssuers and tenancy.allowedJwksUris, and `check` says so."""
    config = chart.controller_config(chart.render(chart.values_all()))
    audit = (chart.EXAMPLES / "move-to-jwt" / "1-audit.yaml").read_text()
    moved = tmp_path / "shop.yaml"
    moved.write_text(audit.replace("namespace: risk", "namespace: shop"))
    result = chart.modelgate("check", "-f", str(moved), config=config, tmp=tmp_path)
    assert result.returncode != 0
    assert "shop/fraud" in result.stderr
    assert "tenancy.allowedIssuers" in result.stderr and "tenancy.allowedJwksUris" in result.stderr


@pytest.mark.parametrize(
    "kind, shown",
    [("auto", "trafficextensions,wasmplugins"), ("traffic-extension", "trafficextensions"), ("wasm-plugin", "wasmplugins")],
)
def test_the_notes_name_the_extension_kind_in_use(kind, shown):
    with chart.helm.Chart.load(chart.CHART) as loaded:
        out = loaded.render(values={"settings": {"extensionKind": kind}}, name=chart.RELEASE, namespace=chart.NAMESPACE, is_install=True)
    notes = next(text for path, text in out.items() if path.endswith("NOTES.txt"))
    assert f"get {shown} modelgate" in notes, notes
