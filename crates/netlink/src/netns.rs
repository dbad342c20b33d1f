//! Network namespace handles and running code on a thread inside one.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`, ...).
///
/// Holding the file descriptor keeps the namespace alive and lets us refer to
/// it even if its bind mount is removed meanwhile.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Netns {
    /// Opens a namespace file and checks that it is a *network* namespace.
    /// A missing path gives an error with [`Error::is_not_found`] true.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let context = || format!("open netns {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(context(), e))?;
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
        let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
        if nstype < 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::ENOTTY) {
                Error::invalid(context(), "not a namespace file")
            } else {
                Error::io(context(), err)
            });
        }
        if nstype != libc::CLONE_NEWNET {
            return Err(Error::invalid(
                context(),
                "a namespace file, but not a network namespace",
            ));
        }
        let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
        Ok(Netns {
            file,
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Like [`Netns::open`], but a path that no longer exists, or no longer
    /// is a namespace (its bind mount is gone and a plain file is left), is
    /// `Ok(None)`: what a DEL wants when the runtime already removed it.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Option<Netns>> {
        match Netns::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if e.is_not_found() || e.kind() == crate::ErrorKind::InvalidInput => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The network namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        Netns::open("/proc/thread-self/ns/net")
    }

    /// The path this handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(st_dev, st_ino)` of the namespace: equal for two handles exactly when
    /// they name the same namespace.
    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Whether both handles name the same namespace (e.g. CNI_NETNS is the
    /// plugin's own namespace).
    pub fn same_as(&self, other: &Netns) -> bool {
        self.id() == other.id()
    }

    /// A second handle on the same namespace (duplicated file descriptor).
    pub fn try_clone(&self) -> Result<Netns> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io(format!("dup netns {}", self.path.display()), e))?;
        Ok(Netns {
            file,
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
        })
    }

    /// Moves the calling thread into this namespace until the returned guard
    /// is dropped, which moves it back (and aborts the process if the kernel
    /// refuses that: going on in the wrong namespace is never an option).
    ///
    /// For short, synchronous work on a thread that owns no async runtime
    /// (a plugin's main thread between netlink calls): no helper thread to
    /// create, hand over to and join. Sockets created meanwhile stay bound to
    /// this namespace. Never call it on an async runtime's worker thread.
    pub fn enter(&self) -> Result<NetnsGuard> {
        let context = || format!("enter netns {}", self.path.display());
        let home = File::open("/proc/thread-self/ns/net").map_err(|e| Error::io(context(), e))?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::os(context(), e as i32))?;
        Ok(NetnsGuard {
            home,
            _not_send: std::marker::PhantomData,
        })
    }

    /// Runs `f` on a new, short-lived thread that has joined this namespace,
    /// and returns its result. The calling thread never changes namespace;
    /// the helper thread ends with `f`, so it can't leak into other work.
    ///
    /// `/proc/sys/net` and new sockets follow the thread's namespace; `/sys`
    /// does not (it shows the namespace it was mounted in).
    /// A panic in `f` is resumed on the calling thread.
    pub fn run_in<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let context = || format!("enter netns {}", self.path.display());
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(scope, || {
                    setns(&self.file, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::os(context(), e as i32))?;
                    Ok(f())
                })
                .map_err(|e| Error::io(context(), e))?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

/// The calling thread's stay in another namespace (see [`Netns::enter`]).
#[derive(Debug)]
#[must_use = "the thread leaves the namespace when the guard is dropped"]
pub struct NetnsGuard {
    home: File,
    /// Not `Send`: dropped on another thread, it would move that thread home
    /// and leave the one that entered inside.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if setns(&self.home, CloneFlags::CLONE_NEWNET).is_err() {
            // Every later request of this thread would act on the wrong
            // namespace; nothing can be trusted to undo that.
            eprintln!("netlink: cannot return to the original network namespace; aborting");
            std::process::abort();
        }
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // These only open namespace files read-only; nothing is changed.

    #[test]
    fn current_is_same_as_itself_and_as_the_process_netns() {
        let a = Netns::current().expect("current");
        let b = Netns::open("/proc/self/ns/net").expect("open self");
        assert!(a.same_as(&b));
        let c = a.try_clone().expect("clone");
        assert!(c.same_as(&a));
        assert_eq!(c.path(), a.path());
    }

    #[test]
    fn missing_path_is_not_found() {
        let err = Netns::open("/run/netns/does-not-exist-cni-test").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err
            .to_string()
            .contains("/run/netns/does-not-exist-cni-test"));
    }

    #[test]
    fn other_files_are_refused() {
        let err = Netns::open("/proc/self/ns/mnt").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
        let err = Netns::open("/proc/self/status").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{err}");
    }

    #[test]
    fn run_in_returns_the_closure_value() {
        let ns = Netns::current().expect("current");
        let inside = ns
            .run_in(|| Netns::current().map(|n| n.id()))
            .expect("run_in");
        assert_eq!(inside.expect("current inside"), ns.id());
    }
}
