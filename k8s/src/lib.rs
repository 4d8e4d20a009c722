//! `tracedapp-k8s`: a TracedApp as Kubernetes objects — the Kubernetes twin of `tracedapp-ecs`,
//! pure builders with no client. The operator applies what they build; `tracedapp render k8s`
//! prints it.
//!
//! # Layout
//! - [`manifests`]: one pure builder per object and `build()` that lists them; start here.
//! - [`naming`]: every generated name (DNS-safe, truncated with a hash).
//! - [`labels`]: every label set and the config-hash annotation.

pub mod labels;
pub mod manifests;
pub mod naming;
