//! overlay: overlayd's convergence and scale costs on a simulated cluster,
//! and pod-to-pod TCP throughput across the overlay beside a hand-built
//! kernel VXLAN between the same two node namespaces.
//!
//! - **The cluster.** An underlay namespace with a bridge `ul0`
//!   (192.168.100.1/24) and a one-member etcd listening on it; node
//!   namespaces wired to the bridge with veths (192.168.100.10 + i); one
//!   overlayd per node (release build from `--ours`), `--lease-ttl 30`,
//!   `--reconcile-interval 30`, metrics on 127.0.0.1:9464 inside each node.
//! - **Convergence, per size N** (10, 20, 50; a fresh cluster each): all N
//!   overlayds started at once; formation = first start to every node
//!   holding N-1 routes on `vxlan.1`. Every node's
//!   `overlayd_event_to_programmed_seconds` buckets are summed and read as
//!   Prometheus' `histogram_quantile` does (linear inside a bucket).
//! - **A join**: one more node started; join wall time = its start to every
//!   other node's kernel holding the route to its subnet (a netlink
//!   RTM_NEWROUTE listener per node, subscribed before the start). Watch
//!   events and kernel changes per join: the counters' deltas summed over all
//!   nodes; the join's own event-to-programmed: the histograms' deltas.
//! - **Steady state**: keep-alives per second over a window (the nodes'
//!   renewal counters, and etcd's own count of LeaseKeepAlive messages),
//!   kernel entries per node (routes + neighbours + FDB entries on
//!   `vxlan.1`), RSS of each overlayd.
//! - **Throughput**: a 2-node cluster, a pod on each made by the vxlan
//!   plugin; iperf3 (TCP, one stream) pod A -> pod B across the overlay,
//!   node A -> node B between their VTEP addresses on `vxlan.1`, and node A
//!   -> node B over a hand-built kernel VXLAN device between the same two
//!   namespaces (same port and MTU, VNI 2 beside overlayd's VNI 1, static
//!   FDB and neighbour entries, learning off), and pod A -> pod B behind it
//!   (the same pods, a second veth into a bridge of its own, routed over the
//!   hand-built device). The four alternate, the first rotating; medians are
//!   reported; the target is pod to pod over pod to pod.
//!
//! Every process is killed by PID and every namespace deleted on drop, also
//! on error and on panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_harness::{EtcdServer, Sandbox};
use serde_json::{json, Value};

use crate::chain::Dirs;
use crate::floors::which;
use crate::signals;
use crate::stats::Samples;

const UNDERLAY_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);
const CONFIG: &str = r#"{"network": "10.244.0.0/16", "subnetLen": 24, "vni": 1}"#;
const DEVICE: &str = "vxlan.1";
const METRICS: &str = "127.0.0.1:9464";
const HIST: &str = "overlayd_event_to_programmed_seconds_bucket";

/// What a run measures (full or `--quick`).
#[derive(Debug, Clone)]
pub struct Params {
    pub sizes: Vec<usize>,
    pub ttl: u32,
    pub reconcile: u32,
    /// Keep-alives are counted over this window.
    pub window: Duration,
    pub iperf_seconds: u32,
    pub reps: usize,
}

impl Params {
    pub fn new(quick: bool) -> Params {
        if quick {
            Params {
                sizes: vec![3],
                ttl: 6,
                reconcile: 30,
                window: Duration::from_secs(5),
                iperf_seconds: 1,
                reps: 1,
            }
        } else {
            Params {
                sizes: vec![10, 20, 50],
                ttl: 30,
                reconcile: 30,
                window: Duration::from_secs(20),
                iperf_seconds: 5,
                reps: 3,
            }
        }
    }
}

/// A histogram's quantiles (ms) and how many observations it holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantiles {
    pub count: f64,
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Default)]
pub struct SizeData {
    pub nodes: usize,
    /// First overlayd started to every node holding N-1 routes.
    pub formation_ms: f64,
    /// Everything the nodes observed during formation.
    pub formation: Quantiles,
    /// Everything observed during the whole run of this size (formation,
    /// the join, reconcile ticks).
    pub all: Quantiles,
    /// The join's events at the N existing nodes.
    pub join: Quantiles,
    /// Late node started to every other node holding its route: max, median.
    pub join_wall_ms: f64,
    pub join_wall_p50_ms: f64,
    /// Late node started to it holding N routes itself.
    pub join_own_ms: f64,
    pub join_watch_events: f64,
    pub join_kernel_changes: f64,
    /// Kernel changes at one existing node for the join (median).
    pub join_kernel_changes_per_node: f64,
    pub keepalives_per_s_nodes: f64,
    pub keepalives_per_s_etcd: Option<f64>,
    pub window_s: f64,
    /// Per node (median over the N nodes before the join): routes,
    /// neighbours, FDB entries on vxlan.1.
    pub routes: f64,
    pub neighbours: f64,
    pub fdb: f64,
    pub rss_kb: Samples,
    /// etcd's RSS at the end of this size's run.
    pub etcd_rss_kb: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub mtu: u32,
    pub seconds: u32,
    /// Gbit/s per run.
    pub overlay_pods: Samples,
    pub overlay_nodes: Samples,
    pub hand_built: Samples,
    /// Pod to pod behind the hand-built VXLAN (same pods, a second veth).
    pub hand_built_pods: Samples,
}

impl Throughput {
    /// Pod to pod across the overlay / pod to pod behind the hand-built
    /// VXLAN (medians).
    pub fn ratio(&self) -> Option<f64> {
        crate::stats::ratio(
            self.overlay_pods.summary().p50,
            self.hand_built_pods.summary().p50,
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct OverlayData {
    pub params: Option<Params>,
    pub sizes: Vec<SizeData>,
    pub throughput: Option<Throughput>,
    pub seconds: f64,
}

impl OverlayData {
    /// The largest cluster measured.
    pub fn largest(&self) -> Option<&SizeData> {
        self.sizes.iter().max_by_key(|s| s.nodes)
    }
}

/// Why the scenario cannot run here, if it cannot.
pub fn missing(dirs: &Dirs) -> Option<String> {
    for b in ["overlayd", "vxlan", "bridge", "host-local"] {
        let p = dirs.ours.join(b);
        if !p.is_file() {
            return Some(format!(
                "{} is not built (cargo build --release -p overlayd -p vxlan)",
                p.display()
            ));
        }
    }
    if which("etcd").is_none() {
        return Some("`etcd` is not installed (Debian package etcd-server)".into());
    }
    if which("iperf3").is_none() {
        return Some("`iperf3` is not installed (Debian package iperf3)".into());
    }
    if which("bridge").is_none() {
        return Some("`bridge` is not installed (Debian package iproute2)".into());
    }
    None
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f` on a thread that joined the network namespace at `path`.
fn in_ns<T: Send>(path: &Path, f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a plain syscall on an fd we own, on this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "setns {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            f()
        })
        .join()
        .map_err(panic_text)?
    })
}

/// `ip`/`bridge` with `-n ns`; stdout when it succeeds.
fn tool(program: &str, ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} -n {ns} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<String, String> {
    tool("ip", ns, args)
}

fn lines(s: &str) -> usize {
    s.lines().filter(|l| !l.trim().is_empty()).count()
}

/// A child killed by PID (SIGKILL) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` spawned so that it dies with the bench (PR_SET_PDEATHSIG).
fn spawn(mut cmd: Command, log: Option<File>) -> Result<Proc, String> {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    match log {
        Some(f) => cmd.stderr(f),
        None => cmd.stderr(Stdio::null()),
    };
    cmd.spawn()
        .map(Proc)
        .map_err(|e| format!("start {:?}: {e}", cmd.get_program()))
}

struct Node {
    name: String,
    ip: Ipv4Addr,
    daemon: Option<Proc>,
    sandbox: Sandbox,
}

impl Node {
    fn ns(&self) -> &str {
        self.sandbox.host().name()
    }

    fn path(&self) -> PathBuf {
        self.sandbox.host().path()
    }

    fn routes(&self) -> usize {
        ip(self.ns(), &["route", "show", "dev", DEVICE])
            .map(|s| lines(&s))
            .unwrap_or(0)
    }
}

/// The underlay, etcd and the nodes. Drop order: daemons, node namespaces,
/// etcd, the underlay, the directory.
struct Cluster {
    nodes: Vec<Node>,
    etcd: Option<EtcdServer>,
    underlay: Option<Sandbox>,
    dir: PathBuf,
    overlayd: PathBuf,
    ttl: u32,
    reconcile: u32,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.daemon.take();
        }
        self.nodes.clear();
        self.etcd.take();
        self.underlay.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn new(dirs: &Dirs, p: &Params) -> Result<Cluster, String> {
        // The harness panics when `ip` fails or etcd does not come up.
        let (underlay, etcd) = std::panic::catch_unwind(|| {
            let underlay = Sandbox::new("benchovl");
            let ul = underlay.host();
            ul.ip(&["link", "add", "ul0", "type", "bridge"]);
            ul.ip(&["addr", "add", &format!("{UNDERLAY_GW}/24"), "dev", "ul0"]);
            ul.ip(&["link", "set", "ul0", "up"]);
            let etcd = EtcdServer::start_in(&ul.path(), UNDERLAY_GW);
            (underlay, etcd)
        })
        .map_err(|p| format!("underlay / etcd: {}", panic_text(p)))?;
        // `cnit-bench...-<pid>-...`: a killed run's directory is removed by the
        // next run (cli::cleanup_stale).
        let dir = std::env::temp_dir().join(underlay.host().name());
        let c = Cluster {
            nodes: Vec::new(),
            etcd: Some(etcd),
            underlay: Some(underlay),
            dir,
            overlayd: dirs.ours.join("overlayd"),
            ttl: p.ttl,
            reconcile: p.reconcile,
        };
        std::fs::create_dir_all(&c.dir).map_err(|e| format!("{}: {e}", c.dir.display()))?;
        let endpoint = c.endpoint()?;
        in_ns(&c.underlay()?.host().path(), move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            rt.block_on(async {
                let mut e = etcd_client::Client::connect([endpoint], None)
                    .await
                    .map_err(|e| format!("connect to etcd: {e}"))?;
                e.put("/overlay/config", CONFIG, None)
                    .await
                    .map_err(|e| format!("put the config: {e}"))
                    .map(|_| ())
            })
        })?;
        Ok(c)
    }

    fn underlay(&self) -> Result<&Sandbox, String> {
        self.underlay.as_ref().ok_or_else(|| "no underlay".into())
    }

    fn endpoint(&self) -> Result<String, String> {
        self.etcd
            .as_ref()
            .and_then(|e| e.endpoints().into_iter().next())
            .ok_or_else(|| "etcd has no endpoint".into())
    }

    /// A node namespace on the underlay, not started.
    fn add_node(&mut self) -> Result<usize, String> {
        let i = self.nodes.len();
        let host = u8::try_from(10 + i).map_err(|_| "too many nodes for a /24".to_string())?;
        let addr = Ipv4Addr::new(192, 168, 100, host);
        let ul = self.underlay()?.host().name().to_string();
        let sandbox = std::panic::catch_unwind(|| Sandbox::new("benchovn"))
            .map_err(|p| format!("node namespace: {}", panic_text(p)))?;
        let ns = sandbox.host().name().to_string();
        let port = format!("ul-n{i}");
        // Pushed first: the namespace goes on drop even if wiring fails.
        self.nodes.push(Node {
            name: format!("node-{i:02}"),
            ip: addr,
            daemon: None,
            sandbox,
        });
        ip(
            &ul,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        ip(&ul, &["link", "set", &port, "master", "ul0", "up"])?;
        ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ip(&ns, &["link", "set", "eth0", "up"])?;
        ip(
            &ns,
            &["route", "add", "default", "via", &UNDERLAY_GW.to_string()],
        )?;
        Ok(i)
    }

    fn subnet_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node-{i}/subnet.json"))
    }

    fn start(&mut self, i: usize) -> Result<(), String> {
        let log = File::create(self.dir.join(format!("node-{i}.log")))
            .map_err(|e| format!("log file: {e}"))?;
        let endpoint = self.endpoint()?;
        let (file, ttl, rec) = (self.subnet_file(i), self.ttl, self.reconcile);
        let n = &mut self.nodes[i];
        let mut cmd = n.sandbox.host().command(&self.overlayd);
        cmd.args(["--etcd-endpoints", &endpoint, "--node-name", &n.name])
            .args(["--public-ip", &n.ip.to_string()])
            .arg("--subnet-file")
            .arg(&file)
            .args(["--lease-ttl", &ttl.to_string()])
            .args(["--reconcile-interval", &rec.to_string()])
            .args(["--metrics-addr", METRICS, "--log-level", "warn"]);
        n.daemon = Some(spawn(cmd, Some(log))?);
        Ok(())
    }

    fn log_tail(&self, i: usize) -> String {
        let t = std::fs::read_to_string(self.dir.join(format!("node-{i}.log"))).unwrap_or_default();
        let v: Vec<&str> = t.lines().collect();
        v[v.len().saturating_sub(10)..].join("\n")
    }

    /// Waits until nodes `0..n` hold `n - 1` routes each.
    fn wait_mesh(&self, n: usize, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        let mut pending: Vec<usize> = (0..n).collect();
        loop {
            signals::check()?;
            pending.retain(|&i| self.nodes[i].routes() < n - 1);
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= end {
                let i = pending[0];
                return Err(format!(
                    "{} of {n} nodes lack routes after {limit:?} (node-{i:02} has {}); its log:\n{}",
                    pending.len(),
                    self.nodes[i].routes(),
                    self.log_tail(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn subnet(&self, i: usize, limit: Duration) -> Result<Value, String> {
        let end = Instant::now() + limit;
        loop {
            if let Some(v) = std::fs::read(self.subnet_file(i))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            {
                return Ok(v);
            }
            if Instant::now() >= end {
                return Err(format!(
                    "node-{i:02} wrote no subnet file; log:\n{}",
                    self.log_tail(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn scrape(&self, i: usize) -> Result<Scrape, String> {
        let text = in_ns(&self.nodes[i].path(), || http_get(METRICS, "/metrics"))?;
        Ok(Scrape::parse(&text))
    }

    fn scrape_all(&self, n: usize) -> Result<Vec<Scrape>, String> {
        (0..n).map(|i| self.scrape(i)).collect()
    }

    fn etcd_metrics(&self) -> Option<Scrape> {
        let endpoint = self.endpoint().ok()?;
        let addr = endpoint.trim_start_matches("http://").to_string();
        let path = self.underlay.as_ref()?.host().path();
        in_ns(&path, || http_get(&addr, "/metrics"))
            .ok()
            .map(|t| Scrape::parse(&t))
    }
}

fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read {addr}{path}: {e}"))?;
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => Ok(body.to_string()),
        _ => Err(format!(
            "GET {addr}{path}: {}",
            out.lines().next().unwrap_or("")
        )),
    }
}

/// The samples of one Prometheus text exposition.
#[derive(Debug, Clone, Default)]
struct Scrape {
    /// `name{labels}` -> value.
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for l in text.lines() {
            if l.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = l.rsplit_once(' ') {
                if let Ok(v) = v.trim().parse::<f64>() {
                    samples.insert(k.trim().to_string(), v);
                }
            }
        }
        Scrape { samples }
    }

    fn get(&self, name: &str) -> f64 {
        self.samples.get(name).copied().unwrap_or(0.0)
    }

    /// The sum of every sample of `name` whose labels contain `label`.
    fn sum(&self, name: &str, label: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| {
                k.split('{').next() == Some(name) && (label.is_empty() || k.contains(label))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The histogram's cumulative buckets: (upper bound in s, count).
    fn buckets(&self) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(k, &c)| {
                let rest = k.strip_prefix(HIST)?;
                let le = rest.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, c))
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }
}

/// Sums cumulative buckets of `after` minus `before` (same layout).
fn merge(after: &[Scrape], before: Option<&[Scrape]>) -> Vec<(f64, f64)> {
    let mut acc: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (i, s) in after.iter().enumerate() {
        let prev = before.and_then(|b| b.get(i)).map(|b| b.buckets());
        for (j, (le, c)) in s.buckets().into_iter().enumerate() {
            let base = prev
                .as_ref()
                .and_then(|p| p.get(j))
                .map(|x| x.1)
                .unwrap_or(0.0);
            let e = acc.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += c - base;
        }
    }
    let mut v: Vec<(f64, f64)> = acc.into_values().collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Prometheus' histogram_quantile: linear inside the bucket holding the rank.
fn quantile(b: &[(f64, f64)], q: f64) -> f64 {
    let total = b.last().map(|x| x.1).unwrap_or(0.0);
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let (mut lo, mut lo_c) = (0.0, 0.0);
    for &(le, c) in b {
        if c >= rank {
            if le.is_infinite() {
                return lo;
            }
            if c <= lo_c {
                return le;
            }
            return lo + (le - lo) * (rank - lo_c) / (c - lo_c);
        }
        (lo, lo_c) = (le, c);
    }
    lo
}

fn quantiles(b: &[(f64, f64)]) -> Quantiles {
    Quantiles {
        count: b.last().map(|x| x.1).unwrap_or(0.0),
        p50: quantile(b, 0.5) * 1000.0,
        p99: quantile(b, 0.99) * 1000.0,
    }
}

fn total(s: &[Scrape], name: &str) -> f64 {
    s.iter().map(|x| x.get(name)).sum()
}

fn rss_kb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

/// RTM_NEWROUTE notifications seen: (when, dst, dst_len).
type Seen = Vec<(Instant, Ipv4Addr, u8)>;

/// Listens for RTM_NEWROUTE in one namespace.
struct RouteWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<Seen, String>>>,
}

impl RouteWatch {
    fn start(ns: PathBuf) -> Result<RouteWatch, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let r = route_listener(&ns, &flag, &tx);
            if let Err(e) = &r {
                let _ = tx.send(Err(e.clone()));
            }
            r
        });
        let w = RouteWatch {
            stop,
            thread: Some(thread),
        };
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| "route listener did not start".to_string())??;
        Ok(w)
    }

    fn finish(mut self) -> Result<Seen, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err("route listener panicked".into()),
        }
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Ready = std::sync::mpsc::Sender<Result<(), String>>;

fn route_listener(ns: &Path, stop: &AtomicBool, ready: &Ready) -> Result<Seen, String> {
    let file = File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
    let os = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: plain syscalls on this thread and on an fd it owns; the buffers
    // passed are valid for their stated lengths.
    unsafe {
        if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(os("setns"));
        }
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(os("netlink socket"));
        }
        let _guard = FdGuard(fd);
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = libc::RTMGRP_IPV4_ROUTE as u32;
        if libc::bind(
            fd,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        ) != 0
        {
            return Err(os("netlink bind"));
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let _ = ready.send(Ok(()));
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::SeqCst) {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                continue;
            }
            let now = Instant::now();
            out.extend(
                parse_new_routes(&buf[..n as usize])
                    .into_iter()
                    .map(|(d, l)| (now, d, l)),
            );
        }
        Ok(out)
    }
}

struct FdGuard(libc::c_int);

impl Drop for FdGuard {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The IPv4 destinations of the RTM_NEWROUTE messages in `buf`.
fn parse_new_routes(buf: &[u8]) -> Vec<(Ipv4Addr, u8)> {
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_ne_bytes(buf.get(o..o + 2)?.try_into().ok()?)) };
    let mut out = Vec::new();
    let mut o = 0;
    while o + 16 <= buf.len() {
        let Some(len) = buf
            .get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b| u32::from_ne_bytes(b) as usize)
        else {
            break;
        };
        if len < 16 || o + len > buf.len() {
            break;
        }
        if u16_at(o + 4) == Some(libc::RTM_NEWROUTE) && len >= 28 {
            let (family, dst_len) = (buf[o + 16], buf[o + 17]);
            let mut a = o + 28;
            while a + 4 <= o + len {
                let (Some(alen), Some(atype)) = (u16_at(a), u16_at(a + 2)) else {
                    break;
                };
                let alen = alen as usize;
                if alen < 4 {
                    break;
                }
                if atype == libc::RTA_DST && alen >= 8 && family == libc::AF_INET as u8 {
                    out.push((
                        Ipv4Addr::new(buf[a + 4], buf[a + 5], buf[a + 6], buf[a + 7]),
                        dst_len,
                    ));
                }
                a += (alen + 3) & !3;
            }
        }
        o += (len + 3) & !3;
    }
    out
}

fn entries(ns: &str) -> (f64, f64, f64) {
    let routes = ip(ns, &["route", "show", "dev", DEVICE]).map(|s| lines(&s));
    let neigh = ip(ns, &["neigh", "show", "dev", DEVICE]).map(|s| lines(&s));
    let fdb = tool("bridge", ns, &["fdb", "show", "dev", DEVICE])
        .map(|s| s.lines().filter(|l| l.contains(" dst ")).count());
    (
        routes.unwrap_or(0) as f64,
        neigh.unwrap_or(0) as f64,
        fdb.unwrap_or(0) as f64,
    )
}

fn measure_size(
    n: usize,
    p: &Params,
    dirs: &Dirs,
    progress: &dyn Fn(&str),
) -> Result<SizeData, String> {
    let mut c = Cluster::new(dirs, p)?;
    for _ in 0..=n {
        signals::check()?;
        c.add_node()?;
    }
    progress(&format!("overlay/{n}: {} node namespaces up", n + 1));
    let limit = Duration::from_secs(60 + n as u64);
    let t0 = Instant::now();
    for i in 0..n {
        c.start(i)?;
    }
    c.wait_mesh(n, limit)?;
    let formation_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // The last observations may land a moment after the routes.
    std::thread::sleep(Duration::from_millis(300));
    let formed = c.scrape_all(n)?;
    let formation = quantiles(&merge(&formed, None));
    let mut es = (Vec::new(), Vec::new(), Vec::new());
    for node in &c.nodes[..n] {
        let (r, ne, f) = entries(node.ns());
        es.0.push(r);
        es.1.push(ne);
        es.2.push(f);
    }

    // The join.
    let watches: Vec<RouteWatch> = c.nodes[..n]
        .iter()
        .map(|x| RouteWatch::start(x.path()))
        .collect::<Result<_, _>>()?;
    let before = c.scrape_all(n)?;
    let tj = Instant::now();
    c.start(n)?;
    let sub = c.subnet(n, limit)?;
    let subnet = sub["subnet"].as_str().unwrap_or_default().to_string();
    let (net, len) = subnet
        .split_once('/')
        .and_then(|(a, l)| Some((a.parse::<Ipv4Addr>().ok()?, l.parse::<u8>().ok()?)))
        .ok_or_else(|| format!("node-{n:02}'s subnet file: no subnet: {sub}"))?;
    c.wait_mesh(n + 1, limit)?;
    let join_own_ms = tj.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_millis(300));
    let mut seen = Vec::new();
    for (i, w) in watches.into_iter().enumerate() {
        let ev = w.finish()?;
        let at = ev
            .iter()
            .find(|(_, d, l)| *d == net && *l == len)
            .map(|(t, _, _)| t.saturating_duration_since(tj).as_secs_f64() * 1000.0)
            .ok_or_else(|| format!("node-{i:02}: no RTM_NEWROUTE for {subnet} seen"))?;
        seen.push(at);
    }
    let after = c.scrape_all(n + 1)?;
    let join = quantiles(&merge(&after[..n], Some(&before)));
    let delta = |name: &str| total(&after, name) - total(&before, name);
    let per_node_changes: Vec<f64> = (0..n)
        .map(|i| {
            after[i].get("overlayd_kernel_changes_total")
                - before[i].get("overlayd_kernel_changes_total")
        })
        .collect();

    // Steady state: keep-alives over a window.
    let keepalive = |s: &Scrape| s.sum("grpc_server_msg_received_total", "LeaseKeepAlive");
    let etcd_a = c.etcd_metrics();
    let ka = after.clone();
    let tw = Instant::now();
    let end = tw + p.window;
    while Instant::now() < end {
        signals::check()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = c.scrape_all(n + 1)?;
    let etcd_b = c.etcd_metrics();
    let window_s = tw.elapsed().as_secs_f64();
    let renewals =
        total(&last, "overlayd_lease_renewals_total") - total(&ka, "overlayd_lease_renewals_total");
    let keepalives_per_s_etcd = match (&etcd_a, &etcd_b) {
        (Some(a), Some(b)) if keepalive(b) > 0.0 => Some((keepalive(b) - keepalive(a)) / window_s),
        _ => None,
    };
    let mut rss = Samples::default();
    for node in &c.nodes {
        if let Some(kb) = node.daemon.as_ref().and_then(|d| rss_kb(d.0.id())) {
            rss.push(kb);
        }
    }
    let etcd_rss_kb = c.etcd.as_ref().and_then(|e| rss_kb(e.pid()));
    Ok(SizeData {
        nodes: n,
        formation_ms,
        formation,
        all: quantiles(&merge(&last, None)),
        join,
        join_wall_ms: seen.iter().copied().fold(0.0, f64::max),
        join_wall_p50_ms: median(seen),
        join_own_ms,
        join_watch_events: delta("overlayd_watch_events_total"),
        join_kernel_changes: delta("overlayd_kernel_changes_total"),
        join_kernel_changes_per_node: median(per_node_changes),
        keepalives_per_s_nodes: renewals / window_s,
        keepalives_per_s_etcd,
        window_s,
        routes: median(es.0),
        neighbours: median(es.1),
        fdb: median(es.2),
        rss_kb: rss,
        etcd_rss_kb,
    })
}

/// iperf3 -c `to` from `ns` for `secs`: Gbit/s received.
fn iperf(ns: &Path, to: &str, secs: u32) -> Result<f64, String> {
    let mut last = String::new();
    for _ in 0..20 {
        signals::check()?;
        let file = File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
        let mut cmd = Command::new("iperf3");
        // SAFETY: setns is async-signal-safe.
        unsafe {
            let fd = file.as_raw_fd();
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd
            .args(["-c", to, "-t", &secs.to_string(), "-J"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("iperf3 (Debian package iperf3): {e}"))?;
        drop(file);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            if out.status.success() && bps > 0.0 {
                return Ok(bps / 1e9);
            }
        }
        last = v["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned());
        // The server may not listen yet.
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("iperf3 -c {to}: {last}"))
}

fn vxlan_plugin(c: &Cluster, dirs: &Dirs, node: usize, pod: &Path) -> Result<Ipv4Addr, String> {
    let conf = json!({
        "cniVersion": "1.1.0", "name": "benchovl", "type": "vxlan",
        "subnetFile": c.subnet_file(node),
        "ipam": {"type": "host-local", "dataDir": c.dir.join(format!("ipam-{node}"))},
    });
    let mut cmd = c.nodes[node]
        .sandbox
        .host()
        .command(dirs.ours.join("vxlan"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", format!("benchovl-{node}"))
        .env("CNI_NETNS", pod)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &dirs.ours)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("start vxlan: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(conf.to_string().as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("vxlan: {e}"))?;
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        return Err(format!(
            "vxlan ADD on node-{node:02}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    r["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("vxlan ADD on node-{node:02}: no address in {r}"))
}

fn link_json(ns: &str, dev: &str) -> Result<Value, String> {
    let out = ip(ns, &["-j", "link", "show", dev])?;
    let v: Value = serde_json::from_str(&out).map_err(|e| format!("ip -j link: {e}"))?;
    Ok(v[0].clone())
}

fn measure_throughput(
    p: &Params,
    dirs: &Dirs,
    progress: &dyn Fn(&str),
) -> Result<Throughput, String> {
    let mut c = Cluster::new(dirs, p)?;
    for i in 0..2 {
        c.add_node()?;
        c.start(i)?;
    }
    c.wait_mesh(2, Duration::from_secs(60))?;
    let subnets = [
        c.subnet(0, Duration::from_secs(10))?,
        c.subnet(1, Duration::from_secs(10))?,
    ];
    let vtep = |s: &Value| -> Result<String, String> {
        s["subnet"]
            .as_str()
            .and_then(|x| x.split('/').next())
            .map(String::from)
            .ok_or_else(|| format!("no subnet in {s}"))
    };
    let vtep_b = vtep(&subnets[1])?;
    let mtu = link_json(c.nodes[0].ns(), DEVICE)?["mtu"]
        .as_u64()
        .ok_or("vxlan.1 has no MTU")? as u32;
    let port = link_json(c.nodes[0].ns(), DEVICE)
        .ok()
        .and_then(|v| v["linkinfo"]["info_data"]["port"].as_u64())
        .unwrap_or(8472)
        .to_string();
    // Pods by the vxlan plugin.
    let mut pods = Vec::new();
    for i in 0..2 {
        let path = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.nodes[i].sandbox.add_container().path()
        }))
        .map_err(|p| format!("pod namespace: {}", panic_text(p)))?;
        let addr = vxlan_plugin(&c, dirs, i, &path)?;
        pods.push((path, addr));
    }
    // The hand-built VXLAN between the same two namespaces.
    let hb = |i: usize| Ipv4Addr::new(10, 250, 0, 1 + i as u8);
    for i in 0..2 {
        let ns = c.nodes[i].ns().to_string();
        ip(
            &ns,
            &[
                "link",
                "add",
                "vxhb",
                "type",
                "vxlan",
                "id",
                "2",
                "dstport",
                &port,
                "local",
                &c.nodes[i].ip.to_string(),
                "dev",
                "eth0",
                "nolearning",
            ],
        )?;
        ip(&ns, &["link", "set", "vxhb", "mtu", &mtu.to_string(), "up"])?;
        ip(
            &ns,
            &["addr", "add", &format!("{}/24", hb(i)), "dev", "vxhb"],
        )?;
    }
    for i in 0..2 {
        let (me, peer) = (c.nodes[i].ns().to_string(), 1 - i);
        let mac = link_json(c.nodes[peer].ns(), "vxhb")?["address"]
            .as_str()
            .ok_or("vxhb has no MAC")?
            .to_string();
        ip(
            &me,
            &[
                "neigh",
                "add",
                &hb(peer).to_string(),
                "lladdr",
                &mac,
                "dev",
                "vxhb",
                "nud",
                "permanent",
            ],
        )?;
        tool(
            "bridge",
            &me,
            &[
                "fdb",
                "add",
                &mac,
                "dev",
                "vxhb",
                "dst",
                &c.nodes[peer].ip.to_string(),
                "self",
                "permanent",
            ],
        )?;
    }
    // The same pods behind the hand-built VXLAN, wired as the plugin wires
    // them: a veth into a bridge holding the gateway (MTU the same), the
    // node routing the peer's pods via the peer's address on vxhb.
    let hb_pod = |i: usize| Ipv4Addr::new(10, 251, i as u8, 2);
    for (i, (pod_path, _)) in pods.iter().enumerate() {
        let ns = c.nodes[i].ns().to_string();
        let pod = pod_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or("pod namespace without a name")?;
        let (m, gw) = (mtu.to_string(), format!("10.251.{i}.1"));
        ip(&ns, &["link", "add", "hbr0", "type", "bridge"])?;
        ip(&ns, &["addr", "add", &format!("{gw}/24"), "dev", "hbr0"])?;
        ip(
            &ns,
            &[
                "link", "add", "hbv0", "type", "veth", "peer", "name", "eth1", "netns", &pod,
            ],
        )?;
        ip(
            &ns,
            &["link", "set", "hbv0", "mtu", &m, "master", "hbr0", "up"],
        )?;
        ip(&ns, &["link", "set", "hbr0", "mtu", &m, "up"])?;
        ip(&pod, &["link", "set", "eth1", "mtu", &m, "up"])?;
        ip(
            &pod,
            &["addr", "add", &format!("{}/24", hb_pod(i)), "dev", "eth1"],
        )?;
        ip(
            &pod,
            &["route", "add", "10.251.0.0/16", "via", &gw, "dev", "eth1"],
        )?;
        let peer = 1 - i;
        ip(
            &ns,
            &[
                "route",
                "add",
                &format!("10.251.{peer}.0/24"),
                "via",
                &hb(peer).to_string(),
                "dev",
                "vxhb",
            ],
        )?;
    }
    // Servers: in pod B (both its addresses), and in node B (VTEP and
    // hand-built addresses).
    let mut servers = Vec::new();
    for ns in [pods[1].0.clone(), c.nodes[1].path()] {
        let file = File::open(&ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
        let mut cmd = Command::new("iperf3");
        // SAFETY: setns is async-signal-safe.
        unsafe {
            let fd = file.as_raw_fd();
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.arg("-s");
        servers.push(spawn(cmd, None)?);
        drop(file);
    }
    progress(&format!(
        "overlay/throughput: MTU {mtu}, {} x {} s per path",
        p.reps, p.iperf_seconds
    ));
    let mut t = Throughput {
        mtu,
        seconds: p.iperf_seconds,
        ..Throughput::default()
    };
    let node_a = c.nodes[0].path();
    for rep in 0..p.reps {
        for k in 0..4 {
            match (k + rep) % 4 {
                0 => {
                    t.overlay_pods
                        .push(iperf(&pods[0].0, &pods[1].1.to_string(), p.iperf_seconds)?)
                }
                1 => t
                    .overlay_nodes
                    .push(iperf(&node_a, &vtep_b, p.iperf_seconds)?),
                2 => t
                    .hand_built
                    .push(iperf(&node_a, &hb(1).to_string(), p.iperf_seconds)?),
                _ => t.hand_built_pods.push(iperf(
                    &pods[0].0,
                    &hb_pod(1).to_string(),
                    p.iperf_seconds,
                )?),
            }
        }
    }
    drop(servers);
    Ok(t)
}

pub fn run(quick: bool, dirs: &Dirs, progress: &dyn Fn(&str)) -> Result<OverlayData, String> {
    let started = Instant::now();
    let p = Params::new(quick);
    let mut d = OverlayData {
        params: Some(p.clone()),
        ..OverlayData::default()
    };
    // The harness panics on a failing `ip`; everything is dropped while
    // unwinding, so the panic becomes this scenario's error.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), String> {
        for &n in &p.sizes {
            progress(&format!("overlay/{n}: {n} nodes and a join"));
            let s = measure_size(n, &p, dirs, progress)?;
            progress(&format!(
                "overlay/{n}: formed in {:.0} ms, event-to-programmed p99 {:.1} ms, join {:.0} ms",
                s.formation_ms, s.all.p99, s.join_wall_ms
            ));
            d.sizes.push(s);
        }
        let t = measure_throughput(&p, dirs, progress)?;
        progress(&format!(
            "overlay/throughput: pods {:.2} Gbit/s, hand-built {:.2} Gbit/s",
            t.overlay_pods.summary().p50,
            t.hand_built_pods.summary().p50
        ));
        d.throughput = Some(t);
        Ok(())
    }));
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(p) => return Err(panic_text(p)),
    }
    d.seconds = started.elapsed().as_secs_f64();
    Ok(d)
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn q_json(q: &Quantiles) -> Value {
    json!({"observations": q.count, "p50_ms": r3(q.p50), "p99_ms": r3(q.p99)})
}

pub fn json(d: &OverlayData) -> Value {
    let sizes: Vec<Value> = d
        .sizes
        .iter()
        .map(|s| {
            let n = s.nodes as f64;
            json!({
                "nodes": s.nodes,
                "formation_ms": r3(s.formation_ms),
                "event_to_programmed": {
                    "formation": q_json(&s.formation),
                    "join": q_json(&s.join),
                    "all": q_json(&s.all),
                },
                "join": {
                    "wall_ms_all_programmed": r3(s.join_wall_ms),
                    "wall_ms_p50_node": r3(s.join_wall_p50_ms),
                    "new_node_full_mesh_ms": r3(s.join_own_ms),
                    "watch_events_total": s.join_watch_events,
                    "watch_events_per_existing_node": r3(s.join_watch_events / n),
                    "kernel_changes_total": s.join_kernel_changes,
                    "kernel_changes_per_existing_node": s.join_kernel_changes_per_node,
                },
                "keepalives_per_s": {
                    "nodes": r3(s.keepalives_per_s_nodes),
                    "etcd": s.keepalives_per_s_etcd.map(r3),
                    "window_s": r3(s.window_s),
                },
                "kernel_entries_per_node": {
                    "routes": s.routes,
                    "neighbours": s.neighbours,
                    "fdb": s.fdb,
                    "total": s.routes + s.neighbours + s.fdb,
                },
                "overlayd_rss_kb": s.rss_kb.summary().json(),
                "etcd_rss_kb": s.etcd_rss_kb,
            })
        })
        .collect();
    let throughput = d.throughput.as_ref().map(|t| {
        json!({
            "mtu": t.mtu,
            "seconds_per_run": t.seconds,
            "overlay_pod_to_pod_gbit_s": t.overlay_pods.summary().json(),
            "overlay_node_to_node_gbit_s": t.overlay_nodes.summary().json(),
            "hand_built_node_to_node_gbit_s": t.hand_built.summary().json(),
            "hand_built_pod_to_pod_gbit_s": t.hand_built_pods.summary().json(),
            "ratio_pods_over_hand_built": t.ratio().map(r3),
            "ratio_nodes_over_hand_built": crate::stats::ratio(
                t.overlay_nodes.summary().p50, t.hand_built.summary().p50).map(r3),
        })
    });
    json!({
        "seconds": r3(d.seconds),
        "lease_ttl_s": d.params.as_ref().map(|p| p.ttl),
        "reconcile_interval_s": d.params.as_ref().map(|p| p.reconcile),
        "sizes": sizes,
        "throughput": throughput,
    })
}

pub fn table(d: &OverlayData, t: &mut String, num: fn(f64) -> String) {
    use std::fmt::Write as _;
    let ttl = d.params.as_ref().map(|p| p.ttl).unwrap_or(0);
    let _ = writeln!(
        t,
        "overlay: overlayd on a simulated cluster (lease TTL {ttl} s); event-to-programmed in ms (histogram, interpolated)"
    );
    let _ = writeln!(
        t,
        "{:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>6}",
        "nodes",
        "formed ms",
        "e2p p50",
        "e2p p99",
        "join p99",
        "join ms",
        "ev/join",
        "chg/j",
        "ka/s",
        "kernel",
        "RSS KiB"
    );
    for s in &d.sizes {
        let _ = writeln!(
            t,
            "{:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>6.0}",
            s.nodes,
            num(s.formation_ms),
            num(s.all.p50),
            num(s.all.p99),
            num(s.join.p99),
            num(s.join_wall_ms),
            s.join_watch_events,
            s.join_kernel_changes,
            num(s.keepalives_per_s_etcd.unwrap_or(s.keepalives_per_s_nodes)),
            s.routes + s.neighbours + s.fdb,
            s.rss_kb.summary().p50
        );
    }
    if let Some(x) = &d.throughput {
        let _ = writeln!(
            t,
            "TCP throughput, Gbit/s (iperf3, {} s per run, MTU {}; median of {})",
            x.seconds,
            x.mtu,
            x.overlay_pods.0.len()
        );
        for (name, s) in [
            ("pod to pod across the overlay", &x.overlay_pods),
            ("node to node, overlay VTEPs", &x.overlay_nodes),
            ("node to node, hand-built VXLAN", &x.hand_built),
            ("pod to pod, hand-built VXLAN", &x.hand_built_pods),
        ] {
            let _ = writeln!(t, "  {:<32} {:>7.2}", name, s.summary().p50);
        }
        let _ = writeln!(
            t,
            "  {:<32} {:>7}",
            "ratio pods / hand-built",
            x.ratio().map(|r| format!("{r:.2}")).unwrap_or("-".into())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_like_prometheus() {
        let text = "# HELP x\n\
            overlayd_event_to_programmed_seconds_bucket{le=\"0.001\"} 50\n\
            overlayd_event_to_programmed_seconds_bucket{le=\"0.002\"} 90\n\
            overlayd_event_to_programmed_seconds_bucket{le=\"0.004\"} 100\n\
            overlayd_event_to_programmed_seconds_bucket{le=\"+Inf\"} 100\n\
            overlayd_watch_events_total 7\n";
        let s = Scrape::parse(text);
        assert_eq!(s.get("overlayd_watch_events_total"), 7.0);
        let b = merge(&[s.clone(), s.clone()], None);
        assert_eq!(b.last().map(|x| x.1), Some(200.0));
        let q = quantiles(&b);
        assert!((q.p50 - 1.0).abs() < 1e-9, "{q:?}");
        // rank 99 of 100 per node: in (0.002, 0.004], 9/10 of the way.
        assert!((q.p99 - 3.8).abs() < 1e-9, "{q:?}");
        // A delta against itself is empty.
        let d = merge(std::slice::from_ref(&s), Some(std::slice::from_ref(&s)));
        assert_eq!(quantiles(&d).count, 0.0);
    }

    #[test]
    fn new_route_messages_parsed() {
        // nlmsghdr(16) + rtmsg(12) + RTA_DST(8) + RTA_OIF(8)
        let mut m = Vec::new();
        m.extend_from_slice(&44u32.to_ne_bytes());
        m.extend_from_slice(&libc::RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[libc::AF_INET as u8, 24, 0, 0, 254, 4, 0, 1, 0, 0, 0, 0]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&libc::RTA_DST.to_ne_bytes());
        m.extend_from_slice(&[10, 244, 7, 0]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&4u16.to_ne_bytes());
        m.extend_from_slice(&3u32.to_ne_bytes());
        let mut del = m.clone();
        del[4..6].copy_from_slice(&libc::RTM_DELROUTE.to_ne_bytes());
        m.extend_from_slice(&del);
        assert_eq!(
            parse_new_routes(&m),
            vec![(Ipv4Addr::new(10, 244, 7, 0), 24)]
        );
        assert!(parse_new_routes(&m[..20]).is_empty());
    }

    #[test]
    fn etcd_counter_sums_by_label() {
        let s = Scrape::parse(
            "grpc_server_msg_received_total{grpc_method=\"LeaseKeepAlive\",grpc_service=\"etcdserverpb.Lease\"} 12\n\
             grpc_server_msg_received_total{grpc_method=\"Range\"} 5\n",
        );
        assert_eq!(
            s.sum("grpc_server_msg_received_total", "LeaseKeepAlive"),
            12.0
        );
        assert_eq!(s.sum("grpc_server_msg_received_total", ""), 17.0);
    }
}
