//! Whole passes against a scripted Kubernetes API, in-process: what a pass sends for a new app,
//! a converged one, an invalid spec, a hand edit, a taken name and a failing API. They run in
//! milliseconds, so a controller change can be checked before the real-API-server suites
//! (`operator/tests/controller.rs`, and real pods in `operator/tests/node/`).
//!
//! The fake answers like an API server for what a pass uses: a GET of an object it does not
//! hold is a 404, an apply returns the applied object with a new resourceVersion (or a 409 for
//! an apply without force on a name in `held`), an Event is accepted. Every request is
//! recorded, so a test asserts exactly what was sent.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::client::Body;
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tracedapp_api::TracedApp;

use super::health::ExportHealth;
use super::metrics::Metrics;
use super::{Context, Error, reconcile};
use tracedapp_api::fixtures::{Fixture, app};
use tracedapp_k8s::labels::MANAGER;
use tracedapp_k8s::manifests::{self, Children};

/// One request the pass sent.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Sent {
    /// `"PATCH deployments/shop"`: the method and the path from the resource on.
    fn short(&self) -> String {
        let parts: Vec<&str> = self.path.split('/').collect();
        let from = parts
            .iter()
            .position(|p| *p == "namespaces")
            .map_or(0, |i| i + 2);
        format!("{} {}", self.method, parts[from..].join("/"))
    }
}

/// The scripted API: records every request, answers as described in the module docs, and
/// fails the requests whose short form is in `failing` with a 500.
#[derive(Debug, Default)]
struct FakeApi {
    sent: Mutex<Vec<Sent>>,
    failing: Vec<&'static str>,
    /// Objects the server holds although the caches do not show them, by short path
    /// (`services/shop`): an apply without force conflicts, a GET returns them.
    held: Vec<(&'static str, Value)>,
    /// The TracedApp, to answer a status patch with the whole object.
    app: Value,
}

impl FakeApi {
    fn answer(&self, sent: Sent) -> (StatusCode, Value) {
        self.sent.lock().unwrap().push(sent.clone());
        if self.failing.contains(&sent.short().as_str()) {
            return (StatusCode::INTERNAL_SERVER_ERROR, status(500, "injected"));
        }
        let short = sent.short();
        let path = short.split_once(' ').map_or("", |(_, p)| p);
        let held = self.held.iter().find(|(p, _)| *p == path).map(|(_, v)| v);
        match (sent.method.as_str(), held) {
            ("GET", Some(object)) => return (StatusCode::OK, object.clone()),
            ("PATCH", Some(_)) if !sent.query.contains("force=true") => {
                return (StatusCode::CONFLICT, status(409, "Conflict"));
            }
            _ => {}
        }
        match sent.method.as_str() {
            "GET" => (StatusCode::NOT_FOUND, status(404, "NotFound")),
            "PATCH" if sent.path.ends_with("/status") => {
                let mut app = self.app.clone();
                app["status"] = sent.body["status"].clone();
                (StatusCode::OK, app)
            }
            "PATCH" => {
                let mut object = sent.body.clone();
                object["metadata"]["resourceVersion"] = json!("2");
                (StatusCode::OK, object)
            }
            "POST" => (StatusCode::CREATED, sent.body),
            _ => (StatusCode::OK, status(200, "Success")),
        }
    }

    /// The requests sent so far, Events left out (see [`FakeApi::events`]).
    fn sent(&self) -> Vec<Sent> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|s| !s.path.contains("/events"))
            .cloned()
            .collect()
    }

    fn shorts(&self) -> Vec<String> {
        self.sent().iter().map(Sent::short).collect()
    }

    /// The reasons of the Events published so far.
    fn events(&self) -> Vec<String> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|s| s.path.contains("/events"))
            .filter_map(|s| s.body["reason"].as_str().map(str::to_owned))
            .collect()
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "reason": reason, "message": reason, "code": code})
}

fn client(api: Arc<FakeApi>) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let api = api.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let sent = Sent {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, body) = api.answer(sent);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
        }
    });
    Client::new(service, "default")
}

/// The live objects the watch caches hold.
#[derive(Debug, Default)]
struct Live {
    config_maps: Vec<ConfigMap>,
    accounts: Vec<ServiceAccount>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    network_policies: Vec<NetworkPolicy>,
}

impl Live {
    /// The children of `app` as the API server would hold them after our apply.
    fn converged(children: &Children) -> Self {
        Self {
            config_maps: vec![stored(children.config_map.clone())],
            accounts: vec![stored(children.service_account.clone())],
            deployments: vec![stored(children.deployment.clone())],
            services: vec![stored(children.service.clone())],
            network_policies: vec![stored(children.network_policy.clone())],
        }
    }
}

fn stored<K: Resource>(mut k: K) -> K {
    k.meta_mut().resource_version = Some("1".into());
    k
}

fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    reader
}

/// The names cache of `objects` (their metadata).
fn names<K>(objects: &[K]) -> Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store(
        objects
            .iter()
            .map(|k| k.meta().clone().into_response_partial::<K>())
            .collect(),
    )
}

/// Runs one pass of `app` with caches holding `live`, against `api`.
async fn pass(app: &TracedApp, live: Live, api: FakeApi) -> (Result<(), Error>, Arc<FakeApi>) {
    let off = super::health::Settings {
        enabled: false,
        ..Default::default()
    };
    pass_with(app, live, api, Arc::new(ExportHealth::new(off))).await
}

/// [`pass`] with export health as `export` has read it.
async fn pass_with(
    app: &TracedApp,
    live: Live,
    api: FakeApi,
    export: Arc<ExportHealth>,
) -> (Result<(), Error>, Arc<FakeApi>) {
    let api = Arc::new(FakeApi {
        app: serde_json::to_value(app).unwrap(),
        ..api
    });
    let client = client(api.clone());
    let reporter = Reporter {
        controller: "tracedapp-operator".into(),
        instance: None,
    };
    let names = super::ownership::Names {
        config_maps: names(&live.config_maps),
        accounts: names(&live.accounts),
        deployments: names(&live.deployments),
        services: names(&live.services),
        network_policies: names(&live.network_policies),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: Arc::new(Metrics::default()),
        recorder: Recorder::new(client, reporter),
        config_maps: store(live.config_maps),
        accounts: store(live.accounts),
        deployments: store(live.deployments.clone()),
        services: store(live.services),
        names,
        network_policies: store(live.network_policies),
        chain: super::owned::Chain {
            deployments: store(live.deployments),
            replica_sets: store(Vec::new()),
            pods: store::<Pod>(Vec::new()),
        },
        site: manifests::Site::default(),
        export,
        failures: Mutex::default(),
        last_writes: Mutex::default(),
    });
    let result = reconcile(Arc::new(app.clone()), ctx).await.map(|_| ());
    (result, api)
}

/// The status a first pass writes for `app`: what the API server would then hold.
async fn first_status(app: &TracedApp) -> Value {
    let (result, api) = pass(app, Live::default(), FakeApi::default()).await;
    result.unwrap();
    let sent = api.sent();
    sent.last().unwrap().body["status"].clone()
}

fn condition(status: &Value, kind: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {status}"));
    (
        c["status"].as_str().unwrap().to_owned(),
        c["reason"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_new_app_gets_its_children_in_order_then_a_status() {
    let app = app().stored();
    let children = manifests::build(&app);
    let (result, api) = pass(&app, Live::default(), FakeApi::default()).await;
    result.unwrap();

    let cm = children.config_map.metadata.name.clone().unwrap();
    assert_eq!(
        api.shorts(),
        [
            // No read: whose a name is comes from the names caches. Config and identity
            // before the pods that use them.
            format!("PATCH configmaps/{cm}"),
            "PATCH serviceaccounts/shop".into(),
            "PATCH deployments/shop".into(),
            "PATCH services/shop".into(),
            "PATCH networkpolicies/shop".into(),
            "PATCH tracedapps/shop/status".into(),
        ]
    );
    let sent = api.sent();
    for (i, patch) in sent.iter().enumerate() {
        assert!(
            patch.query.contains(&format!("fieldManager={MANAGER}")),
            "server-side apply with our field manager: {}",
            patch.query
        );
        // A child no cache shows is created without force (a name taken since the caches
        // were read then conflicts instead of being taken over); the status is ours alone.
        assert_eq!(
            patch.query.contains("force=true"),
            i == 5,
            "{}",
            patch.query
        );
    }
    assert_eq!(
        api.events(),
        Vec::<String>::new(),
        "a first rollout is told by its status"
    );
    let deployment = &sent[2].body;
    assert_eq!(
        deployment,
        &serde_json::to_value(&children.deployment).unwrap()
    );
    let status = &sent[5].body["status"];
    assert_eq!(
        condition(status, "ConfigValid"),
        ("True".into(), "Valid".into())
    );
    assert_eq!(condition(status, "Ready").0, "False", "no pod is up yet");
}

#[tokio::test]
async fn a_converged_app_sends_no_request() {
    let mut app = app().stored();
    app.status = Some(serde_json::from_value(first_status(&app).await).unwrap());
    let live = Live::converged(&manifests::build(&app));
    let (result, api) = pass(&app, live, FakeApi::default()).await;
    result.unwrap();
    assert_eq!(api.shorts(), Vec::<String>::new());
    assert_eq!(api.events(), Vec::<String>::new());
}

#[tokio::test]
async fn an_invalid_spec_writes_its_status_and_applies_nothing() {
    let app = app().stored().edit(|a| {
        a.spec.exporters.prometheus.port = a.spec.app.port;
    });
    let (result, api) = pass(&app, Live::default(), FakeApi::default()).await;
    result.unwrap();
    assert_eq!(api.shorts(), ["PATCH tracedapps/shop/status"]);
    let status = &api.sent()[0].body["status"];
    assert_eq!(
        condition(status, "ConfigValid"),
        ("False".into(), "InvalidSpec".into())
    );
    let message = status["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("exporters.prometheus.port"),
        "names the field: {message}"
    );
    assert!(
        api.events().contains(&"InvalidSpec".to_owned()),
        "{:?}",
        api.events()
    );
}

#[tokio::test]
async fn a_hand_edited_deployment_is_restored_and_reported() {
    let mut app = app().stored();
    app.status = Some(serde_json::from_value(first_status(&app).await).unwrap());
    let mut live = Live::converged(&manifests::build(&app));
    live.deployments[0].spec.as_mut().unwrap().replicas = Some(5);
    let (result, api) = pass(&app, live, FakeApi::default()).await;
    result.unwrap();
    assert_eq!(api.shorts(), ["PATCH deployments/shop"]);
    assert_eq!(api.sent()[0].body["spec"]["replicas"], 1);
    assert_eq!(api.events(), ["DriftReverted"]);
}

#[tokio::test]
async fn a_name_taken_by_another_owner_applies_nothing() {
    let app = app().stored();
    let mut live = Live::default();
    let mut theirs = stored(manifests::build(&app).service);
    theirs.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "someone-else".into(),
        uid: "ffffffff-0000-4000-8000-000000000000".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    live.services.push(theirs);
    let (result, api) = pass(&app, live, FakeApi::default()).await;
    result.unwrap();
    assert!(
        api.shorts()
            .iter()
            .all(|s| !s.starts_with("PATCH") || s.ends_with("/status")),
        "no child applied: {:?}",
        api.shorts()
    );
    assert_last_status_says_child_conflict(&api);
}

/// The last request was a status with `Degraded=True`, `ChildConflict`.
fn assert_last_status_says_child_conflict(api: &FakeApi) {
    let sent = api.sent();
    let status = &sent.last().unwrap().body["status"];
    assert_eq!(
        condition(status, "Degraded"),
        ("True".into(), "ChildConflict".into())
    );
}

/// A Service created by someone else after the names cache was read: the apply without force
/// conflicts, one GET says whose it is, and nothing after it is applied.
#[tokio::test]
async fn a_name_taken_since_the_caches_were_read_is_not_taken_over() {
    let app = app().stored();
    let mut theirs = serde_json::to_value(manifests::build(&app).service).unwrap();
    theirs["metadata"]["ownerReferences"] = json!([]);
    let api = FakeApi {
        held: vec![("services/shop", theirs)],
        ..FakeApi::default()
    };
    let (result, api) = pass(&app, Live::default(), api).await;
    result.unwrap();
    let shorts = api.shorts();
    let at = shorts
        .iter()
        .position(|s| s == "GET services/shop")
        .unwrap();
    assert_eq!(shorts[at - 1], "PATCH services/shop", "{shorts:?}");
    assert_eq!(
        shorts[at + 1..],
        ["PATCH tracedapps/shop/status"],
        "nothing applied after: {shorts:?}"
    );
    assert_last_status_says_child_conflict(&api);
}

/// Our own Service, not yet in the caches (an event on its way) and held in part by another
/// manager: the conflict is resolved by one GET and an apply with force.
#[tokio::test]
async fn our_own_child_missing_from_the_caches_is_applied_with_force_after_a_read() {
    let app = app().stored();
    let ours = serde_json::to_value(manifests::build(&app).service).unwrap();
    let api = FakeApi {
        held: vec![("services/shop", ours)],
        ..FakeApi::default()
    };
    let (result, api) = pass(&app, Live::default(), api).await;
    result.unwrap();
    let sent = api.sent();
    let services: Vec<(String, bool)> = sent
        .iter()
        .filter(|s| s.short().ends_with("services/shop") && !s.short().contains("account"))
        .map(|s| (s.method.clone(), s.query.contains("force=true")))
        .collect();
    assert_eq!(
        services,
        [
            ("PATCH".into(), false),
            ("GET".into(), false),
            ("PATCH".into(), true)
        ]
    );
    let status = &sent.last().unwrap().body["status"];
    assert_eq!(condition(status, "Degraded").0, "False");
}

#[tokio::test]
async fn a_failing_apply_stops_the_pass_before_the_status() {
    let app = app().stored();
    let api = FakeApi {
        failing: vec!["PATCH deployments/shop"],
        ..FakeApi::default()
    };
    let (result, api) = pass(&app, Live::default(), api).await;
    assert!(matches!(result, Err(Error::Kube(_))), "{result:?}");
    let shorts = api.shorts();
    assert_eq!(shorts.last().unwrap(), "PATCH deployments/shop");
    assert!(
        !shorts.iter().any(|s| s.ends_with("/status")),
        "no status claims success: {shorts:?}"
    );
}

/// Export health reads of `awsxray` for `demo/shop`: `sent` then `failed` spans between them.
fn export_reads(sent: u64, failed: u64) -> Arc<ExportHealth> {
    let health = ExportHealth::new(Default::default());
    let t0 = std::time::Instant::now();
    let text = |s: u64, f: u64| {
        format!(
            "otelcol_exporter_sent_spans{{exporter=\"awsxray\"}} {s}\n\
             otelcol_exporter_send_failed_spans{{exporter=\"awsxray\"}} {f}\n"
        )
    };
    health.record("demo/shop", "shop-1", t0, &text(0, 0));
    health.record("demo/shop", "shop-1", t0, &text(sent, failed));
    Arc::new(health)
}

#[tokio::test]
async fn failing_export_is_a_condition_and_one_warning_then_steady_export_writes_nothing() {
    let mut app = app().stored().with_xray();
    app.status = Some(serde_json::from_value(first_status(&app).await).unwrap());
    let children = manifests::build(&app);
    let live = || Live::converged(&children);

    let (result, api) = pass_with(&app, live(), FakeApi::default(), export_reads(106, 1204)).await;
    result.unwrap();
    assert_eq!(api.shorts(), ["PATCH tracedapps/shop/status"]);
    let status = api.sent()[0].body["status"].clone();
    assert_eq!(
        condition(&status, "ExportHealthy"),
        ("False".into(), "ExportFailing".into())
    );
    let message = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ExportHealthy")
        .unwrap()["message"]
        .clone();
    assert_eq!(
        message,
        "awsxray: 1,204 of 1,310 spans failed in the last 5 min"
    );
    assert_eq!(status["exports"][0]["failedSpans"], 1204);
    assert_eq!(api.events(), ["ExportFailing"]);

    // Recovered, then more spans sent: one write when it recovers, none after.
    let (result, api) = pass_with(&app, live(), FakeApi::default(), export_reads(500, 0)).await;
    result.unwrap();
    let healthy = api.sent()[0].body["status"].clone();
    assert_eq!(condition(&healthy, "ExportHealthy").0, "True");
    assert_eq!(api.events(), ["ExportHealthy"]);
    app.status = Some(serde_json::from_value(healthy).unwrap());
    let (result, api) = pass_with(&app, live(), FakeApi::default(), export_reads(9000, 0)).await;
    result.unwrap();
    assert_eq!(api.shorts(), Vec::<String>::new(), "steady: no write");
}
