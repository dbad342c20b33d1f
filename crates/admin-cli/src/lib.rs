//! What the workspace's admin CLIs (`ipamctl`, `overlayctl`) share, so that
//! they take the same global options and behave alike:
//!
//! - [`EtcdArgs`]: the global etcd options (flattened into each CLI's
//!   command line) and their checks, [`EtcdArgs::check`]. The key prefix is
//!   each CLI's own option: its default and what it names differ.
//! - [`Table`]: human output, columns aligned under their headings.
//! - [`main`] with [`AdminCli`] and [`Report`]: parse, check, run one
//!   command, print its report as a table or `--json`; exit status 0 done,
//!   1 failed (the reason on stderr), 2 bad command line.

mod etcd_args;
mod run;
mod table;

pub use etcd_args::{EtcdArgs, EtcdOptions, Schemes, TlsFiles, User, DEFAULT_ENDPOINT};
pub use run::{main, AdminCli, Report};
pub use table::Table;
