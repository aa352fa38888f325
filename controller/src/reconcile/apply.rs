//! Server-side apply (field manager [`FIELD_MANAGER`], forced), only when the live object
//! differs from the desired one; deletes that treat "already gone" as done; and the
//! timeout every API call runs under.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::Context;
use super::live::{Digest, Known};
use super::{ReconcileError, Writes};
use crate::generate::MANAGED_BY;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "modelgate";

/// How long one API call may take by default before it counts as failed.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// The objects the controller writes: namespaced, typed Kubernetes objects it can send
/// and read back.
pub(super) trait Owned:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Owned for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

pub(super) fn is_managed<K: Resource>(object: &K) -> bool {
    object.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
}

/// Whether the live object differs from the desired one in what this controller sets:
/// the spec, its labels and owner references ([`Digest::differs_from`], the one rule
/// whether the live object comes from a read or from the watches' cache).
pub(super) fn differs<K: Resource + Serialize>(desired: &K, live: &K) -> bool {
    Digest::of(live).differs_from(&Digest::of(desired))
}

pub(super) async fn apply_if_changed<K: Owned>(
    ctx: &Context,
    desired: &K,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let known = ctx
        .live
        .of::<K>()
        .map_or(Known::Unknown, |live| live.get(&namespace, &name));
    let unchanged = match known {
        Known::Present(live) => !live.differs_from(&Digest::of(desired)),
        Known::Absent => false,
        Known::Unknown => {
            let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
            let live = call(ctx, api.get_opt(&name))
                .await
                .map_err(|e| error::<K>("get", &namespace, &name, e))?;
            live.as_ref().is_some_and(|live| !differs(desired, live))
        }
    };
    if unchanged {
        return Ok(());
    }
    apply(ctx, desired, writes).await
}

pub(super) async fn apply<K: Owned>(
    ctx: &Context,
    desired: &K,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = call(
        ctx,
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        ),
    )
    .await
    .map_err(|e| error::<K>("apply", &namespace, &name, e))?;
    if let Some(live) = ctx.live.of::<K>() {
        live.wrote(&written);
    }
    tracing::info!(kind = %K::kind(&()), %namespace, %name, "applied");
    writes
        .applied
        .push(format!("{} {namespace}/{name}", K::kind(&())));
    Ok(())
}

pub(super) async fn delete<K: Owned>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    writes: &mut Writes,
) -> Result<(), ReconcileError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match call(ctx, api.delete(name, &DeleteParams::default())).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(error::<K>("delete", namespace, name, e)),
    }
    if let Some(live) = ctx.live.of::<K>() {
        live.deleted(namespace, name);
    }
    ctx.live.unwatched.deleted::<K>(namespace, name);
    tracing::info!(kind = %K::kind(&()), %namespace, %name, "deleted");
    writes
        .deleted
        .push(format!("{} {namespace}/{name}", K::kind(&())));
    Ok(())
}

/// One API call, failed as a transport error when it takes longer than
/// [`Context::api_timeout`].
pub(super) async fn call<T>(
    ctx: &Context,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(ctx.api_timeout, request).await {
        Ok(result) => result,
        Err(_elapsed) => Err(kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the API server within {:?}", ctx.api_timeout),
        )))),
    }
}

pub(super) fn error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    namespace: &str,
    name: &str,
    source: kube::Error,
) -> ReconcileError {
    ReconcileError {
        action,
        kind: K::kind(&()).into_owned(),
        namespace: namespace.into(),
        name: name.into(),
        source,
    }
}
