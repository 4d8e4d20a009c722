//! A few read-only AWS calls (`ecs verify`'s IAM, EC2, CloudWatch Logs and ECR lookups) made
//! directly: the request signed with the AWS SDK's own SigV4 crate and the credentials of the
//! usual AWS chain (aws-config), sent with reqwest. This keeps four large SDK crates out of the
//! build for five read-only operations.
//!
//! Endpoints: `--endpoint-url` (an emulator serving every service), else the SDKs' variables
//! `AWS_ENDPOINT_URL_<SERVICE>` then `AWS_ENDPOINT_URL`, else AWS's own.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

/// An AWS service this module calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Iam,
    Ec2,
    Logs,
    Ecr,
}

impl Service {
    /// SigV4 name.
    fn signing_name(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Ec2 => "ec2",
            Service::Logs => "logs",
            Service::Ecr => "ecr",
        }
    }

    /// The suffix of `AWS_ENDPOINT_URL_<…>` (the SDKs' service ids).
    fn env_name(self) -> &'static str {
        match self {
            Service::Iam => "IAM",
            Service::Ec2 => "EC2",
            Service::Logs => "CLOUDWATCH_LOGS",
            Service::Ecr => "ECR",
        }
    }

    fn default_endpoint(self, region: &str) -> String {
        match self {
            Service::Iam => "https://iam.amazonaws.com".to_owned(),
            Service::Ec2 => format!("https://ec2.{region}.amazonaws.com"),
            Service::Logs => format!("https://logs.{region}.amazonaws.com"),
            Service::Ecr => format!("https://api.ecr.{region}.amazonaws.com"),
        }
    }
}

/// Signs and sends requests for one region.
pub struct Caller {
    config: SdkConfig,
    region: String,
    endpoint_url: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("region", &self.region)
            .finish()
    }
}

impl Caller {
    pub async fn new(region: &str, endpoint_url: Option<String>) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .load()
            .await;
        Self {
            config,
            region: region.to_owned(),
            endpoint_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn endpoint(&self, service: Service) -> String {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var(format!("AWS_ENDPOINT_URL_{}", service.env_name())).ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| service.default_endpoint(&self.region))
    }

    /// A Query-protocol call (IAM, EC2): `Action` with `params`; the XML answer, or AWS's error
    /// code and message.
    pub async fn query(
        &self,
        service: Service,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, String> {
        let mut form = vec![
            ("Action".to_owned(), action.to_owned()),
            ("Version".to_owned(), version.to_owned()),
        ];
        form.extend_from_slice(params);
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.send(
            service,
            "application/x-www-form-urlencoded; charset=utf-8",
            None,
            body.join("&").into_bytes(),
        )
        .await
    }

    /// A JSON-protocol call (CloudWatch Logs, ECR) to `target` (`X-Amz-Target`).
    pub async fn json(
        &self,
        service: Service,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let text = self
            .send(
                service,
                "application/x-amz-json-1.1",
                Some(target),
                body.to_string().into_bytes(),
            )
            .await?;
        serde_json::from_str(&text).map_err(|e| format!("{target}: not JSON: {e}"))
    }

    async fn send(
        &self,
        service: Service,
        content_type: &str,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, String> {
        let url = self.endpoint(service);
        let parsed: reqwest::Url = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(format!("{url}: no host")),
        };
        let credentials = self
            .config
            .credentials_provider()
            .ok_or("no AWS credentials (environment, profile, SSO or role)")?
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {e}"))?;
        let identity = credentials.into();
        // IAM is global: it signs for us-east-1.
        let region = if service == Service::Iam {
            "us-east-1"
        } else {
            &self.region
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service.signing_name())
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?;
        let mut headers = vec![("host", host.as_str()), ("content-type", content_type)];
        if let Some(t) = target {
            headers.push(("x-amz-target", t));
        }
        let path = parsed.path().to_owned();
        let signable = SignableRequest::new(
            "POST",
            path.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(
            signable,
            &aws_sigv4::http_request::SigningParams::V4(params),
        )
        .map_err(|e| e.to_string())?
        .into_parts();
        let mut request = self
            .http
            .post(parsed)
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = target {
            request = request.header("x-amz-target", t);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            Err(aws_error(&text).unwrap_or_else(|| format!("HTTP {status}: {text}")))
        }
    }
}

/// `Code: Message` from an AWS error answer (XML or JSON).
pub fn aws_error(text: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let code = v["__type"].as_str()?.rsplit('#').next()?.to_owned();
        let message = v["message"]
            .as_str()
            .or_else(|| v["Message"].as_str())
            .unwrap_or_default();
        return Some(format!("{code}: {message}"));
    }
    let code = xml_values(text, "Code").into_iter().next()?;
    let message = xml_values(text, "Message")
        .into_iter()
        .next()
        .unwrap_or_default();
    Some(format!("{code}: {message}"))
}

/// Every text of `<tag>…</tag>` in `xml`, in order (the answers read here are flat enough).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encodes for a query string or form (RFC 3986 unreserved characters kept).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes percent-encoding (IAM answers trust policies URL-encoded).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_and_errors_read_what_aws_answers() {
        let xml = "<R><subnetSet><item><subnetId>subnet-1</subnetId><vpcId>vpc-a</vpcId></item>\
                   <item><subnetId>subnet-2</subnetId><vpcId>vpc-b</vpcId></item></subnetSet></R>";
        assert_eq!(xml_values(xml, "subnetId"), ["subnet-1", "subnet-2"]);
        let err = "<Response><Errors><Error><Code>InvalidSubnetID.NotFound</Code>\
                   <Message>The subnet ID 'subnet-9' does not exist</Message></Error></Errors></Response>";
        assert_eq!(
            aws_error(err).unwrap(),
            "InvalidSubnetID.NotFound: The subnet ID 'subnet-9' does not exist"
        );
        assert_eq!(
            aws_error(
                r#"{"__type":"com.amazonaws#RepositoryNotFoundException","message":"no repo"}"#
            )
            .unwrap(),
            "RepositoryNotFoundException: no repo"
        );
    }

    #[test]
    fn percent_coding_round_trips() {
        let policy = r#"{"Statement":[{"Principal":{"Service":"ecs-tasks.amazonaws.com"}}]}"#;
        assert_eq!(decode(&encode(policy)), policy);
        assert_eq!(decode("a%2Fb%3D"), "a/b=");
    }
}
