//! A fast in-memory Kubernetes API server on loopback, speaking HTTP, for running the real
//! `modelgate run` against 100,000 models (`modelgate-bench controller`).
//!
//! It answers what the controller asks: API discovery of a group version (those
//! [`ApiDouble::serve_discovery`] names, 404 otherwise), get, list (label selectors with
//! `=`, `==`, `!=`, `key` and `!key`; `limit` and `continue` pages), watch (`watch=true`:
//! JSON lines of `ADDED`, `MODIFIED` and `DELETED` after the given `resourceVersion`, a
//! `BOOKMARK` when the watch times out), create, server-side apply, merge and strategic
//! merge patches (both as a JSON merge patch), update and delete. Any resource is served:
//! objects are kept by (group, plural), then (namespace, name), with an index of labels,
//! so a get and a list of one namespace or one label value cost what they return, not a
//! scan of the store.
//!
//! What it leaves out, which a benchmark of the controller does not need:
//! - Server-side apply does not merge field ownership: the applied object replaces the
//!   stored one's `spec`, labels, annotations and owner references (and every other field
//!   it sends), keeping `uid`, `creationTimestamp` and a `status` it does not send. An
//!   apply that changes nothing keeps the resourceVersion and sends no watch event, as the
//!   API server does.
//! - No authorization (`controller/tests/common/fake_api.rs` checks the controller's
//!   requests against its permissions; `deploy/tests/fake_api.py` against the chart's
//!   RBAC), no admission, no validation against the CRDs' schemas, no garbage collection
//!   of owned objects, no `fieldSelector`, no JSON patch.
//! - Watches see every change since the start (the event log is never compacted, so no
//!   `410 Gone`); an object that stops matching a watch's label selector sends no
//!   `DELETED`.
//!
//! Every request is counted by verb and resource ([`ApiDouble::requests`]), which is how
//! the harness tells what the controller asked for, and how often.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use modelgate_testkit::api_route::{Route, decode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

/// The response body: a whole document, or a watch's stream of lines.
type Body = BoxBody<Bytes, Infallible>;

/// Watch events sent per chunk at most (a watch that starts far behind catches up in
/// chunks, not in one buffer of every event).
const WATCH_CHUNK: usize = 1000;

/// Longest watch, whatever `timeoutSeconds` asks (the API server's default cap is 30 min).
const MAX_WATCH: Duration = Duration::from_secs(1800);

/// A resource's key: (group, plural); the core group is `""`.
type ResourceKey = (String, String);

/// An object's key within its resource: (namespace, name); `""` for cluster-scoped.
type ObjectKey = (String, String);

/// One watch event, in the order of resourceVersions.
struct Change {
    revision: u64,
    kind: &'static str,
    object: Arc<Value>,
}

/// The objects of one resource.
#[derive(Default)]
struct Resource {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    /// (label key, value) -> objects carrying it.
    labels: HashMap<(String, String), BTreeSet<ObjectKey>>,
    /// Every change, oldest first.
    log: Vec<Change>,
}

impl Resource {
    fn index(&mut self, key: &ObjectKey, object: &Value, add: bool) {
        let Some(labels) = object["metadata"]["labels"].as_object() else {
            return;
        };
        for (k, v) in labels {
            let label = (k.clone(), v.as_str().unwrap_or_default().to_string());
            if add {
                self.labels.entry(label).or_default().insert(key.clone());
            } else if let Some(set) = self.labels.get_mut(&label) {
                set.remove(key);
                if set.is_empty() {
                    self.labels.remove(&label);
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// The last resourceVersion given (one counter for all objects, as etcd's).
    revision: u64,
    resources: HashMap<ResourceKey, Resource>,
    /// Group version -> its `APIResourceList` entries.
    discovery: BTreeMap<String, Vec<Value>>,
    /// `<verb> <resource>` -> requests.
    requests: BTreeMap<String, u64>,
    /// The longest time from a request's arrival to its answer's head, and the request.
    slowest: (Duration, String),
    next_uid: u64,
}

impl State {
    /// Stores `object` under a new resourceVersion and logs the change.
    fn store(
        &mut self,
        resource: &ResourceKey,
        key: ObjectKey,
        mut object: Value,
        kind: &'static str,
    ) -> Arc<Value> {
        self.revision += 1;
        let revision = self.revision;
        object["metadata"]["resourceVersion"] = revision.to_string().into();
        if object["metadata"]["uid"].is_null() {
            self.next_uid += 1;
            object["metadata"]["uid"] =
                format!("00000000-0000-0000-0000-{:012}", self.next_uid).into();
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        let object = Arc::new(object);
        let r = self.resources.entry(resource.clone()).or_default();
        if let Some(old) = r.objects.insert(key.clone(), object.clone()) {
            r.index(&key, &old, false);
        }
        r.index(&key, &object, true);
        r.log.push(Change {
            revision,
            kind,
            object: object.clone(),
        });
        object
    }

    fn remove(&mut self, resource: &ResourceKey, key: &ObjectKey) -> Option<Arc<Value>> {
        let r = self.resources.get_mut(resource)?;
        let old = r.objects.remove(key)?;
        r.index(key, &old, false);
        self.revision += 1;
        let mut gone = (*old).clone();
        gone["metadata"]["resourceVersion"] = self.revision.to_string().into();
        let gone = Arc::new(gone);
        let r = self.resources.get_mut(resource)?;
        r.log.push(Change {
            revision: self.revision,
            kind: "DELETED",
            object: gone.clone(),
        });
        Some(gone)
    }

    fn get(&self, resource: &ResourceKey, key: &ObjectKey) -> Option<Arc<Value>> {
        self.resources.get(resource)?.objects.get(key).cloned()
    }
}

/// The shared state, and a signal raised on every change (watches wait on it).
struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, revision: u64) {
        self.changed.send_replace(revision);
    }
}

/// The API server double: serving on a loopback port from its own thread until dropped.
pub struct ApiDouble {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiDouble {
    /// Starts serving on `127.0.0.1`, on a port of the system's choosing, with `threads`
    /// worker threads.
    pub fn start(threads: usize) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the API double")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: watch::channel(0).0,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("api-double")
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = shared.clone();
        let thread = std::thread::Builder::new()
            .name("api-double".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        () = accept(listener, server) => {}
                        _ = stopped => {}
                    }
                });
                // Open watches end with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            shared,
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig whose current context is this server (a bearer token it ignores).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: double\nclusters:\n- name: double\n  \
             cluster:\n    server: {}\nusers:\n- name: double\n  user:\n    token: bench\n\
             contexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    \
             namespace: default\n",
            self.url()
        )
    }

    /// Lists a resource in the discovery document of its group version
    /// (`/apis/<group>/<version>`); a group version never named answers 404.
    pub fn serve_discovery(&self, group_version: &str, plural: &str, kind: &str, namespaced: bool) {
        self.shared
            .lock()
            .discovery
            .entry(group_version.to_string())
            .or_default()
            .push(json!({
                "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }));
    }

    /// Creates or replaces an object as a user would (`kubectl apply`): a new
    /// resourceVersion and a watch event. `group` is `""` for the core group; the object
    /// carries its `apiVersion`, `kind` and `metadata.name` (and namespace, if namespaced).
    pub fn put(&self, group: &str, plural: &str, object: Value) {
        let revision = {
            let mut s = self.shared.lock();
            let resource = (group.to_string(), plural.to_string());
            let key = object_key(&object);
            let mut object = object;
            let kind = match s.get(&resource, &key) {
                Some(old) => {
                    keep_server_fields(&mut object, &old);
                    "MODIFIED"
                }
                None => "ADDED",
            };
            s.store(&resource, key, object, kind);
            s.revision
        };
        self.shared.notify(revision);
    }

    /// Stores many objects of one resource at once (seeding a fleet).
    pub fn put_all(&self, group: &str, plural: &str, objects: impl IntoIterator<Item = Value>) {
        let revision = {
            let mut s = self.shared.lock();
            let resource = (group.to_string(), plural.to_string());
            for object in objects {
                let key = object_key(&object);
                s.store(&resource, key, object, "ADDED");
            }
            s.revision
        };
        self.shared.notify(revision);
    }

    /// An object, if stored.
    pub fn get(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        self.shared.lock().get(
            &(group.to_string(), plural.to_string()),
            &(namespace.to_string(), name.to_string()),
        )
    }

    /// How many objects of a resource are stored (in one namespace, or in all).
    pub fn count(&self, group: &str, plural: &str, namespace: Option<&str>) -> usize {
        let s = self.shared.lock();
        let Some(r) = s.resources.get(&(group.to_string(), plural.to_string())) else {
            return 0;
        };
        match namespace {
            None => r.objects.len(),
            Some(ns) => namespace_range(&r.objects, ns).count(),
        }
    }

    /// Whether every one of these names exists in `namespace`.
    pub fn all_exist<'a>(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let s = self.shared.lock();
        let Some(r) = s.resources.get(&(group.to_string(), plural.to_string())) else {
            return false;
        };
        names.into_iter().all(|n| {
            r.objects
                .contains_key(&(namespace.to_string(), n.to_string()))
        })
    }

    /// Requests so far, by `<verb> <resource>` (verbs as the API server's authorizer names
    /// them: get, list, watch, create, patch (apply included), update, delete; discovery
    /// as `discover <group version>`).
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.lock().requests.clone()
    }

    /// The slowest answer so far (from the request's arrival to the answer's head; a
    /// watch's stream not included), and its request (`METHOD path`).
    pub fn slowest_answer(&self) -> (Duration, String) {
        self.shared.lock().slowest.clone()
    }
}

impl Drop for ApiDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn object_key(object: &Value) -> ObjectKey {
    (
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The objects of one namespace, in name order.
fn namespace_range<'a>(
    objects: &'a BTreeMap<ObjectKey, Arc<Value>>,
    namespace: &str,
) -> impl Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a {
    let namespace = namespace.to_string();
    objects
        .range((namespace.clone(), String::new())..)
        .take_while(move |(k, _)| k.0 == namespace)
}

async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move {
                    let arrived = std::time::Instant::now();
                    let call = format!("{} {}", req.method(), req.uri().path());
                    let response = answer(&shared, req).await;
                    let took = arrived.elapsed();
                    let mut s = shared.lock();
                    if took > s.slowest.0 {
                        s.slowest = (took, call);
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Where this double keeps what a [`Route`] names (the parsing is the controller tests'
/// API double's too).
trait Stored {
    /// The resource's key: (group, plural).
    fn resource(&self) -> ResourceKey;
    /// The object's key: (namespace, name), `""` for what is not given.
    fn key(&self) -> ObjectKey;
}

impl Stored for Route {
    fn resource(&self) -> ResourceKey {
        (self.group.clone(), self.plural.clone())
    }

    fn key(&self) -> ObjectKey {
        (
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }
}

/// The query parameters, percent-decoded.
fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn full(code: StatusCode, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_default()
}

fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    full(code, serde_json::to_vec(body).unwrap_or_default())
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    respond(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": reason, "code": code.as_u16(), "message": message}),
    )
}

fn not_found(route: &Route) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "{}.{} \"{}\" not found",
            route.plural,
            route.group,
            route.name.as_deref().unwrap_or_default()
        ),
    )
}

/// A label selector: terms that must all hold.
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

fn parse_selector(selector: &str) -> Result<Vec<Term>, String> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                Ok(Term::NotEquals(k.trim().into(), v.trim().into()))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Ok(Term::Equals(k.trim().into(), v.trim().into()))
            } else if let Some(k) = term.strip_prefix('!') {
                Ok(Term::Absent(k.trim().into()))
            } else if term.contains([' ', '(']) {
                Err(format!(
                    "unsupported label selector term {term:?} (set-based terms are not served)"
                ))
            } else {
                Ok(Term::Exists(term.into()))
            }
        })
        .collect()
}

fn selected(object: &Value, terms: &[Term]) -> bool {
    let labels = &object["metadata"]["labels"];
    terms.iter().all(|t| match t {
        Term::Equals(k, v) => labels[k].as_str() == Some(v),
        Term::NotEquals(k, v) => labels[k].as_str() != Some(v),
        Term::Exists(k) => !labels[k].is_null(),
        Term::Absent(k) => labels[k].is_null(),
    })
}

/// The keys of a resource's objects in `namespace` (or all) matching `terms`, in key
/// order from `after` (exclusive), at most `limit`: through the label index when a term
/// is an equality, else through the namespace's range.
fn select(
    r: &Resource,
    namespace: Option<&str>,
    terms: &[Term],
    after: Option<&ObjectKey>,
    limit: usize,
) -> Vec<ObjectKey> {
    let in_namespace = |k: &ObjectKey| namespace.is_none_or(|ns| k.0 == ns);
    let matches =
        |k: &ObjectKey| in_namespace(k) && r.objects.get(k).is_some_and(|o| selected(o, terms));
    let smallest = terms
        .iter()
        .filter_map(|t| match t {
            Term::Equals(k, v) => Some(r.labels.get(&(k.clone(), v.clone()))),
            _ => None,
        })
        .min_by_key(|set| set.map_or(0, BTreeSet::len));
    let start = |ns: Option<&str>| -> ObjectKey {
        match (after, ns) {
            (Some(after), _) => after.clone(),
            (None, Some(ns)) => (ns.to_string(), String::new()),
            (None, None) => (String::new(), String::new()),
        }
    };
    let from = start(namespace);
    let bound = (
        std::ops::Bound::Included(from.clone()),
        std::ops::Bound::Unbounded,
    );
    let skip_after = |k: &ObjectKey| after != Some(k);
    match smallest {
        Some(None) => Vec::new(),
        Some(Some(set)) => set
            .range::<ObjectKey, _>(bound)
            .filter(|k| skip_after(k))
            .take_while(|k| namespace.is_none_or(|ns| k.0.as_str() <= ns))
            .filter(|k| matches(k))
            .take(limit)
            .cloned()
            .collect(),
        None => r
            .objects
            .range::<ObjectKey, _>(bound)
            .map(|(k, _)| k)
            .filter(|k| skip_after(k))
            .take_while(|k| namespace.is_none_or(|ns| k.0 == ns))
            .filter(|k| matches(k))
            .take(limit)
            .cloned()
            .collect(),
    }
}

fn count(state: &mut State, verb: &str, resource: &str) {
    *state
        .requests
        .entry(format!("{verb} {resource}"))
        .or_insert(0) += 1;
}

async fn answer(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let trimmed = path.trim_matches('/');
    // Discovery of a group version: `/apis/<group>/<version>`.
    if let ["apis", group, version] = trimmed.split('/').collect::<Vec<_>>().as_slice() {
        let group_version = format!("{group}/{version}");
        let mut s = shared.lock();
        count(&mut s, "discover", &group_version);
        return match s.discovery.get(&group_version) {
            Some(resources) => respond(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": group_version, "resources": resources}),
            ),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no group version {group_version}"),
            ),
        };
    }
    // Subresources (`status`, `scale`) are not served.
    let Some(route) = Route::parse(&path).filter(|r| r.subresource.is_none()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route {path}"),
        );
    };
    let query = query(&req);
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST, "BadRequest", "unreadable body"),
    };
    let parsed = || serde_json::from_slice::<Value>(&body);
    let bad = |e: serde_json::Error| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("not JSON: {e}"),
        )
    };
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match (&method, route.name.is_some()) {
        (&Method::GET, true) => {
            let mut s = shared.lock();
            count(&mut s, "get", &route.plural);
            match s.get(&route.resource(), &route.key()) {
                Some(o) => respond(StatusCode::OK, &o),
                None => not_found(&route),
            }
        }
        (&Method::GET, false) if watching => {
            count(&mut shared.lock(), "watch", &route.plural);
            watch_stream(shared.clone(), route, &query)
        }
        (&Method::GET, false) => {
            count(&mut shared.lock(), "list", &route.plural);
            list(shared, &route, &query)
        }
        (&Method::POST, false) => {
            count(&mut shared.lock(), "create", &route.plural);
            match parsed() {
                Ok(object) => create(shared, &route, object),
                Err(e) => bad(e),
            }
        }
        (&Method::PATCH, true) => {
            count(&mut shared.lock(), "patch", &route.plural);
            match parsed() {
                Ok(patch) => self::patch(shared, &route, &content_type, patch),
                Err(e) => bad(e),
            }
        }
        (&Method::PUT, true) => {
            count(&mut shared.lock(), "update", &route.plural);
            match parsed() {
                Ok(object) => update(shared, &route, object),
                Err(e) => bad(e),
            }
        }
        (&Method::DELETE, true) => {
            let removed = {
                let mut s = shared.lock();
                count(&mut s, "delete", &route.plural);
                s.remove(&route.resource(), &route.key())
                    .map(|o| (o, s.revision))
            };
            match removed {
                Some((object, revision)) => {
                    shared.notify(revision);
                    respond(StatusCode::OK, &object)
                }
                None => not_found(&route),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} {path}"),
        ),
    }
}

fn list(shared: &Shared, route: &Route, query: &HashMap<String, String>) -> Response<Body> {
    let terms = match parse_selector(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(terms) => terms,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX);
    let after = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .and_then(|c| c.split_once('/'))
        .map(|(ns, name)| (ns.to_string(), name.to_string()));
    let (items, revision, more) = {
        let s = shared.lock();
        let revision = s.revision;
        match s.resources.get(&route.resource()) {
            None => (Vec::new(), revision, None),
            Some(r) => {
                let keys = select(
                    r,
                    route.namespace.as_deref(),
                    &terms,
                    after.as_ref(),
                    limit.saturating_add(1),
                );
                let more = (keys.len() > limit).then(|| keys[limit - 1].clone());
                let items: Vec<Arc<Value>> = keys
                    .iter()
                    .take(limit)
                    .filter_map(|k| r.objects.get(k).cloned())
                    .collect();
                (items, revision, more)
            }
        }
    };
    // Serialized outside the lock: a list of 100,000 objects must not stop every other
    // request meanwhile.
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some((ns, name)) = more {
        metadata["continue"] = format!("{ns}/{name}").into();
    }
    let mut out = Vec::with_capacity(256 * items.len() + 128);
    out.extend_from_slice(b"{\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, &route.api_version);
    out.extend_from_slice(b",\"kind\":\"List\",\"metadata\":");
    let _ = serde_json::to_writer(&mut out, &metadata);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, item.as_ref());
    }
    out.extend_from_slice(b"]}");
    full(StatusCode::OK, out)
}

fn create(shared: &Shared, route: &Route, mut object: Value) -> Response<Body> {
    let created = {
        let mut s = shared.lock();
        if object["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            let prefix = object["metadata"]["generateName"]
                .as_str()
                .unwrap_or("object-")
                .to_string();
            s.next_uid += 1;
            object["metadata"]["name"] = format!("{prefix}{:05x}", s.next_uid).into();
        }
        if let Some(ns) = &route.namespace {
            object["metadata"]["namespace"] = ns.clone().into();
        }
        let key = object_key(&object);
        if s.get(&route.resource(), &key).is_some() {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{}\" already exists", route.plural, key.1),
            );
        }
        let stored = s.store(&route.resource(), key, object, "ADDED");
        (stored, s.revision)
    };
    shared.notify(created.1);
    respond(StatusCode::CREATED, &created.0)
}

/// Fields the server owns: never taken from a client's apply or update.
fn keep_server_fields(object: &mut Value, old: &Value) {
    for field in ["uid", "creationTimestamp"] {
        object["metadata"][field] = old["metadata"][field].clone();
    }
    if object.get("status").is_none()
        && let Some(status) = old.get("status")
    {
        object["status"] = status.clone();
    }
}

/// Whether two versions of an object differ in anything but their resourceVersion.
fn same(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

fn patch(shared: &Shared, route: &Route, content_type: &str, patch: Value) -> Response<Body> {
    let applying = content_type.starts_with("application/apply-patch");
    let merging = content_type.starts_with("application/merge-patch")
        || content_type.starts_with("application/strategic-merge-patch");
    if !applying && !merging {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the API double serves apply and merge patches, not {content_type:?}"),
        );
    }
    let (response, revision) = {
        let mut s = shared.lock();
        let resource = route.resource();
        let key = route.key();
        let old = s.get(&resource, &key);
        let mut object = match (&old, applying) {
            (None, false) => return not_found(route),
            (Some(old), false) => {
                let mut merged = (**old).clone();
                merge(&mut merged, &patch);
                merged
            }
            (_, true) => patch,
        };
        object["metadata"]["name"] = key.1.clone().into();
        if let Some(ns) = &route.namespace {
            object["metadata"]["namespace"] = ns.clone().into();
        }
        let kind = match &old {
            Some(old) => {
                keep_server_fields(&mut object, old);
                if same(&object, old) {
                    return respond(StatusCode::OK, old);
                }
                "MODIFIED"
            }
            None => "ADDED",
        };
        let stored = s.store(&resource, key, object, kind);
        let code = if old.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        (respond(code, &stored), s.revision)
    };
    shared.notify(revision);
    response
}

fn update(shared: &Shared, route: &Route, mut object: Value) -> Response<Body> {
    let (response, revision) = {
        let mut s = shared.lock();
        let resource = route.resource();
        let key = route.key();
        let Some(old) = s.get(&resource, &key) else {
            return not_found(route);
        };
        keep_server_fields(&mut object, &old);
        if same(&object, &old) {
            return respond(StatusCode::OK, &old);
        }
        let stored = s.store(&resource, key, object, "MODIFIED");
        (respond(StatusCode::OK, &stored), s.revision)
    };
    shared.notify(revision);
    response
}

/// A JSON merge patch (RFC 7386): `null` removes.
fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Some(target) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A body fed by a channel: a watch's lines as they come.
struct Stream(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// `watch=true`: the changes after `resourceVersion` (every matching object as `ADDED`
/// first when it is absent or `0`), then each change as it happens, until
/// `timeoutSeconds`; a `BOOKMARK` at the current resourceVersion ends it.
fn watch_stream(
    shared: Arc<Shared>,
    route: Route,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let terms = match parse_selector(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(terms) => terms,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(MAX_WATCH, |t| Duration::from_secs(t).min(MAX_WATCH));
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let since = query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v > 0);
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut changed = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let resource = route.resource();
        let namespace = route.namespace.clone();
        let wanted = |o: &Value| {
            namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
                && selected(o, &terms)
        };
        // Where the stream is: the last resourceVersion sent.
        let mut cursor = match since {
            Some(since) => since,
            None => {
                let (objects, revision) = {
                    let s = shared.lock();
                    let objects: Vec<Arc<Value>> = s
                        .resources
                        .get(&resource)
                        .map(|r| r.objects.values().filter(|o| wanted(o)).cloned().collect())
                        .unwrap_or_default();
                    (objects, s.revision)
                };
                for chunk in objects.chunks(WATCH_CHUNK) {
                    let lines = chunk
                        .iter()
                        .map(|o| ("ADDED", o.clone()))
                        .collect::<Vec<_>>();
                    if tx.send(lines_of(&lines)).await.is_err() {
                        return;
                    }
                }
                revision
            }
        };
        loop {
            let (events, next, behind) = {
                let s = shared.lock();
                match s.resources.get(&resource) {
                    None => (Vec::new(), s.revision.max(cursor), false),
                    Some(r) => {
                        let from = r.log.partition_point(|c| c.revision <= cursor);
                        let batch = &r.log[from..r.log.len().min(from + WATCH_CHUNK)];
                        let next = batch.last().map_or(cursor, |c| c.revision);
                        let events: Vec<(&'static str, Arc<Value>)> = batch
                            .iter()
                            .filter(|c| wanted(&c.object))
                            .map(|c| (c.kind, c.object.clone()))
                            .collect();
                        (events, next, from + WATCH_CHUNK < r.log.len())
                    }
                }
            };
            cursor = next;
            if !events.is_empty() && tx.send(lines_of(&events)).await.is_err() {
                return;
            }
            if behind {
                continue;
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = tx.closed() => return,
            }
        }
        if bookmarks {
            let revision = shared.lock().revision.max(cursor);
            let line = json!({"type": "BOOKMARK", "object": {
                "apiVersion": route.api_version, "kind": "Bookmark",
                "metadata": {"resourceVersion": revision.to_string()}}});
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.push(b'\n');
            let _ = tx.send(Bytes::from(bytes)).await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Stream(rx).boxed())
        .unwrap_or_default()
}

/// Watch events as JSON lines.
fn lines_of(events: &[(&'static str, Arc<Value>)]) -> Bytes {
    let mut out = Vec::new();
    for (kind, object) in events {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        let _ = serde_json::to_writer(&mut out, object.as_ref());
        out.extend_from_slice(b"}\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(ns: &str, name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": ns, "labels": labels}})
    }

    #[test]
    fn selection_goes_through_the_label_index_and_pages_in_key_order() {
        let mut s = State::default();
        let key: ResourceKey = (String::new(), "configmaps".into());
        for i in 0..10 {
            let labels = json!({"app": if i % 2 == 0 { "even" } else { "odd" }});
            s.store(
                &key,
                ("a".into(), format!("m{i}")),
                object("a", &format!("m{i}"), labels),
                "ADDED",
            );
        }
        s.store(
            &key,
            ("b".into(), "m0".into()),
            object("b", "m0", json!({"app": "even"})),
            "ADDED",
        );
        let r = &s.resources[&key];
        let even = parse_selector("app=even").unwrap();
        let names = |keys: Vec<ObjectKey>| {
            keys.into_iter()
                .map(|k| format!("{}/{}", k.0, k.1))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(select(r, Some("a"), &even, None, usize::MAX)),
            ["a/m0", "a/m2", "a/m4", "a/m6", "a/m8"]
        );
        assert_eq!(names(select(r, None, &even, None, 2)), ["a/m0", "a/m2"]);
        let after = ("a".to_string(), "m8".to_string());
        assert_eq!(names(select(r, None, &even, Some(&after), 5)), ["b/m0"]);
        assert_eq!(names(select(r, Some("b"), &[], None, 5)), ["b/m0"]);
        let not_odd = parse_selector("app!=odd,!missing").unwrap();
        assert_eq!(select(r, None, &not_odd, None, usize::MAX).len(), 6);
        assert!(select(r, None, &parse_selector("app=none").unwrap(), None, 5).is_empty());
        assert!(parse_selector("app in (a,b)").is_err());
    }

    #[test]
    fn a_merge_patch_removes_what_is_null_and_keeps_the_rest() {
        let mut target = json!({"spec": {"a": 1, "b": {"c": 2}}, "metadata": {"name": "x"}});
        merge(&mut target, &json!({"spec": {"a": null, "b": {"d": 3}}}));
        assert_eq!(
            target,
            json!({"spec": {"b": {"c": 2, "d": 3}}, "metadata": {"name": "x"}})
        );
    }

    /// One request over HTTP/1.0 (the connection closes after the answer); a watch is
    /// read until `until` shows up in what came so far.
    fn call(api: &ApiDouble, request: &str, until: Option<&str>) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(api.url().trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        let mut buffer = [0u8; 65536];
        loop {
            let n = stream.read(&mut buffer).unwrap();
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if n == 0 || until.is_some_and(|u| text.contains(u)) {
                break;
            }
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, body.to_string())
    }

    fn get(api: &ApiDouble, path: &str) -> (u16, Value) {
        let (code, body) = call(api, &format!("GET {path} HTTP/1.0\r\n\r\n"), None);
        (code, serde_json::from_str(&body).unwrap())
    }

    #[test]
    fn over_http_lists_page_gets_find_applies_store_and_watches_stream_what_follows() {
        let api = ApiDouble::start(1).unwrap();
        api.put_all(
            "",
            "configmaps",
            (0..5).map(|i| object("a", &format!("m{i}"), json!({"app": "x"}))),
        );
        api.serve_discovery("example.io/v1", "things", "Thing", true);

        let (code, page) = get(
            &api,
            "/api/v1/namespaces/a/configmaps?labelSelector=app%3Dx&limit=3",
        );
        assert_eq!(code, 200);
        assert_eq!(page["items"].as_array().unwrap().len(), 3);
        let token = page["metadata"]["continue"].as_str().unwrap().to_string();
        let (_, rest) = get(
            &api,
            &format!(
                "/api/v1/namespaces/a/configmaps?labelSelector=app%3Dx&limit=3&continue={token}"
            ),
        );
        assert_eq!(rest["items"].as_array().unwrap().len(), 2);
        assert!(rest["metadata"].get("continue").is_none());
        let listed_at = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();

        assert_eq!(get(&api, "/api/v1/namespaces/a/configmaps/m4").0, 200);
        assert_eq!(get(&api, "/api/v1/namespaces/a/configmaps/none").0, 404);
        assert_eq!(
            get(&api, "/apis/example.io/v1").1["resources"][0]["kind"],
            "Thing"
        );
        assert_eq!(get(&api, "/apis/example.io/v2").0, 404);

        // A server-side apply creates, a second identical one changes nothing.
        let applied = object("a", "new", json!({"app": "x"})).to_string();
        let apply = format!(
            "PATCH /api/v1/namespaces/a/configmaps/new?fieldManager=t&force=true HTTP/1.0\r\n\
             Content-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\n\r\n{applied}",
            applied.len()
        );
        assert_eq!(call(&api, &apply, None).0, 201);
        let version =
            api.get("", "configmaps", "a", "new").unwrap()["metadata"]["resourceVersion"].clone();
        assert_eq!(call(&api, &apply, None).0, 200);
        assert_eq!(
            api.get("", "configmaps", "a", "new").unwrap()["metadata"]["resourceVersion"],
            version
        );

        // A watch from the list's resourceVersion sees the apply, then a later change.
        let watch = format!(
            "GET /api/v1/namespaces/a/configmaps?watch=true&resourceVersion={listed_at}&timeoutSeconds=5 HTTP/1.0\r\n\r\n"
        );
        let changer = std::thread::spawn({
            let shared = api.shared.clone();
            move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut s = shared.lock();
                let key: ResourceKey = (String::new(), "configmaps".into());
                let mut changed = (*s.get(&key, &("a".into(), "m0".into())).unwrap()).clone();
                changed["data"] = json!({"k": "v"});
                s.store(&key, ("a".into(), "m0".into()), changed, "MODIFIED");
                let revision = s.revision;
                drop(s);
                shared.notify(revision);
            }
        });
        let (code, lines) = call(&api, &watch, Some("\"MODIFIED\""));
        changer.join().unwrap();
        assert_eq!(code, 200);
        let events: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events[0]["type"], "ADDED");
        assert_eq!(events[0]["object"]["metadata"]["name"], "new");
        assert_eq!(events[1]["type"], "MODIFIED");
        assert_eq!(events[1]["object"]["data"]["k"], "v");
        assert_eq!(api.requests()["watch configmaps"], 1);
    }
}
