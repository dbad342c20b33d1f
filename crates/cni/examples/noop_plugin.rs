//! The smallest plugin binary of this suite: what a plugin's `main.rs` looks
//! like. Built by `cargo test` (examples are) and run by
//! `tests/plugin_main.rs`, which checks that `plugin_main!` gave it a
//! dispatcher and its build marker.

use cni::{CniResult, Error, Plugin, Request};

/// Answers every command with success and changes nothing.
struct Noop;

impl Plugin for Noop {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        Ok(req.config.prev_result.clone().unwrap_or_default())
    }
    fn del(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
    fn check(&self, _req: &Request) -> Result<(), Error> {
        Ok(())
    }
}

cni::plugin_main!(Noop);
