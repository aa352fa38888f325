"""The controller's Kubernetes permissions as it declares them (controller/src/permissions.rs,
`TABLE`), read from the real binary: `modelgate permissions --config <settings file>`
prints the table resolved for those settings (concrete namespaces and names)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import chart
from rbac import Request


@dataclass(frozen=True)
class Grant:
    """One row of the resolved table. `namespaces` None is every namespace (and, for the
    `cluster` scope, requests without a namespace); `names` empty is any object."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    scope: str
    namespaces: tuple[str, ...] | None
    names: tuple[str, ...]
    only_with: str | None
    why: str

    def allows(self, request: Request) -> bool:
        """As `Grant::allows` in the controller: where the table says, nowhere else (a
        cluster-scope grant allows no request in a namespace)."""
        if (self.group, self.resource) != (request.group, request.resource) or request.verb not in self.verbs:
            return False
        if self.scope == "cluster":
            placed = request.namespace is None
        else:
            placed = request.namespace is not None and (self.namespaces is None or request.namespace in self.namespaces)
        named = not self.names or request.name in self.names
        return placed and named

    def binding_scopes(self) -> list[str | None]:
        """Where an RBAC binding must grant this: None for a ClusterRoleBinding, else each
        namespace of a RoleBinding."""
        return [None] if self.namespaces is None else list(self.namespaces)


def table(config: dict) -> list[Grant]:
    """The permissions of a controller run with this settings file."""
    with tempfile.TemporaryDirectory() as tmp:
        result = chart.modelgate("permissions", "--output", "json", config=config, tmp=Path(tmp))
    assert result.returncode == 0, f"modelgate permissions: {result.stderr}"
    return [
        Grant(
            group=row["apiGroup"],
            resource=row["resource"],
            verbs=tuple(row["verbs"]),
            scope=row["scope"],
            namespaces=tuple(row["namespaces"]) if "namespaces" in row else None,
            names=tuple(row.get("resourceNames", [])),
            only_with=row.get("onlyWith"),
            why=row["why"],
        )
        for row in json.loads(result.stdout)
    ]


def allowing(grants: list[Grant], request: Request) -> Grant | None:
    return next((g for g in grants if g.allows(request)), None)
