//! A scripted ECS endpoint, for fault injection only: it speaks ECS's JSON protocol
//! (`awsJson1_1`, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`) to the real
//! aws-sdk-ecs client, for one service, and plays how its deployment goes.
//!
//! moto — the real emulator the other ECS tests use — never moves a deployment after
//! `UpdateService` and answers the deployment APIs with 500, so waiting, rollbacks, stopped tasks,
//! other people's deployments and throttling cannot be seen through it. This plays them, one
//! [`Play`] per endpoint, advancing one step each time `DescribeServices` is called after the
//! deployment started. Task definitions are kept as registered (revision numbers count up), so
//! the client's own registration, comparison and rollback logic run unchanged.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How the deployment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Play {
    /// Tasks start, then the deployment completes.
    Completes,
    /// Tasks fail to start; the circuit breaker fails the deployment and rolls back to the
    /// revision that ran before; once the rollback completes, ours is gone.
    RolledBack,
    /// The app container exits 1 in every task; the circuit breaker (without rollback) fails
    /// the deployment.
    TasksExit,
    /// Nothing ever starts: the deployment stays in progress.
    Hangs,
    /// Someone else updates the service to another revision right after ours started.
    OtherDeployment,
    /// The first `n` `DescribeServices` calls after the deployment started are throttled, then
    /// it completes.
    Throttled(usize),
}

#[derive(Debug, Default)]
struct State {
    play: Option<Play>,
    family: String,
    /// Registered task definitions (the client's input), by revision - 1.
    revisions: Vec<Value>,
    /// The service, if created: (name, cluster, current task definition `family:rev`).
    service: Option<Service>,
    /// Calls by operation, in order.
    calls: Vec<String>,
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    cluster: String,
    task_definition: String,
    desired: i64,
    network: Value,
    deployment_configuration: Value,
    deployments: Vec<Value>,
    events: Vec<Value>,
    /// Steps since our deployment started (None: no deployment being played).
    step: Option<usize>,
    ours: String,
    previous: String,
    next_id: u64,
    throttled: usize,
}

/// A running scripted ECS endpoint on 127.0.0.1; stops when dropped.
pub struct ScriptedEcs {
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: crate::xray_otlp::Background,
}

impl std::fmt::Debug for ScriptedEcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedEcs")
            .field("url", &self.url)
            .finish()
    }
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn td_arn(td: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{td}")
}

impl ScriptedEcs {
    /// An endpoint playing `play`.
    pub fn start(play: Play) -> Self {
        let state = Arc::new(Mutex::new(State {
            play: Some(play),
            ..State::default()
        }));
        let s = state.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    let op = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|t| t.rsplit('.').next())
                        .unwrap_or_default()
                        .to_owned();
                    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, answer) = s.lock().unwrap().answer(&op, &input);
                    (
                        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK),
                        [("content-type", "application/x-amz-json-1.1")],
                        answer.to_string(),
                    )
                }
            }),
        );
        let server = crate::xray_otlp::Background::serve(app);
        Self {
            url: format!("http://{}", server.addr),
            state,
            _server: server,
        }
    }

    /// A service that already runs revision 1 of `family` (registered here as the client would
    /// have: `td` is its `RegisterTaskDefinition` input), completed.
    pub fn with_service(self, family: &str, td: Value, name: &str, desired: i64) -> Self {
        {
            let mut st = self.state.lock().unwrap();
            st.family = family.to_owned();
            st.revisions.push(td);
            st.service = Some(Service {
                name: name.to_owned(),
                cluster: "default".to_owned(),
                task_definition: format!("{family}:1"),
                desired,
                network: json!({"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"], "assignPublicIp": "DISABLED"}}),
                deployment_configuration: json!({"minimumHealthyPercent": 100, "maximumPercent": 200, "deploymentCircuitBreaker": {"enable": true, "rollback": true}}),
                deployments: vec![deployment(
                    "ecs-svc/1",
                    "PRIMARY",
                    &format!("{family}:1"),
                    desired,
                    desired,
                    "COMPLETED",
                )],
                events: Vec::new(),
                step: None,
                ours: String::new(),
                previous: String::new(),
                next_id: 2,
                throttled: 0,
            });
        }
        self
    }

    /// The operations called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
}

fn deployment(id: &str, status: &str, td: &str, desired: i64, running: i64, state: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "taskDefinition": td_arn(td),
        "desiredCount": desired,
        "runningCount": running,
        "pendingCount": desired - running,
        "failedTasks": 0,
        "rolloutState": state,
        "rolloutStateReason": format!("ECS deployment {id} {}.", state.to_ascii_lowercase().replace('_', " ")),
        "createdAt": now(),
        "updatedAt": now(),
        "launchType": "FARGATE",
    })
}

fn error(kind: &str, message: &str) -> (u16, Value) {
    (400, json!({"__type": kind, "message": message}))
}

impl State {
    fn answer(&mut self, op: &str, input: &Value) -> (u16, Value) {
        self.calls.push(op.to_owned());
        match op {
            "DescribeTaskDefinition" => {
                let wanted = input["taskDefinition"].as_str().unwrap_or_default();
                let (family, rev) =
                    match wanted.rsplit('/').next().unwrap_or(wanted).split_once(':') {
                        Some((f, r)) => (f.to_owned(), r.parse::<usize>().ok()),
                        None => (wanted.to_owned(), None),
                    };
                if family != self.family || self.revisions.is_empty() {
                    return error("ClientException", "Unable to describe task definition.");
                }
                let rev = rev.unwrap_or(self.revisions.len());
                let Some(td) = self.revisions.get(rev - 1) else {
                    return error("ClientException", "Unable to describe task definition.");
                };
                let mut td = td.clone();
                td["taskDefinitionArn"] = td_arn(&format!("{family}:{rev}")).into();
                td["revision"] = rev.into();
                td["status"] = "ACTIVE".into();
                (200, json!({"taskDefinition": td}))
            }
            "RegisterTaskDefinition" => {
                let family = input["family"].as_str().unwrap_or_default().to_owned();
                if self.family.is_empty() {
                    self.family = family.clone();
                }
                self.revisions.push(input.clone());
                let rev = self.revisions.len();
                let mut td = input.clone();
                td["taskDefinitionArn"] = td_arn(&format!("{family}:{rev}")).into();
                td["revision"] = rev.into();
                td["status"] = "ACTIVE".into();
                (200, json!({"taskDefinition": td}))
            }
            "ListTaskDefinitions" => {
                let family = self.family.clone();
                let arns: Vec<String> = (1..=self.revisions.len())
                    .rev()
                    .map(|r| td_arn(&format!("{family}:{r}")))
                    .collect();
                (200, json!({"taskDefinitionArns": arns}))
            }
            "DescribeServices" => self.describe_services(input),
            "CreateService" => {
                let name = input["serviceName"].as_str().unwrap_or_default().to_owned();
                let td = short(input["taskDefinition"].as_str().unwrap_or_default());
                let desired = input["desiredCount"].as_i64().unwrap_or(1);
                self.service = Some(Service {
                    name,
                    cluster: input["cluster"].as_str().unwrap_or("default").to_owned(),
                    task_definition: td.clone(),
                    desired,
                    network: input["networkConfiguration"].clone(),
                    deployment_configuration: input["deploymentConfiguration"].clone(),
                    deployments: Vec::new(),
                    events: Vec::new(),
                    step: None,
                    ours: String::new(),
                    previous: String::new(),
                    next_id: 1,
                    throttled: 0,
                });
                self.start_deployment(&td, None);
                (200, json!({"service": self.service_json()}))
            }
            "UpdateService" => {
                let Some(svc) = self.service.as_mut() else {
                    return error("ServiceNotFoundException", "Service not found.");
                };
                let td = input["taskDefinition"]
                    .as_str()
                    .map_or_else(|| svc.task_definition.clone(), short);
                if let Some(n) = input["desiredCount"].as_i64() {
                    svc.desired = n;
                }
                if !input["networkConfiguration"].is_null() {
                    svc.network = input["networkConfiguration"].clone();
                }
                if !input["deploymentConfiguration"].is_null() {
                    svc.deployment_configuration = input["deploymentConfiguration"].clone();
                }
                let previous = svc.task_definition.clone();
                self.start_deployment(&td, Some(previous));
                (200, json!({"service": self.service_json()}))
            }
            "ListTasks" => {
                let svc = self.service.as_ref();
                let failing = matches!(self.play, Some(Play::RolledBack | Play::TasksExit));
                let ours = svc.map(|s| s.ours.clone()).unwrap_or_default();
                let arns: Vec<String> = if failing && input["startedBy"] == ours.as_str() {
                    vec![format!(
                        "arn:aws:ecs:{REGION}:{ACCOUNT}:task/default/0123456789abcdef0123456789abcdef"
                    )]
                } else {
                    Vec::new()
                };
                (200, json!({"taskArns": arns}))
            }
            "DescribeTasks" => {
                let exit = self.play == Some(Play::TasksExit);
                let tasks: Vec<Value> = input["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|arn| {
                        json!({
                            "taskArn": arn,
                            "lastStatus": "STOPPED",
                            "stoppedReason": if exit { "Essential container in task exited" } else { "Task failed to start" },
                            "containers": [
                                {"name": "app", "exitCode": if exit { json!(1) } else { Value::Null },
                                 "reason": if exit { Value::Null } else { json!("CannotPullContainerError: pull image manifest has been retried 5 time(s): image not found") }},
                                {"name": "otel-collector", "exitCode": 0},
                            ],
                        })
                    })
                    .collect();
                (200, json!({"tasks": tasks, "failures": []}))
            }
            other => error(
                "InvalidParameterException",
                &format!("the scripted endpoint does not play {other}"),
            ),
        }
    }

    fn start_deployment(&mut self, td: &str, previous: Option<String>) {
        let svc = self.service.as_mut().expect("a service");
        let id = format!("ecs-svc/{}", svc.next_id);
        svc.next_id += 1;
        for d in &mut svc.deployments {
            d["status"] = "ACTIVE".into();
        }
        svc.deployments.insert(
            0,
            deployment(&id, "PRIMARY", td, svc.desired, 0, "IN_PROGRESS"),
        );
        svc.task_definition = td.to_owned();
        svc.ours = id;
        svc.previous = previous.unwrap_or_default();
        svc.step = Some(0);
    }

    fn event(svc: &mut Service, message: &str) {
        let id = format!("ev-{}", svc.events.len() + 1);
        svc.events
            .insert(0, json!({"id": id, "createdAt": now(), "message": message}));
    }

    fn describe_services(&mut self, input: &Value) -> (u16, Value) {
        let wanted = input["services"][0].as_str().unwrap_or_default().to_owned();
        let play = self.play;
        let Some(svc) = self.service.as_mut().filter(|s| s.name == wanted) else {
            return (
                200,
                json!({"services": [], "failures": [{"arn": wanted, "reason": "MISSING"}]}),
            );
        };
        if let Some(step) = svc.step {
            if let Some(Play::Throttled(n)) = play
                && svc.throttled < n
            {
                svc.throttled += 1;
                return error("ThrottlingException", "Rate exceeded");
            }
            svc.step = Some(step + 1);
            advance(svc, play.unwrap_or(Play::Completes), step + 1);
        }
        (
            200,
            json!({"services": [self.service_json()], "failures": []}),
        )
    }

    fn service_json(&self) -> Value {
        let svc = self.service.as_ref().expect("a service");
        json!({
            "serviceArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}", svc.cluster, svc.name),
            "serviceName": svc.name,
            "clusterArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{}", svc.cluster),
            "status": "ACTIVE",
            "taskDefinition": td_arn(&svc.task_definition),
            "desiredCount": svc.desired,
            "runningCount": svc.deployments.iter().map(|d| d["runningCount"].as_i64().unwrap_or(0)).sum::<i64>(),
            "pendingCount": 0,
            "launchType": "FARGATE",
            "networkConfiguration": svc.network,
            "deploymentConfiguration": svc.deployment_configuration,
            "deployments": svc.deployments,
            "events": svc.events,
            "enableExecuteCommand": false,
            "schedulingStrategy": "REPLICA",
            "deploymentController": {"type": "ECS"},
        })
    }
}

/// `arn:…:task-definition/shop:2` → `shop:2`.
fn short(td: &str) -> String {
    td.rsplit('/').next().unwrap_or(td).to_owned()
}

/// The service at `step` of `play` (step 1 is the first look after the deployment started).
fn advance(svc: &mut Service, play: Play, step: usize) {
    let ours = svc.ours.clone();
    let name = svc.name.clone();
    let desired = svc.desired;
    let set = |svc: &mut Service, f: &dyn Fn(&mut Value)| {
        if let Some(d) = svc
            .deployments
            .iter_mut()
            .find(|d| d["id"] == ours.as_str())
        {
            f(d);
            d["updatedAt"] = now().into();
        }
    };
    match (play, step) {
        (Play::Completes | Play::Throttled(_), 1) => {
            set(svc, &|d| {
                d["runningCount"] = 1.min(desired).into();
                d["pendingCount"] = (desired - 1).max(0).into();
            });
            State::event(
                svc,
                &format!("(service {name}) has started {desired} tasks: (task 0123456789abcdef)."),
            );
        }
        (Play::Completes | Play::Throttled(_), 2) => {
            set(svc, &|d| {
                d["runningCount"] = desired.into();
                d["pendingCount"] = 0.into();
                d["rolloutState"] = "COMPLETED".into();
            });
            svc.deployments.retain(|d| d["id"] == ours.as_str());
            State::event(
                svc,
                &format!("(service {name}) has reached a steady state."),
            );
            svc.step = None;
        }
        (Play::RolledBack, 1) => {
            set(svc, &|d| d["failedTasks"] = 2.into());
            State::event(
                svc,
                &format!("(service {name}) has started {desired} tasks: (task 0123456789abcdef)."),
            );
        }
        (Play::RolledBack, 2) => {
            set(svc, &|d| {
                d["rolloutState"] = "FAILED".into();
                d["rolloutStateReason"] =
                    "ECS deployment circuit breaker: tasks failed to start.".into();
                d["status"] = "ACTIVE".into();
            });
            let back = format!("ecs-svc/{}", svc.next_id);
            svc.next_id += 1;
            let previous = svc.previous.clone();
            svc.deployments.insert(
                0,
                deployment(&back, "PRIMARY", &previous, desired, 0, "IN_PROGRESS"),
            );
            svc.task_definition = previous;
            State::event(
                svc,
                &format!(
                    "(service {name}) deployment {ours} deployment failed: tasks failed to start."
                ),
            );
            State::event(
                svc,
                &format!("(service {name}) rolling back to deployment {back}."),
            );
        }
        (Play::RolledBack, _) => {
            svc.deployments.retain(|d| d["id"] != ours.as_str());
            for d in &mut svc.deployments {
                d["rolloutState"] = "COMPLETED".into();
                d["runningCount"] = desired.into();
                d["pendingCount"] = 0.into();
            }
            svc.step = None;
        }
        (Play::TasksExit, 1) => {
            set(svc, &|d| d["failedTasks"] = 1.into());
            State::event(
                svc,
                &format!("(service {name}) has started {desired} tasks: (task 0123456789abcdef)."),
            );
        }
        (Play::TasksExit, _) => {
            set(svc, &|d| {
                d["failedTasks"] = 3.into();
                d["rolloutState"] = "FAILED".into();
                d["rolloutStateReason"] =
                    "ECS deployment circuit breaker: tasks failed to start.".into();
            });
            State::event(
                svc,
                &format!(
                    "(service {name}) deployment {ours} deployment failed: tasks failed to start."
                ),
            );
            svc.step = None;
        }
        (Play::Hangs, _) => {}
        (Play::OtherDeployment, 1) => {
            let theirs = format!("ecs-svc/{}", svc.next_id);
            svc.next_id += 1;
            for d in &mut svc.deployments {
                d["status"] = "ACTIVE".into();
            }
            let family = svc
                .task_definition
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            svc.deployments.insert(
                0,
                deployment(
                    &theirs,
                    "PRIMARY",
                    &format!("{family}:99"),
                    desired,
                    0,
                    "IN_PROGRESS",
                ),
            );
            svc.task_definition = format!("{family}:99");
        }
        (Play::OtherDeployment, _) => {}
        _ => {}
    }
}
