//! `bootstrap`: the traced Lambda function (`provided.al2023` runs this file). See the crate
//! documentation in `lib.rs`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracedapp_lambda::{FlushPolicy, Function, describe_function};
use tracedapp_telemetry::config::TelemetryConfig;
use tracedapp_telemetry::{Telemetry, TelemetryOptions};

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bootstrap: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let started = Instant::now();
    let vars: HashMap<String, String> = std::env::vars().collect();
    // A bad setting stops the function at init with one line naming it (Lambda reports an
    // init error), as the service does.
    let settings = TelemetryConfig::from_vars(&vars)
        .map_err(|e| e.to_string())
        .and_then(|c| FlushPolicy::from_vars(&vars).map(|p| (c, p)));
    let (mut config, policy) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            return ExitCode::from(2);
        }
    };
    describe_function(&mut config, &vars);
    let options = TelemetryOptions {
        // X-Ray's own id layout: the trace ids Lambda and X-Ray make are alike.
        xray_trace_ids: true,
        json_logs: true,
        traces_only: true,
    };
    let telemetry = match Telemetry::init(&config, options) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bootstrap: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1e3,
        endpoint = %config.traces.endpoint,
        "telemetry ready"
    );
    let function = Arc::new(Function::new(telemetry, policy));
    let handler = function.clone();
    let result = lambda_runtime::Runtime::new(lambda_runtime::service_fn(move |event| {
        let function = handler.clone();
        async move { function.invoke(event).await }
    }))
    .run()
    .await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "the Lambda runtime stopped");
    }
    if let Ok(function) = Arc::try_unwrap(function) {
        let _ =
            tokio::task::spawn_blocking(move || function.shutdown(Duration::from_secs(2))).await;
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
