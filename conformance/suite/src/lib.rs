//! cni-conformance: checks any directory of CNI plugin binaries against the CNI
//! specification (SPEC.md of containernetworking/cni, spec 1.1.0 and the older
//! versions it replaced).
//!
//! Every check is data ([`Check`]): a stable ID, the one-line rule it tests,
//! what it needs (plugins, spec version, commands) and a function that runs it.
//! The runner ([`run`]) probes the plugins in the directory with VERSION,
//! decides which checks apply, runs them a few at a time, each inside its own
//! throwaway network namespaces ([`cni_harness::Sandbox`]) with its own
//! temporary directories, and reports pass / fail / n/a with the failure's
//! detail.
//!
//! A rule that starts with `SHOULD:` is a recommendation of the spec (or of
//! good practice the spec describes with "should"), not a requirement; it is
//! still run and reported honestly.

pub mod check;
pub mod checks;
pub mod cli;
pub mod ctx;
pub mod exec;
pub mod fixture;
pub mod kernel;
pub mod report;
pub mod result;
pub mod runner;
pub mod version;

pub use check::{Check, Cmd, Group, Needs, Outcome, Plugin, Problem, Res, Status, VersionReq};
pub use runner::{run, Options, Report};
