//! A simulated cluster: an underlay namespace with a bridge and etcd on it,
//! node namespaces wired to that bridge, an overlayd per node. Everything is
//! removed on drop (daemons killed by PID first).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cni_harness::{bins, EtcdServer, Netns, Sandbox};
use serde_json::Value;

pub const UNDERLAY_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub etcd: EtcdServer,
    pub underlay: Sandbox,
    pub dir: tempfile::TempDir,
    pub ttl: u32,
}

pub struct Node {
    pub name: String,
    pub sandbox: Sandbox,
    pub ip: Ipv4Addr,
    pub daemon: Option<Child>,
}

impl Node {
    pub fn ns(&self) -> &Netns {
        self.sandbox.host()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `f` with an etcd client made inside `ns`.
pub fn with_etcd<T: Send>(
    ns: &Netns,
    endpoint: &str,
    f: impl FnOnce(&mut etcd_client::Client, &tokio::runtime::Runtime) -> T + Send,
) -> T {
    ns.run_in(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut c = rt
            .block_on(etcd_client::Client::connect([endpoint], None))
            .expect("connect to etcd");
        f(&mut c, &rt)
    })
}

impl Cluster {
    /// The underlay and etcd; no node yet.
    pub fn new(tag: &str, config: &str, ttl: u32) -> Cluster {
        let underlay = Sandbox::new(tag);
        let ul = underlay.host();
        ul.ip(&["link", "add", "ul0", "type", "bridge"]);
        ul.ip(&["addr", "add", &format!("{UNDERLAY_GW}/24"), "dev", "ul0"]);
        ul.ip(&["link", "set", "ul0", "up"]);
        let etcd = EtcdServer::start_in(&ul.path(), UNDERLAY_GW);
        let c = Cluster {
            nodes: Vec::new(),
            etcd,
            underlay,
            dir: tempfile::tempdir().expect("temp dir"),
            ttl,
        };
        let config = config.to_string();
        with_etcd(c.underlay.host(), &c.endpoint(), move |e, rt| {
            rt.block_on(e.put("/overlay/config", config, None))
                .expect("put config");
        });
        c
    }

    pub fn endpoint(&self) -> String {
        self.etcd.endpoints()[0].clone()
    }

    /// A node namespace on the underlay (192.168.100.<10+i>), not started.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let name = format!("node-{i}");
        let sandbox = Sandbox::new(&format!("ovn{i}"));
        let ip = Ipv4Addr::new(192, 168, 100, 10 + i as u8);
        let ul = self.underlay.host();
        let port = format!("ul-n{i}");
        ul.veth_to(&port, sandbox.host(), "eth0");
        ul.ip(&["link", "set", &port, "master", "ul0"]);
        let n = sandbox.host();
        n.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        n.ip(&["route", "add", "default", "via", &UNDERLAY_GW.to_string()]);
        self.nodes.push(Node {
            name,
            sandbox,
            ip,
            daemon: None,
        });
        i
    }

    pub fn subnet_file(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}/subnet.json"))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}.log"))
    }

    /// Starts (or restarts) node `i`'s overlayd.
    pub fn start(&mut self, i: usize, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .expect("log file");
        let (endpoint, file, ttl) = (self.endpoint(), self.subnet_file(i), self.ttl);
        let node = &mut self.nodes[i];
        let child = node
            .ns()
            .command(bins::bin("overlayd"))
            .args(["--etcd-endpoints", &endpoint, "--node-name", &node.name])
            .args(["--public-ip", &node.ip.to_string()])
            .arg("--subnet-file")
            .arg(&file)
            .args(["--lease-ttl", &ttl.to_string(), "--reconcile-interval", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start overlayd");
        node.daemon = Some(child);
    }

    /// SIGKILLs node `i`'s overlayd (a crash: the lease is not revoked).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs node `i`'s overlayd and waits for it.
    pub fn stop(&mut self, i: usize) -> std::process::ExitStatus {
        let mut c = self.nodes[i].daemon.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        c.wait().expect("wait")
    }

    /// Waits until node `i`'s overlayd has leased its subnet `n` times
    /// (counting every start).
    pub fn wait_leased(&self, i: usize, n: usize) {
        let ok = wait_for("leased", Duration::from_secs(20), || {
            (self.log_text(i).matches(" leased").count() >= n).then_some(())
        });
        assert!(
            ok.is_some(),
            "node-{i} did not lease; log:\n{}",
            self.log_text(i)
        );
    }

    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }

    /// Node `i`'s subnet once its subnet file exists.
    pub fn subnet(&self, i: usize) -> Value {
        let path = self.subnet_file(i);
        wait_for(
            &format!("node-{i}'s subnet file"),
            Duration::from_secs(20),
            || {
                std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
            },
        )
        .unwrap_or_else(|| panic!("no subnet file for node-{i}; log:\n{}", self.log_text(i)))
    }

    /// The routes node `i` has on its VXLAN device.
    pub fn overlay_routes(&self, i: usize) -> Vec<String> {
        let n = self.nodes[i].ns();
        let have = n.ip_json(&["route", "show", "dev", "vxlan.1"]);
        have.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["dst"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Polls `f` every 50 ms until it gives `Some` or `limit` passes.
pub fn wait_for<T>(_what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn ping(ns: &Netns, ip: &str) -> bool {
    ns.command("ping")
        .args(["-c1", "-W1", ip])
        .output()
        .expect("ping (Debian package iputils-ping)")
        .status
        .success()
}
