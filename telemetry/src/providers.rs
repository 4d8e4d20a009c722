//! The OpenTelemetry pipeline from `OTEL_*` settings: propagators, the resource, the sampler,
//! and the tracer and meter providers exporting over OTLP. Spans pass through the bounded
//! export of [`super::export`] on their way to the exporter.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_otlp::{
    Compression, MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, RandomIdGenerator, Sampler, SdkTracerProvider,
};

use tonic::metadata::MetadataMap;

use super::export::{BoundedProcessor, Bounds, DropCounter, Lane, lane_share};
use super::otlp::OtlpSpanExporter;
use super::{TelemetryError, TelemetryOptions};
use crate::config::{PropagatorChoice, Protocol, SamplerChoice, TelemetryConfig};

/// Batch processors exporting side by side (see [`BoundedProcessor`]).
const EXPORT_LANES: usize = 2;

pub(super) fn propagator(choices: &[PropagatorChoice]) -> TextMapCompositePropagator {
    let list = choices
        .iter()
        .map(|c| -> Box<dyn TextMapPropagator + Send + Sync> {
            match c {
                PropagatorChoice::TraceContext => Box::new(TraceContextPropagator::new()),
                PropagatorChoice::Baggage => Box::new(BaggagePropagator::new()),
                PropagatorChoice::Xray => Box::new(XrayPropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

pub(super) fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_service_name(config.service_name.clone())
        .build()
}

fn sampler(choice: SamplerChoice) -> Sampler {
    let parent = |root: Sampler| Sampler::ParentBased(Box::new(root));
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBasedAlwaysOn => parent(Sampler::AlwaysOn),
        SamplerChoice::ParentBasedAlwaysOff => parent(Sampler::AlwaysOff),
        SamplerChoice::ParentBasedTraceIdRatio(r) => parent(Sampler::TraceIdRatioBased(r)),
    }
}

pub(super) fn tracer_provider(
    config: &TelemetryConfig,
    options: TelemetryOptions,
    resource: Resource,
    drops: Arc<DropCounter>,
) -> Result<SdkTracerProvider, TelemetryError> {
    // Each lane's SDK queue has room for everything our `BoundedProcessor` admits to it (its
    // share of `span_queue_size`) plus a batch, so the SDK never drops on its own. The SDK
    // allocates the whole queue up front: shares keep the total what one lane would take.
    let share = lane_share(config.span_queue_size, EXPORT_LANES);
    let in_flight: [Arc<AtomicUsize>; EXPORT_LANES] = std::array::from_fn(|_| Arc::default());
    let queued_bytes = Arc::<AtomicUsize>::default();
    let first = OtlpSpanExporter::new(
        &config.traces,
        drops.clone(),
        in_flight[0].clone(),
        queued_bytes.clone(),
    )
    .map_err(|source| TelemetryError::SpanExporter {
        endpoint: config.traces.endpoint.clone(),
        source,
    })?;
    // The other lanes take the first one's settings, built and checked once.
    let others: Vec<_> = in_flight[1..]
        .iter()
        .map(|n| first.another_lane(n.clone()))
        .collect();
    let lanes = std::iter::once(first)
        .chain(others)
        .zip(in_flight)
        .map(|(exporter, in_flight)| {
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(share + 512)
                .build();
            let processor = BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch)
                .build();
            Lane {
                processor,
                in_flight,
            }
        })
        .collect();
    let bounds = Bounds {
        capacity: config.span_queue_size,
        max_bytes: config.span_queue_bytes,
        queued_bytes,
        value_limit: config.attribute_value_limit,
    };
    let processor = BoundedProcessor::new(lanes, bounds, drops);

    let builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config.sampler))
        .with_resource(resource);
    let builder = if options.xray_trace_ids {
        builder.with_id_generator(XrayIdGenerator::default())
    } else {
        builder.with_id_generator(RandomIdGenerator::default())
    };
    Ok(builder.build())
}

pub(super) fn meter_provider(
    config: &TelemetryConfig,
    resource: Resource,
) -> Result<SdkMeterProvider, TelemetryError> {
    let export = &config.metrics;
    let endpoint = export.endpoint.clone();
    let compression = export.gzip.then_some(Compression::Gzip);
    let built = match export.protocol {
        Protocol::Grpc => {
            let headers = export.headers.to_header_map();
            let builder = MetricExporter::builder()
                .with_tonic()
                .with_endpoint(&endpoint)
                .with_timeout(export.timeout)
                .with_metadata(MetadataMap::from_headers(headers));
            match compression {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
        Protocol::HttpProtobuf => {
            let headers = export.headers.0.iter().map(|(k, v)| {
                let v = v.to_str().unwrap_or_default();
                (k.as_str().to_owned(), v.to_owned())
            });
            let builder = MetricExporter::builder()
                .with_http()
                .with_http_client(crate::http_client::blocking_http_client("metric export"))
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&endpoint)
                .with_timeout(export.timeout)
                .with_headers(headers.collect());
            match compression {
                Some(c) => builder.with_compression(c).build(),
                None => builder.build(),
            }
        }
    };
    let exporter = built.map_err(|source| TelemetryError::MetricExporter { endpoint, source })?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.metric_export_interval)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build())
}
