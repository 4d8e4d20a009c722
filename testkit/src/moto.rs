//! The moto AWS API emulator (ECS, X-Ray, CloudWatch Logs, ...) on a free loopback port, and
//! reading back what was sent to its X-Ray and CloudWatch Logs.
//!
//! moto serves every service on one port and tells them apart by the credential scope of the
//! request's `Authorization` header; it does not check signatures, so the readers here send
//! plain JSON with an unsigned header naming the service.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::{Process, TempDir, free_port, listening, wait_until};
use crate::tools;

/// Credentials moto accepts (any will do); give them to what calls moto.
pub const CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// [`CREDENTIALS`] as environment variables for a process.
pub fn credentials() -> Vec<(String, String)> {
    CREDENTIALS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The text of the first `<tag>` of an XML answer.
fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find('<').map_or(xml.len(), |e| start + e);
    xml[start..end].to_owned()
}

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _process: Process,
    _dir: TempDir,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// With moto's own settings in its environment, e.g. `MOTO_ECS_SERVICE_RUNNING` (how many
    /// tasks a new ECS service starts with running).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("moto");
        let port = free_port();
        let mut cmd = Command::new(tools::moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd.envs(env.iter().copied());
        let process = Process::start("moto", cmd, dir.path().join("moto.log"));
        wait_until("moto to listen", Duration::from_secs(30), || {
            listening(port)
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
            _dir: dir,
        }
    }

    /// POSTs `body` to `path` of `service` (`xray`, `logs`) in `region` (moto keeps one
    /// backend per region), with `target` as `X-Amz-Target` for JSON-RPC services; the answer
    /// as JSON.
    pub fn call(
        &self,
        region: &str,
        service: &str,
        path: &str,
        target: Option<&str>,
        body: &Value,
    ) -> Value {
        let client = reqwest::blocking::Client::new();
        let mut request = client
            .post(format!("{}{path}", self.url))
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string());
        request = match target {
            Some(t) => request
                .header("Content-Type", "application/x-amz-json-1.1")
                .header("X-Amz-Target", t),
            None => request.header("Content-Type", "application/json"),
        };
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("moto {service} {path}: {e}"));
        let text = response.text().unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("moto {service} {path}: {text}"))
    }

    /// Calls EC2's Query API (`Action=...`) in `region` with `params`; the XML answer.
    pub fn ec2(&self, region: &str, action: &str, params: &[(&str, &str)]) -> String {
        self.query(region, "ec2", "2016-11-15", action, params)
    }

    /// Calls a Query-protocol API (`ec2`, `iam`) of version `version`; the XML answer.
    pub fn query(
        &self,
        region: &str,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> String {
        let mut form = vec![("Action", action), ("Version", version)];
        form.extend_from_slice(params);
        let encode = |text: &str| -> String {
            text.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let response = reqwest::blocking::Client::new()
            .post(&self.url)
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .unwrap_or_else(|e| panic!("moto {service} {action}: {e}"));
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "moto {service} {action}: {status}: {text}"
        );
        text
    }

    /// A VPC with one subnet and one security group in `region`: `(subnet id, group id)`.
    pub fn network(&self, region: &str) -> (String, String) {
        self.network_in(region, "10.20")
    }

    /// [`Moto::network`] with its own VPC of `prefix`.0.0/16 (e.g. `10.30`).
    pub fn network_in(&self, region: &str, prefix: &str) -> (String, String) {
        let vpc = xml_value(
            &self.ec2(
                region,
                "CreateVpc",
                &[("CidrBlock", &format!("{prefix}.0.0/16"))],
            ),
            "vpcId",
        );
        let subnet = xml_value(
            &self.ec2(
                region,
                "CreateSubnet",
                &[("VpcId", &vpc), ("CidrBlock", &format!("{prefix}.1.0/24"))],
            ),
            "subnetId",
        );
        let group = xml_value(
            &self.ec2(
                region,
                "CreateSecurityGroup",
                &[
                    ("VpcId", &vpc),
                    ("GroupName", &format!("tasks-{prefix}")),
                    ("GroupDescription", "the tasks"),
                ],
            ),
            "groupId",
        );
        (subnet, group)
    }

    /// The roles moto's STS let someone assume so far (`AssumeRole`, `AssumeRoleWithWebIdentity`):
    /// each with `role_arn`, `role_session_name` and the `access_key_id` it issued.
    pub fn assumed_roles(&self) -> Vec<Value> {
        let data: Value = reqwest::blocking::get(format!("{}/moto-api/data.json", self.url))
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("moto's state: {e}"));
        data["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Where its log is written.
    pub fn log_path(&self) -> std::path::PathBuf {
        self._process.log_path()
    }

    /// Every X-Ray trace moto holds in `region`, whole: `{Id, Segments: [{Id, Document}]}` with each
    /// segment document parsed (X-Ray returns them as JSON strings).
    pub fn xray_traces(&self, region: &str) -> Vec<Value> {
        let summaries = self.call(
            region,
            "xray",
            "/TraceSummaries",
            None,
            &json!({"StartTime": 0, "EndTime": 4_000_000_000u64}),
        );
        let ids: Vec<Value> = summaries["TraceSummaries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["Id"].clone())
            .collect();
        let mut traces = Vec::new();
        // BatchGetTraces takes at most 5 ids.
        for chunk in ids.chunks(5) {
            let got = self.call(region, "xray", "/Traces", None, &json!({"TraceIds": chunk}));
            for mut trace in got["Traces"].as_array().cloned().unwrap_or_default() {
                if let Some(segments) = trace["Segments"].as_array_mut() {
                    for s in segments {
                        let doc = s["Document"].as_str().unwrap_or("{}");
                        s["Document"] = serde_json::from_str(doc).unwrap_or(Value::Null);
                    }
                }
                traces.push(trace);
            }
        }
        traces
    }

    /// Every log event in CloudWatch Logs group `group`: `(stream, message)`.
    pub fn log_events(&self, region: &str, group: &str) -> Vec<(String, String)> {
        let streams = self.call(
            region,
            "logs",
            "/",
            Some("Logs_20140328.DescribeLogStreams"),
            &json!({"logGroupName": group}),
        );
        let mut out = Vec::new();
        for stream in streams["logStreams"].as_array().into_iter().flatten() {
            let name = stream["logStreamName"].as_str().unwrap_or_default();
            let events = self.call(
                region,
                "logs",
                "/",
                Some("Logs_20140328.GetLogEvents"),
                &json!({"logGroupName": group, "logStreamName": name, "startFromHead": true}),
            );
            for e in events["events"].as_array().into_iter().flatten() {
                out.push((
                    name.to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        out
    }
}

/// An X-Ray trace id (`1-5f84c7a1-0a1b2c3d4e5f60718293a4b5`) as the W3C / OTLP hex id.
pub fn w3c_trace_id(xray: &str) -> String {
    xray.split('-').skip(1).collect()
}
