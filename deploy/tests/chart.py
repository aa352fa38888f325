"""Rendering the chart with Helm's own engine and validating what it renders.

Helm v4's Go SDK (PyPI `helm-python-sdk`, a ctypes binding of libhelm_c) renders the chart
offline, exactly as `helm install` would. Built-in kinds are validated against
Kubernetes' OpenAPI schemas (`kubernetes-validate`, strict: unknown fields are errors),
Istio, Seldon and Gateway API kinds against the CRDs in tests/data/crds, and the ServiceMonitor
against the Prometheus Operator's schema (npm `@kubernetes-models/prometheus-operator`).
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "chart" / "modelgate"
EXAMPLES = REPO / "deploy" / "examples"
TESTS = REPO / "deploy" / "tests"
CRDS = REPO / "tests" / "data" / "crds"
VALUES_ALL = TESTS / "values-all.yaml"

# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

RELEASE = "modelgate"
NAMESPACE = "modelgate-system"


def values_all() -> dict:
    return yaml.safe_load(VALUES_ALL.read_text())


def render(values: dict | None = None, name: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    """The chart's objects, as `helm install NAME -n NAMESPACE` would create them."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=values or {}, name=name, namespace=namespace, is_install=True)
    objects = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def controller_config(objects: list[dict]) -> dict:
    """The controller's settings file, from the chart's ConfigMap."""
    config_maps = [o for o in find(objects, "ConfigMap") if "config.yaml" in o.get("data", {})]
    assert len(config_maps) == 1, f"expected one ConfigMap with config.yaml, found {len(config_maps)}"
    config_map = config_maps[0]
    return yaml.safe_load(config_map["data"]["config.yaml"])


# --- Validation --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, made strict, for every served version."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served") and "schema" in version:
                    schema = strict_schema(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict_schema(node):
    """An OpenAPI v3 structural schema as JSON Schema, rejecting unknown fields the way the
    API server's strict field validation (kubectl's default) does."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-validations")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validate_crd_object(obj: dict) -> None:
    key = (obj["apiVersion"], obj["kind"])
    schema = crd_schemas().get(key)
    assert schema is not None, f"no CRD in {CRDS} serves {key}"
    extra = set(obj) - {"apiVersion", "kind", "metadata", "spec", "status"}
    assert not extra, f"{key}: unknown top-level fields {extra}"
    properties = {k: v for k, v in schema.get("properties", {}).items() if k in ("spec", "status")}
    body = {k: v for k, v in obj.items() if k in ("spec", "status")}
    checks = [
        (body, {"type": "object", "properties": properties, "additionalProperties": False}),
        (obj["metadata"], METADATA_SCHEMA),
    ]
    for instance, subschema in checks:
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(subschema).iter_errors(instance))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            raise AssertionError(f"{key[1]} {obj['metadata'].get('name')}: at {where or '/'}: {error.message}")


NODE_MODELS = REPO / ".venv" / "node" / "node_modules"


def validate_service_monitors(objects: list[dict]) -> None:
    """Runs the Prometheus Operator's ServiceMonitor schema (compiled by
    @kubernetes-models/prometheus-operator) over the objects, in one node process."""
    if not objects:
        return
    result = subprocess.run(
        ["node", str(TESTS / "servicemonitor.mjs"), str(NODE_MODELS)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ServiceMonitor schema: {result.stdout}{result.stderr}"


def validate_all(objects: list[dict]) -> list[str]:
    """Validates every object; returns `Kind name: how` for each, so a caller can see that
    nothing was skipped."""
    report = []
    service_monitors = []
    for obj in objects:
        name = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
            service_monitors.append(obj)
            report.append(f"{name}: prometheus-operator schema")
        elif group.endswith("istio.io") or group.endswith("seldon.io") or group == "gateway.networking.k8s.io":
            validate_crd_object(obj)
            report.append(f"{name}: CRD schema")
        else:
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    raise AssertionError(f"{name} against Kubernetes {version}: {e.message}") from e
            report.append(f"{name}: Kubernetes {'/'.join(KUBE_VERSIONS)} schemas")
    validate_service_monitors(service_monitors)
    return report


# --- The controller binary ------------------------------------------------------------------


def modelgate_binary() -> Path:
    """The `modelgate` binary run.sh built (MODELGATE_BIN), or the workspace's debug build."""
    path = Path(os.environ.get("MODELGATE_BIN", REPO / "target" / "debug" / "modelgate"))
    assert path.is_file(), f"{path} is missing: run deploy/tests/run.sh, which builds it"
    return path


def modelgate(*args: str, config: dict | None = None, tmp: Path | None = None) -> subprocess.CompletedProcess:
    argv = [str(modelgate_binary()), *args]
    if config is not None:
        assert tmp is not None
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        argv += ["--config", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
