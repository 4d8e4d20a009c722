//! `tracedapp aws check`: can the AWS account take what a TracedApp sends to X-Ray?
//!
//! X-Ray's OTLP endpoint (the default, `exporters.xray.protocol: otlp`) takes spans only when
//! the account's trace segment destination is CloudWatch Logs, which is what turning on
//! CloudWatch Transaction Search sets; X-Ray's `GetTraceSegmentDestination` says which it is.
//! The legacy `awsxray` exporter (`protocol: xray`) works with either.

use aws_sdk_xray::Client;
use tracedapp_api::spec::{TracedAppSpec, XrayProtocol};

/// The account's answer: where X-Ray stores segments, and whether that is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `CloudWatchLogs` (Transaction Search on) or `XRay`.
    pub destination: String,
    /// `ACTIVE`, or `PENDING` while a change takes effect.
    pub status: String,
}

/// What the check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing stands in the way; what to tell the user.
    Ready(String),
    /// The spec's X-Ray export cannot work in this account; why, and the ways out.
    Blocked(String),
}

/// The region and protocol of the spec's X-Ray export, if it has one that is enabled.
pub fn xray_target(spec: &TracedAppSpec) -> Option<(String, XrayProtocol)> {
    let x = spec.exporters.xray.as_ref().filter(|x| x.enabled)?;
    // A valid spec has a region whenever X-Ray export is enabled.
    Some((x.region.clone()?, x.protocol))
}

/// Judges `destination` for a spec exporting to X-Ray in `region` over `protocol`.
pub fn judge(region: &str, protocol: XrayProtocol, destination: &Destination) -> Verdict {
    let Destination {
        destination: to,
        status,
    } = destination;
    let search_on = to == "CloudWatchLogs";
    match (protocol, search_on) {
        (XrayProtocol::Otlp, true) if status == "ACTIVE" => Verdict::Ready(format!(
            "X-Ray in {region} stores spans in CloudWatch Logs (Transaction Search is on): \
             spans sent over OTLP will be accepted"
        )),
        (XrayProtocol::Otlp, true) => Verdict::Ready(format!(
            "X-Ray in {region} is switching to CloudWatch Logs (Transaction Search, status \
             {status}): spans sent over OTLP are accepted once the status is ACTIVE (usually \
             within minutes); run this check again to see it"
        )),
        (XrayProtocol::Otlp, false) => Verdict::Blocked(format!(
            "exporters.xray.protocol is otlp, but X-Ray in {region} stores segments in {to} \
             (Transaction Search is off), so its OTLP endpoint will refuse the spans.\n\
             Either turn Transaction Search on (it needs the X-Ray and CloudWatch Logs \
             permissions listed in the README):\n  \
             aws xray update-trace-segment-destination --destination CloudWatchLogs --region {region}\n\
             or keep the legacy path: set exporters.xray.protocol: xray"
        )),
        (XrayProtocol::Xray, true) => Verdict::Ready(format!(
            "X-Ray in {region} stores spans in CloudWatch Logs (Transaction Search is on): the \
             legacy awsxray exporter still works; protocol: otlp is the recommended path"
        )),
        (XrayProtocol::Xray, false) => Verdict::Ready(format!(
            "X-Ray in {region} stores segments in {to}: the legacy awsxray exporter \
             (protocol: xray) works; turning Transaction Search on would allow protocol: otlp"
        )),
    }
}

/// Asks X-Ray in `region` (at `endpoint_url` if given) where it stores segments, with the
/// credentials of the usual AWS chain.
pub async fn destination(region: &str, endpoint_url: Option<&str>) -> Result<Destination, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let client = Client::new(&loader.load().await);
    let answer = client
        .get_trace_segment_destination()
        .send()
        .await
        .map_err(|e| {
            format!(
                "X-Ray GetTraceSegmentDestination in {region} failed: {}",
                aws_sdk_xray::error::DisplayErrorContext(e)
            )
        })?;
    Ok(Destination {
        destination: answer
            .destination()
            .map_or_else(|| "XRay".to_owned(), |d| d.as_str().to_owned()),
        status: answer
            .status()
            .map_or_else(|| "ACTIVE".to_owned(), |s| s.as_str().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(to: &str, status: &str) -> Destination {
        Destination {
            destination: to.into(),
            status: status.into(),
        }
    }

    #[test]
    fn otlp_needs_transaction_search() {
        let v = judge("eu-west-1", XrayProtocol::Otlp, &dest("XRay", "ACTIVE"));
        let Verdict::Blocked(text) = v else {
            panic!("{v:?}")
        };
        assert!(
            text.contains(
                "update-trace-segment-destination --destination CloudWatchLogs --region eu-west-1"
            ),
            "{text}"
        );
        assert!(text.contains("protocol: xray"), "{text}");
        assert!(matches!(
            judge(
                "eu-west-1",
                XrayProtocol::Otlp,
                &dest("CloudWatchLogs", "ACTIVE")
            ),
            Verdict::Ready(_)
        ));
        let Verdict::Ready(pending) = judge(
            "eu-west-1",
            XrayProtocol::Otlp,
            &dest("CloudWatchLogs", "PENDING"),
        ) else {
            panic!("pending is on its way")
        };
        assert!(pending.contains("PENDING"), "{pending}");
    }

    #[test]
    fn the_legacy_path_works_either_way() {
        for to in ["XRay", "CloudWatchLogs"] {
            assert!(matches!(
                judge("us-east-1", XrayProtocol::Xray, &dest(to, "ACTIVE")),
                Verdict::Ready(_)
            ));
        }
    }
}
