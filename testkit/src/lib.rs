//! Real programs behind a small harness, for integration tests and the demo.
//!
//! Each component picks free loopback ports, waits until it is ready, keeps its log in a file
//! (printed when a test panics), and is killed when dropped, so no process outlives its test.
//!
//! # Layout
//! - [`process`]: a child process with a log file, killed on drop; [`TempDir`].
//! - [`tools`]: where `cargo xtask setup` put each program.
//! - [`kube`]: etcd + kube-apiserver the way envtest runs them, and `kubectl` against it.
//! - [`lambda`]: a Lambda function under the Runtime Interface Emulator.
//! - [`moto`]: the moto AWS API emulator.
//! - [`jaeger`]: Jaeger v2 with in-memory storage, and its query API.
//! - [`collector`]: the OpenTelemetry Collector running a given configuration.
//! - [`image`]: OCI image archives built from our binaries (no registry, no daemon).
//! - [`node`]: a one-node Kubernetes with real pods (containerd, kubelet, kube-proxy, CoreDNS).
//! - [`http`]: a blocking HTTP GET.
//! - `otlp` (feature `otlp`): an in-process OTLP receiver that records or counts.
//! - `load` (feature `otlp`): OTLP span requests at a fixed rate, from the host or from inside
//!   a pod.
//! - [`prom`]: reading samples from Prometheus text.
//! - `ecs_script` (feature `otlp`): a scripted ECS endpoint for fault injection (deployments
//!   that complete, roll back, hang, are replaced; throttling).
//! - `xray_otlp` (feature `otlp`): a stand-in for X-Ray's OTLP endpoint that checks SigV4
//!   signatures as AWS does.

pub mod collector;
#[cfg(feature = "otlp")]
pub mod ecs_script;
pub mod http;
pub mod image;
pub mod jaeger;
pub mod kube;
pub mod lambda;
#[cfg(feature = "otlp")]
pub mod load;
pub mod moto;
pub mod node;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod process;
pub mod prom;
pub mod tools;
#[cfg(feature = "otlp")]
pub mod xray_otlp;

pub use process::{Process, TempDir, files_ending, free_port, repo_root, wait_until};
