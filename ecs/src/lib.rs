//! `tracedapp-ecs`: a TracedApp as an AWS ECS task definition (app + collector containers), and
//! its idempotent registration.
//!
//! # Layout
//! - [`model`]: our serde model of `RegisterTaskDefinition` input (golden-testable JSON).
//! - [`build`]: the pure builder from a TracedApp; start here.
//! - [`check`]: what ECS would reject but emulators accept (names, family, Fargate sizes,
//!   the execution role awslogs needs).
//! - [`ignored`]: the spec's Kubernetes-only fields, said rather than dropped.
//! - [`register`]: aws-sdk-ecs at the edge: describe, compare, register only on change.

pub mod build;
pub mod check;
pub mod ignored;
pub mod model;
pub mod register;

pub use build::{region, task_definition};
pub use ignored::ignored_fields;
