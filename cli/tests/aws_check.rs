//! `tracedapp aws check` against a stand-in for X-Ray's API (`testkit::xray_otlp`, which checks
//! SigV4 signatures as AWS does and answers `GetTraceSegmentDestination` as the test sets it:
//! no emulator implements that call).

mod common;

use std::process::Output;

use common::{text, tracedapp_aws};

use testkit::repo_root;
use testkit::xray_otlp::{Key, Options, Verifier};

const REGION: &str = "eu-west-1";

fn key() -> Key {
    Key::new("AKIDCHECKTEST", "the-check-secret")
}

fn xray() -> Verifier {
    Verifier::start(Options {
        region: REGION.to_owned(),
        keys: vec![key()],
        moto_url: None,
    })
}

/// `tracedapp aws check -f manifests/examples/<example>` against `xray`, signing with `key`.
fn check(xray: &Verifier, example: &str, key: &Key) -> Output {
    tracedapp_aws(&["aws", "check", "-f"])
        .arg(repo_root().join("manifests/examples").join(example))
        .args(["--endpoint-url", &xray.endpoint()])
        .envs(key.env())
        .output()
        .unwrap()
}

/// Transaction Search on: the OTLP example passes, with one signed call.
#[test]
fn otlp_passes_when_transaction_search_is_on() {
    let xray = xray();
    let (code, out, err) = text(&check(&xray, "aws.yaml", &key()));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("checkout: ok") && out.contains("CloudWatch Logs"),
        "{out}"
    );
    let outcomes = xray.outcomes();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].status, 200);
    assert_eq!(outcomes[0].access_key_id.as_deref(), Some("AKIDCHECKTEST"));
}

/// Transaction Search off: the OTLP example is refused with exit code 4, the command that
/// turns it on, and the legacy protocol as the other way; the legacy example passes.
#[test]
fn otlp_is_refused_without_transaction_search_and_the_way_out_is_named() {
    let xray = xray();
    xray.set_destination("XRay", "ACTIVE");
    let (code, out, err) = text(&check(&xray, "aws.yaml", &key()));
    assert_eq!(code, Some(4), "{out}{err}");
    assert!(
        err.contains(
            "aws xray update-trace-segment-destination --destination CloudWatchLogs --region eu-west-1"
        ),
        "{err}"
    );
    assert!(err.contains("exporters.xray.protocol: xray"), "{err}");

    let (code, out, err) = text(&check(&xray, "aws-xray-legacy.yaml", &key()));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("legacy awsxray exporter"), "{out}");
}

/// Credentials X-Ray refuses: an API failure (exit code 3) that says what X-Ray said; a spec
/// without X-Ray calls nothing.
#[test]
fn refused_credentials_and_specs_without_xray() {
    let xray = xray();
    let wrong = Key::new("AKIDCHECKTEST", "not-the-secret");
    let (code, out, err) = text(&check(&xray, "aws.yaml", &wrong));
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(err.contains("GetTraceSegmentDestination"), "{err}");
    assert!(err.contains("signature"), "{err}");

    let (code, out, _) = text(&check(&xray, "kind.yaml", &key()));
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to check"), "{out}");
    assert_eq!(xray.outcomes().len(), 1, "only the refused call");
}
