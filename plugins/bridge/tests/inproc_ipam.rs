//! The bridge runs host-local in-process when the `host-local` first on
//! CNI_PATH is our own build, and execs it otherwise: which path ran is
//! observed (a wrapper script that logs its runs; fanotify FAN_OPEN_EXEC on
//! our binary's inode), and both paths must give the same results, errors
//! and lease files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cni_harness::bins;
use common::Net;
use serde_json::{json, Value};

const REFERENCE_HOST_LOCAL: &str = "/usr/lib/cni/host-local";

/// CNI_PATH candidates in a temp dir:
/// - `copy/host-local`: a copy of our host-local (same bytes: ours), the
///   inode watched for execs;
/// - `ours/host-local`: a symlink to that copy;
/// - `wrap/host-local`: a script that logs `$CNI_COMMAND` to `wrapper.log`
///   and execs the copy;
/// - `ref/host-local`: a copy of the reference Go host-local, also watched.
struct Dirs {
    root: PathBuf,
}

impl Dirs {
    fn new(tag: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!("cni-inproc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["copy", "ours", "wrap", "ref"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let copy = root.join("copy/host-local");
        std::fs::copy(bins::bin("host-local"), &copy).unwrap();
        std::os::unix::fs::symlink(&copy, root.join("ours/host-local")).unwrap();
        let wrapper = root.join("wrap/host-local");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$CNI_COMMAND\" >> {}\nexec {} \"$@\"\n",
                root.join("wrapper.log").display(),
                copy.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            Path::new(REFERENCE_HOST_LOCAL).is_file(),
            "{REFERENCE_HOST_LOCAL} missing: install the Debian package containernetworking-plugins"
        );
        std::fs::copy(REFERENCE_HOST_LOCAL, root.join("ref/host-local")).unwrap();
        Dirs { root }
    }

    fn path(&self, dirs: &[&str]) -> String {
        let v: Vec<String> = dirs
            .iter()
            .map(|d| self.root.join(d).display().to_string())
            .collect();
        v.join(":")
    }

    fn wrapper_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("wrapper.log"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn clear_wrapper_log(&self) {
        let _ = std::fs::remove_file(self.root.join("wrapper.log"));
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Counts execs of one file (its inode) with fanotify FAN_OPEN_EXEC. A
/// plain open/read (the marker check) is not an exec and is not counted.
struct ExecWatch {
    fd: libc::c_int,
}

impl ExecWatch {
    fn new(file: &Path) -> ExecWatch {
        // SAFETY: plain syscalls; the path is a valid C string; the fd is ours.
        unsafe {
            let fd = libc::fanotify_init(
                libc::FAN_CLASS_NOTIF | libc::FAN_NONBLOCK | libc::FAN_CLOEXEC,
                (libc::O_RDONLY | libc::O_CLOEXEC) as libc::c_uint,
            );
            assert!(
                fd >= 0,
                "fanotify_init: {} (the test needs root)",
                std::io::Error::last_os_error()
            );
            let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
            let r = libc::fanotify_mark(
                fd,
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_EXEC,
                libc::AT_FDCWD,
                c.as_ptr(),
            );
            assert_eq!(
                r,
                0,
                "fanotify_mark {}: {}",
                file.display(),
                std::io::Error::last_os_error()
            );
            ExecWatch { fd }
        }
    }

    /// Execs seen since the last call.
    fn take(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer we own, of its size.
            let len = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if len <= 0 {
                return n;
            }
            let mut at = 0usize;
            while at + std::mem::size_of::<libc::fanotify_event_metadata>() <= len as usize {
                // SAFETY: the kernel wrote whole events; read_unaligned copes
                // with the byte buffer's alignment.
                let ev: libc::fanotify_event_metadata =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
                if ev.mask & libc::FAN_OPEN_EXEC != 0 {
                    n += 1;
                }
                if ev.fd >= 0 {
                    // SAFETY: the event's fd is ours to close.
                    unsafe { libc::close(ev.fd) };
                }
                if ev.event_len == 0 {
                    break;
                }
                at += ev.event_len as usize;
            }
        }
    }
}

impl Drop for ExecWatch {
    fn drop(&mut self) {
        // SAFETY: our fd, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// A dual-stack network (so the order of the IPs shows) whose v4 range has
/// three addresses, so the fourth ADD fails with host-local's error.
fn net(tag: &str) -> Net {
    let mut n = Net::new(tag);
    n.conf["ipam"]["ranges"] = json!([
        [{"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.12"}],
        [{"subnet": "fd88::/64"}]
    ]);
    n.conf["ipMasq"] = json!(false);
    n
}

/// The result with what differs run to run (MACs, the random veth name,
/// the container netns path) replaced by its role.
fn normalize(mut r: Value, netns: &str) -> Value {
    if let Some(ifs) = r["interfaces"].as_array_mut() {
        for i in ifs.iter_mut() {
            if i["sandbox"] == netns {
                i["sandbox"] = json!("<netns>");
            }
            if i["mac"].is_string() {
                i["mac"] = json!("<mac>");
            }
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("<veth>");
            }
        }
    }
    r
}

/// Every file of the network's lease directory with its content (`lock`
/// included), sorted.
fn lease_files(n: &Net) -> Vec<(String, Vec<u8>)> {
    let dir = n.data_dir.join("testnet");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What one run of the scenario showed.
#[derive(Debug, PartialEq)]
struct Observed {
    results: Vec<Value>,
    exhausted: Value,
    leases_after_add: Vec<(String, Vec<u8>)>,
    leases_after_one_del: Vec<(String, Vec<u8>)>,
    leases_at_end: Vec<(String, Vec<u8>)>,
}

/// Three ADDs, a fourth that finds the v4 range full, DEL of one, DEL of
/// all: every bridge call with `cni_path` and `extra_env`.
fn scenario(tag: &str, cni_path: &str, extra_env: &[(&str, &str)]) -> Observed {
    let mut n = net(tag);
    let run = |n: &Net, cmd: &str, i: usize| {
        let mut call = n.call(cmd, i).env("CNI_PATH", cni_path);
        for (k, v) in extra_env {
            call = call.env(k, v);
        }
        n.run(call)
    };
    let mut results = Vec::new();
    for _ in 0..3 {
        let c = n.container();
        let r = run(&n, "ADD", c).result();
        results.push(normalize(r, &n.ns(c).path().display().to_string()));
    }
    let c = n.container();
    let mut exhausted = run(&n, "ADD", c).json();
    assert_ne!(exhausted.get("code"), None, "4th ADD: {exhausted}");
    // Our host-local names the data dir in its message: one per sandbox.
    if let Some(m) = exhausted["msg"].as_str() {
        exhausted["msg"] = json!(m.replace(&n.data_dir.display().to_string(), "<dataDir>"));
    }
    let leases_after_add = lease_files(&n);
    assert!(run(&n, "DEL", 1).success());
    let leases_after_one_del = lease_files(&n);
    for i in 0..4 {
        let out = run(&n, "DEL", i);
        assert!(out.success(), "DEL {i}: {} {}", out.stdout, out.stderr);
    }
    Observed {
        results,
        exhausted,
        leases_after_add,
        leases_after_one_del,
        leases_at_end: lease_files(&n),
    }
}

#[test]
fn ours_runs_in_process_anything_else_is_execd_and_both_agree() {
    let dirs = Dirs::new("paths");
    let ours = ExecWatch::new(&dirs.root.join("copy/host-local"));
    let reference = ExecWatch::new(&dirs.root.join("ref/host-local"));

    // Ours first (through a symlink): in-process, nothing exec'd.
    let inproc = scenario("ipam-inproc", &dirs.path(&["ours", "wrap"]), &[]);
    assert_eq!(dirs.wrapper_log(), Vec::<String>::new());
    assert_eq!(ours.take(), 0, "our host-local was exec'd");

    // The wrapper script first: exec'd for every IPAM call (it execs ours).
    let wrapped = scenario("ipam-wrapped", &dirs.path(&["wrap", "ours"]), &[]);
    let log = dirs.wrapper_log();
    assert_eq!(log.iter().filter(|c| *c == "ADD").count(), 4, "{log:?}");
    assert_eq!(log.iter().filter(|c| *c == "DEL").count(), 6, "{log:?}");
    assert_eq!(ours.take(), log.len());
    dirs.clear_wrapper_log();

    // The escape hatch: ours first, yet exec'd.
    let forced = scenario(
        "ipam-forced",
        &dirs.path(&["ours", "wrap"]),
        &[("CNI_RS_EXEC_IPAM", "1")],
    );
    assert_eq!(dirs.wrapper_log(), Vec::<String>::new());
    assert_eq!(ours.take(), 10, "ADD x4 + DEL x6 exec'd");

    // Same results (IP order included), same error, same lease files.
    assert_eq!(inproc, wrapped);
    assert_eq!(inproc, forced);
    assert_eq!(inproc.results[0]["ips"][0]["address"], "10.88.0.10/24");
    assert_eq!(inproc.results[0]["ips"][1]["address"], "fd88::2/64");
    assert!(
        inproc.exhausted["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("host-local: ")),
        "{}",
        inproc.exhausted
    );
    assert_eq!(
        inproc
            .leases_at_end
            .iter()
            .filter(|(f, _)| f.starts_with("10.") || f.starts_with("fd"))
            .count(),
        0
    );

    // The reference first on CNI_PATH, ours after it: the reference is
    // exec'd (for the ADD and the DEL), ours neither exec'd nor in-process
    // (the wrapper would not tell, the ExecWatch on the reference does).
    let mut n = net("ipam-ref");
    let c = n.container();
    let path = dirs.path(&["ref", "ours"]);
    let r = n.run(n.call("ADD", c).env("CNI_PATH", &path)).result();
    assert_eq!(r["ips"][0]["address"], "10.88.0.10/24");
    assert!(n.run(n.call("DEL", c).env("CNI_PATH", &path)).success());
    assert_eq!(reference.take(), 2);
    assert_eq!(ours.take(), 0);
}

#[test]
fn in_process_rollback_releases_the_lease() {
    // ADD fails after IPAM (the bridge carries another network's address):
    // the rollback's in-process DEL releases the address just allocated.
    let dirs = Dirs::new("rollback");
    let ours = ExecWatch::new(&dirs.root.join("copy/host-local"));
    let mut n = net("ipam-rollback");
    n.sb.host().ip(&["link", "add", "cni0", "type", "bridge"]);
    n.sb.host()
        .ip(&["addr", "add", "10.99.0.1/24", "dev", "cni0"]);
    let c = n.container();
    let path = dirs.path(&["ours"]);
    let err = n
        .run(n.call("ADD", c).env("CNI_PATH", &path))
        .expect_error(100);
    assert!(
        err["msg"]
            .as_str()
            .unwrap()
            .contains("already has an IP address"),
        "{err}"
    );
    let files: Vec<String> = lease_files(&n).into_iter().map(|(f, _)| f).collect();
    // Allocated (the v4 range's last_reserved_ip is written), then released.
    assert!(
        files.contains(&"last_reserved_ip.0".to_string()),
        "{files:?}"
    );
    assert_eq!(n.leases(), Vec::<String>::new());
    assert_eq!(ours.take(), 0);
}
