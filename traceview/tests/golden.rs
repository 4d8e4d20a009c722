//! The drawing of real traces: each `testdata/traces/<name>.{jaeger,xray}.json` (recorded by
//! the end-to-end tests with `RECORD_TRACES=1`) drawn plain must equal `<name>.*.txt`.
//! `UPDATE_GOLDENS=1 cargo test -p traceview --test golden` rewrites the expected files.

use traceview::{Style, draw, jaeger, recorded_dir, xray};

#[test]
fn recorded_traces_draw_as_their_goldens() {
    let mut cases = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(recorded_dir()).expect("testdata/traces") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let trace: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (id, spans) = if stem.ends_with(".jaeger") {
            (
                trace["traceID"].as_str().unwrap().to_owned(),
                jaeger::spans(&trace),
            )
        } else {
            (
                trace["Id"].as_str().unwrap().to_owned(),
                xray::spans(&trace),
            )
        };
        let drawn = draw(&id, &spans, &Style::default()).join("\n") + "\n";
        let golden = path.with_file_name(format!("{stem}.txt"));
        cases += 1;
        if std::env::var_os("UPDATE_GOLDENS").is_some() {
            std::fs::write(&golden, &drawn).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != drawn {
            failures.push(format!(
                "{} differs (UPDATE_GOLDENS=1 to accept):\n{drawn}",
                golden.display()
            ));
        }
    }
    assert!(
        cases >= 2,
        "a Jaeger and an X-Ray trace are recorded ({cases} found)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
