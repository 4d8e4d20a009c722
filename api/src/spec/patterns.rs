//! The patterns of the spec's strings, and what each means in words (for error messages).
//!
//! Patterns use only syntax Go's RE2 (the API server) and Rust's `regex` (the CLI) read alike:
//! ASCII classes, `[[:space:]]` rather than `\s` (which is Unicode-aware in Rust).

/// An IAM role ARN (partition, 12-digit account, role name with its optional path).
pub(crate) const ROLE_ARN: &str =
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$";
/// An AWS region, e.g. `us-east-1`, `us-gov-west-1`.
pub(crate) const REGION: &str = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$";
/// Text without spaces or control characters around it (and not empty).
pub(crate) const TRIMMED: &str = r"^[^[:space:][:cntrl:]]([^[:cntrl:]]*[^[:space:][:cntrl:]])?$";
/// A single token: no whitespace or control characters at all (images, paths, URLs).
pub(crate) const TOKEN: &str = r"^[^[:space:][:cntrl:]]+$";
/// A key in a Secret's data.
pub(crate) const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";
/// An absolute path without spaces.
pub(crate) const ABS_PATH: &str = r"^/[^[:space:][:cntrl:]]*$";
/// An environment variable name.
pub(crate) const ENV_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// A container image reference, the OCI distribution grammar: an optional registry host (with
/// a port), lowercase path components, an optional tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`)
/// and an optional digest (`sha256:` and 64 hex digits, or `sha512:` and 128).
pub const IMAGE: &str = r"^(([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(\.([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$";
/// A CPU amount (a subset of Kubernetes quantities: no exponents).
pub(crate) const CPU: &str = r"^([0-9]{1,9}m|[0-9]{1,6}(\.[0-9]{1,3})?)$";
/// A memory amount.
pub(crate) const MEMORY: &str = r"^[0-9]{1,15}(\.[0-9]{1,6})?(Ki|Mi|Gi|Ti|k|M|G|T)?$";
/// A non-zero Go duration in ms, s or m.
pub(crate) const DURATION: &str = r"^[1-9][0-9]{0,5}(ms|s|m)$";
/// A CloudWatch metric namespace.
pub(crate) const CW_NAMESPACE: &str = r"^[A-Za-z0-9._/#:-]([A-Za-z0-9._/#: -]*[A-Za-z0-9._/#:-])?$";
/// A DNS subdomain (a Secret's name).
pub(crate) const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An ECS task-definition family.
pub(crate) const ECS_FAMILY: &str = r"^[A-Za-z0-9_-]{1,255}$";
/// An ECS cluster: its name, or its ARN.
pub(crate) const ECS_CLUSTER: &str = r"^([A-Za-z0-9_-]{1,255}|arn:aws(-[a-z]+)*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]{1,255})$";
/// A VPC subnet id.
pub(crate) const SUBNET_ID: &str = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$";
/// A VPC security group id.
pub(crate) const SECURITY_GROUP_ID: &str = r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$";
/// An Elastic Load Balancing target group ARN.
pub(crate) const TARGET_GROUP_ARN: &str = r"^arn:aws(-[a-z]+)*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$";
/// ECS task CPU units.
pub(crate) const ECS_CPU: &str = r"^[1-9][0-9]{0,5}$";
/// ECS task memory, MiB.
pub(crate) const ECS_MEMORY: &str = r"^[1-9][0-9]{0,6}$";
/// A Kubernetes label value (empty, or up to 63 letters, digits, '-', '_' and '.', starting and
/// ending with a letter or digit).
pub(crate) const LABEL_VALUE: &str = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";
/// An IPv4 CIDR (`10.0.0.0/8`) or an IPv6 one (`fd00::/8`).
pub(crate) const CIDR: &str = r"^(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])|[0-9a-fA-F:]*:[0-9a-fA-F:]*/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$";

/// What each pattern of the schema means, for error messages ("must be <meaning>").
pub const PATTERN_MEANINGS: &[(&str, &str)] = &[
    (
        NAME_PATTERN,
        "a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
    ),
    (
        ROLE_ARN,
        "an IAM role ARN like arn:aws:iam::123456789012:role/name",
    ),
    (REGION, "an AWS region like us-east-1"),
    (TRIMMED, "text without leading or trailing spaces"),
    (TOKEN, "one word, without spaces or control characters"),
    (HTTP_URL, "an http:// or https:// URL without spaces"),
    (
        LOG_GROUP,
        "a CloudWatch Logs group name (letters, digits and . _ - / #)",
    ),
    (
        HOST_PORT,
        "host:port (OTLP/gRPC, no scheme) with a port from 1 to 65535",
    ),
    (
        SECRET_KEY,
        "a Secret key (letters, digits, '-', '_' and '.')",
    ),
    (
        ABS_PATH,
        "an absolute path (starting with '/') without spaces",
    ),
    (
        ENV_NAME,
        "letters, digits and '_', not starting with a digit",
    ),
    (CPU, "a CPU amount like 250m, 1 or 0.5"),
    (MEMORY, "a memory amount like 256Mi, 1Gi or 1.5Gi"),
    (
        IMAGE,
        "an image reference like ghcr.io/acme/shop:1.4.2 (lowercase repository; a tag of \
         letters, digits, '_', '.', '-'; a digest like @sha256: and 64 hex digits)",
    ),
    (DURATION, "a duration above zero like 200ms, 10s or 1m"),
    (
        CW_NAMESPACE,
        "a CloudWatch namespace (letters, digits, spaces and . _ - / # :)",
    ),
    (
        DNS_SUBDOMAIN,
        "a Secret name (lowercase letters, digits, '-' and '.')",
    ),
    (ECS_FAMILY, "1 to 255 letters, digits, '-' or '_'"),
    (
        ECS_CLUSTER,
        "an ECS cluster name (letters, digits, '-', '_') or cluster ARN",
    ),
    (SUBNET_ID, "a subnet id like subnet-0123456789abcdef0"),
    (
        SECURITY_GROUP_ID,
        "a security group id like sg-0123456789abcdef0",
    ),
    (
        TARGET_GROUP_ARN,
        "a target group ARN like arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    ),
    (ECS_CPU, "CPU units like 256, 512 or 1024"),
    (ECS_MEMORY, "MiB like 512 or 2048"),
    (
        LABEL_VALUE,
        "a label value: up to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    ),
    (CIDR, "a CIDR block like 10.0.0.0/8, 0.0.0.0/0 or fd00::/8"),
];
/// An http(s) URL without whitespace.
pub(crate) const HTTP_URL: &str = r"^https?://[^[:space:][:cntrl:]]+$";
/// A CloudWatch Logs group name.
pub(crate) const LOG_GROUP: &str = r"^[.\-_/#A-Za-z0-9]{1,512}$";
/// `host:port` with a port from 1 to 65535; the host a DNS name, an IPv4 address or a
/// bracketed IPv6 address.
pub(crate) const HOST_PORT: &str = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$";

/// Whether `s` is an AWS region name (`spec.ecs.region`'s rule, for flags that stand for it).
pub fn is_aws_region(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(REGION).expect("a valid pattern"))
        .is_match(s)
}

/// The pattern of a TracedApp's name: a DNS label, since it also names the app's Service.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// The longest TracedApp name.
pub const NAME_MAX: u64 = 63;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, good: &[&str], bad: &[&str]) {
        let re = regex::Regex::new(pattern).unwrap();
        for g in good {
            assert!(re.is_match(g), "{pattern} should accept {g:?}");
        }
        for b in bad {
            assert!(!re.is_match(b), "{pattern} should refuse {b:?}");
        }
    }

    #[test]
    fn boundaries() {
        check(
            HOST_PORT,
            &["jaeger:4317", "10.0.0.1:1", "[::1]:65535", "a.b-c.d:80"],
            &[
                "jaeger",
                ":4317",
                "jaeger:0",
                "jaeger:65536",
                "http://jaeger:4317",
                "-a:1",
            ],
        );
        check(
            REGION,
            &["us-east-1", "eu-west-3", "us-gov-west-1", "cn-north-1"],
            &["US-EAST-1", "us-east", "us-east-1 ", "useast1"],
        );
        check(
            DURATION,
            &["1ms", "200ms", "10s", "1m"],
            &["0s", "1h", "10", "-1s"],
        );
        check(
            MEMORY,
            &["256Mi", "1Gi", "1000", "1.5Gi"],
            &["256MB", "1.5.2Gi", ".5Gi", ""],
        );
        check(
            CPU,
            &["250m", "1", "0.5", "2.125"],
            &[".5", "1.2345", "1m5"],
        );
        check(
            TRIMMED,
            &["a", "a b", "ü"],
            &["", " a", "a ", "a\nb", "a\tb"],
        );
        check(ENV_NAME, &["A", "_x1"], &["1A", "A-B", ""]);
        check(
            ROLE_ARN,
            &[
                "arn:aws:iam::123456789012:role/x",
                "arn:aws-cn:iam::123456789012:role/p/x",
            ],
            &[
                "arn:aws:iam::12345:role/x",
                "arn:aws:iam::123456789012:user/x",
            ],
        );
    }
}
