//! A stand-in for X-Ray's OTLP endpoint (`POST /v1/traces`), which no emulator implements: it
//! checks each request's SigV4 signature the way AWS does, then records the spans.
//!
//! The check ([`verify`]) recomputes the signature with the AWS SDK's own signing crate
//! (`aws-sigv4`) from what arrived — method, path, the headers the request says it signed, and
//! the hash of the body as received — with the secret of the access key the request names, at
//! the time the request says it was signed, and compares. Like AWS it refuses with 403: an
//! unsigned request, a malformed `Authorization`, a signature more than 15 minutes old (or
//! ahead), a credential scoped to another region or service, an unknown access key, temporary
//! credentials without their session token, and a signature that does not match (wrong secret,
//! or anything signed changed on the way). Accepted bodies are gunzipped if need be and decoded
//! as OTLP, into a [`Recorder`] for assertions.
//!
//! It also answers X-Ray's `GetTraceSegmentDestination` (signed just the same), with a
//! destination the test sets ([`Verifier::set_destination`]; `CloudWatchLogs`, `ACTIVE` — an
//! account with Transaction Search on — until then), for `tracedapp aws check`.
//!
//! Keys are known two ways: given to [`Verifier::start`] (static keys, or what a stand-in
//! credentials endpoint hands out), or, for temporary keys that moto's STS issued
//! (`AssumeRole`, `AssumeRoleWithWebIdentity`), looked up in moto's state as AWS looks up its
//! own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SigningParams,
    SigningSettings, sign,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::otlp::{Handler, Recorder, Span};

/// How far a request's signing time may be from the verifier's clock (AWS: 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// An access key and its secret (and session token, for temporary credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Key {
    /// A long-term key (no session token).
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
        }
    }

    /// The key as the AWS SDKs read it from the environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_owned(), token.clone()));
        }
        env
    }
}

/// Why a request was refused: AWS's error type and message, sent with status 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `x-amzn-ErrorType`, e.g. `InvalidSignatureException`.
    pub kind: &'static str,
    pub message: String,
}

fn refuse(kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        kind,
        message: message.into(),
    }
}

/// What a request must be signed for.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: String,
    /// The SigV4 service name (`xray`).
    pub service: String,
}

/// The pieces of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refusal> {
    let incomplete = |what: &str| {
        refuse(
            "IncompleteSignatureException",
            format!("Authorization header requires {what}. Authorization={value}"),
        )
    };
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("the AWS4-HMAC-SHA256 algorithm"))?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("'Credential' parameter"))?;
    let signed = signed.ok_or_else(|| incomplete("'SignedHeaders' parameter"))?;
    let signature = signature.ok_or_else(|| incomplete("'Signature' parameter"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(
            "a Credential of <key>/<date>/<region>/<service>/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// `20261205T101500Z` → a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Checks a request's SigV4 signature as AWS does, for `scope`, at `now`; `key` finds the
/// secret of an access key. The key that signed, or why the request is refused.
pub fn verify(
    method: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    scope: &Scope,
    now: SystemTime,
    key: impl FnOnce(&str) -> Option<Key>,
) -> Result<Key, Refusal> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(authorization) = text("authorization") else {
        return Err(refuse(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(authorization)?;
    let Some(amz_date) = text("x-amz-date") else {
        return Err(refuse(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        refuse(
            "IncompleteSignatureException",
            format!("X-Amz-Date must be in ISO 8601 basic format, got '{amz_date}'"),
        )
    })?;
    let skew = now
        .duration_since(signed_at)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is more than {} min from the server's time",
                MAX_SKEW.as_secs() / 60
            ),
        ));
    }
    if auth.date != &amz_date[..8] {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}'",
                auth.date,
                &amz_date[..8]
            ),
        ));
    }
    if auth.region != scope.region {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
        ));
    }
    if auth.service != scope.service {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: '{}'.",
                scope.service
            ),
        ));
    }
    let Some(key) = key(auth.access_key_id) else {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    if key.session_token.as_deref() != text("x-amz-security-token") {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.contains(&required) {
            return Err(refuse(
                "InvalidSignatureException",
                format!("'{required}' must be a signed header."),
            ));
        }
    }

    // The canonical request again, from what arrived: only the headers the request says it
    // signed (the crate adds x-amz-date, the session token and the payload hash itself).
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        if matches!(
            *name,
            "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
        ) {
            continue;
        }
        for value in headers.get_all(*name) {
            let value = value.to_str().map_err(|_| {
                refuse(
                    "InvalidSignatureException",
                    format!("header {name} is not text"),
                )
            })?;
            signed.push((name, value));
        }
    }
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    if auth.signed_headers.contains(&"x-amz-content-sha256") {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if !auth.signed_headers.contains(&"x-amz-security-token") {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    let identity = aws_credential_types::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        key.session_token.clone(),
        None,
        "xray-otlp-verifier",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name(&scope.service)
        .time(signed_at)
        .settings(settings)
        .build()
        .expect("every parameter is set");
    let internal = |e: &dyn std::fmt::Display| refuse("InternalFailure", e.to_string());
    let request = SignableRequest::new(
        method,
        path_and_query,
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| internal(&e))?;
    let params = SigningParams::V4(params);
    let expected = sign(request, &params).map_err(|e| internal(&e))?;
    let (instructions, signature) = expected.into_parts();
    // The header list the crate signed must be the request's, and so must the signature.
    let same_headers = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .is_some_and(|(_, value)| {
            value.contains(&format!("SignedHeaders={},", auth.signed_headers.join(";")))
        });
    if !same_headers || signature != auth.signature {
        return Err(refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(key)
}

/// What a [`Verifier`] accepts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The region requests must be signed for.
    pub region: String,
    /// Keys it knows.
    pub keys: Vec<Key>,
    /// A moto server whose STS issued temporary keys it should also know.
    pub moto_url: Option<String>,
}

/// One request the verifier answered.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The access key it named, if any.
    pub access_key_id: Option<String>,
    /// 200, or 403 (or 400 for a body that is not OTLP).
    pub status: u16,
    /// The refusal's error type (empty when accepted).
    pub error: String,
}

/// A running stand-in for X-Ray's OTLP endpoint on 127.0.0.1; stops when dropped.
pub struct Verifier {
    pub addr: SocketAddr,
    state: Arc<State>,
    recorder: Arc<Recorder>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    _server: Background,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("addr", &self.addr)
            .finish()
    }
}

/// An axum app served on a free port of 127.0.0.1 by a thread of its own (so that blocking
/// tests can use it); stops when dropped.
#[derive(Debug)]
pub struct Background {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn serve(app: axum::Router) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let addr = listener.local_addr().expect("a bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct State {
    /// What `GetTraceSegmentDestination` answers: (destination, status).
    destination: Mutex<(String, String)>,
    scope: Scope,
    keys: Vec<Key>,
    moto_url: Option<String>,
    recorder: Arc<Recorder>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    /// What the accepted trace requests held.
    received: Mutex<Received>,
}

/// What the trace requests a [`Verifier`] accepted held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub spans: u64,
    /// Bytes of the bodies as they came (gzip, if the sender compressed).
    pub wire_bytes: u64,
    /// Bytes of the same bodies decompressed: the OTLP protobuf.
    pub decoded_bytes: u64,
}

impl State {
    fn key(&self, id: &str) -> Option<Key> {
        if let Some(k) = self.keys.iter().find(|k| k.access_key_id == id) {
            return Some(k.clone());
        }
        let url = self.moto_url.as_ref()?;
        moto_sts_key(url, id)
    }
}

/// A temporary key moto's STS issued, from moto's own state (`/moto-api/data.json`).
fn moto_sts_key(moto_url: &str, id: &str) -> Option<Key> {
    let data: serde_json::Value = reqwest::blocking::get(format!("{moto_url}/moto-api/data.json"))
        .ok()?
        .json()
        .ok()?;
    let roles = data["sts"]["AssumedRole"].as_array()?;
    let role = roles.iter().find(|r| r["access_key_id"] == id)?;
    Some(Key {
        access_key_id: id.to_owned(),
        secret_access_key: role["secret_access_key"].as_str()?.to_owned(),
        session_token: role["session_token"].as_str().map(str::to_owned),
    })
}

impl Verifier {
    /// Starts on a free port of 127.0.0.1.
    pub fn start(options: Options) -> Self {
        let recorder = Arc::new(Recorder::default());
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            destination: Mutex::new(("CloudWatchLogs".to_owned(), "ACTIVE".to_owned())),
            scope: Scope {
                region: options.region,
                service: tracedapp_api::collector::XRAY_SIGNING_SERVICE.to_owned(),
            },
            keys: options.keys,
            moto_url: options.moto_url,
            recorder: recorder.clone(),
            outcomes: outcomes.clone(),
            received: Mutex::default(),
        });
        let app = axum::Router::new()
            .route(
                tracedapp_api::collector::XRAY_OTLP_PATH,
                axum::routing::post(handle),
            )
            .route(
                "/GetTraceSegmentDestination",
                axum::routing::post(segment_destination),
            )
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
            .with_state(state.clone());
        let server = Background::serve(app);
        Self {
            addr: server.addr,
            state,
            recorder,
            outcomes,
            _server: server,
        }
    }

    /// The base URL to give as `exporters.xray.endpoint` (spans go to `<it>/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span accepted so far.
    pub fn spans(&self) -> Vec<Span> {
        self.recorder.spans()
    }

    /// Forgets the spans, answers and counts so far (a benchmark sends millions).
    pub fn forget(&self) {
        self.recorder.clear();
        self.outcomes.lock().unwrap().clear();
        *self.state.received.lock().unwrap() = Received::default();
    }

    /// What the trace requests accepted so far held.
    pub fn received(&self) -> Received {
        *self.state.received.lock().unwrap()
    }

    /// Every request answered so far.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// What `GetTraceSegmentDestination` answers from now on: `XRay` or `CloudWatchLogs`,
    /// `ACTIVE` or `PENDING`.
    pub fn set_destination(&self, destination: &str, status: &str) {
        *self.state.destination.lock().unwrap() = (destination.to_owned(), status.to_owned());
    }
}

/// A stand-in for the credentials endpoint of the ECS agent (and of the EKS Pod Identity
/// agent): `GET` with the agent's authorization token answers a role's temporary key, as the
/// AWS SDKs read it through `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`. (The real ones answer on link-local addresses, which
/// tests here may not use; the SDKs accept a loopback URL too.)
pub struct CredentialsEndpoint {
    /// The key it hands out.
    pub key: Key,
    /// The token a caller must present.
    pub token: String,
    served: Arc<Mutex<usize>>,
    server: Background,
}

impl std::fmt::Debug for CredentialsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsEndpoint")
            .field("addr", &self.server.addr)
            .finish()
    }
}

impl CredentialsEndpoint {
    /// Serves `key` (which should carry a session token) to callers presenting `token`.
    pub fn start(key: Key, token: &str) -> Self {
        let served = Arc::new(Mutex::new(0));
        let (k, t, count) = (key.clone(), token.to_owned(), served.clone());
        let app = axum::Router::new().route(
            "/credentials",
            axum::routing::get(move |headers: http::HeaderMap| async move {
                let presented = headers.get("authorization").and_then(|v| v.to_str().ok());
                if presented != Some(t.as_str()) {
                    return Err(http::StatusCode::UNAUTHORIZED);
                }
                *count.lock().unwrap() += 1;
                Ok(axum::Json(serde_json::json!({
                    "AccessKeyId": k.access_key_id,
                    "SecretAccessKey": k.secret_access_key,
                    "Token": k.session_token,
                })))
            }),
        );
        Self {
            key,
            token: token.to_owned(),
            served,
            server: Background::serve(app),
        }
    }

    /// The environment that points an AWS SDK at this endpoint.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
                format!("http://{}/credentials", self.server.addr),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(),
                self.token.clone(),
            ),
        ]
    }

    /// How many times it handed the key out.
    pub fn served(&self) -> usize {
        *self.served.lock().unwrap()
    }
}

/// Checks a request's signature off the runtime (looking a key up in moto is a blocking HTTP
/// call), and notes refusals; the refusal as AWS sends it, if any.
async fn check_signed(
    state: &Arc<State>,
    parts: &http::request::Parts,
    body: &axum::body::Bytes,
) -> (Option<String>, Option<axum::response::Response>) {
    use axum::response::IntoResponse;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let access_key_id = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_authorization(v).ok())
        .map(|a| a.access_key_id.to_owned());
    let st = state.clone();
    let (method, headers, bytes) = (
        parts.method.to_string(),
        parts.headers.clone(),
        body.clone(),
    );
    let verdict = tokio::task::spawn_blocking(move || {
        verify(
            &method,
            &path,
            &headers,
            &bytes,
            &st.scope,
            SystemTime::now(),
            |id| st.key(id),
        )
    })
    .await
    .expect("the check does not panic");
    let Err(refusal) = verdict else {
        return (access_key_id, None);
    };
    state.note(access_key_id.clone(), 403, refusal.kind);
    let answer = (
        http::StatusCode::FORBIDDEN,
        [
            ("x-amzn-ErrorType", refusal.kind),
            ("content-type", "application/json"),
        ],
        serde_json::json!({"message": refusal.message}).to_string(),
    )
        .into_response();
    (access_key_id, Some(answer))
}

impl State {
    fn note(&self, access_key_id: Option<String>, status: u16, error: &str) {
        self.outcomes.lock().unwrap().push(Outcome {
            access_key_id,
            status,
            error: error.to_owned(),
        });
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return (http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let (access_key_id, refused) = check_signed(&state, &parts, &body).await;
    if let Some(answer) = refused {
        return answer;
    }
    let decoded = crate::otlp::unpack(&parts.headers, &body)
        .map_err(|(_, e)| e)
        .and_then(|b| {
            let request =
                ExportTraceServiceRequest::decode(b.as_slice()).map_err(|e| e.to_string())?;
            Ok((request, b.len()))
        });
    match decoded {
        Ok((request, decoded_len)) => {
            {
                let mut received = state.received.lock().unwrap();
                received.spans += request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum::<u64>();
                received.wire_bytes += body.len() as u64;
                received.decoded_bytes += decoded_len as u64;
            }
            state.recorder.traces(request);
            state.note(access_key_id, 200, "");
            (
                [("content-type", "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => {
            state.note(access_key_id, 400, "BadRequest");
            (http::StatusCode::BAD_REQUEST, e).into_response()
        }
    }
}

/// X-Ray's `GetTraceSegmentDestination` (REST-JSON), signed like everything else.
async fn segment_destination(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let (access_key_id, refused) = check_signed(&state, &parts, &body).await;
    if let Some(answer) = refused {
        return answer;
    }
    state.note(access_key_id, 200, "");
    let (destination, status) = state.destination.lock().unwrap().clone();
    axum::Json(serde_json::json!({"Destination": destination, "Status": status})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: &str = "eu-west-1";

    fn scope() -> Scope {
        Scope {
            region: REGION.into(),
            service: "xray".into(),
        }
    }

    fn alice() -> Key {
        Key::new("AKIDALICE", "alice-secret")
    }

    /// A request signed by the SDK's signer as an AWS client signs it: (headers, body).
    fn signed(key: &Key, region: &str, service: &str, at: SystemTime) -> http::HeaderMap {
        let body = b"spans";
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "xray.eu-west-1.amazonaws.com".parse().unwrap());
        headers.insert("content-type", "application/x-protobuf".parse().unwrap());
        headers.insert("content-encoding", "gzip".parse().unwrap());
        let identity = aws_credential_types::Credentials::new(
            &key.access_key_id,
            &key.secret_access_key,
            key.session_token.clone(),
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap();
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let request = SignableRequest::new(
            "POST",
            "/v1/traces",
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &SigningParams::V4(params))
            .unwrap()
            .into_parts();
        for (name, value) in instructions.headers() {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    fn check(headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Result<Key, Refusal> {
        verify("POST", "/v1/traces", headers, body, &scope(), now, |id| {
            [alice()].into_iter().find(|k| k.access_key_id == id)
        })
    }

    #[test]
    fn a_correctly_signed_request_passes_and_names_its_key() {
        let now = SystemTime::now();
        let h = signed(&alice(), REGION, "xray", now);
        assert_eq!(check(&h, b"spans", now), Ok(alice()));
    }

    #[test]
    fn each_way_of_signing_wrong_is_refused_like_aws() {
        let now = SystemTime::now();
        let kind = |h: &http::HeaderMap, body: &[u8]| check(h, body, now).unwrap_err().kind;
        let wrong_secret = signed(&Key::new("AKIDALICE", "guess"), REGION, "xray", now);
        assert_eq!(kind(&wrong_secret, b"spans"), "InvalidSignatureException");
        let wrong_service = signed(&alice(), REGION, "execute-api", now);
        assert_eq!(kind(&wrong_service, b"spans"), "InvalidSignatureException");
        let wrong_region = signed(&alice(), "us-east-1", "xray", now);
        assert_eq!(kind(&wrong_region, b"spans"), "InvalidSignatureException");
        let stale = signed(&alice(), REGION, "xray", now - Duration::from_secs(16 * 60));
        assert!(
            check(&stale, b"spans", now)
                .unwrap_err()
                .message
                .contains("Signature expired")
        );
        let unknown = signed(&Key::new("AKIDBOB", "bob"), REGION, "xray", now);
        assert_eq!(kind(&unknown, b"spans"), "UnrecognizedClientException");
        let good = signed(&alice(), REGION, "xray", now);
        assert_eq!(
            kind(&good, b"other spans"),
            "InvalidSignatureException",
            "the body is signed"
        );
        let mut retyped = good.clone();
        retyped.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(kind(&retyped, b"spans"), "InvalidSignatureException");
        let mut undated = good.clone();
        undated.remove("x-amz-date");
        assert_eq!(kind(&undated, b"spans"), "IncompleteSignatureException");
        assert_eq!(
            kind(&http::HeaderMap::new(), b"spans"),
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn temporary_credentials_need_their_session_token() {
        let now = SystemTime::now();
        let temp = Key {
            session_token: Some("token-1".into()),
            ..alice()
        };
        let h = signed(&temp, REGION, "xray", now);
        let with = |k: Key| {
            verify("POST", "/v1/traces", &h, b"spans", &scope(), now, |_| {
                Some(k)
            })
        };
        assert_eq!(with(temp.clone()), Ok(temp.clone()));
        let other_token = Key {
            session_token: Some("token-2".into()),
            ..alice()
        };
        assert_eq!(
            with(other_token).unwrap_err().kind,
            "UnrecognizedClientException"
        );
    }

    #[test]
    fn amz_dates_parse_to_the_right_second() {
        assert_eq!(
            parse_amz_date("19700101T000001Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        // 2026-12-05T10:15:00Z, by `date -d ... +%s`.
        assert_eq!(
            parse_amz_date("20261205T101500Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_465_700))
        );
        assert_eq!(parse_amz_date("2026-12-05T10:15:00Z"), None);
        assert_eq!(parse_amz_date("20261305T101500Z"), None);
    }
}
