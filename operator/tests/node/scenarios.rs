//! The scenarios, in the order they run. Each one says what a user would see, and fails if
//! they would not see it.

use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value;

use crate::cluster::{Jaeger, Rig, Scenario, get, node_port, repo_file, tag, wait};

/// Every scenario, in order.
pub const ALL: &[(&str, Scenario)] = &[
    ("readme_kind_walkthrough_runs_on_real_pods", walkthrough),
    (
        "collector_sidecar_starts_first_and_runs_restricted",
        sidecar,
    ),
];

const DEMO: &str = "demo";
const APP: &str = "hello";
const OPERATOR_NS: &str = "tracedapp-system";

/// The commands of the README's kind walk-through (the ```sh block under "A local cluster
/// with kind"), continuation lines joined and comments dropped.
fn readme_walkthrough() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README.md");
    let section = readme
        .split_once("### A local cluster with kind")
        .expect("the README has the kind walk-through")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the walk-through has a sh block")
        .0;
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line
            .split_once("  #")
            .map_or(line, |(code, _)| code)
            .trim_end();
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let command = current.split_whitespace().collect::<Vec<_>>().join(" ");
                if !command.is_empty() {
                    commands.push(command);
                }
                current.clear();
            }
        }
    }
    commands
}

/// `localhost:<host port>` of kind-config.yaml's port mappings, as `(host port, node port)`.
fn kind_port_mappings() -> Vec<(u16, u16)> {
    let text = std::fs::read_to_string(repo_file("kind-config.yaml")).expect("kind-config.yaml");
    let config: Value = serde_saphyr::from_str(&text).expect("kind-config.yaml is YAML");
    config["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| {
            n["extraPortMappings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| {
            Some((
                u16::try_from(m["hostPort"].as_u64()?).ok()?,
                u16::try_from(m["containerPort"].as_u64()?).ok()?,
            ))
        })
        .collect()
}

/// `localhost:<port>` → the node's address for the NodePort kind maps it to.
fn through_kind_mapping(url: &str) -> (String, String) {
    let rest = url
        .trim_start_matches("http://")
        .strip_prefix("localhost:")
        .unwrap_or_else(|| panic!("{url}: the walk-through only calls localhost"));
    let (port, path) = rest
        .split_once('/')
        .map_or((rest, ""), |(p, path)| (p, path));
    let port: u16 = port.parse().expect("a port");
    let (_, node) = kind_port_mappings()
        .into_iter()
        .find(|(host, _)| *host == port)
        .unwrap_or_else(|| panic!("kind-config.yaml maps no localhost:{port}"));
    (node_port(node), format!("/{path}"))
}

fn jaeger() -> Jaeger {
    let (addr, _) = through_kind_mapping("http://localhost:16686");
    Jaeger { addr }
}

/// The README's kind walk-through, command for command. The rig stands in for
/// `kind create cluster`, `docker build` and `kind load` (the cluster runs, the images are
/// imported); `kubectl get ta -w` is watched until READY True, 2/2; `localhost:<port>` is
/// the node port kind-config.yaml maps it to. Then: the operator pod is Ready by its own
/// probes and uses the chart's ServiceAccount, and `/chain` through the app's NodePort makes
/// a two-hop trace in the in-cluster Jaeger with the right parentage.
fn walkthrough(rig: &Rig) -> Result<(), Failed> {
    let mut chain_answer = None;
    for command in readme_walkthrough() {
        let words: Vec<&str> = command.split(' ').collect();
        eprintln!("walk-through: {command}");
        match words[0] {
            "kind" | "docker" => {
                assert!(
                    command.starts_with("kind create cluster")
                        || command.starts_with("docker build")
                        || command.starts_with("kind load"),
                    "the rig cannot stand in for `{command}`"
                );
            }
            "helm" => {
                rig.helm_ok(&words[1..]);
            }
            "kubectl" if command.contains(" -w") => {
                let args: Vec<&str> = words[1..].iter().copied().filter(|w| *w != "-w").collect();
                let mut table = String::new();
                wait(
                    "kubectl get ta to show READY True and 2/2",
                    Duration::from_secs(180),
                    || {
                        table = rig.kubectl_ok(&args);
                        table.lines().any(|l| {
                            let f: Vec<&str> = l.split_whitespace().collect();
                            f.first() == Some(&APP)
                                && f.get(1) == Some(&"True")
                                && f.get(2) == Some(&"2/2")
                        })
                    },
                )
                .map_err(|e| format!("{e}; last table:\n{table}"))?;
                eprintln!("{table}");
            }
            "kubectl" => {
                rig.kubectl_ok(&words[1..]);
            }
            "curl" => {
                let (addr, path) = through_kind_mapping(words[1]);
                let mut last = Err(String::new());
                wait(
                    &format!("GET {addr}{path}"),
                    Duration::from_secs(60),
                    || {
                        last = get(&addr, &path);
                        matches!(last, Ok((200, _)))
                    },
                )
                .map_err(|e| format!("{e}: {last:?}"))?;
                chain_answer = last.ok();
            }
            "open" => {
                let (addr, _) = through_kind_mapping(words[1]);
                wait(
                    "Jaeger's UI port to answer",
                    Duration::from_secs(60),
                    || get(&addr, "/api/services").is_ok_and(|(code, _)| code == 200),
                )?;
            }
            other => {
                return Err(format!(
                    "the walk-through runs `{other}`, which the rig does not know"
                )
                .into());
            }
        }
    }

    // The operator: Running, Ready by its own probes, the chart's ServiceAccount, in-cluster.
    let operators = rig.pods(OPERATOR_NS, "app.kubernetes.io/name=tracedapp-operator");
    assert_eq!(operators.len(), 1, "{operators:?}");
    let pod = rig.json(&["get", "pod", "-n", OPERATOR_NS, &operators[0]]);
    assert_eq!(pod["status"]["phase"], "Running");
    assert!(
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "the operator pod is Ready"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "tracedapp-operator");
    assert!(pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz");

    // /chain: a trace through two hops (hello → its Service → hello), parentage right.
    let (_, body) = chain_answer.ok_or("the walk-through never called /chain")?;
    let answer: Value = serde_json::from_str(&body)?;
    assert!(
        answer.get("downstream").is_some(),
        "/chain nests the downstream's answer: {body}"
    );
    let jaeger = jaeger();
    let mut chain = None;
    wait(
        "the /chain trace in Jaeger",
        Duration::from_secs(60),
        || {
            chain = jaeger.traces(APP, 50).into_iter().find(|t| {
                spans(t).iter().any(|s| s["operationName"] == "GET /chain") && spans(t).len() >= 3
            });
            chain.is_some()
        },
    )?;
    let trace = chain.expect("found");
    let spans = spans(&trace);
    let find = |pred: &dyn Fn(&Value) -> bool| spans.iter().find(|s| pred(s)).cloned();
    let root = find(&|s| s["operationName"] == "GET /chain").expect("server span of /chain");
    assert!(parent(&root).is_none(), "GET /chain is the root");
    let client = find(&|s| tag(s, "span.kind") == Some(&Value::from("client")))
        .ok_or("a CLIENT span for the downstream call")?;
    assert_eq!(
        parent(&client),
        root["spanID"].as_str(),
        "the call is a child of /chain"
    );
    let downstream =
        find(&|s| s["operationName"] == "GET /").ok_or("the downstream's server span")?;
    assert_eq!(
        parent(&downstream),
        client["spanID"].as_str(),
        "the downstream's span is a child of the call"
    );
    Ok(())
}

/// The spans of a Jaeger trace.
fn spans(trace: &Value) -> Vec<Value> {
    trace["spans"].as_array().cloned().unwrap_or_default()
}

/// The parent span id of a Jaeger span (its CHILD_OF reference).
fn parent(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
}

/// The collector is a native sidecar: it starts (and logs) before the app, and the app's OTLP
/// export reaches it on localhost (the spans above arrived through it). Both containers run
/// with what the kernel says is a restricted context: not root, no new privileges, no
/// capabilities, seccomp filtering, a read-only root filesystem.
fn sidecar(rig: &Rig) -> Result<(), Failed> {
    let pods = rig.pods(DEMO, &format!("app.kubernetes.io/instance={APP}"));
    assert_eq!(pods.len(), 2, "{pods:?}");
    for pod in &pods {
        let first_line_time = |container: &str| {
            rig.kubectl_ok(&["logs", "-n", DEMO, pod, "-c", container, "--timestamps"])
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let (collector, app) = (first_line_time("otel-collector"), first_line_time("app"));
        assert!(
            !collector.is_empty() && !app.is_empty() && collector < app,
            "{pod}: the collector logs first ({collector}) before the app ({app})"
        );
        for container in ["otel-collector", "app"] {
            let pid = rig.container_pid(DEMO, pod, container);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let what = format!("{pod}/{container} (pid {pid})");
            assert!(
                !field("Uid:").starts_with("0\t") && !field("Uid:").starts_with("0 "),
                "{what}: not root: {}",
                field("Uid:")
            );
            assert_eq!(field("NoNewPrivs:"), "1", "{what}: no privilege escalation");
            assert_eq!(
                field("CapEff:"),
                "0000000000000000",
                "{what}: no capabilities"
            );
            assert_eq!(
                field("CapBnd:"),
                "0000000000000000",
                "{what}: none to gain either"
            );
            assert_eq!(
                field("Seccomp:"),
                "2",
                "{what}: seccomp filter (RuntimeDefault)"
            );
            let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
            let root = mountinfo
                .lines()
                .find(|l| l.split(' ').nth(4) == Some("/"))
                .ok_or("no root mount")?;
            let options = root.split(' ').nth(5).unwrap_or_default();
            assert!(
                options.split(',').any(|o| o == "ro"),
                "{what}: read-only root filesystem ({options})"
            );
        }
    }
    Ok(())
}
