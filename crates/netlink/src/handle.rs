//! The netlink handle: one rtnetlink socket bound to one namespace, driven by a
//! private current-thread tokio runtime so callers see plain blocking calls.

use std::future::Future;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// A route-netlink socket in one network namespace.
///
/// Every method blocks until the kernel has answered. Methods must not be
/// called from inside an async task (tokio forbids nested `block_on`); async
/// code should call them from `spawn_blocking` or a plain thread.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    netns: PathBuf,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish()
    }
}

fn runtime(context: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::io(context, e))
}

/// Creates the socket in the namespace of the calling thread and spawns its
/// connection task on `rt`.
fn open_socket(rt: &tokio::runtime::Handle, context: &str) -> Result<rtnetlink::Handle> {
    let _entered = rt.enter();
    let (conn, handle, _unsolicited) =
        rtnetlink::new_connection().map_err(|e| Error::io(context, e))?;
    rt.spawn(conn);
    Ok(handle)
}

impl Netlink {
    /// Opens a socket inside `netns`. The socket is created on a short-lived
    /// helper thread that joins the namespace and exits; the socket stays bound
    /// to that namespace and is used from the caller's thread afterwards.
    pub fn connect(netns: &Netns) -> Result<Netlink> {
        let context = format!("open netlink socket in netns {}", netns.path().display());
        let rt = runtime(&context)?;
        let rt_handle = rt.handle().clone();
        let handle = netns.run_in(|| open_socket(&rt_handle, &context))??;
        Ok(Netlink {
            rt,
            handle,
            netns: netns.path().to_path_buf(),
        })
    }

    /// Opens a socket in the calling thread's own namespace.
    pub fn connect_current() -> Result<Netlink> {
        let context = "open netlink socket in the current netns";
        let rt = runtime(context)?;
        let handle = open_socket(rt.handle(), context)?;
        Ok(Netlink {
            rt,
            handle,
            netns: PathBuf::from("/proc/thread-self/ns/net"),
        })
    }

    /// The path of the namespace this socket lives in (for messages).
    pub fn netns_path(&self) -> &std::path::Path {
        &self.netns
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Runs one request to completion on the private runtime.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Error context naming the operation and this socket's namespace.
    pub(crate) fn ctx(&self, op: impl std::fmt::Display) -> String {
        format!("{op} (netns {})", self.netns.display())
    }

    /// Maps an rtnetlink error with context.
    pub(crate) fn nl_err(
        &self,
        op: impl std::fmt::Display,
    ) -> impl FnOnce(rtnetlink::Error) -> Error {
        let context = self.ctx(op);
        move |e| Error::netlink(context, e)
    }
}
