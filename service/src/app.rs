//! Routes: `/`, `/health`, `/metrics-test`, `/chain`, and a JSON 404 for everything else.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::downstream::{Downstream, DownstreamError};
use crate::observe::{HttpMetrics, observe};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service `/chain` calls, if configured.
    pub downstream: Option<Downstream>,
    /// Instruments recorded by the observing middleware.
    pub metrics: HttpMetrics,
    /// Whether requests are observed at all: with `OTEL_SDK_DISABLED=true` the middleware is
    /// left out, so a disabled SDK costs nothing per request.
    pub observed: bool,
    /// One log line per request ([`access_log`]); `--access-log false` turns it off.
    pub access_log: bool,
}

impl AppState {
    /// State with instruments from the global meter provider.
    pub fn new(downstream: Option<Downstream>) -> Self {
        Self {
            downstream,
            metrics: HttpMetrics::new(&opentelemetry::global::meter("traced-service")),
            observed: true,
            access_log: true,
        }
    }
}

/// The whole HTTP surface; every request, the 404s included, passes through [`observe`]
/// (unless telemetry is disabled).
pub fn app(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let observed = state.observed;
    let access = state.access_log;
    let router = Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/metrics-test", get(metrics_test))
        .route("/chain", get(chain))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    // Inside the observing layer: the log line is written in the request's trace context, so
    // it carries the trace id.
    let router = if access {
        router.layer(axum::middleware::from_fn(access_log))
    } else {
        router
    };
    if observed {
        router.layer(axum::middleware::from_fn_with_state(metrics, observe))
    } else {
        router
    }
}

async fn root() -> Json<Value> {
    Json(json!({ "message": "Hello from traced-service", "service": "traced-service" }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The slow endpoint of the seed (the Flask guide this service rebuilds, see the README): waits 100 ms without holding a worker thread.
async fn metrics_test() -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    Json(json!({ "message": "metrics test complete", "delay_ms": 100 }))
}

async fn chain(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let downstream = state.downstream.as_ref().ok_or(AppError::NoDownstream)?;
    let reply = downstream.call().await?;
    Ok(Json(json!({
        "message": "chained call complete",
        "downstream": { "url": downstream.url(), "status": reply.status, "body": reply.body },
    })))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not found", "path": uri.path() })),
    )
        .into_response()
}

/// A route that exists, asked with a method it does not take: JSON, like every other answer.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({
            "error": "method not allowed",
            "method": crate::observe::known_method(&method),
            "path": uri.path(),
        })),
    )
        .into_response()
}

/// One line per request at info: method, route (`(unmatched)` for a path no route takes: a
/// client's path is not written to the log), status, duration, and the trace id.
pub async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use opentelemetry::trace::TraceContextExt;
    let started = std::time::Instant::now();
    let method = crate::observe::known_method(req.method());
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    let cx = opentelemetry::Context::current();
    let sc = cx.span().span_context().clone();
    let status = response.status().as_u16();
    let route = route.as_deref().unwrap_or("(unmatched)");
    let duration_ms = started.elapsed().as_micros() as f64 / 1e3;
    if sc.is_valid() {
        tracing::info!(method, route, status, duration_ms, trace_id = %sc.trace_id(), "request");
    } else {
        tracing::info!(method, route, status, duration_ms, "request");
    }
    response
}

/// Handler failures, each with its status and a message safe to show a client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "no downstream is configured: start the service with --downstream-url or DOWNSTREAM_URL"
    )]
    NoDownstream,
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NoDownstream => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Downstream(_) => StatusCode::BAD_GATEWAY,
        };
        // Only `GET /chain` fails this way (the access log line names it too).
        tracing::warn!(
            method = "GET",
            path = "/chain",
            status = status.as_u16(),
            error = %self,
            "request failed"
        );
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_json(app: Router, path: &str) -> (StatusCode, Value) {
        let res = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn test_app() -> Router {
        app(AppState::new(None))
    }

    #[tokio::test]
    async fn root_greets_in_json() {
        let (status, body) = get_json(test_app(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["message"], "Hello from traced-service");
    }

    #[tokio::test]
    async fn health_reports_ok() {
        let (status, body) = get_json(test_app(), "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }

    #[tokio::test(start_paused = true)]
    async fn metrics_test_waits_100ms_without_blocking() {
        let started = tokio::time::Instant::now();
        let (status, body) = get_json(test_app(), "/metrics-test").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["delay_ms"], 100);
        // With the clock paused, only a tokio sleep (not a blocking one) advances it by 100 ms.
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let (status, body) = get_json(test_app(), "/nope/123").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"error": "not found", "path": "/nope/123"}));
    }

    #[tokio::test]
    async fn chain_without_downstream_is_503_with_a_hint() {
        let (status, body) = get_json(test_app(), "/chain").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["error"].as_str().unwrap().contains("DOWNSTREAM_URL"));
    }

    #[tokio::test]
    async fn chain_to_an_unreachable_downstream_is_502_not_a_panic() {
        // Port 9 on loopback: nothing listens there, the connection is refused at once.
        let downstream = Downstream::new(
            "http://127.0.0.1:9/".parse().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap();
        let (status, body) = get_json(app(AppState::new(Some(downstream))), "/chain").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(
            body["error"].as_str().unwrap().contains("127.0.0.1:9"),
            "{body}"
        );
    }
}
