"""Kubernetes RBAC evaluated over rendered objects, for one ServiceAccount: which requests
its (Cluster)RoleBindings allow, the way the API server's RBAC authorizer decides."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    verb: str
    group: str
    resource: str
    namespace: str | None  # None: cluster-scoped, or across all namespaces
    name: str | None = None


class Rbac:
    def __init__(self, objects: list[dict], sa_namespace: str, sa_name: str):
        self.objects = objects
        self.subject = (sa_namespace, sa_name)
        self.roles = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in objects
            if o["kind"] in ("Role", "ClusterRole")
        }

    def _bound(self, binding: dict) -> bool:
        return any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace"), s["name"]) == self.subject
            for s in binding.get("subjects", [])
        )

    def _rules(self, binding: dict) -> list[dict]:
        ref = binding["roleRef"]
        namespace = None if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
        role = self.roles.get((ref["kind"], namespace, ref["name"]))
        assert role is not None, f"{binding['kind']} {binding['metadata']['name']} refers to a missing {ref['kind']} {ref['name']}"
        return role.get("rules", [])

    def bindings(self) -> list[tuple[str | None, list[dict]]]:
        """(namespace the grant is limited to, or None for every namespace, rules)."""
        out = []
        for o in self.objects:
            if o["kind"] == "ClusterRoleBinding" and self._bound(o):
                out.append((None, self._rules(o)))
            elif o["kind"] == "RoleBinding" and self._bound(o):
                out.append((o["metadata"]["namespace"], self._rules(o)))
        return out

    def allows(self, request: Request) -> bool:
        for scope, rules in self.bindings():
            if scope is not None and scope != request.namespace:
                continue
            for rule in rules:
                if _matches(rule, request):
                    return True
        return False


def _matches(rule: dict, request: Request) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    if not has(rule.get("verbs", []), request.verb):
        return False
    if not has(rule.get("apiGroups", []), request.group):
        return False
    if not has(rule.get("resources", []), request.resource):
        return False
    names = rule.get("resourceNames")
    if names:
        return request.name is not None and request.name in names
    return True
