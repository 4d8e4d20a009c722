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
//! - [`service`]: the ECS service (`spec.ecs.service`), pure, and its canonical form.
//! - [`watch`]: judging our deployment (by id) from `DescribeServices`, purely.
//! - [`deploy`]: aws-sdk-ecs at the edge for the service: describe, create, update, wait.

pub mod build;
pub mod check;
pub mod deploy;
pub mod ignored;
pub mod model;
pub mod register;
pub mod service;
pub mod watch;

pub use build::{region, task_definition};
pub use ignored::{ignored_fields, region_note};
