"""deploy/examples/ pass `modelgate check` with the settings the README's install command
gives, and render into objects that validate against the CRDs."""

from __future__ import annotations

import re
import shlex

import helm_python as helm
import pytest
import yaml

import chart

README = chart.REPO / "deploy" / "README.md"
TOP_LEVEL = sorted(chart.EXAMPLES.glob("*.yaml"))
STAGES = sorted((chart.EXAMPLES / "move-to-jwt").glob("*.yaml"))
# The demo's (scripts/demo.sh runs them with the controller's default settings, through the
# same generation; this checks what it renders against the CRDs, which the demo cannot).
DEMO = sorted((chart.EXAMPLES / "demo").glob("*.yaml"))


def install_command() -> list[str]:
    """The `helm install` command of deploy/README.md, as words."""
    text = README.read_text()
    m = re.search(r"^helm install .*?(?<!\\)$", text, flags=re.M | re.S)
    assert m, "no helm install command in deploy/README.md"
    return shlex.split(m.group(0).replace("\\\n", " "))


def readme_release() -> tuple[str, str, dict]:
    """(release, namespace, values) of the README's install command, its --set flags
    parsed by Helm's own strvals parser."""
    words = install_command()
    assert words[:4] == ["helm", "install", "modelgate", "deploy/chart/modelgate"], words
    namespace, values = None, {}
    rest = iter(words[4:])
    for word in rest:
        if word in ("-n", "--namespace"):
            namespace = next(rest)
        elif word == "--set":
            values = merge(values, helm.parse_set_string(next(rest)))
        elif word != "--create-namespace":
            raise AssertionError(f"unexpected word in the README's helm install: {word}")
    assert namespace
    return words[2], namespace, values


def merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def readme_config():
    release, namespace, values = readme_release()
    assert values["settings"]["defaultIssuer"] and values["settings"]["defaultJwksUri"]
    return chart.controller_config(chart.render(values, name=release, namespace=namespace))


def test_there_is_an_example_per_story():
    names = {p.name for p in TOP_LEVEL} | {f"move-to-jwt/{p.name}" for p in STAGES}
    assert names == {
        "default-issuer.yaml",
        "canary-sticky.yaml",
        "dark-launch.yaml",
        "move-to-jwt/1-audit.yaml",
        "move-to-jwt/2-enforce.yaml",
    }
    for path in TOP_LEVEL + STAGES:
        assert path.read_text().startswith("# Story:"), f"{path.name} does not say which story it tells"
        assert path.name in README.read_text() or f"move-to-jwt/{path.name}" in README.read_text()


@pytest.mark.parametrize("stage", STAGES, ids=[p.name for p in STAGES])
def test_examples_pass_modelgate_check(stage, readme_config, tmp_path):
    # The top-level examples together (as one would apply the directory), with one stage
    # of the JWT migration (both stages are the same model).
    result = chart.modelgate("check", "-f", str(chart.EXAMPLES), "-f", str(stage), config=readme_config, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"\b5 SeldonDeployment\(s\), 0 error\(s\), 0 warning\(s\)", result.stderr), result.stderr


@pytest.mark.parametrize("example", TOP_LEVEL + STAGES, ids=[p.name for p in TOP_LEVEL + STAGES])
def test_examples_render_objects_that_validate(example, readme_config, tmp_path):
    result = chart.modelgate("render", "--offline", "-f", str(example), config=readme_config, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {o["kind"] for o in objects}
    assert {"VirtualService", "DestinationRule", "WasmPlugin"} <= kinds
    for obj in objects:
        chart.validate_crd_object(obj)
    plugin = next(o for o in objects if o["kind"] == "WasmPlugin")
    assert plugin["metadata"]["namespace"] == readme_config["gatewayNamespace"]
    # The module URL is this release's Service.
    assert plugin["spec"]["url"].startswith(readme_config["serviceUrl"] + "/")


def test_the_demo_examples_render_objects_that_validate():
    assert len(DEMO) == 4, DEMO
    args = [a for path in DEMO for a in ("-f", str(path))]
    result = chart.modelgate("render", "--offline", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert {o["kind"] for o in objects} == {"Gateway", "VirtualService", "DestinationRule", "WasmPlugin"}
    for obj in objects:
        chart.validate_crd_object(obj)


def test_the_stories_do_what_they_say(readme_config, tmp_path):
    def models(path):
        result = chart.modelgate("render", "--offline", "-f", str(path), config=readme_config, tmp=tmp_path)
        assert result.returncode == 0, result.stderr
        plugin = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "WasmPlugin")
        return plugin["spec"]["pluginConfig"]

    audit = models(chart.EXAMPLES / "move-to-jwt" / "1-audit.yaml")
    enforce = models(chart.EXAMPLES / "move-to-jwt" / "2-enforce.yaml")
    assert "audit" in yaml.safe_dump(audit) and "audit" not in yaml.safe_dump(enforce)
    default = yaml.safe_dump(models(chart.EXAMPLES / "default-issuer.yaml"))
    assert readme_config["defaultIssuer"] in default
