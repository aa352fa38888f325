"""A small in-memory Kubernetes API server on loopback that records every request, for
running the real `modelgate run` against it. It serves what the controller needs: get,
list (with label selectors), watch (held open, no events), create, patch (merge and
server-side apply), delete, and answers 404 like the API server; API discovery of a
group version (`/apis/<group>/<version>`) answers for the versions `serve` names, 404
otherwise, and is not recorded (it is no resource request). A server-side apply of
a missing object is recorded as `patch` and `create`, the verbs the API server authorizes
it with."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True)
class Recorded:
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None


PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?/?$"
)


def merge(target, patch):
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return patch
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


class FakeApi:
    def __init__(self):
        self.objects: dict[tuple[str, str, str | None, str], dict] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.version = 1
        self.discovery: dict[str, list[dict]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add(self, group: str, resource: str, obj: dict) -> None:
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self.objects[(group, resource, meta.get("namespace"), meta["name"])] = obj

    def serve(self, group_version: str, plural: str, kind: str) -> None:
        """Lists a namespaced resource in the discovery document of its group version."""
        self.discovery.setdefault(group_version, []).append(
            {"name": plural, "singularName": "", "namespaced": True, "kind": kind,
             "verbs": ["get", "list", "watch", "create", "patch", "delete"]}
        )

    def get(self, group: str, resource: str, namespace: str | None, name: str) -> dict | None:
        return self.objects.get((group, resource, namespace, name))

    def seen(self) -> set[Recorded]:
        with self.lock:
            return set(self.requests)

    def _handler(api):  # noqa: N805 - the handler closes over the FakeApi
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str):
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})

            def _record(self, verb, group, resource, namespace, name):
                with api.lock:
                    api.requests.append(Recorded(verb, group, resource, namespace, name))

            def _route(self):
                url = urlparse(self.path)
                m = PATH.match(url.path)
                if not m:
                    return None
                group = "" if m.group("core") else m.group("group")
                version = m.group("core") or m.group("version")
                return group, version, m.group("resource"), m.group("namespace"), m.group("name"), parse_qs(url.query)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length", 0))
                return json.loads(self.rfile.read(length) or b"{}")

            def do_GET(self):
                self._body()
                path = urlparse(self.path).path.strip("/")
                if path.startswith("apis/") and path.count("/") == 2:
                    resources = api.discovery.get(path.removeprefix("apis/"))
                    if resources is None:
                        return self._status(404, "NotFound", f"no route {self.path}")
                    return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": path.removeprefix("apis/"), "resources": resources})
                route = self._route()
                if route is None:
                    return self._status(404, "NotFound", f"no route {self.path}")
                group, version, resource, namespace, name, query = route
                if name:
                    self._record("get", group, resource, namespace, name)
                    obj = api.get(group, resource, namespace, name)
                    if obj is None:
                        return self._status(404, "NotFound", f'{resource} "{name}" not found')
                    return self._send(200, obj)
                if query.get("watch", ["false"])[0] in ("true", "1"):
                    self._record("watch", group, resource, namespace, None)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    deadline = time.monotonic() + min(int(query.get("timeoutSeconds", ["60"])[0]), 60)
                    while time.monotonic() < deadline:
                        time.sleep(0.2)
                    self.wfile.write(b"0\r\n\r\n")
                    return None
                self._record("list", group, resource, namespace, None)
                selector = dict(
                    pair.split("=", 1) for pair in query.get("labelSelector", [""])[0].split(",") if "=" in pair
                )
                items = [
                    o
                    for (g, r, ns, _), o in sorted(api.objects.items(), key=lambda kv: str(kv[0]))
                    if g == group and r == resource and (namespace is None or ns == namespace)
                    and all(o["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
                ]
                return self._send(200, {"apiVersion": f"{group}/{version}".strip("/"), "kind": "List", "metadata": {"resourceVersion": str(api.version)}, "items": items})

            def do_POST(self):
                group, version, resource, namespace, _, _ = self._route()
                obj = self._body()
                name = obj["metadata"].get("name") or f"{obj['metadata'].get('generateName', 'x')}{uuid.uuid4().hex[:5]}"
                obj["metadata"]["name"] = name
                self._record("create", group, resource, namespace, None)
                if api.get(group, resource, namespace, name) is not None:
                    return self._status(409, "AlreadyExists", f'{resource} "{name}" already exists')
                if namespace:
                    obj["metadata"]["namespace"] = namespace
                api.add(group, resource, obj)
                return self._send(201, obj)

            def do_PATCH(self):
                group, version, resource, namespace, name, _ = self._route()
                patch = self._body()
                self._record("patch", group, resource, namespace, name)
                live = api.get(group, resource, namespace, name)
                if live is None:
                    if "apply-patch" not in self.headers.get("Content-Type", ""):
                        return self._status(404, "NotFound", f'{resource} "{name}" not found')
                    self._record("create", group, resource, namespace, None)
                    live = {"apiVersion": patch.get("apiVersion"), "kind": patch.get("kind"), "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}
                    api.add(group, resource, live)
                with api.lock:
                    api.version += 1
                    updated = merge(live, patch)
                    updated["metadata"]["resourceVersion"] = str(api.version)
                    api.objects[(group, resource, namespace, name)] = updated
                return self._send(200, updated)

            def do_DELETE(self):
                group, version, resource, namespace, name, _ = self._route()
                self._body()  # DeleteOptions; read so that the connection stays in step
                self._record("delete", group, resource, namespace, name)
                if api.objects.pop((group, resource, namespace, name), None) is None:
                    return self._status(404, "NotFound", f'{resource} "{name}" not found')
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

            def do_PUT(self):
                group, version, resource, namespace, name, _ = self._route()
                self._record("update", group, resource, namespace, name)
                obj = self._body()
                if api.get(group, resource, namespace, name) is None:
                    return self._status(404, "NotFound", f'{resource} "{name}" not found')
                api.objects[(group, resource, namespace, name)] = obj
                return self._send(200, obj)

        return Handler
