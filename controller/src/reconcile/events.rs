//! What users must see, as Events on their SeldonDeployment: each new problem of a model
//! (annotation errors and warnings) once.

use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::apply::call;
use super::context::{Context, lock};
use crate::generate;
use crate::seldon::SeldonDeployment;

/// Emits a Warning Event for each new problem of a model (errors and warnings).
pub(super) async fn report(
    ctx: &Context,
    sdep: &SeldonDeployment,
    model: &generate::GeneratedModel,
) {
    let mut messages: Vec<(String, String)> = Vec::new();
    if let Err(errors) = &model.objects {
        let kept = if lock(&ctx.last_good).contains_key(&model.id) {
            "its last good configuration is kept"
        } else {
            "it never had a valid configuration, so its requests are denied"
        };
        for e in errors {
            messages.push(("InvalidAnnotation".into(), format!("{e}; {kept}")));
        }
    }
    for w in &model.warnings {
        messages.push(("AnnotationWarning".into(), w.to_string()));
    }
    let texts: Vec<String> = messages.iter().map(|(_, m)| m.clone()).collect();
    {
        let mut reported = lock(&ctx.reported);
        if reported.get(&model.id) == Some(&texts) {
            return;
        }
        reported.insert(model.id.clone(), texts);
    }
    for (reason, note) in messages {
        tracing::warn!(model = %model.id, %reason, "{note}");
        if let Some(reporter) = &ctx.reporter {
            // A Recorder folds every Event with the same reason on the same object into the
            // series of the first one, note included, so a second, different problem would
            // show as one more count of the first. Problems are already reported once each
            // (above), so each gets its own Event: a Recorder without history.
            let recorder = Recorder::new(ctx.client.clone(), reporter.clone());
            let event = Event {
                type_: EventType::Warning,
                reason,
                note: Some(note.chars().take(1024).collect()),
                action: "Reconcile".into(),
                secondary: None,
            };
            let published = call(ctx, recorder.publish(&event, &sdep.object_ref(&()))).await;
            if let Err(e) = published {
                tracing::warn!(model = %model.id, "cannot publish an Event: {e}");
            }
        }
    }
}
