//! The netlink handle: one rtnetlink socket bound to one namespace, driven by a
//! current-thread tokio runtime (one per process, shared by every live handle)
//! so callers see plain blocking calls.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use rtnetlink::sys::AsyncSocket;

use crate::error::{Error, Result};
use crate::netns::{Netns, NetnsThread};

/// A route-netlink socket in one network namespace.
///
/// Every method blocks until the kernel has answered. Methods must not be
/// called from inside an async task (tokio forbids nested `block_on`); async
/// code should call them from `spawn_blocking` or a plain thread.
pub struct Netlink {
    rt: Arc<tokio::runtime::Runtime>,
    /// `None` only while dropping (the connection ends once it is gone).
    handle: Option<rtnetlink::Handle>,
    /// The socket's connection task, awaited on drop so the socket is closed
    /// then and not at the shared runtime's next turn.
    conn: Option<tokio::task::JoinHandle<()>>,
    netns: PathBuf,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.netns)
            .finish()
    }
}

/// The runtime shared by every live [`Netlink`] of the process: a plugin that
/// talks to two namespaces (host and container) builds one runtime, not one
/// per socket. It is dropped with the last handle using it.
static SHARED_RUNTIME: Mutex<Weak<tokio::runtime::Runtime>> = Mutex::new(Weak::new());

fn runtime(context: &str) -> Result<Arc<tokio::runtime::Runtime>> {
    let mut shared = SHARED_RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rt) = shared.upgrade() {
        return Ok(rt);
    }
    // Current-thread: no worker threads. Several threads may block_on it at
    // once; tokio lets one drive the I/O while the others wait for their
    // answers.
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| Error::io(context, e))?,
    );
    *shared = Arc::downgrade(&rt);
    Ok(rt)
}

/// Creates the socket in the namespace of the calling thread and spawns its
/// connection task on `rt`.
fn open_socket(
    rt: &tokio::runtime::Handle,
    context: &str,
) -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>)> {
    let _entered = rt.enter();
    let (mut conn, handle, _unsolicited) =
        rtnetlink::new_connection().map_err(|e| Error::io(context, e))?;
    // Strict checking makes the kernel honour the filters in dump requests
    // (e.g. the link index of an address dump) instead of dumping the whole
    // namespace for us to filter. Kernels before 4.20 lack the option; the
    // filters are applied on our side as well, so that only costs time.
    let _ = conn
        .socket_mut()
        .socket_mut()
        .set_netlink_get_strict_chk(true);
    let conn = rt.spawn(conn);
    Ok((handle, conn))
}

impl Netlink {
    /// Opens a socket inside `netns`. The socket is created on a short-lived
    /// helper thread that joins the namespace and exits; the socket stays bound
    /// to that namespace and is used from the caller's thread afterwards.
    pub fn connect(netns: &Netns) -> Result<Netlink> {
        Netlink::connect_on(&netns.thread()?)
    }

    /// Opens a socket inside the namespace of `thread`, created there by the
    /// helper thread (which stays available for other jobs, e.g. sysctls).
    pub fn connect_on(thread: &NetnsThread) -> Result<Netlink> {
        let path = thread.netns_path().to_path_buf();
        let context = format!("open netlink socket in netns {}", path.display());
        let rt = runtime(&context)?;
        let rt_handle = rt.handle().clone();
        let (handle, conn) = thread.run(move || open_socket(&rt_handle, &context))??;
        Ok(Netlink {
            rt,
            handle: Some(handle),
            conn: Some(conn),
            netns: path,
        })
    }

    /// Opens a socket in the calling thread's own namespace.
    pub fn connect_current() -> Result<Netlink> {
        let context = "open netlink socket in the current netns";
        let rt = runtime(context)?;
        let (handle, conn) = open_socket(rt.handle(), context)?;
        Ok(Netlink {
            rt,
            handle: Some(handle),
            conn: Some(conn),
            netns: PathBuf::from("/proc/thread-self/ns/net"),
        })
    }

    /// The path of the namespace this socket lives in (for messages).
    pub fn netns_path(&self) -> &std::path::Path {
        &self.netns
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        match &self.handle {
            Some(handle) => handle,
            // Taken only in drop, after which nothing can call this.
            None => unreachable!("netlink handle used while dropping"),
        }
    }

    /// Runs one request to completion on the shared runtime.
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

impl Drop for Netlink {
    fn drop(&mut self) {
        // Without its last handle the connection task ends at its next poll;
        // run it to the end now so the socket is closed with this value, not
        // when another user of the shared runtime next blocks on it. Inside
        // an async context blocking is not allowed: abort instead.
        drop(self.handle.take());
        if let Some(conn) = self.conn.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                conn.abort();
            } else {
                let _ = self.rt.block_on(conn);
            }
        }
    }
}
