//! A small in-memory Kubernetes API server for reconcile tests, behind `kube::Client` as a
//! tower service (the pattern controller-rs uses, with state instead of a script): get,
//! list with label selectors, server-side apply, delete with owner cascade (what the
//! garbage collector does), Events, and injected failures. Every write is recorded, and
//! every request too (for attempt counts). Faults ([`Fault`]) are queued per method and
//! path and each answers one request: an error status, a 429 with `Retry-After`, a late
//! answer, a stall that never answers, or a dropped connection.
//!
//! Like the API server's authorizer, it first checks each request against the
//! controller's permissions (`controller/src/permissions.rs`) for the settings of the
//! client ([`FakeApi::client`]): a request outside them is answered 403 Forbidden and
//! recorded, and the test fails when its `FakeApi` goes out of scope.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use modelgate_controller::permissions::{ApiRequest, Permissions, Verb};
use modelgate_controller::{RunSettings, Settings};
use modelgate_testkit::api_route::{Route, decode};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    /// (plural, namespace, name) -> object.
    objects: BTreeMap<(String, String, String), Value>,
    writes: Vec<String>,
    events: Vec<Value>,
    failures: Vec<(Method, String)>,
    faults: Vec<(Method, String, Fault)>,
    requests: Vec<String>,
    refused: Vec<String>,
    stalled: usize,
    next_uid: u64,
}

/// What an injected fault does to the one request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An error status with a Kubernetes `Status` body (500, 409 Conflict, 503, ...).
    Status(u16),
    /// 429 Too Many Requests with `Retry-After` in seconds.
    TooManyRequests(u64),
    /// The right answer, but only after this long.
    Delay(Duration),
    /// No answer ever (until the caller gives up or is dropped).
    Stall,
    /// The connection drops before an answer: the transport fails.
    Drop,
}

/// The fake API server, as a test holds it: dropping it fails the test if the controller
/// made a request outside its permissions.
#[derive(Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

/// The server behind one client: the shared state, and the permissions of the controller
/// the client stands for.
#[derive(Clone)]
struct Server {
    state: Arc<Mutex<State>>,
    permissions: Arc<Permissions>,
}

/// What this server reads from a request's [`Route`] beyond where it goes (the parsing is
/// the benchmark's API double's too).
trait Served {
    /// The verb the API server's authorizer sees: from the method, whether a name is
    /// given, and `watch=true`.
    fn verb(&self, method: &Method, query: &str) -> Option<Verb>;
    /// The kind's key in the store: its resource as RBAC names it, except the Gateway
    /// API's Gateway, stored as `gateways.gateway.networking.k8s.io` since Istio's Gateway
    /// has the same plural.
    fn stored(&self) -> String;
    /// The request RBAC decides, for `resource` as RBAC names it.
    fn request<'a>(&'a self, resource: &'a str, verb: Verb) -> ApiRequest<'a>;
}

impl Served for Route {
    fn verb(&self, method: &Method, query: &str) -> Option<Verb> {
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        Some(match (method, &self.name) {
            (&Method::GET | &Method::HEAD, Some(_)) => Verb::Get,
            (&Method::GET | &Method::HEAD, None) if watch => Verb::Watch,
            (&Method::GET | &Method::HEAD, None) => Verb::List,
            (&Method::POST, _) => Verb::Create,
            (&Method::PUT, _) => Verb::Update,
            (&Method::PATCH, _) => Verb::Patch,
            (&Method::DELETE, Some(_)) => Verb::Delete,
            (&Method::DELETE, None) => Verb::DeleteCollection,
            _ => return None,
        })
    }

    fn stored(&self) -> String {
        let resource = self.rbac_resource();
        if self.group == "gateway.networking.k8s.io" && resource == "gateways" {
            format!("{resource}.{}", self.group)
        } else {
            resource
        }
    }

    fn request<'a>(&'a self, resource: &'a str, verb: Verb) -> ApiRequest<'a> {
        ApiRequest {
            verb,
            group: &self.group,
            resource,
            namespace: self.namespace.as_deref(),
            // A create carries no name to authorize, even one made by a server-side apply.
            name: self.name.as_deref().filter(|_| verb != Verb::Create),
        }
    }
}

fn status(code: u16, reason: &str) -> Response<Body> {
    status_with(code, reason, reason)
}

fn status_with(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "reason": reason, "code": code, "message": message});
    respond(code, &body)
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl FakeApi {
    /// A client talking to this server for a controller with these settings (and the
    /// default run settings: every namespace watched): requests outside its permissions
    /// are refused.
    pub fn client(&self, settings: &Settings) -> kube::Client {
        let server = Server {
            state: self.state.clone(),
            permissions: Arc::new(Permissions::resolve(settings, &RunSettings::default())),
        };
        let service = tower::service_fn(move |req: Request<Body>| {
            let server = server.clone();
            async move { server.answer(req).await }
        });
        kube::Client::new(service, "default")
    }

    /// Requests refused so far (outside the controller's permissions), and clears them.
    pub fn take_refused(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().refused)
    }

    /// Queues a fault for the next request of this method whose path contains `path`
    /// (faults are matched in the order they were queued, each answers one request).
    pub fn inject(&self, method: Method, path: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((method, path.to_string(), fault));
    }

    /// Faults queued and not yet used.
    pub fn pending_faults(&self) -> usize {
        self.state.lock().unwrap().faults.len()
    }

    /// Requests that met a [`Fault::Stall`] so far.
    pub fn stalled(&self) -> usize {
        self.state.lock().unwrap().stalled
    }

    /// Every request so far (`METHOD path`), faulted ones included, and clears them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().requests)
    }

    /// Every stored object of a kind, by `ns/name`, without the fields the server sets
    /// (`uid`, `resourceVersion`): what two runs must agree on.
    pub fn objects(&self, plural: &str) -> BTreeMap<String, Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .iter()
            .filter(|(k, _)| k.0 == plural)
            .map(|(k, o)| {
                let mut o = o.clone();
                if let Some(meta) = o["metadata"].as_object_mut() {
                    meta.remove("uid");
                    meta.remove("resourceVersion");
                }
                (format!("{}/{}", k.1, k.2), o)
            })
            .collect()
    }

    /// Stores an object as if created by someone, giving it a uid.
    pub fn insert(&self, plural: &str, mut object: Value) {
        let mut s = self.state.lock().unwrap();
        s.next_uid += 1;
        let uid = format!("uid-{}", s.next_uid);
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = uid.into();
        }
        let key = (
            plural.to_string(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            object["metadata"]["name"].as_str().unwrap().to_string(),
        );
        s.objects.insert(key, object);
    }

    /// An object, if stored.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(plural.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Names (`ns/name`) of stored objects of a kind.
    pub fn names(&self, plural: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.objects
            .keys()
            .filter(|k| k.0 == plural)
            .map(|k| format!("{}/{}", k.1, k.2))
            .collect()
    }

    /// Deletes an object the way a user would (with cascade), not recorded as a write.
    pub fn remove(&self, plural: &str, namespace: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        cascade_delete(&mut s, plural, namespace, name);
    }

    /// Writes so far (`PATCH plural ns/name?query`, `DELETE plural ns/name`), and clears them.
    pub fn take_writes(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().writes)
    }

    /// Events posted so far, and those patched (a recorder's repeat of an Event it posted
    /// becomes a patch of its series).
    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.clone()
    }

    /// Makes the next request of this method whose path contains `path` fail with 500.
    pub fn fail_next(&self, method: Method, path: &str) {
        self.state
            .lock()
            .unwrap()
            .failures
            .push((method, path.to_string()));
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let refused = self
            .state
            .lock()
            .map(|mut s| std::mem::take(&mut s.refused));
        let refused = refused.unwrap_or_default();
        assert!(
            refused.is_empty(),
            "the controller made requests outside its permissions (controller/src/permissions.rs):\n{}",
            refused.join("\n")
        );
    }
}

impl Server {
    /// Answers a request, or fails it as the first matching queued fault says.
    async fn answer(&self, req: Request<Body>) -> Result<Response<Body>, std::io::Error> {
        let fault = {
            let mut s = self.state.lock().unwrap();
            let path = req.uri().path().to_string();
            s.requests.push(format!("{} {path}", req.method()));
            if let Some(refusal) = self.refusal(&s, &req) {
                s.refused.push(refusal.clone());
                return Ok(status_with(403, "Forbidden", &refusal));
            }
            let found = s
                .faults
                .iter()
                .position(|(m, p, _)| m == req.method() && path.contains(p.as_str()));
            found.map(|i| s.faults.remove(i).2)
        };
        match fault {
            None => Ok(self.handle(req).await),
            Some(Fault::Status(code)) => Ok(status(code, &format!("injected {code}"))),
            Some(Fault::TooManyRequests(seconds)) => {
                let mut response = status(429, "TooManyRequests");
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
                Ok(response)
            }
            Some(Fault::Delay(delay)) => {
                // The server does the work, then answers late: a client that gives up
                // has still written.
                let response = self.handle(req).await;
                tokio::time::sleep(delay).await;
                Ok(response)
            }
            Some(Fault::Stall) => {
                self.state.lock().unwrap().stalled += 1;
                std::future::pending().await
            }
            Some(Fault::Drop) => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected: connection reset by peer",
            )),
        }
    }

    /// Why the controller may not make this request, if it may not: what the API server's
    /// authorizer would decide with RBAC granting exactly the controller's permissions.
    fn refusal(&self, s: &State, req: &Request<Body>) -> Option<String> {
        let uri = req.uri().to_string();
        let call = format!("{} {}", req.method(), uri.trim_end_matches('?'));
        let Some(route) = Route::parse(req.uri().path()) else {
            return Some(format!("{call}: not a resource request"));
        };
        let Some(verb) = route.verb(req.method(), req.uri().query().unwrap_or("")) else {
            return Some(format!("{call}: no verb for this method"));
        };
        let mut verbs = vec![verb];
        // A server-side apply of an object that does not exist yet creates it, which the
        // API server authorizes as a create too.
        let applies = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
        let key = (
            route.stored(),
            route.namespace.clone().unwrap_or_default(),
            route.name.clone().unwrap_or_default(),
        );
        if verb == Verb::Patch && applies && !s.objects.contains_key(&key) {
            verbs.push(Verb::Create);
        }
        let resource = route.rbac_resource();
        verbs
            .into_iter()
            .map(|verb| route.request(&resource, verb))
            .find(|request| !self.permissions.allows(request))
            .map(|request| {
                format!(
                    "{request} is forbidden ({call}): outside the controller's permissions \
                     (controller/src/permissions.rs)"
                )
            })
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut s = self.state.lock().unwrap();
        if let Some(i) = s
            .failures
            .iter()
            .position(|(m, p)| *m == method && path.contains(p.as_str()))
        {
            s.failures.remove(i);
            return status(500, "InternalError");
        }
        let Some(route) = Route::parse(&path) else {
            return status(404, "NotFound");
        };
        let plural = route.stored();
        let Route {
            api_version,
            namespace,
            name,
            ..
        } = route;
        let selector = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("labelSelector="))
            .map(decode)
            .unwrap_or_default();
        match (method.clone(), name) {
            (Method::GET, Some(name)) => {
                match s
                    .objects
                    .get(&(plural, namespace.unwrap_or_default(), name))
                {
                    Some(o) => respond(200, o),
                    None => status(404, "NotFound"),
                }
            }
            (Method::GET, None) => {
                let items: Vec<Value> = s
                    .objects
                    .iter()
                    .filter(|((p, ns, _), o)| {
                        *p == plural
                            && namespace.as_ref().is_none_or(|n| n == ns)
                            && labels_match(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                respond(
                    200,
                    &json!({"apiVersion": api_version, "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            (Method::PATCH, Some(name)) => {
                let mut applied: Value = serde_json::from_slice(&body).unwrap();
                let key = (
                    plural.clone(),
                    namespace.clone().unwrap_or_default(),
                    name.clone(),
                );
                let (uid, version) = match s.objects.get(&key) {
                    Some(old) => (
                        old["metadata"]["uid"].clone(),
                        old["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("1")
                            .parse::<u64>()
                            .unwrap()
                            + 1,
                    ),
                    None => {
                        s.next_uid += 1;
                        (format!("uid-{}", s.next_uid).into(), 1)
                    }
                };
                applied["metadata"]["uid"] = uid;
                applied["metadata"]["resourceVersion"] = version.to_string().into();
                if plural == "events" {
                    s.events.push(applied.clone());
                }
                s.writes
                    .push(format!("PATCH {plural} {}/{name}?{query}", key.1));
                s.objects.insert(key, applied.clone());
                respond(200, &applied)
            }
            (Method::DELETE, Some(name)) => {
                let ns = namespace.unwrap_or_default();
                if !s
                    .objects
                    .contains_key(&(plural.clone(), ns.clone(), name.clone()))
                {
                    return status(404, "NotFound");
                }
                s.writes.push(format!("DELETE {plural} {ns}/{name}"));
                cascade_delete(&mut s, &plural, &ns, &name);
                respond(
                    200,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
                )
            }
            (Method::POST, None) if plural == "events" => {
                let event: Value = serde_json::from_slice(&body).unwrap();
                s.events.push(event.clone());
                respond(201, &event)
            }
            _ => status(405, "MethodNotAllowed"),
        }
    }
}

fn cascade_delete(s: &mut State, plural: &str, namespace: &str, name: &str) {
    let Some(object) = s
        .objects
        .remove(&(plural.into(), namespace.into(), name.into()))
    else {
        return;
    };
    let uid = object["metadata"]["uid"].clone();
    let owned: Vec<(String, String, String)> = s
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in owned {
        s.objects.remove(&key);
    }
}
