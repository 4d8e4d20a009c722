//! Container resources: the defaults each container gets where the spec says nothing, and the
//! CRD rule that keeps what a container requests within its limits, defaults included — the
//! check Kubernetes makes when the Deployment is applied, made before anything is applied.
//!
//! A spec's `requests` (or `limits`) replaces the defaults' `requests` (`limits`) whole, as the
//! builders do: `requests: {cpu: 2}` with no `limits` meets the default memory limit only.

use kube::core::Rule;

/// A default requests/limits pair for one container, in Kubernetes quantity syntax. The
/// collector's memory limit follows its `memoryLimitMiB` instead (see [`collector_memory_limit_mib`]).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub request_cpu: Option<&'static str>,
    pub request_memory: Option<&'static str>,
    pub limit_cpu: Option<&'static str>,
    pub limit_memory: Option<&'static str>,
}

/// The app container.
pub const APP: Defaults = Defaults {
    request_cpu: Some("100m"),
    request_memory: Some("64Mi"),
    limit_cpu: None,
    limit_memory: Some("256Mi"),
};

/// The collector container (its memory limit: [`collector_memory_limit_mib`]).
pub const COLLECTOR: Defaults = Defaults {
    request_cpu: Some("50m"),
    request_memory: Some("64Mi"),
    limit_cpu: None,
    limit_memory: None,
};

/// The collector's default memory limit: room above the `memory_limiter`'s limit so that the
/// limiter, not the kernel, sheds load. The same room is the least any memory the collector
/// runs in must leave (a container limit written in the spec, an ECS task's memory):
/// [`limits_that_defeat_each_other`].
pub fn collector_memory_limit_mib(memory_limit_mib: u32) -> u32 {
    memory_limit_mib + memory_limit_mib / 4
}

/// The CEL rules, on the collector spec, against settings that defeat each other:
/// - a container memory limit that leaves the `memory_limiter` no room: the kernel kills the
///   sidecar before the limiter refuses anything;
/// - a batch too large for the limiter's working room (its limit less the spike headroom, at
///   [`QUEUED_SPAN_BYTES`] a span): the limiter refuses data before a batch can fill, and
///   nothing flows.
pub fn collector_rules() -> [Rule; 2] {
    [
        Rule::new(format!(
            "!has(self.resources) || !has(self.resources.limits) || \
             !has(self.resources.limits.memory) || \
             quantity(string(self.resources.limits.memory)).asApproximateFloat() >= \
             {COLLECTOR_MEMORY_LIMIT_BYTES_CEL}"
        ))
        .message(
            "resources.limits.memory must be at least memoryLimitMiB plus a quarter: below that \
             the kernel kills the collector before its memory_limiter refuses data (lower \
             memoryLimitMiB, or raise the limit)",
        )
        .field_path(".resources.limits.memory"),
        Rule::new(format!(
            "(self.batch.sendBatchMaxSize == 0 ? self.batch.sendBatchSize : \
             self.batch.sendBatchMaxSize) * {QUEUED_SPAN_BYTES} <= \
             (self.memoryLimitMiB - self.spikeLimitMiB) * 1048576"
        ))
        .message(kube::core::Message::Message(format!(
            "batch is too large for the memory_limiter: at {QUEUED_SPAN_BYTES} bytes a span, \
             the largest batch must fit in memoryLimitMiB - spikeLimitMiB, or the limiter \
             refuses data before a batch fills (lower batch.sendBatchSize/sendBatchMaxSize, or \
             raise memoryLimitMiB)"
        )))
        .field_path(".batch"),
    ]
}

/// The CEL rule, on the spec, that an ECS task's memory leaves the collector's
/// `memory_limiter` the same room as a pod's container limit does (the task's memory is the
/// hard limit both containers share).
pub fn ecs_memory_rule() -> Rule {
    Rule::new(
        "!has(self.ecs) || int(self.ecs.memory) >= \
         self.collector.memoryLimitMiB + self.collector.memoryLimitMiB / 4",
    )
    .message(
        "ecs.memory must be at least collector.memoryLimitMiB plus a quarter: the task's memory \
         is the hard limit of both containers, and the collector's memory_limiter must act \
         below it (lower collector.memoryLimitMiB, or give the task more memory)",
    )
    .field_path(".ecs.memory")
}

/// The collector's `GOMEMLIMIT` in MiB: the Go runtime's soft limit, below the
/// `memory_limiter`'s limit (0.8 of it), so that the garbage collector works harder before
/// the limiter has to refuse.
pub fn collector_gomemlimit_mib(memory_limit_mib: u32) -> u32 {
    memory_limit_mib * 4 / 5
}

/// The collector's `GOMEMLIMIT` environment value, e.g. `204MiB`.
pub fn collector_gomemlimit(memory_limit_mib: u32) -> String {
    format!("{}MiB", collector_gomemlimit_mib(memory_limit_mib))
}

/// Memory a queued span takes in the collector, as this module budgets it (OTLP spans shaped
/// like traced-service's, with their attributes, in the collector's in-memory form).
const QUEUED_SPAN_BYTES: u64 = 1024;

/// The OTLP exporter's sending queue, in batches: about a third of the `memory_limiter`'s
/// limit at [`QUEUED_SPAN_BYTES`] a span, with batches of `batch_spans` (at least one batch).
///
/// The collector's own default (1,000 batches, up to 512,000 spans) can hold more than the
/// container's memory: with the destination down and a burst arriving faster than the limiter
/// checks (every second), a pod at the default limits was OOM-killed (BENCHMARKS.md). A queue
/// this size fills first, and the exporter then refuses, which the sender counts.
pub fn exporter_queue_batches(memory_limit_mib: u32, batch_spans: u32) -> u32 {
    let budget = u64::from(memory_limit_mib) * 1024 * 1024 / 3;
    let batch = u64::from(batch_spans.max(1)) * QUEUED_SPAN_BYTES;
    u32::try_from(budget / batch).unwrap_or(u32::MAX).max(1)
}

/// The same in bytes, as a CEL expression over the collector spec (`self`). Numbers rather
/// than a built quantity string: the API server's cost estimate of a string built at run time
/// is unbounded, and it refused the rule.
const COLLECTOR_MEMORY_LIMIT_BYTES_CEL: &str =
    "double(self.memoryLimitMiB + self.memoryLimitMiB / 4) * 1048576.0";

/// The CEL rule, on the object holding `resources`, that requests do not exceed limits.
/// `collector`: the default memory limit is the collector's computed one.
pub fn cel_rule(defaults: Defaults, collector: bool) -> Rule {
    let r = "self.resources";
    // For one resource: no check unless both a request and a limit apply; the spec's value
    // where it gives the map, else the default.
    let key = |k: &str,
               request: Option<&str>,
               limit: Option<&str>,
               computed_limit: Option<&str>| {
        let present = |side: &str, default: bool| {
            format!("(has({r}.{side}) ? has({r}.{side}.{k}) : {default})")
        };
        let req = format!(
            "quantity(has({r}.requests) ? string({r}.requests.{k}) : '{}')",
            request.unwrap_or("0")
        );
        let default_limit_check = match (limit, computed_limit) {
            (Some(l), _) => format!("{req}.compareTo(quantity('{l}')) <= 0"),
            (None, Some(bytes)) => format!("{req}.asApproximateFloat() <= {bytes}"),
            (None, None) => "true".to_owned(),
        };
        format!(
            "!({} && {}) || (has({r}.limits) ? {req}.compareTo(quantity(string({r}.limits.{k}))) <= 0 : {default_limit_check})",
            present("requests", request.is_some()),
            present("limits", limit.is_some() || computed_limit.is_some()),
        )
    };
    let computed = collector.then_some(COLLECTOR_MEMORY_LIMIT_BYTES_CEL);
    let expression = format!(
        "!has({r}) || (({}) && ({}))",
        key("cpu", defaults.request_cpu, defaults.limit_cpu, None),
        key(
            "memory",
            defaults.request_memory,
            defaults.limit_memory,
            computed
        ),
    );
    Rule::new(expression)
        .message(
            "resources: a request is above its limit (defaults included: a memory request above \
             the default limit needs a limit too); Kubernetes would refuse the Deployment",
        )
        .field_path(".resources")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_limit_leaves_a_quarter_above_the_limiter() {
        assert_eq!(collector_memory_limit_mib(400), 500);
        assert_eq!(collector_memory_limit_mib(100), 125);
    }

    #[test]
    fn the_exporter_queue_holds_about_a_third_of_the_limiter() {
        // Defaults: 256 MiB, batches of 512 → 170 batches, 87,040 spans, 85 MiB at 1 KiB.
        assert_eq!(exporter_queue_batches(256, 512), 170);
        let held = u64::from(exporter_queue_batches(1024, 8192)) * 8192 * QUEUED_SPAN_BYTES;
        assert!(held <= 1024 * 1024 * 1024 / 3, "{held}");
        // A limiter too small for one batch still gets a queue of one.
        assert_eq!(exporter_queue_batches(1, 100_000), 1);
    }

    #[test]
    fn the_rule_checks_both_resources_against_defaults() {
        let rule = serde_json::to_value(cel_rule(APP, false)).unwrap();
        let cel = rule["rule"].as_str().unwrap();
        for part in ["cpu", "memory", "256Mi"] {
            assert!(cel.contains(part), "{part} missing: {cel}");
        }
        let rule = serde_json::to_value(cel_rule(COLLECTOR, true)).unwrap();
        assert!(
            rule["rule"]
                .as_str()
                .unwrap()
                .contains(COLLECTOR_MEMORY_LIMIT_BYTES_CEL)
        );
    }
}
