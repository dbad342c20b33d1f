//! overlayd: one per node. Leases this node's subnet of the overlay network
//! in etcd under a lease it keeps alive, creates the VXLAN device, and keeps
//! a route, a neighbour and an FDB entry per other node, from the records
//! it watches.
//!
//! - [`cli`]: the command line
//! - [`store`]: etcd: the config, node records, this node's lease
//! - [`peers`]: the desired kernel state per other node (pure)
//! - [`kernel`], [`worker`]: the device and its entries, on a thread of their own
//! - [`metrics`]: Prometheus metrics and /healthz
//! - [`daemon`]: start-up and the loop

pub mod cli;
pub mod daemon;
pub mod kernel;
pub mod metrics;
pub mod peers;
pub mod store;
pub mod worker;

use std::process::ExitCode;

use clap::Parser;

/// `main`: parse, log to stderr, run until SIGTERM/SIGINT.
pub fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("overlayd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
