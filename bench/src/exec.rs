//! Running one program the way a container runtime runs a CNI plugin: a fresh
//! process in the sandbox's host namespace, CNI_* variables in its
//! environment, the config on stdin, stdout and stderr captured. The caller's
//! clock covers spawn to reap; the child is reaped with `wait4()`.
//!
//! The namespace comes from the spawning thread: [`in_netns`] runs a closure
//! on a fresh thread that has joined the sandbox's host namespace, and a
//! process spawned from that thread starts there. So no `pre_exec` hook is
//! needed and std spawns with `posix_spawn` (a vfork-style clone), as Go
//! runtimes (containerd, CRI-O, Podman) start plugins: the cost of starting a
//! plugin does not depend on how big the bench process is.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How one process ran.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// From just before fork to just after the child was reaped.
    pub elapsed: Duration,
    /// `ru_maxrss` from `wait4()`, in KiB: the largest resident set of the
    /// child or of any descendant it waited for (host-local, nft, iptables).
    /// Only meaningful through the launcher (see [`crate::shim`]): forked
    /// straight from the bench it also counts the bench's own pages.
    pub maxrss_kb: u64,
    /// CPU time (user + system) of the child and the descendants it waited
    /// for, ms, from the same `wait4()`.
    pub cpu_ms: f64,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-line description of a failure, for error messages.
    pub fn describe(&self, what: &str) -> String {
        format!(
            "{what} failed (exit {:?})\nstdout: {}\nstderr: {}",
            self.code,
            String::from_utf8_lossy(&self.stdout).trim(),
            String::from_utf8_lossy(&self.stderr).trim()
        )
    }
}

/// One process to run.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [&'a str],
    /// Environment on top of PATH (which is inherited; everything else is not).
    pub env: &'a [(&'a str, &'a str)],
    pub stdin: &'a [u8],
    /// Run through the `__spawn` launcher (this binary) to measure the peak
    /// RSS of the program alone; the elapsed time then includes the launcher.
    pub rss_launcher: Option<&'a Path>,
}

impl Spawn<'_> {
    /// [`Spawn::run`] from a thread inside the namespace `netns`.
    pub fn run_in(&self, netns: RawFd) -> std::io::Result<Outcome> {
        in_netns(netns, || self.run()).map_err(std::io::Error::other)?
    }

    pub fn run(&self) -> std::io::Result<Outcome> {
        let mut cmd = match self.rss_launcher {
            Some(launcher) => {
                let mut c = Command::new(launcher);
                c.arg("__spawn").arg(self.program);
                c
            }
            None => Command::new(self.program),
        };
        cmd.args(self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Own process group: a Ctrl-C at the terminal reaches only the bench,
        // which then stops after this invocation and cleans up, instead of
        // killing a plugin half-way through an ADD.
        cmd.process_group(0);
        let start = Instant::now();
        let mut child = cmd.spawn()?;
        let pid = child.id() as libc::pid_t;
        if let Some(mut stdin) = child.stdin.take() {
            // A child may exit without reading stdin: EPIPE is not our story.
            let _ = stdin.write_all(self.stdin);
        }
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let (stdout, mut stderr) = drain(&mut out, &mut err)?;
        let (status, usage) = wait4(pid)?;
        let elapsed = start.elapsed();
        let code = if libc::WIFEXITED(status) {
            Some(libc::WEXITSTATUS(status))
        } else {
            None
        };
        // Linux reports ru_maxrss in kilobytes.
        let mut maxrss_kb = u64::try_from(usage.ru_maxrss).unwrap_or(0);
        if self.rss_launcher.is_some() {
            maxrss_kb = crate::shim::take_maxrss(&mut stderr).unwrap_or(0);
        }
        Ok(Outcome {
            elapsed,
            maxrss_kb,
            cpu_ms: cpu_ms(&usage),
            code,
            stdout,
            stderr,
        })
    }
}

/// User + system time of a `rusage`, ms.
pub fn cpu_ms(usage: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// This process's own CPU time so far (every thread; children not
/// included), ms.
pub fn self_cpu_ms() -> f64 {
    // SAFETY: rusage is plain data, fully written by a successful call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    cpu_ms(&usage)
}

/// CPU time of the children this process has reaped so far, ms.
pub fn children_cpu_ms() -> f64 {
    // SAFETY: as in `self_cpu_ms`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    cpu_ms(&usage)
}

/// Runs `f` on a new thread that has joined the network namespace `fd`
/// (processes it spawns start there); the calling thread never moves.
pub fn in_netns<T: Send>(fd: RawFd, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            // SAFETY: setns on this thread only; it ends with the closure.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Reads both pipes to EOF without letting either fill up (poll).
fn drain<A: Read + AsRawFd, B: Read + AsRawFd>(
    a: &mut Option<A>,
    b: &mut Option<B>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut bufs = (Vec::new(), Vec::new());
    let mut chunk = [0u8; 8192];
    loop {
        let mut fds = Vec::with_capacity(2);
        if let Some(p) = a {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(p) = b {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if fds.is_empty() {
            return Ok(bufs);
        }
        // SAFETY: fds is a valid array of fds.len() pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for pfd in fds {
            if pfd.revents == 0 {
                continue;
            }
            let is_a = a.as_ref().is_some_and(|p| p.as_raw_fd() == pfd.fd);
            let read = if is_a {
                a.as_mut().map(|p| p.read(&mut chunk))
            } else {
                b.as_mut().map(|p| p.read(&mut chunk))
            };
            match read {
                Some(Ok(0)) | None => {
                    if is_a {
                        *a = None;
                    } else {
                        *b = None;
                    }
                }
                Some(Ok(k)) => {
                    if is_a {
                        bufs.0.extend_from_slice(&chunk[..k]);
                    } else {
                        bufs.1.extend_from_slice(&chunk[..k]);
                    }
                }
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }
}

/// Reaps `pid` and returns its wait status and resource usage.
fn wait4(pid: libc::pid_t) -> std::io::Result<(i32, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, fully written by a successful wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
