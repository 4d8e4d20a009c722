//! Export health on real pods: the `ExportHealthy` condition follows Jaeger going away and
//! coming back, names `awsxray` when X-Ray cannot be reached, and a healthy app's status is
//! not rewritten while it stays healthy.

use std::time::Duration;

use libtest_mimic::Failed;

use crate::cluster::{Rig, wait};
use crate::scenarios::{APP, DEMO, Load, events, service_addr};

/// Seconds between rounds, the window, and the stall time the scenario runs the operator with
/// (the chart's defaults are 30, 300 and 120: minutes for a test).
const INTERVAL: &str = "2";
const WINDOW: &str = "20";
const STALL: &str = "8";

pub fn export_health(rig: &Rig) -> Result<(), Failed> {
    rig.set_operator_values(
        &[
            &format!("exportHealth.intervalSeconds={INTERVAL}"),
            &format!("exportHealth.windowSeconds={WINDOW}"),
            &format!("exportHealth.stallSeconds={STALL}"),
        ],
        true,
    );
    let load = Load::start(service_addr(rig, DEMO, APP, 3000), "/", 20);
    let export = || rig.condition(DEMO, APP, "ExportHealthy");
    let message = || {
        rig.jsonpath(
            DEMO,
            &format!("ta/{APP}"),
            "{.status.conditions[?(@.type==\"ExportHealthy\")].message}",
        )
    };

    // Healthy: True, and then no status write while it stays so.
    wait("ExportHealthy=True", Duration::from_secs(120), || {
        export().0 == "True"
    })
    .map_err(|e| format!("{e}: {:?} {}", export(), message()))?;
    let exports = rig.jsonpath(DEMO, &format!("ta/{APP}"), "{.status.exports}");
    assert!(exports.contains("otlp_grpc/jaeger"), "{exports}");
    let table = rig.kubectl_ok(&["get", "ta", APP, "-n", DEMO]);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("EXPORT")),
        "{table}"
    );
    let before = rig.api_writes("tracedapps/status");
    std::thread::sleep(Duration::from_secs(15));
    let written = rig.api_writes("tracedapps/status") - before;
    assert_eq!(written, 0, "status writes in 15 s of healthy export");

    // Jaeger goes away: False, naming its exporter, with a warning Event.
    rig.kubectl_ok(&[
        "scale",
        "-n",
        "observability",
        "deploy/jaeger",
        "--replicas=0",
    ]);
    let failing = wait(
        "ExportHealthy=False naming otlp_grpc/jaeger",
        Duration::from_secs(90),
        || {
            export() == ("False".into(), "ExportFailing".into())
                && message().contains("otlp_grpc/jaeger")
        },
    );
    rig.kubectl_ok(&[
        "scale",
        "-n",
        "observability",
        "deploy/jaeger",
        "--replicas=1",
    ]);
    failing.map_err(|e| format!("{e}: {:?} {}", export(), message()))?;
    eprintln!("export: {}", message());
    wait("an ExportFailing event", Duration::from_secs(30), || {
        events(rig, APP)
            .iter()
            .any(|(reason, note)| reason == "ExportFailing" && note.contains("otlp_grpc/jaeger"))
    })?;

    // Jaeger is back: True again.
    rig.wait_jaeger_rolled_out();
    wait("ExportHealthy=True again", Duration::from_secs(150), || {
        export().0 == "True"
    })
    .map_err(|e| format!("{e}: {:?} {}", export(), message()))?;

    // X-Ray cannot be reached (nothing listens on that port of the pod's own loopback): False
    // naming awsxray.
    patch_app(
        rig,
        r#"{"spec":{"exporters":{"xray":{"region":"us-east-1","endpoint":"http://127.0.0.1:1"}}}}"#,
    );
    let xray_failing = wait(
        "ExportHealthy=False naming awsxray",
        Duration::from_secs(180),
        || export().0 == "False" && message().contains("awsxray"),
    )
    .map_err(|e| format!("{e}: {:?} {}", export(), message()));
    eprintln!("export: {}", message());
    let text = message();
    patch_app(rig, r#"{"spec":{"exporters":{"xray":null}}}"#);
    let (answered, _) = load.finish();
    xray_failing?;
    assert!(!text.contains("otlp_grpc/jaeger"), "Jaeger is fine: {text}");
    assert!(answered > 100, "the load ran ({answered} answered)");
    crate::scenarios::rolled_out(rig)
}

/// A merge patch to the scenario's TracedApp.
fn patch_app(rig: &Rig, patch: &str) {
    rig.kubectl_ok(&[
        "patch",
        "-n",
        DEMO,
        &format!("ta/{APP}"),
        "--type=merge",
        "-p",
        patch,
    ]);
}
