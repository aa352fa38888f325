//! What the cluster holds of the objects the controller writes, kept from watches instead
//! of asked for model by model. A reconcile used to read each of its objects (its routes,
//! each DestinationRule, the list of its DestinationRules, its AuthorizationPolicy) before
//! deciding whether to write: about five requests per model on every reconcile, 1,700 a
//! second at 100,000 models requeued every 5 minutes. The watches kube's `Controller`
//! runs on those kinds anyway feed this cache first.
//!
//! Per object it keeps a [`Digest`], not the object: a hash of its spec, its labels and
//! its owners' uids, which is all `apply::differs` compares. At 100,000 models
//! (a VirtualService and a DestinationRule or two each) that is tens of megabytes where
//! the objects themselves would be hundreds.
//!
//! A kind's cache answers only once its watch has listed everything ([`LiveKind::ready`]);
//! before that, and for kinds not watched, callers read the API server as before. What the
//! controller itself writes or deletes is recorded at once, so a reconcile that follows
//! its own write before the watch reports it does not write again. Of the kinds not
//! watched with the settings, only the managed objects' names are known, from a list per
//! namespace ([`Unwatched`]).

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::context::lock;
pub use super::unwatched::Unwatched;
use crate::generate::MODEL_LABEL;
use crate::settings::{RoutingApi, Settings};

/// What `apply::differs` compares of an object, and what finding a model's
/// objects needs: its spec's hash, its labels, its owners' uids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    spec: u64,
    /// Sorted by key, exactly as long as needed: a map's node would take several times
    /// the room for the two or three labels an object carries (one digest per object, at
    /// 100,000 models some 200,000).
    labels: Box<[(Box<str>, Box<str>)]>,
    owners: Box<[Box<str>]>,
}

impl Digest {
    /// The digest of an object, desired or live. The spec goes through the same typed
    /// serialisation either way, so numbers compare as `differs` compares them.
    pub fn of<K: Resource + Serialize>(object: &K) -> Self {
        let spec = serde_json::to_value(object)
            .map(|mut v| v["spec"].take())
            .unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        // `serde_json::Value` maps are ordered, so equal specs hash equally.
        spec.to_string().hash(&mut hasher);
        Self {
            spec: hasher.finish(),
            // A BTreeMap iterates in key order.
            labels: object
                .labels()
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            owners: object
                .owner_references()
                .iter()
                .map(|o| o.uid.as_str().into())
                .collect(),
        }
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    /// Whether a live object with this digest lacks what `desired` sets: another spec, a
    /// label, an owner.
    pub fn differs_from(&self, desired: &Digest) -> bool {
        self.spec != desired.spec
            || !desired
                .labels
                .iter()
                .all(|(k, v)| self.label(k) == Some(&**v))
            || !desired.owners.iter().all(|o| self.owners.contains(o))
    }

    /// Whether the object carries `label` with `value`.
    pub fn has_label(&self, label: &str, value: &str) -> bool {
        self.label(label) == Some(value)
    }
}

type Key = (String, String);

#[derive(Default)]
struct Objects {
    by_name: HashMap<Key, Digest>,
    /// `(namespace, seldon id)` → names: a model's objects without a scan.
    by_model: HashMap<Key, BTreeSet<String>>,
    /// A relist in progress: it replaces `by_name` when done.
    relist: Option<HashMap<Key, Digest>>,
}

impl Objects {
    fn insert(&mut self, key: Key, digest: Digest) {
        self.forget(&key);
        if let Some(model) = digest.label(MODEL_LABEL) {
            self.by_model
                .entry((key.0.clone(), model.to_string()))
                .or_default()
                .insert(key.1.clone());
        }
        self.by_name.insert(key, digest);
    }

    fn forget(&mut self, key: &Key) {
        let Some(old) = self.by_name.remove(key) else {
            return;
        };
        if let Some(model) = old.label(MODEL_LABEL) {
            let index = (key.0.clone(), model.to_string());
            if let Some(names) = self.by_model.get_mut(&index) {
                names.remove(&key.1);
                if names.is_empty() {
                    self.by_model.remove(&index);
                }
            }
        }
    }
}

/// The digests of one kind's objects, fed by its watch.
#[derive(Default)]
pub struct LiveKind {
    objects: Mutex<Objects>,
    ready: AtomicBool,
}

/// What the cache knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// The watch has not listed the kind yet (or the kind is not watched): ask the API.
    Unknown,
    /// The object does not exist.
    Absent,
    /// The object exists, with this digest.
    Present(Digest),
}

impl LiveKind {
    /// Whether the watch has listed every object once.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What the cache knows of `<namespace>/<name>`.
    pub fn get(&self, namespace: &str, name: &str) -> Known {
        if !self.ready() {
            return Known::Unknown;
        }
        let objects = lock(&self.objects);
        match objects
            .by_name
            .get(&(namespace.to_string(), name.to_string()))
        {
            Some(digest) => Known::Present(digest.clone()),
            None => Known::Absent,
        }
    }

    /// The names of a model's objects (those labelled with its seldon id) in `namespace`
    /// with their digests, or `None` before the watch has listed the kind.
    pub fn of_model(&self, namespace: &str, seldon_id: &str) -> Option<Vec<(String, Digest)>> {
        if !self.ready() {
            return None;
        }
        let objects = lock(&self.objects);
        let names = objects
            .by_model
            .get(&(namespace.to_string(), seldon_id.to_string()));
        Some(
            names
                .into_iter()
                .flatten()
                .filter_map(|name| {
                    let digest = objects
                        .by_name
                        .get(&(namespace.to_string(), name.clone()))?;
                    Some((name.clone(), digest.clone()))
                })
                .collect(),
        )
    }

    /// Records what the controller just wrote (the object the API server answered with).
    pub fn wrote<K: Resource + Serialize>(&self, object: &K) {
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        lock(&self.objects).insert(key, Digest::of(object));
    }

    /// Records that the controller just deleted `<namespace>/<name>`.
    pub fn deleted(&self, namespace: &str, name: &str) {
        lock(&self.objects).forget(&(namespace.to_string(), name.to_string()));
    }

    /// Takes one event of the kind's watch.
    pub fn observe<K: Resource + Serialize>(&self, event: &watcher::Event<K>) {
        let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
        let mut objects = lock(&self.objects);
        match event {
            watcher::Event::Apply(o) => objects.insert(key(o), Digest::of(o)),
            watcher::Event::Delete(o) => objects.forget(&key(o)),
            watcher::Event::Init => objects.relist = Some(HashMap::new()),
            watcher::Event::InitApply(o) => {
                objects
                    .relist
                    .get_or_insert_with(HashMap::new)
                    .insert(key(o), Digest::of(o));
            }
            watcher::Event::InitDone => {
                let listed = objects.relist.take().unwrap_or_default();
                *objects = Objects::default();
                for (key, digest) in listed {
                    objects.insert(key, digest);
                }
                drop(objects);
                self.ready.store(true, Ordering::Release);
            }
        }
    }

    /// Feeds the cache from a watch and passes on every object it touched (applied or
    /// deleted), for kube's `Controller` to map to its owner.
    pub fn follow<K>(
        self: Arc<Self>,
        events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource + Serialize + Send + 'static,
    {
        events.flat_map(move |event| {
            let touched = match event {
                Ok(event) => {
                    self.observe(&event);
                    match event {
                        watcher::Event::Apply(o)
                        | watcher::Event::Delete(o)
                        | watcher::Event::InitApply(o) => vec![Ok(o)],
                        watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
                    }
                }
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(touched)
        })
    }
}

/// The caches of every kind a model owns.
#[derive(Default)]
pub struct LiveObjects {
    /// VirtualServices.
    pub virtual_services: Arc<LiveKind>,
    /// DestinationRules.
    pub destination_rules: Arc<LiveKind>,
    /// HTTPRoutes (`routing: gateway-api`).
    pub http_routes: Arc<LiveKind>,
    /// AuthorizationPolicies (`authorizationPolicy: true`).
    pub authorization_policies: Arc<LiveKind>,
    /// The managed objects of the kinds not watched with the settings, listed per
    /// namespace when a model first looks for one.
    pub unwatched: Unwatched,
}

impl LiveObjects {
    /// The cache of `K`'s kind, when the controller keeps one.
    pub fn of<K: Resource<DynamicType = ()>>(&self) -> Option<&LiveKind> {
        match K::kind(&()).as_ref() {
            "VirtualService" => Some(&self.virtual_services),
            "DestinationRule" => Some(&self.destination_rules),
            "HTTPRoute" => Some(&self.http_routes),
            "AuthorizationPolicy" => Some(&self.authorization_policies),
            _ => None,
        }
    }

    /// Whether `run::lead` watches `K`'s kind with these settings: VirtualServices and
    /// DestinationRules always, HTTPRoutes with `routing: gateway-api`, AuthorizationPolicies
    /// with `authorizationPolicy` on. The others' managed objects are known from
    /// [`Self::unwatched`] instead.
    pub fn watched<K: Resource<DynamicType = ()>>(settings: &Settings) -> bool {
        match K::kind(&()).as_ref() {
            "VirtualService" | "DestinationRule" => true,
            "HTTPRoute" => settings.routing == RoutingApi::GatewayApi,
            "AuthorizationPolicy" => settings.authorization_policy,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{DestinationRule, DestinationRuleSpec};
    use kube::api::ObjectMeta;

    fn rule(namespace: &str, name: &str, model: &str, host: &str) -> DestinationRule {
        let mut rule = DestinationRule::new(
            name,
            DestinationRuleSpec {
                host: host.into(),
                subsets: Vec::new(),
                traffic_policy: Default::default(),
            },
        );
        rule.metadata = ObjectMeta {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            labels: Some([(MODEL_LABEL.to_string(), model.to_string())].into()),
            ..ObjectMeta::default()
        };
        rule
    }

    #[test]
    fn nothing_is_known_before_the_watch_has_listed() {
        let live = LiveKind::default();
        live.observe(&watcher::Event::<DestinationRule>::Init);
        live.observe(&watcher::Event::InitApply(rule("a", "x-main", "x", "h")));
        assert_eq!(live.get("a", "x-main"), Known::Unknown);
        assert_eq!(live.of_model("a", "x"), None);
        live.observe(&watcher::Event::<DestinationRule>::InitDone);
        assert!(matches!(live.get("a", "x-main"), Known::Present(_)));
        assert_eq!(live.get("a", "y-main"), Known::Absent);
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_lists() {
        let live = LiveKind::default();
        live.observe(&watcher::Event::<DestinationRule>::Init);
        live.observe(&watcher::Event::InitApply(rule("a", "x-main", "x", "h")));
        live.observe(&watcher::Event::InitApply(rule("a", "x-canary", "x", "h")));
        live.observe(&watcher::Event::<DestinationRule>::InitDone);
        live.observe(&watcher::Event::<DestinationRule>::Init);
        live.observe(&watcher::Event::InitApply(rule("a", "x-main", "x", "h")));
        // Until the relist is done, the last complete one answers.
        assert_eq!(live.of_model("a", "x").map(|v| v.len()), Some(2));
        live.observe(&watcher::Event::<DestinationRule>::InitDone);
        let names: Vec<String> = live
            .of_model("a", "x")
            .expect("listed")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["x-main"]);
        assert_eq!(live.get("a", "x-canary"), Known::Absent);
    }

    #[test]
    fn a_models_objects_follow_applies_and_deletes() {
        let live = LiveKind::default();
        live.observe(&watcher::Event::<DestinationRule>::Init);
        live.observe(&watcher::Event::<DestinationRule>::InitDone);
        live.observe(&watcher::Event::Apply(rule("a", "x-main", "x", "h")));
        live.observe(&watcher::Event::Apply(rule("b", "x-main", "x", "h")));
        live.wrote(&rule("a", "x-canary", "x", "h"));
        let names = |ns: &str| -> Vec<String> {
            live.of_model(ns, "x")
                .expect("listed")
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names("a"), ["x-canary", "x-main"]);
        assert_eq!(names("b"), ["x-main"]);
        live.observe(&watcher::Event::Delete(rule("a", "x-main", "x", "h")));
        live.deleted("a", "x-canary");
        assert!(names("a").is_empty());
        // A label that changes moves the object to its new model.
        live.observe(&watcher::Event::Apply(rule("b", "x-main", "y", "h")));
        assert!(names("b").is_empty());
        assert_eq!(
            live.of_model("b", "y").expect("listed")[0].0,
            "x-main".to_string()
        );
    }

    #[test]
    fn the_kinds_watched_are_those_the_permissions_let_it_watch() {
        use crate::gateway_api::HTTPRoute;
        use crate::istio::{AuthorizationPolicy, VirtualService};
        use crate::permissions::{ApiRequest, Permissions, Verb};
        use crate::settings::RunSettings;
        fn check<K: Resource<DynamicType = ()>>(settings: &Settings) {
            let permissions = Permissions::resolve(settings, &RunSettings::default());
            let (group, plural) = (K::group(&()), K::plural(&()));
            let watch = ApiRequest {
                verb: Verb::Watch,
                group: &group,
                resource: &plural,
                namespace: None,
                name: None,
            };
            assert_eq!(
                LiveObjects::watched::<K>(settings),
                permissions.allows(&watch),
                "{} with routing {:?}, authorizationPolicy {}",
                K::kind(&()),
                settings.routing,
                settings.authorization_policy
            );
        }
        for routing in [RoutingApi::Istio, RoutingApi::GatewayApi] {
            for authorization_policy in [false, true] {
                let settings = Settings {
                    routing,
                    authorization_policy,
                    ..Settings::default()
                };
                check::<VirtualService>(&settings);
                check::<DestinationRule>(&settings);
                check::<HTTPRoute>(&settings);
                check::<AuthorizationPolicy>(&settings);
            }
        }
    }

    #[test]
    fn digests_differ_as_the_objects_do() {
        let desired = rule("a", "x-main", "x", "h");
        let same = Digest::of(&rule("a", "x-main", "x", "h"));
        assert!(!same.differs_from(&Digest::of(&desired)));
        let other_spec = Digest::of(&rule("a", "x-main", "x", "other"));
        assert!(other_spec.differs_from(&Digest::of(&desired)));
        let mut unlabelled = rule("a", "x-main", "x", "h");
        unlabelled.metadata.labels = None;
        assert!(Digest::of(&unlabelled).differs_from(&Digest::of(&desired)));
        // Labels of its own that the controller does not set are no difference.
        let mut more = rule("a", "x-main", "x", "h");
        more.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("team".into(), "blue".into());
        assert!(!Digest::of(&more).differs_from(&Digest::of(&desired)));
        // Neither are owners it does not set; a missing one is.
        let mut owned = desired.clone();
        owned.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                uid: "u1".into(),
                ..Default::default()
            },
        ]);
        assert!(same.differs_from(&Digest::of(&owned)));
        assert!(!Digest::of(&owned).differs_from(&Digest::of(&desired)));
    }
}
