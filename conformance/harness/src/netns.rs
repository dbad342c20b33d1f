use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::tool::{require_tool, run_ok};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A named network namespace made with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    deleted: bool,
}

impl Netns {
    /// Creates `/run/netns/<name>` and brings its `lo` up unless `keep_lo_down`.
    fn create(name: String, lo_up: bool) -> Netns {
        require_tool("ip", "iproute2");
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            deleted: false,
        };
        if lo_up {
            ns.ip(&["link", "set", "lo", "up"]);
        }
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, as a runtime passes it in CNI_NETNS.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `ip -n <ns> <args>` and returns stdout; panics when it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs `ip -n <ns> -j <args>` and parses the JSON it prints.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let out = run_ok(
            Command::new("ip")
                .arg("-n")
                .arg(&self.name)
                .arg("-j")
                .args(args),
        );
        if out.trim().is_empty() {
            return serde_json::Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// Runs `f` on a short-lived thread that joined this namespace (the
    /// calling thread never changes namespace). Sockets `f` creates stay in it.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(self.path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path().display()));
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns into {}: {e}", self.name));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// A veth pair between this namespace (`here`) and `other` (`there`), both
    /// ends up and `other`'s `lo` up: a wire between two test hosts.
    pub fn veth_to(&self, here: &str, other: &Netns, there: &str) {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ]);
        self.ip(&["link", "set", here, "up"]);
        other.ip(&["link", "set", there, "up"]);
        other.ip(&["link", "set", "lo", "up"]);
    }

    /// A command that will run inside this namespace: the child setns()es into it
    /// right before exec, exactly how a runtime's own netns runs plugins (no mount
    /// namespace games as with `ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::open(self.path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path().display()));
        let mut cmd = Command::new(program);
        // SAFETY: setns is a plain syscall, async-signal-safe, fine between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Deletes the namespace now (as a runtime does before a late DEL).
    pub fn delete(&mut self) {
        if !self.deleted {
            self.deleted = true;
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// A throwaway "host" namespace (the plugin runs there) and the container
/// namespaces of one test. Dropping it removes all of them, containers first.
#[derive(Debug)]
pub struct Sandbox {
    prefix: String,
    containers: Vec<Netns>,
    host: Netns,
}

impl Sandbox {
    /// `tag` names the test in the namespace names (kept short: `cnit-<tag>-...`).
    pub fn new(tag: &str) -> Sandbox {
        assert!(
            nix::unistd::geteuid().is_root(),
            "network tests need root (they create network namespaces)"
        );
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect();
        let prefix = format!("cnit-{tag}-{}-{id}", std::process::id());
        let host = Netns::create(format!("{prefix}-host"), true);
        Sandbox {
            prefix,
            containers: Vec::new(),
            host,
        }
    }

    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// Makes a new container namespace with `lo` left down, as a runtime does.
    pub fn add_container(&mut self) -> &mut Netns {
        let n = self.containers.len();
        let ns = Netns::create(format!("{}-c{n}", self.prefix), false);
        self.containers.push(ns);
        self.containers.last_mut().expect("just pushed")
    }

    /// How many container namespaces there are (the next one gets this index).
    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    pub fn container(&self, i: usize) -> &Netns {
        &self.containers[i]
    }

    pub fn container_mut(&mut self, i: usize) -> &mut Netns {
        &mut self.containers[i]
    }

    /// A command that runs inside the host namespace.
    pub fn host_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.host.command(program)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Containers first: their veth peers die with them, then the host.
        self.containers.clear();
        self.host.delete();
    }
}
