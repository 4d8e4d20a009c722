//! The TracedApp controller (`tracedapp-operator`).
//!
//! # Layout
//! - [`run`]: the process — one kube-runtime controller per watched namespace, the watch
//!   caches, leader election, `/healthz`, `/readyz`, `/metrics`, a graceful stop.
//! - [`reconcile`]: one pass over one TracedApp — validate → build (pure) → check ownership →
//!   apply what differs → prune → status; and the retry policy. Start here.
//! - [`apply`]: comparing with the watch cache, server-side apply, pruning old ConfigMaps.
//! - [`ownership`]: is an existing object of a child's name ours?
//! - [`owned`]: which pods are an app's own (the owner chain, not a label).
//! - [`diff`]: does the live object already say what we would apply?
//! - [`status`]: the status and the Events its transitions deserve (pure);
//!   [`conditions`]: each condition, written once.
//! - [`context`]: what every pass shares ([`Context`]) and how it fails ([`Error`]).
//! - [`pods`]: why the app's pods are not ready (pure).
//! - [`health`]: export health — reads each app's collectors and judges whether their
//!   exporters deliver (the `ExportHealthy` condition).
//! - [`leader`], [`metrics`]: the Lease; the operator's own metrics.
//!
//! A steady state sends no request at all: reads come from watch caches, and a pass applies
//! (and writes status) only what differs.

pub mod apply;
pub mod conditions;
pub mod context;
pub mod diff;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod owned;
pub mod ownership;
pub mod pods;
pub mod reconcile;
pub mod run;
pub mod status;

pub use context::{Context, Error};
pub use reconcile::{error_policy, reconcile};
pub use run::{Options, run, run_until, shutdown_signal};

#[cfg(test)]
mod tests;
