//! A burst the sidecar cannot forward, on a real pod at the default limits: the collector sheds
//! it (its exporter's bounded queue, or its `memory_limiter`) and counts what it shed, the
//! kernel kills nothing, and the app keeps answering. The numbers are printed (BENCHMARKS.md quotes
//! them).
//!
//! The load runs inside the pod's network namespace (`nsenter --net`), where the sidecar's OTLP
//! receivers listen on localhost: a Python client posts OTLP/JSON batches of 1,000 spans to
//! `127.0.0.1:4318` as fast as the collector answers, while it probes the app's `/health`
//! twice a second, then reads the collector's own counters. The TracedApp exports to a name
//! that does not resolve, so nothing leaves the collector.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::cgroup::MemoryCgroup;
use crate::cluster::{Rig, collector_container, container_statuses};

const NS: &str = "burst";
const NAME: &str = "burst";
/// How long the burst lasts.
const SECONDS: u64 = 40;
/// The sidecar's OTLP/HTTP port and the app's port (the TracedApp defaults).
const OTLP_HTTP_PORT: u16 = 4318;
const APP_PORT: u16 = 3000;

/// The client, run by the system's Python inside the pod's network namespace. Prints one JSON
/// object: requests, spans accepted and refused, connection errors, app probes answered and
/// failed.
const LOADER: &str = r#"
import http.client, json, sys, threading, time
seconds, otlp, app, telemetry = (int(a) for a in sys.argv[1:5])
pod_ip = sys.argv[5]  # the collector's own metrics listen on the pod's address
now = time.time_ns()
def text(k, v): return {"key": k, "value": {"stringValue": v}}
def span(i):
    return {"traceId": "%032x" % i, "spanId": "%016x" % i, "name": "GET /chain", "kind": 2,
            "startTimeUnixNano": str(now - 1000000), "endTimeUnixNano": str(now),
            "attributes": [text("http.request.method", "GET"), text("http.route", "/chain"),
                           text("url.path", "/chain"), text("url.scheme", "http"),
                           text("client.address", "10.88.0.7"),
                           text("user_agent.original", "curl/8.5.0"),
                           {"key": "http.response.status_code", "value": {"intValue": "200"}}]}
BATCH = 1000
body = json.dumps({"resourceSpans": [{
    "resource": {"attributes": [text("service.name", "burst")]},
    "scopeSpans": [{"spans": [span(i + 1) for i in range(BATCH)]}]}]}).encode()
counts = {"requests": 0, "accepted_spans": 0, "refused_spans": 0, "errors": 0,
          "app_ok": 0, "app_failed": 0}
stop = time.time() + seconds
def probe():
    while time.time() < stop:
        try:
            c = http.client.HTTPConnection("127.0.0.1", app, timeout=5)
            c.request("GET", "/health")
            r = c.getresponse(); r.read(); c.close()
            counts["app_ok" if r.status == 200 else "app_failed"] += 1
        except Exception:
            counts["app_failed"] += 1
        time.sleep(0.5)
prober = threading.Thread(target=probe)
prober.start()
conn = None
while time.time() < stop:
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", otlp, timeout=10)
        conn.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        counts["requests"] += 1
        counts["accepted_spans" if 200 <= r.status < 300 else "refused_spans"] += BATCH
    except Exception:
        counts["errors"] += 1
        conn = None
        time.sleep(0.05)
prober.join()
# What the collector itself counted: spans its exporters could not queue, spans refused.
text = ""
for _ in range(20):
    time.sleep(1)
    try:
        c = http.client.HTTPConnection(pod_ip, telemetry, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        break
    except Exception as e:
        counts["collector_metrics_error"] = str(e)
def total(prefix):
    return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith(prefix)))
counts["collector_enqueue_failed"] = total("otelcol_exporter_enqueue_failed_spans")
counts["collector_refused"] = total("otelcol_receiver_refused_spans") + total("otelcol_processor_refused_spans")
print(json.dumps(counts))
"#;

pub fn burst_at_default_limits(rig: &Rig) -> Result<(), Failed> {
    crate::bench::ensure_system(rig)?;
    let image = crate::bench::service_image(rig)?;
    rig.kubectl_ok(&["create", "namespace", NS]);
    let result = burst(rig, &image);
    rig.kubectl_ok(&["delete", "namespace", NS, "--wait=true", "--timeout=120s"]);
    result
}

fn burst(rig: &Rig, image: &str) -> Result<(), Failed> {
    // Defaults everywhere; the export goes to a name that does not resolve.
    let spec = format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: {NAME}, namespace: {NS}}}\n\
         spec:\n  app: {{image: \"{image}\"}}\n  exporters: {{jaeger: {{endpoint: \"nowhere.{NS}.svc.cluster.local:4317\", tls: {{insecure: true}}}}}}\n"
    );
    let ready = rig.apply_until_ready(NS, NAME, &spec)?;
    let (pod, pid) = (&ready.pod, ready.collector_pid);
    let limit_mib = collector_memory_limit_mib(&ready.json)?;
    let pod_ip = ready.ip.to_string();
    let cgroup = MemoryCgroup::of_process(pid)?;

    let mut loader = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["/usr/bin/python3", "-c", LOADER])
        .args([
            SECONDS.to_string(),
            OTLP_HTTP_PORT.to_string(),
            APP_PORT.to_string(),
            tracedapp_api::collector::TELEMETRY_PORT.to_string(),
            pod_ip,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nsenter python3: {e}"))?;
    let started = Instant::now();
    let mut peak = 0.0f64;
    while loader.try_wait()?.is_none() {
        peak = peak.max(cgroup.usage_mib());
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = loader.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "the load client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let counts: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("the load client's report: {e}"))?;
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    let elapsed = started.elapsed().as_secs_f64();
    let oom_kills = cgroup.oom_kills();
    // The collector's own peak (its cgroup's figure above counts the page cache too).
    let process_peak = testkit::process::memory_mib(pid, "VmHWM");
    let pod_now = rig.json(&["get", "pod", "-n", NS, pod]);
    let containers = container_statuses(&pod_now);
    let restarts: Vec<(&str, u64)> = containers
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("?"),
                s["restartCount"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    // A restarted container's cgroup is gone with its count: the pod says why it ended.
    let ended: Vec<&str> = containers
        .iter()
        .filter_map(|s| s.pointer("/lastState/terminated/reason")?.as_str())
        .collect();
    let offered = n("accepted_spans") + n("refused_spans");
    eprintln!(
        "burst: {SECONDS} s, {:.0} spans/s offered, {} accepted, {} refused, {} connection errors; \
         collector cgroup peak {peak:.1} MiB (process {process_peak:.1} MiB) of its \
         {limit_mib:.0} MiB limit; the collector counted {} spans it could not queue for \
         export and refused {}; OOM kills {oom_kills}; \
         restarts {restarts:?} (ended: {ended:?}); app probes {} answered, {} failed",
        offered as f64 / elapsed,
        n("accepted_spans"),
        n("refused_spans"),
        n("errors"),
        n("collector_enqueue_failed"),
        n("collector_refused"),
        n("app_ok"),
        n("app_failed"),
    );
    assert!(
        oom_kills == 0 && !ended.contains(&"OOMKilled"),
        "the kernel OOM-killed the collector ({ended:?})"
    );
    assert!(
        restarts.iter().all(|(_, r)| *r == 0),
        "no container restarted: {restarts:?}"
    );
    assert!(
        n("refused_spans") + n("collector_enqueue_failed") + n("collector_refused") > 0,
        "with nowhere to send, the collector refused or dropped part of the burst, and \
         counted it ({counts})"
    );
    assert!(
        n("app_ok") > 0 && n("app_failed") == 0,
        "the app answered every probe during the burst ({counts})"
    );
    Ok(())
}

/// The sidecar's memory limit from the pod (`320Mi` → 320).
fn collector_memory_limit_mib(pod: &Value) -> Result<f64, Failed> {
    let limit = collector_container(pod)
        .and_then(|c| c.pointer("/resources/limits/memory"))
        .and_then(Value::as_str)
        .ok_or("the collector's memory limit")?;
    let mib = limit
        .strip_suffix("Mi")
        .and_then(|m| m.parse::<f64>().ok())
        .ok_or_else(|| format!("a limit in Mi: {limit}"))?;
    Ok(mib)
}
