"""The Kubernetes API calls the controller makes, derived from its source.

The controller exposes no list of its API calls, so this module reads them from
controller/src: every `Api<Kind>` it builds (cluster-wide with `Api::all`, or in one
namespace), every call on it (`get`/`get_opt`, `list`, `patch`, `delete`, ...), generic
helpers such as `apply_if_changed::<K>` resolved at their call sites, and the watches of
kube's `Controller` (`Controller::new`, `.owns`). What libraries do on the controller's
behalf is read from their sources in Cargo's registry the same way: kube-runtime's
`Recorder::publish` and `watcher`, kube-lease-manager's `LeaseState`.

Verbs follow the API server's authorization: a server-side apply (`Patch::Apply`) is
`patch`, and also `create` when the object does not exist yet.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONTROLLER_SRC = REPO / "controller" / "src"
CRDS = REPO / "tests" / "data" / "crds"

# Built-in kinds the controller uses, by the k8s-openapi type name.
BUILTIN_KINDS = {
    "Lease": ("coordination.k8s.io", "leases"),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions"),
    "K8sEvent": ("events.k8s.io", "events"),  # kube-runtime's alias of events::v1::Event
}

METHOD_VERBS = {
    "get": {"get"},
    "get_opt": {"get"},
    "get_metadata": {"get"},
    "get_metadata_opt": {"get"},
    "list": {"list"},
    "list_metadata": {"list"},
    "watch": {"watch"},
    "watch_metadata": {"watch"},
    "create": {"create"},
    "replace": {"update"},
    "replace_status": {"update"},
    "delete": {"delete"},
    "delete_collection": {"deletecollection"},
    "patch": {"patch"},
    "patch_status": {"patch"},
}


@dataclass(frozen=True, order=True)
class Call:
    """One kind of API request: `verb` on `group/resource`, cluster-wide (`Api::all`) or
    in a namespace; `only_with` names the setting it depends on, if any."""

    group: str
    resource: str
    verb: str
    cluster_wide: bool
    only_with: str = ""
    source: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)


# Rust's literals, then its comments: a `//` or `/*` inside a string ("https://...",
# "prefix/*") is not a comment, and a bracket inside one ("{") opens nothing.
LITERAL_OR_COMMENT = re.compile(
    r"""(?P<literal>(?<![\w])b?r(?P<hashes>#*)".*?"(?P=hashes)|'(?:\\.|[^'\\])'|"(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/""",
    flags=re.S,
)

NO_BRACKETS = str.maketrans("{}()[]", "      ")


def strip_comments_and_tests(text: str) -> str:
    text = LITERAL_OR_COMMENT.sub(lambda m: (m.group("literal") or "").translate(NO_BRACKETS), text)
    # Unit tests (`#[cfg(test)] mod tests { ... }` and `#[cfg(test)]` items) make no calls
    # in the running controller.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?(?:mod|impl|fn|async fn)\b[^{;]*\{", text)
        if not m:
            return text
        end = matching_brace(text, m.end() - 1)
        text = text[: m.start()] + text[end + 1 :]


def matching_brace(text: str, open_at: int) -> int:
    pairs = {"{": "}", "(": ")", "[": "]"}
    close = pairs[text[open_at]]
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == text[open_at]:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced")


def functions(text: str) -> dict[str, tuple[str, str, int]]:
    """name -> (signature, body, offset of the body) of every fn in a file."""
    out = {}
    for m in re.finditer(r"\bfn\s+(\w+)\s*(<[^{]*?>)?\s*\(", text):
        paren = m.end() - 1
        close = matching_brace(text, paren)
        brace = text.find("{", close)
        semicolon = text.find(";", close)
        if brace < 0 or (0 <= semicolon < brace):
            continue  # a declaration without a body
        end = matching_brace(text, brace)
        out[m.group(1)] = (text[m.start() : brace], text[brace : end + 1], brace)
    return out


@lru_cache(maxsize=None)
def custom_kinds() -> dict[str, tuple[str, str]]:
    """Kinds declared with kube's CustomResource derive: name -> (group, resource), the
    resource (plural) as the CRD in tests/data/crds names it."""
    plurals = {}
    for path in CRDS.glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                plurals[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd["spec"]["names"]["plural"]
    kinds = {}
    for path in CONTROLLER_SRC.rglob("*.rs"):
        for attrs in re.findall(r"#\[kube\((.*?)\)\]", path.read_text(), flags=re.S):
            group = re.search(r'group\s*=\s*"([^"]+)"', attrs)
            kind = re.search(r'kind\s*=\s*"([^"]+)"', attrs)
            if group and kind:
                key = (group.group(1), kind.group(1))
                assert key in plurals, f"no CRD for {key} in {CRDS}"
                kinds[kind.group(1)] = (key[0], plurals[key])
    return kinds


def resource_of(kind: str) -> tuple[str, str]:
    if kind in custom_kinds():
        return custom_kinds()[kind]
    if kind in BUILTIN_KINDS:
        return BUILTIN_KINDS[kind]
    raise KeyError(f"unknown kind {kind}: teach deploy/tests/api_calls.py its API group and resource")


@lru_cache(maxsize=None)
def field_types() -> dict[str, str]:
    """Struct field name -> the kind it holds (`Vec<K>`, `Option<K>` and `K` alike), for
    the fields whose type is a known kind."""
    known = set(custom_kinds()) | set(BUILTIN_KINDS)
    out = {}
    for path in CONTROLLER_SRC.rglob("*.rs"):
        for name, ty in re.findall(r"pub\s+(\w+)\s*:\s*([\w<>, ]+?)\s*,", path.read_text()):
            inner = re.sub(r"^(?:Vec|Option)<(.*)>$", r"\1", ty.strip())
            if inner in known:
                out[name] = inner
    return out


@dataclass
class ApiUse:
    kind: str  # a kind, or a generic parameter such as K
    cluster_wide: bool


def api_bindings(body: str, fields: dict[str, str]) -> dict[str, ApiUse]:
    """Variables (and `self.field`s) holding an `Api`, with the kind and scope."""
    out = {}
    for m in re.finditer(
        r"let\s+(?:mut\s+)?(\w+)\s*(?::\s*Api<(\w+)>)?\s*=\s*Api::(?:<(\w+)>::)?(all|namespaced|default_namespaced)\s*\(",
        body,
    ):
        kind = m.group(2) or m.group(3)
        if kind is None:
            continue
        out[m.group(1)] = ApiUse(kind, m.group(4) == "all")
    for name, kind in fields.items():
        out[f"self.{name}"] = ApiUse(kind, False)
    return out


def calls_in(body: str, bindings: dict[str, ApiUse]) -> list[tuple[str, set[str], bool, int]]:
    """(kind, verbs, cluster-wide, offset) of every call on an Api in a body."""
    out = []
    for m in re.finditer(r"([\w.]+?)\s*\.\s*(\w+)\s*\(", body):
        receiver, method = m.group(1), m.group(2)
        if receiver not in bindings or method not in METHOD_VERBS:
            continue
        verbs = set(METHOD_VERBS[method])
        args = body[m.end() - 1 : matching_brace(body, m.end() - 1) + 1]
        if method.startswith("patch") and "Patch::Apply" in args:
            verbs.add("create")
        use = bindings[receiver]
        out.append((use.kind, verbs, use.cluster_wide, m.start()))
    # `Api::<K>::all(client).list(..)` without a variable.
    for m in re.finditer(r"Api::<(\w+)>::(all|namespaced)\s*\(", body):
        close = matching_brace(body, m.end() - 1)
        chained = re.match(r"\s*\.\s*(\w+)\s*\(", body[close + 1 :])
        if chained and chained.group(1) in METHOD_VERBS:
            out.append((m.group(1), set(METHOD_VERBS[chained.group(1)]), m.group(2) == "all", m.start()))
    return out


def conditional_ranges(body: str) -> list[tuple[int, int, str]]:
    """Blocks that run only with a setting on: `if ctx.settings.<setting> {`."""
    out = []
    for m in re.finditer(r"\bif\s+[\w.]*settings\.(\w+)\s*\{", body):
        out.append((m.end() - 1, matching_brace(body, m.end() - 1), m.group(1)))
    return out


def condition_at(ranges, offset: int) -> str:
    for start, end, setting in ranges:
        if start <= offset <= end:
            return setting
    return ""


def generated_only_with() -> dict[str, str]:
    """Generated objects that exist only with a setting on, e.g.
    `authorization_policy: inputs.settings.authorization_policy.then(|| ...)`."""
    text = (CONTROLLER_SRC / "generate" / "mod.rs").read_text()
    return {
        field: setting
        for field, setting in re.findall(r"(\w+):\s*inputs\s*\.\s*settings\s*\.\s*(\w+)\s*\.\s*then\(", text)
    }


def local_kinds(body: str) -> dict[str, tuple[str, str]]:
    """Variables bound to generated objects: `for rule in &objects.destination_rules`,
    `Some(policy) => ...` in `match &objects.authorization_policy`. -> (kind, field)."""
    fields = field_types()
    out = {}
    for var, field in re.findall(r"for\s+(\w+)\s+in\s+&?[\w.]*\.(\w+)", body):
        if field in fields:
            out[var] = (fields[field], field)
    for field, block in re.findall(r"match\s+&?[\w.]*\.(\w+)\s*\{(.*?)\n\s*\}", body, flags=re.S):
        for var in re.findall(r"Some\((\w+)\)", block):
            if field in fields:
                out[var] = (fields[field], field)
    return out


def derive_controller_calls() -> set[Call]:
    """Every API call in controller/src (besides those libraries make for it)."""
    calls: set[Call] = set()
    only_with = generated_only_with()
    sources = {p: strip_comments_and_tests(p.read_text()) for p in sorted(CONTROLLER_SRC.rglob("*.rs"))}

    # Generic helpers (`async fn apply<K>(...)`): the verbs they use on `Api<K>`, including
    # through other helpers.
    helpers: dict[str, tuple[set[str], list[str]]] = {}
    for path, text in sources.items():
        for name, (signature, body, _) in functions(text).items():
            generic = re.search(r"<\s*(\w+)\s*(?:[:>,])", signature)
            if not generic:
                continue
            param = generic.group(1)
            verbs = set()
            for kind, vs, _, _ in calls_in(body, api_bindings(body, {})):
                if kind == param:
                    verbs |= vs
            # Helpers are passed the client, or the whole context (`apply(ctx, ..)`).
            callees = re.findall(r"\b(\w+)\s*\(\s*&?\s*(?:ctx\.client|client|ctx\s*,)", body)
            helpers[name] = (verbs, callees)

    def helper_verbs(name: str, seen: frozenset = frozenset()) -> set[str]:
        verbs, callees = helpers[name]
        out = set(verbs)
        for callee in callees:
            if callee in helpers and callee not in seen:
                out |= helper_verbs(callee, seen | {name})
        return out

    for path, text in sources.items():
        rel = path.relative_to(REPO)
        for name, (signature, body, _) in functions(text).items():
            ranges = conditional_ranges(body)
            # Direct calls on typed Apis.
            for kind, verbs, cluster_wide, at in calls_in(body, api_bindings(body, {})):
                if re.fullmatch(r"[A-Z]", kind):
                    continue  # a generic helper's own body: resolved at its call sites
                group, resource = resource_of(kind)
                for verb in verbs:
                    calls.add(Call(group, resource, verb, cluster_wide, condition_at(ranges, at), f"{rel}:{name}"))
            # Helpers with an explicit kind: delete::<DestinationRule>(...).
            for m in re.finditer(r"\b(\w+)::<(\w+)>\s*\(", body):
                helper, kind = m.group(1), m.group(2)
                if helper in helpers and kind in custom_kinds() | BUILTIN_KINDS.keys():
                    group, resource = resource_of(kind)
                    for verb in helper_verbs(helper):
                        calls.add(Call(group, resource, verb, False, condition_at(ranges, m.start()), f"{rel}:{name}"))
            # Helpers whose kind is the object passed: apply_if_changed(ctx, &objects.virtual_service, ..)
            # (or &ctx.client). Generic helpers that make no call of their own, such as the
            # timeout wrapper `call(ctx, api.get(..))`, are skipped: the call inside is direct.
            locals_ = local_kinds(body)
            for m in re.finditer(r"\b(\w+)\s*\(\s*&?ctx(?:\.client)?\s*,\s*&?([\w.]+)", body):
                helper, arg = m.group(1), m.group(2)
                if helper not in helpers or helper == name or not helper_verbs(helper):
                    continue
                last = arg.split(".")[-1]
                if last in locals_:
                    kind, field = locals_[last]
                elif last in field_types():
                    kind, field = field_types()[last], last
                elif name in helpers:
                    continue  # a generic helper passing its own object on: resolved through callees
                else:
                    raise AssertionError(f"{rel}:{name}: cannot tell the kind of {arg} passed to {helper}")
                group, resource = resource_of(kind)
                condition = condition_at(ranges, m.start()) or only_with.get(field, "")
                for verb in helper_verbs(helper):
                    calls.add(Call(group, resource, verb, False, condition, f"{rel}:{name}"))
            # kube's Controller: Controller::new(Api::<K>::all(..)) and .owns(Api::<K>::all(..)) watch.
            for m in re.finditer(r"(Controller::new|\.owns)\s*\(\s*Api::<(\w+)>::(all|namespaced)", body):
                group, resource = resource_of(m.group(2))
                for verb in ("list", "watch"):
                    calls.add(
                        Call(group, resource, verb, m.group(3) == "all", condition_at(ranges, m.start()), f"{rel}:{name} (watcher)")
                    )
    return calls


# --- What libraries do for the controller --------------------------------------------------


@lru_cache(maxsize=None)
def crate_source(name: str) -> Path:
    """src/ of a dependency at the version Cargo.lock pins, in Cargo's registry cache
    (the controller's build, which run.sh does first, put it there)."""
    lock = (REPO / "Cargo.lock").read_text()
    versions = re.findall(r'\[\[package\]\]\nname = "' + re.escape(name) + r'"\nversion = "([^"]+)"', lock)
    assert len(versions) == 1, f"Cargo.lock pins {name} {versions}"
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(cargo_home.glob(f"registry/src/*/{name}-{versions[0]}/src"))
    assert found, f"{name} {versions[0]} is not in {cargo_home}/registry/src: build the controller first"
    return found[0]


def uses(pattern: str) -> bool:
    return any(re.search(pattern, strip_comments_and_tests(p.read_text())) for p in CONTROLLER_SRC.rglob("*.rs"))


def derive_library_calls() -> set[Call]:
    calls: set[Call] = set()
    # kube-runtime's watcher (under Controller::new and .owns) lists, then watches.
    watcher = strip_comments_and_tests((crate_source("kube-runtime") / "watcher.rs").read_text())
    assert re.search(r"\.list\(", watcher) and re.search(r"\.watch\(", watcher), "kube-runtime's watcher changed"
        # kube-runtime's Recorder publishes events.k8s.io Events: created, then patched when
    # the same Event repeats. Its Api is built untyped (`Api::namespaced(..)`), so the
    # calls are read from `publish` on the `events` variable.
    if uses(r"Recorder::new"):
        text = strip_comments_and_tests((crate_source("kube-runtime") / "events.rs").read_text())
        assert "events::v1::{Event as K8sEvent" in text or "events::v1::Event as K8sEvent" in text
        _, body, _ = functions(text)["publish"]
        bindings = {"events": ApiUse("K8sEvent", False)}
        assert re.search(r"let\s+events\s*=\s*Api::namespaced", body), "kube-runtime's publish changed"
        for kind, verbs, _, _ in calls_in(body, bindings):
            group, resource = resource_of(kind)
            for verb in verbs:
                calls.add(Call(group, resource, verb, False, "", "kube-runtime events.rs:publish"))
    # kube-lease-manager's LeaseState: every call on its `api: Api<Lease>` field.
    if uses(r"LeaseManagerBuilder::new"):
        text = strip_comments_and_tests((crate_source("kube-lease-manager") / "state.rs").read_text())
        fields = dict((n, k) for n, k in re.findall(r"(\w+)\s*:\s*Api<(\w+)>", text))
        for name, (_, body, _) in functions(text).items():
            for kind, verbs, _, _ in calls_in(body, api_bindings(body, fields)):
                group, resource = resource_of(kind)
                for verb in verbs:
                    calls.add(Call(group, resource, verb, False, "", f"kube-lease-manager state.rs:{name}"))
    return calls


def derive_all() -> set[Call]:
    return derive_controller_calls() | derive_library_calls()


def verbs_needed(settings: dict) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs, for a controller running with these settings."""
    out: dict[tuple[str, str], set[str]] = {}
    for call in derive_all():
        if call.only_with and not settings.get(snake_to_camel(call.only_with)):
            continue
        out.setdefault((call.group, call.resource), set()).add(call.verb)
    return out


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def required_crds(settings: dict) -> list[str]:
    """The CRDs `check_crds` reads at start-up (run/mod.rs, required_crds), for these settings."""
    text = strip_comments_and_tests((CONTROLLER_SRC / "run" / "mod.rs").read_text())
    _, body, _ = functions(text)["required_crds"]
    names = []
    ranges = conditional_ranges(body)
    for m in re.finditer(r'"([a-z0-9-]+\.[a-z0-9.-]+)"', body):
        condition = condition_at(ranges, m.start())
        if not condition or settings.get(snake_to_camel(condition)):
            names.append(m.group(1))
    return names
