# TracedApp's collector distribution: the OpenTelemetry Collector with the components TracedApp
# renders and nothing else (tools/otelcol-builder.yaml), built by the collector builder. It is
# the binary every test here runs (`cargo xtask setup` builds it from the same manifest): about
# 45 MB, where contrib carries hundreds of components. From the repository root:
#
#   docker build -f tools/otelcol.Dockerfile -t registry.example.com/otelcol-tracedapp:0.161.0 .
#   docker push registry.example.com/otelcol-tracedapp:0.161.0
#
# then choose it per app (`spec.collector.image`, or `collector.image` in a TracedApp file for
# ECS). It runs like the contrib image: the binary as the entrypoint, the arguments from the
# operator (`--config=...`), as user 10001. BUILDER_VERSION must stay the version
# testkit::tools::COLLECTOR_BUILDER_VERSION pins (a unit test compares them).
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
ARG BUILDER_VERSION=0.161.0
RUN go install go.opentelemetry.io/collector/cmd/builder@v${BUILDER_VERSION}
WORKDIR /build
COPY tools/otelcol-builder.yaml .
RUN CGO_ENABLED=0 builder --config=otelcol-builder.yaml --output-path=/build/out

# Static binary: no libc needed; distroless/static carries the CA certificates the exporters'
# TLS needs.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /build/out/otelcol-tracedapp /otelcol-tracedapp
USER 10001:10001
ENTRYPOINT ["/otelcol-tracedapp"]
