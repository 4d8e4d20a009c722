//! The rounds of reads: which pods (an app's own, a few), how many at once, each reply parsed as
//! it arrives and dropped; then every app judged, the verdicts published, and the apps whose
//! condition would change asked for a pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tracedapp_api::TracedApp;
use tracedapp_api::collector::TELEMETRY_PORT;

use super::counters::{self, Counters};
use super::{ExportHealth, Verdict};
use crate::controller::metrics::Metrics;
use crate::controller::owned::Chain;
use crate::controller::status;

/// The most a collector's metrics text may weigh; beyond it the read fails. Bodies are parsed
/// as they arrive, so a round holds at most `max_in_flight` of them at once.
const MAX_BODY: usize = 1 << 20;

/// One collector's counters, per exporter (the expected ones only).
type Counted = BTreeMap<String, Counters>;

/// One pod to read, and the exporters its app's configuration renders (the only ones counted).
#[derive(Debug, Clone)]
struct Target {
    app: String,
    pod: String,
    ip: String,
    exporters: Arc<Vec<String>>,
}

/// Reads, round after round, until `stop`; sends the apps whose `ExportHealthy` condition
/// would change to `trigger` (their controller runs a pass for each).
pub async fn run(
    health: Arc<ExportHealth>,
    apps: Store<TracedApp>,
    chain: Chain,
    metrics: Arc<Metrics>,
    mut trigger: futures::channel::mpsc::Sender<ObjectRef<TracedApp>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let settings = health.settings.clone();
    if !settings.enabled {
        return;
    }
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(jittered(settings.interval)) => {}
        }
        let apps_now = apps.state();
        let targets = targets(
            &apps_now,
            &chain.pods_by_app(&apps_now),
            settings.pods_per_app,
        );
        let started = Instant::now();
        let reads: Vec<(Target, Result<Counted, String>)> = futures::stream::iter(targets)
            .map(|t| async move {
                let read = read(&t.ip, TELEMETRY_PORT, settings.timeout)
                    .await
                    .map(|text| counters::parse(&text, &t.exporters));
                (t, read)
            })
            .buffer_unordered(settings.max_in_flight.max(1))
            .collect()
            .await;
        let now = Instant::now();
        let verdicts: HashMap<String, Verdict> = {
            // The sampler's own lock: a reconcile never waits on it.
            let Ok(mut histories) = health.histories.lock() else {
                return;
            };
            for (t, read) in reads {
                match read {
                    Ok(counted) => {
                        metrics.export_read(true);
                        histories
                            .entry(t.app)
                            .or_default()
                            .record(&t.pod, now, counted);
                    }
                    Err(e) => {
                        metrics.export_read(false);
                        tracing::debug!(pod = %t.pod, ip = %t.ip, error = %e, "cannot read a collector's metrics");
                    }
                }
            }
            let alive: HashSet<String> = apps_now.iter().map(|a| status::key(a)).collect();
            histories.retain(|key, h| {
                h.expire(now, settings.rules.window);
                alive.contains(key) && !h.is_empty()
            });
            apps_now
                .iter()
                .map(|a| {
                    let key = status::key(a);
                    let verdict = histories
                        .get(&key)
                        .map_or(Verdict::NoData, |h| h.verdict(now, &settings.rules));
                    (key, verdict)
                })
                .collect()
        };
        health.publish(verdicts);
        metrics.export_round(started.elapsed().as_secs_f64());
        for app in &apps_now {
            let news = health.news(&status::key(app));
            if super::changes(app, &news) {
                // Full: the controller is busy; the next round asks again.
                let _ = trigger.try_send(ObjectRef::from_obj(app.as_ref()));
            }
        }
    }
}

/// Up to `per_app` of each app's own Ready pods with an IP, in name order.
fn targets(
    apps: &[Arc<TracedApp>],
    own: &HashMap<String, Vec<Arc<Pod>>>,
    per_app: usize,
) -> Vec<Target> {
    let mut out = Vec::new();
    for app in apps {
        let key = status::key(app);
        let Some(pods) = own.get(&key) else {
            continue;
        };
        let exporters: Arc<Vec<String>> = Arc::new(
            tracedapp_api::collector::render(&app.spec)
                .exporters
                .into_keys()
                .collect(),
        );
        let mut mine: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_ready(p)).collect();
        mine.sort_by_key(|p| p.name_any());
        for pod in mine.into_iter().take(per_app) {
            let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
                continue;
            };
            out.push(Target {
                app: key.clone(),
                pod: pod.name_any(),
                ip,
                exporters: exporters.clone(),
            });
        }
    }
    out
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `GET http://<ip>:<port>/metrics`, within `timeout`, at most [`MAX_BODY`].
async fn read(ip: &str, port: i32, timeout: Duration) -> Result<String, String> {
    let host = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = http::Request::get("/metrics")
            .header(http::header::HOST, &host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// `interval` shifted by up to ±20 %, so that the rounds of many operators, or of one after a
/// restart, do not line up.
fn jittered(interval: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.8 + 0.4 * (random % 1000) as f64 / 1000.0;
    interval.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracedapp_api::fixtures::app;

    fn pod(name: &str, ready: bool, ip: Option<&str>) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "demo"},
                "status": {
                    "podIP": ip,
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ready_pods_with_an_ip_of_each_app_up_to_the_cap() {
        let apps = vec![Arc::new(app())];
        let own = HashMap::from([(
            "demo/shop".to_owned(),
            vec![
                pod("shop-c", true, Some("10.0.0.3")),
                pod("shop-a", true, Some("10.0.0.1")),
                pod("shop-b", false, Some("10.0.0.2")),
                pod("shop-d", true, None),
                pod("shop-e", true, Some("10.0.0.5")),
            ],
        )]);
        let t = targets(&apps, &own, 2);
        let picked: Vec<&str> = t.iter().map(|t| t.pod.as_str()).collect();
        assert_eq!(picked, ["shop-a", "shop-c"]);
        assert!(t.iter().all(|t| t.app == "demo/shop"));
        assert!(
            t[0].exporters.iter().any(|e| e.contains("jaeger")),
            "{:?}",
            t[0].exporters
        );
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
    }

    /// Serves `body` on /metrics from a free port, after `delay`.
    async fn serve(body: String, delay: Duration) -> i32 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                tokio::time::sleep(delay).await;
                body
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        i32::from(port)
    }

    #[tokio::test]
    async fn a_read_gets_the_text_within_its_time_and_size() {
        let text = "otelcol_exporter_sent_spans{exporter=\"a\"} 3\n".to_owned();
        let port = serve(text.clone(), Duration::ZERO).await;
        assert_eq!(
            read("127.0.0.1", port, Duration::from_secs(2)).await,
            Ok(text)
        );

        let slow = serve(String::new(), Duration::from_secs(5)).await;
        let err = read("127.0.0.1", slow, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("no answer within"), "{err}");

        let huge = serve("x".repeat(MAX_BODY + 1), Duration::ZERO).await;
        assert!(
            read("127.0.0.1", huge, Duration::from_secs(2))
                .await
                .is_err()
        );
    }
}
