//! The managed objects of kinds the controller does not watch with its settings: the other
//! routing API's routes (HTTPRoutes with `routing: istio`) and AuthorizationPolicies with
//! `authorizationPolicy` off. Only an earlier process with other settings can have left
//! them, so each model looks for its own once per process (`Context::swept`).
//!
//! Asking the API server model by model was one GET per model and kind at every start:
//! 200,000 at 100,000 models. Instead, the first time a model of a namespace looks for
//! an object of such a kind, the managed ones of that namespace are listed by label, in
//! pages, metadata only, and their names kept; every other model of the namespace waits
//! for that one list (a once-cell per kind and namespace) and then reads the names. The
//! list needs `list` on the kind in the models' namespaces, as the reads did `get`: the
//! RBAC's scope stays where it was.
//!
//! What is kept stays true: nothing writes objects of these kinds while they are not
//! watched (the process that did has other settings and is not running), and what the
//! controller deletes is forgotten at once ([`Unwatched::deleted`]), so it is never
//! deleted twice. A list that fails (an RBAC from before this, without `list`; a timeout)
//! leaves that namespace to a GET per model, as before, and is said once per kind in the
//! log; the model does not fail for it. A kind that is not served at all (its CRD not
//! installed) has nothing to remove.
//!
//! Memory: the names of managed objects of these kinds, normally none (they are deleted as
//! their models are swept, and forgotten with it), and one small entry per kind and
//! namespace looked at.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::api::{Api, ListParams};
use tokio::sync::OnceCell;

use super::apply::{Owned, call};
use super::context::{Context, lock};
use crate::generate::MANAGED_BY;

/// Objects asked for per page of a list: a metadata page of this many is some hundreds of
/// kilobytes at most.
const PAGE: u32 = 500;

/// What is known of the managed objects of unwatched kinds, per kind and namespace.
#[derive(Default)]
pub struct Unwatched {
    /// `(kind, namespace)` → its list, made once.
    listed: Mutex<HashMap<(String, String), Cell>>,
    /// Kinds whose list failed somewhere and that said so in the log.
    warned: Mutex<HashSet<String>>,
}

/// One kind's list in one namespace, made once.
type Cell = Arc<OnceCell<Listed>>;

/// One kind's list in one namespace.
enum Listed {
    /// The names of the managed objects, less those the controller deleted since.
    Names(Mutex<HashSet<Box<str>>>),
    /// The list failed: each model's object is read instead.
    Failed,
}

impl Unwatched {
    /// Whether the managed object `K` `<namespace>/<name>` exists, from the namespace's list
    /// (made now by the first caller; the others wait for it); `None` when that list
    /// failed, so the caller reads the object itself.
    pub(super) async fn managed<K: Owned>(
        &self,
        ctx: &Context,
        namespace: &str,
        name: &str,
    ) -> Option<bool> {
        let cell = lock(&self.listed)
            .entry((K::kind(&()).into_owned(), namespace.to_string()))
            .or_default()
            .clone();
        match cell.get_or_init(|| self.list::<K>(ctx, namespace)).await {
            Listed::Names(names) => Some(lock(names).contains(name)),
            Listed::Failed => None,
        }
    }

    /// Records that the controller deleted `K` `<namespace>/<name>` (or found it gone).
    pub(super) fn deleted<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) {
        let cell = lock(&self.listed)
            .get(&(K::kind(&()).into_owned(), namespace.to_string()))
            .cloned();
        if let Some(Listed::Names(names)) = cell.as_deref().and_then(OnceCell::get) {
            let mut names = lock(names);
            if names.remove(name) && names.len() < names.capacity() / 4 {
                names.shrink_to_fit();
            }
        }
    }

    /// Forgets what is known of the namespaces `keep` says no, e.g. those without a model
    /// any more (a model of one later lists it again).
    pub fn retain_namespaces(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.listed).retain(|(_, namespace), _| keep(namespace));
    }

    /// Names of managed objects kept, over every kind and namespace.
    pub fn names(&self) -> usize {
        let cells: Vec<_> = lock(&self.listed).values().cloned().collect();
        cells
            .iter()
            .filter_map(|cell| match cell.get() {
                Some(Listed::Names(names)) => Some(lock(names).len()),
                _ => None,
            })
            .sum()
    }

    /// Lists the managed objects of `K` in `namespace`, page by page, keeping their names.
    async fn list<K: Owned>(&self, ctx: &Context, namespace: &str) -> Listed {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let mut params = ListParams::default().labels(&selector).limit(PAGE);
        let mut names = HashSet::new();
        loop {
            let page = match call(ctx, api.list_metadata(&params)).await {
                Ok(page) => page,
                // Not served (its CRD is not installed): there is none of it to remove.
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(e) => {
                    self.failed::<K>(namespace, &e);
                    return Listed::Failed;
                }
            };
            names.extend(
                page.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name.map(String::into_boxed_str)),
            );
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        names.shrink_to_fit();
        tracing::debug!(kind = %K::kind(&()), %namespace, managed = names.len(), "listed");
        Listed::Names(Mutex::new(names))
    }

    fn failed<K: Resource<DynamicType = ()>>(&self, namespace: &str, error: &kube::Error) {
        let kind = K::kind(&());
        if lock(&self.warned).insert(kind.to_string()) {
            tracing::warn!(
                %kind,
                %namespace,
                "listing the managed {kind}s failed ({error}): each model's is read instead \
                 where a list fails (said once per kind; does the RBAC grant list on them?)"
            );
        } else {
            tracing::debug!(%kind, %namespace, "listing the managed {kind}s failed: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::gateway_api::HTTPRoute;
    use crate::generate::WasmSource;
    use crate::settings::Settings;

    /// A client whose API server holds the managed objects `names` in every namespace and
    /// lists them two per page, whatever limit is asked; every request is put in `asked`.
    fn paging(names: Vec<String>, asked: Arc<Mutex<Vec<String>>>) -> kube::Client {
        let service = tower::service_fn(move |req: Request<Body>| {
            let (names, asked) = (names.clone(), asked.clone());
            async move {
                let query = req.uri().query().unwrap_or("").to_string();
                lock(&asked).push(format!("{} {}?{query}", req.method(), req.uri().path()));
                let from: usize = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("continue="))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let to = (from + 2).min(names.len());
                let items: Vec<_> = names[from..to]
                    .iter()
                    .map(|n| {
                        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                     "metadata": {"name": n}})
                    })
                    .collect();
                let mut metadata = json!({"resourceVersion": "1"});
                if to < names.len() {
                    metadata["continue"] = to.to_string().into();
                }
                let list = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                  "metadata": metadata, "items": items});
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&list).unwrap_or_default()))
            }
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn a_namespace_is_listed_once_page_by_page_and_deletes_are_forgotten() {
        let names: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let settings = Settings::default();
        let wasm = WasmSource::from_settings(&settings, &"0".repeat(64));
        let ctx = Context::new(paging(names, asked.clone()), settings, wasm, None);
        let unwatched = &ctx.live.unwatched;
        assert_eq!(
            unwatched.managed::<HTTPRoute>(&ctx, "models", "m4").await,
            Some(true)
        );
        assert_eq!(
            unwatched.managed::<HTTPRoute>(&ctx, "models", "m9").await,
            Some(false)
        );
        let requests = std::mem::take(&mut *lock(&asked));
        // Three pages (2, 2, 1), each asking for managed objects only, metadata only.
        assert_eq!(requests.len(), 3, "{requests:?}");
        for request in &requests {
            assert!(
                request.starts_with(
                    "GET /apis/gateway.networking.k8s.io/v1/namespaces/models/httproutes?"
                ) && request.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmodelgate")
                    && request.contains("limit=500"),
                "{request}"
            );
        }
        assert!(requests[1].contains("continue=2"), "{requests:?}");
        assert!(requests[2].contains("continue=4"), "{requests:?}");
        assert_eq!(unwatched.names(), 5);

        unwatched.deleted::<HTTPRoute>("models", "m4");
        assert_eq!(
            unwatched.managed::<HTTPRoute>(&ctx, "models", "m4").await,
            Some(false)
        );
        assert_eq!(unwatched.names(), 4);
        assert!(lock(&asked).is_empty());

        // Another namespace is a list of its own; a namespace forgotten is listed again.
        assert_eq!(
            unwatched.managed::<HTTPRoute>(&ctx, "other", "m0").await,
            Some(true)
        );
        assert_eq!(std::mem::take(&mut *lock(&asked)).len(), 3);
        unwatched.retain_namespaces(|namespace| namespace != "models");
        assert_eq!(unwatched.names(), 5);
        assert_eq!(
            unwatched.managed::<HTTPRoute>(&ctx, "models", "m4").await,
            Some(true)
        );
        assert_eq!(lock(&asked).len(), 3);
    }
}
