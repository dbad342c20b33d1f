//! A network of one implementation (ours or the reference) in its own
//! sandbox, and running its plugin chain for a container the way libcni does:
//! ADD through the list in order, each plugin getting the previous one's result
//! as `prevResult`; DEL through the list in reverse, every plugin getting the
//! final ADD result as `prevResult`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cni_harness::Sandbox;
use serde_json::{json, Value};

use crate::exec::{in_netns, Outcome, Spawn};

/// Whose plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Ours,
    Reference,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Ours, Side::Reference];

    pub fn key(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Reference => "reference",
        }
    }

    /// Ours first on even runs, the reference first on odd ones, so drift
    /// and "who runs right after whom" hit both alike.
    pub fn order(run: usize) -> [Side; 2] {
        if run % 2 == 0 {
            [Side::Ours, Side::Reference]
        } else {
            [Side::Reference, Side::Ours]
        }
    }
}

/// The plugin directories of both sides.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub ours: PathBuf,
    pub reference: PathBuf,
    /// This binary, whose `__spawn` mode launches a plugin for an RSS sample.
    pub launcher: PathBuf,
}

impl Dirs {
    pub fn of(&self, side: Side) -> &Path {
        match side {
            Side::Ours => &self.ours,
            Side::Reference => &self.reference,
        }
    }
}

/// The two conflists measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// bridge + host-local.
    Bridge,
    /// bridge (ipMasq) + host-local, then portmap with one mapping.
    Full,
}

impl ChainKind {
    pub fn id(self) -> &'static str {
        match self {
            ChainKind::Bridge => "bridge",
            ChainKind::Full => "masq-portmap",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChainKind::Bridge => "bridge + host-local",
            ChainKind::Full => "bridge + host-local + portmap, ipMasq",
        }
    }

    pub fn plugins(self) -> &'static [&'static str] {
        match self {
            ChainKind::Bridge => &["bridge"],
            ChainKind::Full => &["bridge", "portmap"],
        }
    }

    /// The conflist (libcni's format), host-local leases under `data_dir`.
    pub fn conflist(self, data_dir: &Path) -> Value {
        let ipam = json!({
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": [[{"subnet": "10.88.0.0/16"}]],
            "routes": [{"dst": "0.0.0.0/0"}]
        });
        let plugins = match self {
            ChainKind::Bridge => json!([{
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipam": ipam
            }]),
            ChainKind::Full => json!([
                {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "ipam": ipam},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]),
        };
        // 1.0.0: the newest version both implementations speak.
        json!({"cniVersion": "1.0.0", "name": "benchnet", "plugins": plugins})
    }
}

/// A container of a [`Net`]: its namespace and attachment identity.
#[derive(Debug, Clone)]
pub struct Ctr {
    /// Index in the sandbox's container list.
    pub index: usize,
    pub id: String,
    pub netns: PathBuf,
    /// Host port of its port mapping (distinct among live containers).
    pub host_port: u16,
}

/// How plugins are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Directly, for latency (their `ru_maxrss` would include the bench).
    Timed,
    /// Through the `__spawn` launcher, for peak RSS (times not used).
    Rss,
}

/// One plugin invocation inside a chain run.
#[derive(Debug, Clone)]
pub struct PluginTime {
    pub plugin: &'static str,
    pub ms: f64,
    pub maxrss_kb: u64,
}

/// A whole chain invocation (ADD of the list, or DEL of the list).
#[derive(Debug, Clone)]
pub struct ChainRun {
    pub total_ms: f64,
    pub plugins: Vec<PluginTime>,
}

/// Namespaces deleted per batch.
pub const PENDING_MAX: usize = 50;

/// Time for the kernel's asynchronous namespace teardown after a batch of
/// deletions (not timed).
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One implementation's network in its own throwaway sandbox.
pub struct Net {
    pub side: Side,
    pub kind: ChainKind,
    dir: PathBuf,
    launcher: PathBuf,
    conflist: Value,
    data_dir: PathBuf,
    host_ns: File,
    made: usize,
    /// Containers whose namespace awaits deletion (see [`Net::remove_container`]).
    pending: Vec<usize>,
    // Dropped last: deletes the namespaces (containers first).
    sb: Sandbox,
}

impl Net {
    pub fn new(side: Side, kind: ChainKind, dirs: &Dirs, tag: &str) -> Result<Net, String> {
        let sb = Sandbox::new(tag);
        let data_dir = std::env::temp_dir().join(format!("{}-ipam", sb.host().name()));
        let host_ns = File::open(sb.host().path())
            .map_err(|e| format!("open {}: {e}", sb.host().path().display()))?;
        Ok(Net {
            side,
            kind,
            dir: dirs.of(side).to_path_buf(),
            launcher: dirs.launcher.clone(),
            conflist: kind.conflist(&data_dir),
            data_dir,
            host_ns,
            made: 0,
            pending: Vec::new(),
            sb,
        })
    }

    pub fn host_fd(&self) -> i32 {
        self.host_ns.as_raw_fd()
    }

    /// A new container namespace (not timed).
    pub fn new_container(&mut self) -> Ctr {
        let n = self.made;
        self.made += 1;
        let netns = self.sb.add_container().path();
        Ctr {
            index: self.sb.container_count() - 1,
            id: format!("bench-{}-{n:06}", self.side.key()),
            netns,
            host_port: 20000 + (n % 40000) as u16,
        }
    }

    /// Deletes a container's namespace (not timed), as a runtime does after
    /// DEL - in batches: the kernel tears a namespace down asynchronously
    /// (cleanup_net, under the RTNL lock, with RCU grace periods), and a
    /// teardown still running would land in the next measurement. So
    /// namespaces are deleted [`PENDING_MAX`] at a time, followed by a pause
    /// for the teardown, outside any timed region.
    pub fn remove_container(&mut self, ctr: &Ctr) {
        self.pending.push(ctr.index);
        if self.pending.len() >= PENDING_MAX {
            self.flush();
        }
    }

    /// Deletes the pending namespaces now and waits for their teardown.
    pub fn flush(&mut self) {
        for i in self.pending.drain(..) {
            self.sb.container_mut(i).delete();
        }
        settle();
    }

    /// The config one plugin of the list gets, built as libcni builds it.
    fn plugin_conf(&self, i: usize, ctr: &Ctr, prev: Option<&Value>) -> Value {
        let mut conf = self.conflist["plugins"][i].clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if conf["capabilities"]["portMappings"] == json!(true) {
            conf["runtimeConfig"] = json!({"portMappings": [
                {"hostPort": ctr.host_port, "containerPort": 80, "protocol": "tcp"}
            ]});
        }
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn invoke(
        &self,
        i: usize,
        command: &str,
        ctr: &Ctr,
        prev: Option<&Value>,
        mode: Mode,
    ) -> Result<Outcome, String> {
        let plugin = self.kind.plugins()[i];
        let stdin = self.plugin_conf(i, ctr, prev).to_string();
        let netns = ctr.netns.to_string_lossy();
        let cni_path = self.dir.to_string_lossy();
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", ctr.id.as_str()),
            ("CNI_NETNS", netns.as_ref()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", cni_path.as_ref()),
        ];
        let program = self.dir.join(plugin);
        let out = Spawn {
            program: &program,
            args: &[],
            env: &env,
            stdin: stdin.as_bytes(),
            rss_launcher: (mode == Mode::Rss).then_some(self.launcher.as_path()),
        }
        .run()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.success() {
            return Err(out.describe(&format!(
                "{} {plugin} {command} ({})",
                self.side.key(),
                ctr.id
            )));
        }
        Ok(out)
    }

    /// ADD of the whole list; returns the timing and the final result.
    /// Runs on a thread inside the host namespace, like a runtime's.
    pub fn add(&self, ctr: &Ctr, mode: Mode) -> Result<(ChainRun, Value), String> {
        in_netns(self.host_fd(), || self.add_here(ctr, mode))?
    }

    /// DEL of the whole list, in reverse, with the cached ADD result.
    pub fn del(&self, ctr: &Ctr, result: &Value, mode: Mode) -> Result<ChainRun, String> {
        in_netns(self.host_fd(), || self.del_here(ctr, result, mode))?
    }

    fn add_here(&self, ctr: &Ctr, mode: Mode) -> Result<(ChainRun, Value), String> {
        let start = Instant::now();
        let mut prev: Option<Value> = None;
        let mut plugins = Vec::new();
        for (i, name) in self.kind.plugins().iter().enumerate() {
            let out = self.invoke(i, "ADD", ctr, prev.as_ref(), mode)?;
            plugins.push(PluginTime {
                plugin: name,
                ms: ms(out.elapsed),
                maxrss_kb: out.maxrss_kb,
            });
            let result: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
                format!("{} {name} ADD printed no JSON result: {e}", self.side.key())
            })?;
            prev = Some(result);
        }
        let total_ms = ms(start.elapsed());
        Ok((ChainRun { total_ms, plugins }, prev.unwrap_or(Value::Null)))
    }

    fn del_here(&self, ctr: &Ctr, result: &Value, mode: Mode) -> Result<ChainRun, String> {
        let start = Instant::now();
        let mut plugins = Vec::new();
        let prev = (!result.is_null()).then_some(result);
        for (i, name) in self.kind.plugins().iter().enumerate().rev() {
            let out = self.invoke(i, "DEL", ctr, prev, mode)?;
            plugins.push(PluginTime {
                plugin: name,
                ms: ms(out.elapsed),
                maxrss_kb: out.maxrss_kb,
            });
        }
        Ok(ChainRun {
            total_ms: ms(start.elapsed()),
            plugins,
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
