use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, SleepAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use tracedapp_api::TracedApp;
use tracedapp_api::app_env::{app_env, kubernetes_text};
use tracedapp_api::collector;
use tracedapp_api::resources;
use tracedapp_api::spec::{ResourceAmounts, Resources};

use tracedapp_api::sidecar::{self, APP_PORT_NAME, HEALTH_PORT_NAME, RUN_AS, TMP_PATH};

use super::{CONFIG_DIR, CONFIG_KEY, POD_IP_ENV, Rendered, TELEMETRY_PORT_NAME, child_meta};
use crate::{labels, naming};

/// Seconds a stopping app keeps serving before it gets SIGTERM: long enough for the endpoint
/// controller and kube-proxy to take the pod out of its Service, so that no request is sent
/// to a closed port during a rollout (measured on real pods: without it, requests failed).
pub const PRE_STOP_SECONDS: i64 = 5;

/// The app with its collector as a native sidecar: an init container with
/// `restartPolicy: Always`, which Kubernetes starts (and waits to be healthy) before the app and
/// stops after it, so the app's last spans still find a collector at shutdown.
pub fn deployment(app: &TracedApp, rendered: &Rendered) -> Deployment {
    let config_map = naming::collector_config_map(app, &rendered.config_hash);
    let mut pod_labels = labels::common(app, labels::COMPONENT_APP);
    pod_labels.extend(labels::selector(app));
    Deployment {
        metadata: child_meta(app, naming::workload(app), labels::COMPONENT_APP),
        spec: Some(DeploymentSpec {
            replicas: Some(app.spec.app.replicas),
            progress_deadline_seconds: app.spec.app.progress_deadline_seconds,
            selector: LabelSelector {
                match_labels: Some(labels::selector(app)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        labels::CONFIG_HASH_ANNOTATION.to_owned(),
                        rendered.config_hash.clone(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(naming::workload(app)),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![collector_container(app)]),
                    containers: vec![app_container(app)],
                    volumes: Some(vec![
                        Volume {
                            name: naming::CONFIG_VOLUME.to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: config_map,
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: naming::TMP_VOLUME.to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        },
                    ]),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn app_container(app: &TracedApp) -> Container {
    let spec = &app.spec;
    let a = &spec.app;
    let platform = [
        "k8s.pod.name=$(K8S_POD_NAME)".to_owned(),
        "k8s.namespace.name=$(K8S_NAMESPACE_NAME)".to_owned(),
        format!("k8s.deployment.name={}", naming::workload(app)),
    ];
    // The downward-API variables come first: OTEL_RESOURCE_ATTRIBUTES refers to them.
    let mut env = vec![
        field_env("K8S_POD_NAME", "metadata.name"),
        field_env("K8S_NAMESPACE_NAME", "metadata.namespace"),
    ];
    // Text from the spec stays text, as on ECS: Kubernetes would expand `$(NAME)` in it.
    env.extend(
        app_env(spec, &app.name_any(), &platform, kubernetes_text)
            .iter()
            .map(|(k, v)| env_value(k, v)),
    );
    let probe = |initial: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(a.health_path.clone()),
            port: IntOrString::String(APP_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        ..Probe::default()
    };
    Container {
        name: naming::APP_CONTAINER.to_owned(),
        image: Some(a.image.clone()),
        ports: Some(vec![port(APP_PORT_NAME, a.port, "TCP")]),
        env: Some(env),
        readiness_probe: Some(probe(2, 5)),
        liveness_probe: Some(probe(10, 10)),
        // Kubelet-run: no shell or sleep binary needed in the image.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(resources(&a.resources, defaults(resources::APP, None))),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![VolumeMount {
            name: naming::TMP_VOLUME.to_owned(),
            mount_path: TMP_PATH.to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

fn collector_container(app: &TracedApp) -> Container {
    let spec = &app.spec;
    let mut ports: Vec<ContainerPort> =
        sidecar::collector_ports(spec.exporters.prometheus.port, spec.collector.xray_receiver)
            .iter()
            .map(|p| port(p.name, p.number, p.protocol))
            .collect();
    // Its own metrics, on the pod's IP for the operator's export-health sampling only (the
    // TracedApp's NetworkPolicy admits no one else to this port).
    ports.push(port(TELEMETRY_PORT_NAME, collector::TELEMETRY_PORT, "TCP"));
    // The Go runtime's soft limit, below the memory_limiter's hard limit.
    let mut env = vec![
        env_value(
            "GOMEMLIMIT",
            &resources::collector_gomemlimit(spec.collector.memory_limit_mib),
        ),
        field_env(POD_IP_ENV, "status.podIP"),
    ];
    if let Some(secret) = &spec.aws.credentials_secret {
        env.push(secret_env(
            "AWS_ACCESS_KEY_ID",
            &secret.name,
            &secret.access_key_id_key,
        ));
        env.push(secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &secret.name,
            &secret.secret_access_key_key,
        ));
    }
    let health = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/".to_owned()),
            port: IntOrString::String(HEALTH_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    // Room above the memory_limiter's limit so it, not the kernel, sheds load.
    let memory_limit = format!(
        "{}Mi",
        resources::collector_memory_limit_mib(spec.collector.memory_limit_mib)
    );
    Container {
        name: naming::COLLECTOR_CONTAINER.to_owned(),
        image: Some(collector::image(spec)),
        args: Some(
            std::iter::once(format!("--config={CONFIG_DIR}/{CONFIG_KEY}"))
                .chain(collector::command_flags(spec))
                .collect(),
        ),
        // A native sidecar: started before the app, stopped after it.
        restart_policy: Some("Always".to_owned()),
        ports: Some(ports),
        env: Some(env),
        startup_probe: Some(health(1, 60)),
        readiness_probe: Some(health(5, 3)),
        liveness_probe: Some(health(10, 3)),
        resources: Some(resources(
            &spec.collector.resources,
            defaults(resources::COLLECTOR, Some(memory_limit)),
        )),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![VolumeMount {
            name: naming::CONFIG_VOLUME.to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// The restricted Pod Security Standard, per container.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The default requests and limits of a container (`memory_limit` overriding its default
/// memory limit), from the one table in `tracedapp_api::resources`.
fn defaults(d: resources::Defaults, memory_limit: Option<String>) -> ResourceRequirements {
    let map = |cpu: Option<&str>, memory: Option<String>| {
        let m: BTreeMap<String, Quantity> = [("cpu", cpu.map(str::to_owned)), ("memory", memory)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), Quantity(v?))))
            .collect();
        (!m.is_empty()).then_some(m)
    };
    ResourceRequirements {
        requests: map(d.request_cpu, d.request_memory.map(str::to_owned)),
        limits: map(
            d.limit_cpu,
            memory_limit.or(d.limit_memory.map(str::to_owned)),
        ),
        ..ResourceRequirements::default()
    }
}

/// The spec's resources where given, else `defaults`.
fn resources(spec: &Resources, defaults: ResourceRequirements) -> ResourceRequirements {
    let amounts = |a: &ResourceAmounts| {
        let mut m = BTreeMap::new();
        if let Some(cpu) = &a.cpu {
            m.insert("cpu".to_owned(), Quantity(cpu.clone()));
        }
        if let Some(mem) = &a.memory {
            m.insert("memory".to_owned(), Quantity(mem.clone()));
        }
        m
    };
    ResourceRequirements {
        requests: spec.requests.as_ref().map(amounts).or(defaults.requests),
        limits: spec.limits.as_ref().map(amounts).or(defaults.limits),
        ..ResourceRequirements::default()
    }
}

fn port(name: &str, number: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some(protocol.to_owned()),
        ..ContainerPort::default()
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn field_env(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}
