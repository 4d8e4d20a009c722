//! Fields of the spec an ECS task definition has no place for: said, never silently dropped.

use tracedapp_api::TracedAppSpec;

/// One line per field set in `spec` that ECS ignores, with what to use instead.
pub fn ignored_fields(spec: &TracedAppSpec) -> Vec<String> {
    let mut out = Vec::new();
    let app = &spec.app;
    let service = spec.ecs.as_ref().and_then(|e| e.service.as_ref());
    if app.replicas != 1 && service.is_none() {
        out.push(format!(
            "spec.app.replicas ({}) is not part of a task definition: it becomes the ECS \
             service's desired count with spec.ecs.service (`tracedapp ecs deploy`)",
            app.replicas
        ));
    }
    let sized = |r: &tracedapp_api::spec::Resources| r.requests.is_some() || r.limits.is_some();
    if sized(&app.resources) || sized(&spec.collector.resources) {
        out.push(
            "spec.app.resources and spec.collector.resources are Kubernetes only: ECS sizes the \
             task with spec.ecs.cpu and spec.ecs.memory"
                .to_owned(),
        );
    }
    if app.progress_deadline_seconds.is_some() {
        out.push(
            "spec.app.progressDeadlineSeconds is Kubernetes only (the Deployment's deadline)"
                .to_owned(),
        );
    }
    if app.health_path != "/health" {
        out.push(format!(
            "spec.app.healthPath ({}) is not used on ECS: the app container gets no health check \
             (its image may have no HTTP client); with spec.ecs.service.loadBalancer, give the \
             target group that health check path",
            app.health_path
        ));
    }
    if spec.aws.credentials_secret.is_some() {
        out.push(
            "spec.aws.credentialsSecret is Kubernetes only: on ECS the task role \
             (spec.ecs.taskRoleArn, else spec.aws.iamRoleArn) gives the collector its AWS identity"
                .to_owned(),
        );
    }
    out
}

/// Where the task's region comes from, said once: `--region`, else `spec.ecs.region` (whose
/// default is us-east-1); and a warning when an exporter names another region, since the
/// collector then talks to that region while the task runs in this one.
pub fn region_note(spec: &TracedAppSpec, flag: Option<&str>) -> String {
    let region = crate::region(spec, flag);
    let from = match (flag, &spec.ecs) {
        (Some(_), _) => "--region",
        (None, Some(_)) if region == "us-east-1" => "spec.ecs.region, whose default it is",
        (None, Some(_)) => "spec.ecs.region",
        (None, None) => "the default: spec.ecs.region is not set",
    };
    let mut note = format!("region {region} (from {from})");
    let exporter = spec
        .exporters
        .xray
        .as_ref()
        .and_then(|x| {
            x.region
                .as_deref()
                .map(|r| ("spec.exporters.xray.region", r))
        })
        .or_else(|| {
            spec.exporters.cloudwatch_metrics.as_ref().and_then(|c| {
                c.region
                    .as_deref()
                    .map(|r| ("spec.exporters.cloudwatchMetrics.region", r))
            })
        });
    if let Some((field, other)) = exporter.filter(|(_, r)| *r != region) {
        note.push_str(&format!(
            "; {field} is {other}: the collector exports there while the task runs in {region} \
             (set spec.ecs.region or --region if that is not meant)"
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_only_fields_are_named() {
        let mut spec = tracedapp_api::load::from_yaml(
            "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: a}\nspec:\n  app: {image: \"i:1\"}\n  exporters: {jaeger: {endpoint: \"j:4317\"}}\n",
        )
        .unwrap()
        .spec;
        assert!(
            ignored_fields(&spec).is_empty(),
            "a plain spec warns of nothing"
        );
        spec.app.replicas = 3;
        spec.aws.credentials_secret =
            Some(serde_json::from_value(serde_json::json!({"name": "keys"})).unwrap());
        let lines = ignored_fields(&spec);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("spec.app.replicas (3)"));
        assert!(lines[1].starts_with("spec.aws.credentialsSecret"));
    }
}
