//! etcd-ipam: allocations per second and ADD / DEL latency with 1, 10 and 50
//! concurrent clients against a real etcd (one member, and a 3-member
//! cluster, every member on 127.0.0.1), beside our host-local with the same
//! clients on the same machine, and beside the floor of one etcd transaction,
//! all in one run.
//!
//! - **One process per ADD and DEL**, started like a runtime starts an IPAM
//!   plugin (environment, config on stdin, spawn to reap timed), from a
//!   thread of the bench: in the bench's own network namespace, where etcd
//!   listens on 127.0.0.1 (IPAM runs in the host's namespace; CNI_NETNS is a
//!   throwaway container namespace that IPAM never enters).
//! - **Closed loops.** Each client does `per_client` ADDs back to back, all
//!   clients released together; then all of them DEL what they added, so
//!   the pool is empty again after every round. Client `i` is node
//!   `node-<i mod 10>`: 10 clients are 10 nodes with one client each, 50
//!   clients are the same 10 nodes with 5 clients each (which queue on
//!   their node's lock, as concurrent ADDs on one node do).
//!   allocations/s = the ADDs of a round / the wall time of its ADD phase,
//!   summed over rounds.
//! - **Alternation.** The three stores (1 member, 3 members, host-local)
//!   take turns round by round, the first of each round rotating.
//! - **Steady state.** An untimed warm-up round at the largest client count
//!   claims every block the timed rounds need, so a timed ADD takes the
//!   plugin's steady-state path: a serializable read transaction and the
//!   write transaction. The first ADD on a new node (it claims a block: one
//!   more round trip) is measured apart.
//! - **The floor**, measured in the same run: etcd-ipam answering VERSION
//!   (process start and exit), and, in the bench's process on a
//!   current-thread tokio runtime with etcd-client, connecting the way the
//!   plugin connects plus one transaction that puts a key guarded by a
//!   compare ("one etcd transaction"); on the same connection, one
//!   serializable read transaction like the plugin's first, as a part.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cni_harness::{EtcdCluster, EtcdServer, Sandbox};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp};
use serde_json::{json, Value};

use crate::chain::{ms, Dirs};
use crate::exec::{children_cpu_ms, self_cpu_ms, Outcome, Spawn};
use crate::floors::which;
use crate::scenario::RSS_PASSES;
use crate::signals;
use crate::stats::Samples;

/// Simulated nodes: client `i` is node `i mod NODES`.
pub const NODES: usize = 10;
/// ADDs each client makes per round (at most the iteration count).
pub const PER_CLIENT: usize = 20;
/// A concurrent round makes at least this many ADDs per store (so the wall
/// time of its ADD phase is long beside one ADD's latency: the last client's
/// tail stays a few percent of it).
const ROUND_ADDS: usize = 400;
/// Samples of the first ADD on a new node (each claims a block).
const CLAIMS_MAX: usize = 20;
const NETWORK: &str = "benchetcd";
const SUBNET: &str = "10.80.0.0/16";
/// The plugin's whole budget; generous, so that a queue on a node's lock is
/// measured, never turned into an error.
const TIMEOUT_MS: u64 = 20_000;
/// The in-process probe's limit per request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The value the floor's guarded put writes: about a handle's size.
const PROBE_VALUE: &str = r#"{"node":"node-00","containerID":"bench-floor-000000","ifname":"eth0","ips":[{"address":"10.80.0.2/16","owner":"node-00","block":"10.80.0.0/26"}],"pad":"................................................................................"}"#;

/// Where the addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// etcd-ipam against one etcd member.
    Single,
    /// etcd-ipam against a 3-member cluster.
    Cluster,
    /// Our host-local (one lease directory per simulated node).
    HostLocal,
}

impl Store {
    pub const ALL: [Store; 3] = [Store::Single, Store::Cluster, Store::HostLocal];
    pub const ETCD: [Store; 2] = [Store::Single, Store::Cluster];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Store::Single => "etcd_1_member",
            Store::Cluster => "etcd_3_members",
            Store::HostLocal => "host_local",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Store::Single => "etcd-ipam, 1 member",
            Store::Cluster => "etcd-ipam, 3 members",
            Store::HostLocal => "host-local (ours)",
        }
    }

    /// The order of round `r`: rotates, so each store runs first, second
    /// and third equally often.
    fn order(r: usize) -> [Store; 3] {
        let mut o = Store::ALL;
        o.rotate_left(r % 3);
        o
    }
}

/// One store at one client count.
#[derive(Debug, Clone, Default)]
pub struct StoreRun {
    /// Latency of each ADD / DEL process, ms.
    pub add: Samples,
    pub del: Samples,
    /// Wall time of each round's ADD phase and DEL phase, ms.
    pub add_walls: Samples,
    pub del_walls: Samples,
    /// CPU time of each ADD / DEL process, ms (wait4).
    pub add_cpu: Samples,
    pub del_cpu: Samples,
    /// CPU the etcd members (all of them) and the bench (spawning, reaping)
    /// spent during the ADD phases, ms in total.
    pub etcd_add_cpu: f64,
    pub bench_add_cpu: f64,
    pub etcd_del_cpu: f64,
    pub bench_del_cpu: f64,
}

/// Where the CPU of one allocation goes, ms (means).
#[derive(Debug, Clone, Copy)]
pub struct CpuSplit {
    pub plugin: f64,
    pub etcd: f64,
    pub bench: f64,
}

impl CpuSplit {
    pub fn total(&self) -> f64 {
        self.plugin + self.etcd + self.bench
    }
}

fn per_second(count: usize, walls: &Samples) -> Option<f64> {
    let total_ms: f64 = walls.0.iter().sum();
    (count > 0 && total_ms > 0.0).then(|| count as f64 * 1000.0 / total_ms)
}

impl StoreRun {
    /// ADDs per second over every round's ADD phase.
    pub fn allocations_per_s(&self) -> Option<f64> {
        per_second(self.add.0.len(), &self.add_walls)
    }

    pub fn releases_per_s(&self) -> Option<f64> {
        per_second(self.del.0.len(), &self.del_walls)
    }

    /// CPU per ADD, ms (means over every ADD of every round).
    pub fn add_cpu_split(&self) -> Option<CpuSplit> {
        let n = self.add_cpu.0.len();
        (n > 0).then(|| CpuSplit {
            plugin: self.add_cpu.summary().mean,
            etcd: self.etcd_add_cpu / n as f64,
            bench: self.bench_add_cpu / n as f64,
        })
    }

    pub fn del_cpu_split(&self) -> Option<CpuSplit> {
        let n = self.del_cpu.0.len();
        (n > 0).then(|| CpuSplit {
            plugin: self.del_cpu.summary().mean,
            etcd: self.etcd_del_cpu / n as f64,
            bench: self.bench_del_cpu / n as f64,
        })
    }

    fn record(&mut self, r: &RoundOut) {
        self.add.0.extend_from_slice(&r.add);
        self.del.0.extend_from_slice(&r.del);
        self.add_cpu.0.extend_from_slice(&r.add_cpu);
        self.del_cpu.0.extend_from_slice(&r.del_cpu);
        self.add_walls.push(r.add_wall);
        self.del_walls.push(r.del_wall);
        self.etcd_add_cpu += r.etcd_add_cpu;
        self.etcd_del_cpu += r.etcd_del_cpu;
        self.bench_add_cpu += r.bench_add_cpu;
        self.bench_del_cpu += r.bench_del_cpu;
    }
}

/// One client count.
#[derive(Debug, Clone)]
pub struct Level {
    pub clients: usize,
    pub nodes: usize,
    pub per_client: usize,
    pub rounds: usize,
    /// Indexed like [`Store::ALL`].
    pub runs: [StoreRun; 3],
}

impl Level {
    pub fn id(&self) -> String {
        level_id(self.clients)
    }

    pub fn run(&self, store: Store) -> &StoreRun {
        &self.runs[store as usize]
    }
}

/// `etcd-ipam/seq`, `etcd-ipam/x10`, ...: what `--only` selects.
pub fn level_id(clients: usize) -> String {
    if clients == 1 {
        "etcd-ipam/seq".into()
    } else {
        format!("etcd-ipam/x{clients}")
    }
}

/// The floor and its parts, ms. Per etcd store: index 0 one member, 1 three.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    /// `/bin/true` started like the plugin.
    pub exec_true: Samples,
    /// etcd-ipam answering VERSION: process start and exit.
    pub version: Samples,
    /// In-process: connecting (TCP + HTTP/2 to a member, as the plugin does).
    pub connect: [Samples; 2],
    /// In-process: one transaction putting a key guarded by a compare.
    pub put_txn: [Samples; 2],
    /// connect + put, per sample: "one etcd transaction".
    pub connect_put: [Samples; 2],
    /// In-process, on the same connection: the plugin's first request (a
    /// serializable read of a handle, a node's blocks and the pool).
    pub read_txn: [Samples; 2],
}

impl Floor {
    /// Process start + one etcd transaction (connect and the guarded put):
    /// the sum of their p50s.
    pub fn floor_ms(&self, e: usize) -> Option<f64> {
        let (v, t) = (self.version.summary(), self.connect_put[e].summary());
        (v.n > 0 && t.n > 0).then_some(v.p50 + t.p50)
    }
}

#[derive(Debug, Clone)]
pub struct EtcdIpamData {
    pub levels: Vec<Level>,
    /// The first ADD of a new node (claims a block), per etcd store.
    pub claim_add: [Samples; 2],
    /// Peak RSS of an ADD process (through the launcher), KiB: etcd-ipam
    /// against one member, host-local.
    pub rss_etcd: Samples,
    pub rss_host_local: Samples,
    pub floor: Floor,
    pub seconds: f64,
    /// `/proc/loadavg` (1, 5, 15 min) when the scenario started and ended
    /// (the 50-client rounds raise it themselves).
    pub load_before: String,
    pub load_after: String,
    /// Share of the machine's CPU (all CPUs) busy during the measurements
    /// with the work of other processes (not the bench, its plugins, the
    /// etcd members), and with ours: a disturbed run shows here.
    pub other_cpu_share: Option<f64>,
    pub own_cpu_share: Option<f64>,
}

impl EtcdIpamData {
    pub fn level(&self, clients: usize) -> Option<&Level> {
        self.levels.iter().find(|l| l.clients == clients)
    }

    /// Sequential ADD p50 / (process start + one transaction).
    pub fn seq_vs_floor(&self, store: Store) -> Option<f64> {
        let e = etcd_index(store)?;
        let add = self.level(1)?.run(store).add.summary();
        let floor = self.floor.floor_ms(e)?;
        (add.n > 0 && floor > 0.0).then(|| add.p50 / floor)
    }

    pub fn rate(&self, clients: usize, store: Store) -> Option<f64> {
        self.level(clients)?.run(store).allocations_per_s()
    }
}

fn etcd_index(store: Store) -> Option<usize> {
    match store {
        Store::Single => Some(0),
        Store::Cluster => Some(1),
        Store::HostLocal => None,
    }
}

/// Why the scenario cannot run here, if it cannot.
pub fn missing(dirs: &Dirs) -> Option<String> {
    let bin = dirs.ours.join("etcd-ipam");
    if !bin.is_file() {
        return Some(format!(
            "{} is not built (tools/build-release.sh)",
            bin.display()
        ));
    }
    if which("etcd").is_none() {
        return Some("`etcd` is not installed (Debian package etcd-server)".into());
    }
    None
}

fn node_name(n: usize) -> String {
    format!("node-{n:02}")
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The etcds, on 127.0.0.1; killed (by PID) and deleted on drop.
struct Etcds {
    single: EtcdServer,
    cluster: EtcdCluster,
}

impl Etcds {
    fn start() -> Result<Etcds, String> {
        // The fixture panics (quoting etcd's log) when a member does not come up.
        let single = std::panic::catch_unwind(EtcdServer::start)
            .map_err(|p| format!("etcd (1 member) did not start: {}", panic_text(p)))?;
        let cluster = std::panic::catch_unwind(|| EtcdCluster::start(3))
            .map_err(|p| format!("etcd (3 members) did not start: {}", panic_text(p)))?;
        Ok(Etcds { single, cluster })
    }

    /// The members' PIDs.
    fn pids(&self, e: usize) -> Vec<u32> {
        if e == 0 {
            vec![self.single.pid()]
        } else {
            (0..self.cluster.len())
                .filter_map(|i| self.cluster.member_pid(i))
                .collect()
        }
    }

    fn endpoints(&self, e: usize) -> Vec<String> {
        if e == 0 {
            self.single.endpoints()
        } else {
            self.cluster.endpoints()
        }
    }
}

/// The plugins, their configs, a container namespace, lock and lease dirs.
struct Bed {
    etcd_ipam: PathBuf,
    host_local: PathBuf,
    cni_path: String,
    netns: String,
    /// Per store: etcd-ipam's node lock directory.
    lock_dirs: [String; 2],
    /// host-local's lease directories, one per node, under this.
    leases: PathBuf,
    endpoints: [Vec<String>; 2],
    /// The etcd members' PIDs, per etcd store.
    etcd_pids: [Vec<u32>; 2],
    launcher: PathBuf,
    // Dropped last.
    _sb: Sandbox,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.leases);
        for d in &self.lock_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Bed {
    fn new(dirs: &Dirs, etcds: &Etcds) -> Result<Bed, String> {
        let mut sb = Sandbox::new("benchetcd");
        let netns = sb.add_container().path().to_string_lossy().into_owned();
        // `cnit-bench...-<pid>-...`: a killed run's leftovers are removed by
        // the next run (cli::cleanup_stale).
        let base = std::env::temp_dir().join(sb.host().name());
        let lock_dirs = [0, 1].map(|e| format!("{}-locks{e}", base.display()));
        let leases = PathBuf::from(format!("{}-leases", base.display()));
        std::fs::create_dir_all(&leases)
            .map_err(|e| format!("create {}: {e}", leases.display()))?;
        Ok(Bed {
            etcd_ipam: dirs.ours.join("etcd-ipam"),
            host_local: dirs.ours.join("host-local"),
            cni_path: dirs.ours.to_string_lossy().into_owned(),
            netns,
            lock_dirs,
            leases,
            endpoints: [etcds.endpoints(0), etcds.endpoints(1)],
            etcd_pids: [etcds.pids(0), etcds.pids(1)],
            launcher: dirs.launcher.clone(),
            _sb: sb,
        })
    }

    /// The network config a runtime hands the IPAM plugin (the main
    /// plugin's, with its `ipam` section).
    fn conf(&self, store: Store, node: &str) -> String {
        let ipam = match etcd_index(store) {
            Some(e) => json!({
                "type": "etcd-ipam",
                "nodeName": node,
                "etcd": {"endpoints": self.endpoints[e], "timeoutMs": TIMEOUT_MS},
                "ranges": [[{"subnet": SUBNET}]],
            }),
            None => json!({
                "type": "host-local",
                "dataDir": self.leases.join(node),
                "ranges": [[{"subnet": SUBNET}]],
            }),
        };
        json!({
            "cniVersion": "1.0.0", "name": NETWORK, "type": "bridge", "bridge": "cni0",
            "ipam": ipam
        })
        .to_string()
    }

    /// One plugin process; Err when it fails or an ADD prints no address.
    fn invoke(
        &self,
        store: Store,
        conf: &str,
        command: &str,
        id: &str,
        rss: bool,
    ) -> Result<Outcome, String> {
        let (program, lock_dir) = match etcd_index(store) {
            Some(e) => (&self.etcd_ipam, self.lock_dirs[e].as_str()),
            None => (&self.host_local, self.lock_dirs[0].as_str()),
        };
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", self.netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", self.cni_path.as_str()),
            ("CNI_ETCD_IPAM_LOCK_DIR", lock_dir),
        ];
        let out = Spawn {
            program,
            args: &[],
            env: &env,
            stdin: conf.as_bytes(),
            rss_launcher: rss.then_some(self.launcher.as_path()),
        }
        .run()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let what = || format!("{} {command} {id}", store.label());
        if !out.success() {
            return Err(out.describe(&what()));
        }
        if command == "ADD" {
            let result: Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{} printed no JSON result: {e}", what()))?;
            if result["ips"].as_array().is_none_or(|a| a.is_empty()) {
                return Err(format!("{} allocated nothing: {result}", what()));
            }
        }
        Ok(out)
    }
}

/// What one round of one store measured.
#[derive(Default)]
struct RoundOut {
    add: Vec<f64>,
    del: Vec<f64>,
    /// CPU time of each ADD / DEL process, ms.
    add_cpu: Vec<f64>,
    del_cpu: Vec<f64>,
    add_wall: f64,
    del_wall: f64,
    /// CPU the etcd members and the bench itself spent in each phase, ms.
    etcd_add_cpu: f64,
    etcd_del_cpu: f64,
    bench_add_cpu: f64,
    bench_del_cpu: f64,
}

/// One client's part of a round.
struct ClientOut {
    add: Vec<(f64, f64)>,
    del: Vec<(f64, f64)>,
    add_span: (Instant, Instant),
    del_span: (Instant, Instant),
    error: Option<String>,
}

impl ClientOut {
    fn new(per_client: usize) -> ClientOut {
        ClientOut {
            add: Vec::with_capacity(per_client),
            del: Vec::with_capacity(per_client),
            add_span: (Instant::now(), Instant::now()),
            del_span: (Instant::now(), Instant::now()),
            error: None,
        }
    }
}

fn span_ms(spans: impl Iterator<Item = (Instant, Instant)> + Clone) -> f64 {
    let first = spans.clone().map(|s| s.0).min();
    let last = spans.map(|s| s.1).max();
    match (first, last) {
        (Some(a), Some(b)) => ms(b.saturating_duration_since(a)),
        _ => 0.0,
    }
}

/// CPU time (user + system) of process `pid` so far, ms, from
/// `/proc/PID/stat`; 0 when it cannot be read.
fn proc_cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // "<pid> (<comm>) <state> ...": utime and stime are fields 14 and 15.
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return 0.0;
    }
    (ticks(11) + ticks(12)) as f64 * 1000.0 / hz as f64
}

/// `clients` threads each ADD `per_client` containers back to back, all
/// released together; then each DELs its containers (also after a failed
/// ADD, as a runtime would). The calling thread reads the CPU time of the
/// etcd members and of the bench at the phases' edges.
fn round(
    bed: &Bed,
    store: Store,
    clients: usize,
    per_client: usize,
    tag: &str,
) -> Result<RoundOut, String> {
    let etcd_cpu = || -> f64 {
        etcd_index(store).map_or(0.0, |e| {
            bed.etcd_pids[e].iter().map(|&p| proc_cpu_ms(p)).sum()
        })
    };
    let barrier = Barrier::new(clients + 1);
    let mut r = RoundOut::default();
    let outs: Vec<ClientOut> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let conf = bed.conf(store, &node_name(i % NODES));
                    let ids: Vec<String> =
                        (0..per_client).map(|j| format!("{tag}-c{i}-{j}")).collect();
                    let mut out = ClientOut::new(per_client);
                    barrier.wait();
                    let t0 = Instant::now();
                    for id in &ids {
                        match bed.invoke(store, &conf, "ADD", id, false) {
                            Ok(o) => out.add.push((ms(o.elapsed), o.cpu_ms)),
                            Err(e) => {
                                out.error = Some(e);
                                break;
                            }
                        }
                    }
                    out.add_span = (t0, Instant::now());
                    barrier.wait();
                    let t0 = Instant::now();
                    for id in &ids {
                        match bed.invoke(store, &conf, "DEL", id, false) {
                            Ok(o) => out.del.push((ms(o.elapsed), o.cpu_ms)),
                            Err(e) => {
                                out.error.get_or_insert(e);
                            }
                        }
                    }
                    out.del_span = (t0, Instant::now());
                    out
                })
            })
            .collect();
        let (e0, b0) = (etcd_cpu(), self_cpu_ms());
        barrier.wait();
        barrier.wait();
        let (e1, b1) = (etcd_cpu(), self_cpu_ms());
        let outs = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    let mut out = ClientOut::new(0);
                    out.error = Some("benchmark thread panicked".into());
                    out
                })
            })
            .collect();
        let (e2, b2) = (etcd_cpu(), self_cpu_ms());
        (r.etcd_add_cpu, r.etcd_del_cpu) = (e1 - e0, e2 - e1);
        (r.bench_add_cpu, r.bench_del_cpu) = (b1 - b0, b2 - b1);
        outs
    });
    if let Some(e) = outs.iter().find_map(|o| o.error.clone()) {
        return Err(e);
    }
    r.add_wall = span_ms(outs.iter().map(|o| o.add_span));
    r.del_wall = span_ms(outs.iter().map(|o| o.del_span));
    for o in &outs {
        r.add.extend(o.add.iter().map(|x| x.0));
        r.add_cpu.extend(o.add.iter().map(|x| x.1));
        r.del.extend(o.del.iter().map(|x| x.0));
        r.del_cpu.extend(o.del.iter().map(|x| x.1));
    }
    Ok(r)
}

/// In-process: connect as the plugin does (one TCP + HTTP/2 connection to
/// one member, `require_leader`), one guarded put, then one serializable
/// read. Returns (connect, put, read) in ms.
async fn probe_txn(url: &str, key: &str) -> Result<(f64, f64, f64), String> {
    let t0 = Instant::now();
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("endpoint {url}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let client = Client::from_channel(
        etcd_client::Channel::Tonic(channel),
        Some(ConnectOptions::new().with_require_leader(true)),
    )
    .await
    .map_err(|e| format!("etcd client {url}: {e}"))?;
    let mut kv: KvClient = client.kv_client();
    let t1 = Instant::now();
    let put = Txn::new()
        .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(key, PROBE_VALUE, None)]);
    let resp = kv
        .txn(put)
        .await
        .map_err(|e| format!("txn at {url}: {e}"))?;
    let t2 = Instant::now();
    if !resp.succeeded() {
        return Err(format!("the guarded put of {key} found the key there"));
    }
    // What the plugin reads first (ops::add_reads), for node-00.
    let root = format!("/cni-ipam/{NETWORK}/");
    let ser = || GetOptions::new().with_serializable();
    let read = Txn::new().and_then(vec![
        TxnOp::get(
            format!("{root}handles/node-00/bench-floor/eth0"),
            Some(ser()),
        ),
        TxnOp::get(format!("{root}blocks/node-00/"), Some(ser().with_prefix())),
        TxnOp::get(format!("{root}pool"), Some(ser())),
    ]);
    kv.txn(read)
        .await
        .map_err(|e| format!("read txn at {url}: {e}"))?;
    let t3 = Instant::now();
    Ok((ms(t1 - t0), ms(t2 - t1), ms(t3 - t2)))
}

/// [`probe_txn`] on a fresh current-thread runtime, as a plugin runs it.
fn probe(url: &str, key: &str) -> Result<(f64, f64, f64), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, probe_txn(url, key))
            .await
            .map_err(|_| format!("{url}: no answer within {PROBE_TIMEOUT:?}"))?
    })
}

#[derive(Clone, Copy)]
enum Probe {
    True,
    Version,
    Txn(usize),
}

const PROBES: [Probe; 4] = [Probe::True, Probe::Version, Probe::Txn(0), Probe::Txn(1)];

/// `n` samples of each floor probe, interleaved (the first rotates), after
/// one untimed pass.
fn floors(bed: &Bed, n: usize, f: &mut Floor) -> Result<(), String> {
    let true_bin = which("true").ok_or("`true` not found (Debian package coreutils)")?;
    let conf = bed.conf(Store::Single, "node-00");
    for i in 0..=n {
        for k in 0..PROBES.len() {
            signals::check()?;
            let record = i > 0;
            match PROBES[(i + k) % PROBES.len()] {
                Probe::True => {
                    let env = [
                        ("CNI_COMMAND", "ADD"),
                        ("CNI_CONTAINERID", "bench-floor"),
                        ("CNI_NETNS", bed.netns.as_str()),
                        ("CNI_IFNAME", "eth0"),
                        ("CNI_PATH", bed.cni_path.as_str()),
                        ("CNI_ETCD_IPAM_LOCK_DIR", bed.lock_dirs[0].as_str()),
                    ];
                    let out = Spawn {
                        program: &true_bin,
                        args: &[],
                        env: &env,
                        stdin: conf.as_bytes(),
                        rss_launcher: None,
                    }
                    .run()
                    .map_err(|e| format!("run {}: {e}", true_bin.display()))?;
                    if !out.success() {
                        return Err(out.describe("true"));
                    }
                    if record {
                        f.exec_true.push(ms(out.elapsed));
                    }
                }
                Probe::Version => {
                    let out = Spawn {
                        program: &bed.etcd_ipam,
                        args: &[],
                        env: &[("CNI_COMMAND", "VERSION")],
                        stdin: br#"{"cniVersion":"1.0.0"}"#,
                        rss_launcher: None,
                    }
                    .run()
                    .map_err(|e| format!("run {}: {e}", bed.etcd_ipam.display()))?;
                    if !out.success() {
                        return Err(out.describe("etcd-ipam VERSION"));
                    }
                    if record {
                        f.version.push(ms(out.elapsed));
                    }
                }
                Probe::Txn(e) => {
                    let eps = &bed.endpoints[e];
                    let url = eps
                        .get(i % eps.len().max(1))
                        .ok_or("etcd has no endpoint")?;
                    let key = format!("/cni-bench-floor/{e}/{i}");
                    let (connect, put, read) = probe(url, &key)?;
                    if record {
                        f.connect[e].push(connect);
                        f.put_txn[e].push(put);
                        f.connect_put[e].push(connect + put);
                        f.read_txn[e].push(read);
                    }
                }
            }
        }
    }
    Ok(())
}

/// ADDs per client in a round at `clients` clients.
fn per_client(clients: usize, iterations: usize, quick: bool) -> usize {
    match (quick, clients) {
        (true, 2..) => 1,
        (false, 2..) => ROUND_ADDS.div_ceil(clients).max(PER_CLIENT),
        _ => PER_CLIENT.min(iterations).max(1),
    }
}

/// Rounds at `clients` clients: at least `iterations` ADDs per store, and a
/// multiple of 3 (each store runs first, second and third equally often);
/// `fixed` (`--rounds`, `--quick`) for the concurrent ones.
fn rounds(clients: usize, per_client: usize, iterations: usize, fixed: Option<usize>) -> usize {
    match fixed {
        Some(r) if clients > 1 => r.max(1),
        _ => (iterations.div_ceil(clients * per_client).max(1)).next_multiple_of(3),
    }
}

/// CPU time the machine has been busy so far (every CPU: user, nice,
/// system, irq, softirq, steal), ms, from `/proc/stat`.
fn machine_busy_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy as f64 * 1000.0 / hz as f64)
}

/// The CPU of everything this run consists of: the bench, the plugins it
/// reaped, the etcd members.
fn own_cpu_ms(etcd_pids: &[Vec<u32>; 2]) -> f64 {
    self_cpu_ms()
        + children_cpu_ms()
        + etcd_pids
            .iter()
            .flatten()
            .map(|&p| proc_cpu_ms(p))
            .sum::<f64>()
}

/// `/proc/loadavg`'s first three fields.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Runs everything (see the module doc) for the client counts `levels`.
pub fn run(
    levels: &[usize],
    iterations: usize,
    fixed_rounds: Option<usize>,
    quick: bool,
    dirs: &Dirs,
    progress: &dyn Fn(&str),
) -> Result<EtcdIpamData, String> {
    let started = Instant::now();
    let load_before = load_average();
    progress("etcd-ipam: starting etcd (1 member; 3 members) on 127.0.0.1");
    let etcds = Etcds::start()?;
    let bed = Bed::new(dirs, &etcds)?;
    let cpu_start = (
        Instant::now(),
        machine_busy_ms(),
        own_cpu_ms(&bed.etcd_pids),
    );

    // Untimed: page cache, the pool record, every block the rounds need.
    let widest = levels.iter().copied().max().unwrap_or(1);
    let wide_per_client = per_client(widest, iterations, quick);
    progress(&format!(
        "etcd-ipam: warm-up ({widest} clients x {wide_per_client} ADDs per store)"
    ));
    for store in Store::ALL {
        signals::check()?;
        round(&bed, store, 1, 2, "warm")?;
        round(&bed, store, widest, wide_per_client, "warmall")?;
    }

    let mut floor = Floor::default();
    progress(&format!("etcd-ipam: floors ({iterations} samples)"));
    floors(&bed, iterations, &mut floor)?;

    let mut data = EtcdIpamData {
        levels: Vec::new(),
        claim_add: Default::default(),
        rss_etcd: Samples::default(),
        rss_host_local: Samples::default(),
        floor,
        seconds: 0.0,
        load_before,
        load_after: String::new(),
        other_cpu_share: None,
        own_cpu_share: None,
    };
    for &k in levels {
        let pc = per_client(k, iterations, quick);
        let r = rounds(k, pc, iterations, fixed_rounds);
        progress(&format!(
            "{}: {r} rounds of {k} client(s) x {pc} ADDs, then DELs, per store",
            level_id(k)
        ));
        let mut level = Level {
            clients: k,
            nodes: k.min(NODES),
            per_client: pc,
            rounds: r,
            runs: Default::default(),
        };
        for i in 0..r {
            for store in Store::order(i) {
                signals::check()?;
                let out = round(&bed, store, k, pc, &format!("x{k}r{i}"))?;
                level.runs[store as usize].record(&out);
            }
        }
        data.levels.push(level);
    }

    // The first ADD of a new node: reads the claims, claims a block.
    let claims = iterations.min(CLAIMS_MAX);
    progress(&format!(
        "etcd-ipam: {claims} first ADDs on new nodes per etcd"
    ));
    for i in 0..claims {
        let order = if i % 2 == 0 {
            Store::ETCD
        } else {
            [Store::Cluster, Store::Single]
        };
        for store in order {
            signals::check()?;
            let conf = bed.conf(store, &format!("claim-{i:03}"));
            let add = bed.invoke(store, &conf, "ADD", "bench-claim", false)?;
            bed.invoke(store, &conf, "DEL", "bench-claim", false)?;
            if let Some(e) = etcd_index(store) {
                data.claim_add[e].push(ms(add.elapsed));
            }
        }
    }

    // Peak RSS of an ADD, through the launcher.
    for i in 0..RSS_PASSES.min(iterations) {
        for store in [Store::Single, Store::HostLocal] {
            signals::check()?;
            let conf = bed.conf(store, "node-00");
            let id = format!("bench-rss-{i}");
            let add = bed.invoke(store, &conf, "ADD", &id, true)?;
            bed.invoke(store, &conf, "DEL", &id, false)?;
            let kb = add.maxrss_kb as f64;
            match store {
                Store::HostLocal => data.rss_host_local.push(kb),
                _ => data.rss_etcd.push(kb),
            }
        }
    }
    let (t0, busy0, own0) = cpu_start;
    let capacity =
        ms(t0.elapsed()) * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if let (Some(busy0), Some(busy1)) = (busy0, machine_busy_ms()) {
        let own = own_cpu_ms(&bed.etcd_pids) - own0;
        if capacity > 0.0 {
            data.own_cpu_share = Some(own / capacity);
            data.other_cpu_share = Some(((busy1 - busy0 - own) / capacity).max(0.0));
        }
    }
    drop(bed);
    drop(etcds);
    data.seconds = started.elapsed().as_secs_f64();
    data.load_after = load_average();
    Ok(data)
}

fn cpu_json(c: CpuSplit) -> Value {
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({
        "plugin": r3(c.plugin),
        "etcd": r3(c.etcd),
        "bench": r3(c.bench),
        "total": r3(c.total()),
    })
}

/// The JSON of a run.
pub fn json(d: &EtcdIpamData) -> Value {
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let levels: Vec<Value> = d
        .levels
        .iter()
        .map(|l| {
            let mut obj = json!({
                "id": l.id(),
                "clients": l.clients,
                "nodes": l.nodes,
                "per_client": l.per_client,
                "rounds": l.rounds,
            });
            for store in Store::ALL {
                let r = l.run(store);
                obj[store.key()] = json!({
                    "add_ms": r.add.summary().json(),
                    "del_ms": r.del.summary().json(),
                    "add_phase_ms": r.add_walls.summary().json(),
                    "del_phase_ms": r.del_walls.summary().json(),
                    "allocations_per_s": r.allocations_per_s().map(|x| x.round()),
                    "releases_per_s": r.releases_per_s().map(|x| x.round()),
                    "add_cpu_ms": r.add_cpu.summary().json(),
                    "cpu_ms_per_add": r.add_cpu_split().map(cpu_json),
                    "cpu_ms_per_del": r.del_cpu_split().map(cpu_json),
                });
            }
            obj
        })
        .collect();
    let f = &d.floor;
    let mut floor = json!({
        "exec_true_ms": f.exec_true.summary().json(),
        "version_ms": f.version.summary().json(),
    });
    let mut claims = json!({});
    for store in Store::ETCD {
        let Some(e) = etcd_index(store) else { continue };
        floor[store.key()] = json!({
            "connect_ms": f.connect[e].summary().json(),
            "put_txn_ms": f.put_txn[e].summary().json(),
            "connect_put_ms": f.connect_put[e].summary().json(),
            "read_txn_ms": f.read_txn[e].summary().json(),
            "floor_ms": f.floor_ms(e).map(r3),
            "seq_add_p50_over_floor": d.seq_vs_floor(store).map(r3),
        });
        claims[store.key()] = d.claim_add[e].summary().json();
    }
    json!({
        "seconds": r3(d.seconds),
        "load_average_before": d.load_before,
        "load_average_after": d.load_after,
        "cpu_share_other_processes": d.other_cpu_share.map(r3),
        "cpu_share_this_run": d.own_cpu_share.map(r3),
        "nodes": NODES,
        "subnet": SUBNET,
        "notes": [
            "each ADD / DEL is one plugin process (spawn to reap), run in the bench's network namespace where etcd listens on 127.0.0.1",
            "client i is node i mod 10: 10 clients = 10 nodes x 1, 50 clients = 10 nodes x 5 (sharing their node's lock)",
            "closed loops: per round each client makes per_client ADDs back to back, then DELs them; allocations_per_s = ADDs / ADD-phase wall time, over all rounds",
            "blocks claimed in an untimed warm-up: timed ADDs are steady state (a serializable read txn + the write txn); first_add_claims_block_ms is the first ADD of a new node",
            "floor_ms = etcd-ipam VERSION p50 + (connect + one guarded put, in-process, current-thread tokio runtime, etcd-client) p50",
            "cpu_ms_per_add: means; plugin = user + system time of the ADD process (wait4), etcd = all members' CPU during the ADD phases (/proc/PID/stat) / ADDs, bench = the bench's own CPU then (spawning, pipes, reaping) / ADDs"
        ],
        "levels": levels,
        "first_add_claims_block_ms": claims,
        "rss_kb": {
            "etcd_ipam_add": d.rss_etcd.summary().json(),
            "host_local_add": d.rss_host_local.summary().json(),
        },
        "floor": floor,
    })
}

/// The table section.
pub fn table(d: &EtcdIpamData, t: &mut String, num: impl Fn(f64) -> String) {
    use std::fmt::Write;
    let _ = writeln!(
        t,
        "etcd-ipam: one plugin process per ADD / DEL; clients in closed loops, client i = node i mod {NODES} (ms)"
    );
    let pct = |x: Option<f64>| x.map_or("?".to_string(), |x| format!("{:.0} %", x * 100.0));
    let _ = writeln!(
        t,
        "{:.0} s, load average {} before, {} after; the machine's CPU meanwhile: {} this run, {} other processes",
        d.seconds,
        d.load_before,
        d.load_after,
        pct(d.own_cpu_share),
        pct(d.other_cpu_share)
    );
    let _ = writeln!(
        t,
        "{:<9} {:<26} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "clients", "store", "n", "ADD p50", "ADD p99", "DEL p50", "DEL p99", "alloc/s"
    );
    for l in &d.levels {
        let who = who(l);
        for store in Store::ALL {
            let r = l.run(store);
            let (a, dl) = (r.add.summary(), r.del.summary());
            let rate = r
                .allocations_per_s()
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                t,
                "{:<9} {:<26} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
                who,
                store.label(),
                a.n,
                num(a.p50),
                num(a.p99),
                num(dl.p50),
                num(dl.p99),
                rate
            );
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        t,
        "CPU per ADD, ms (means: the plugin process; every etcd member; the bench spawning it); ceiling = {cpus} CPUs / total"
    );
    let _ = writeln!(
        t,
        "{:<9} {:<26} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "clients", "store", "plugin", "etcd", "bench", "total", "ceiling"
    );
    for l in &d.levels {
        for store in Store::ALL {
            let Some(c) = l.run(store).add_cpu_split() else {
                continue;
            };
            let ceiling = if c.total() > 0.0 {
                format!("{:.0}", cpus as f64 * 1000.0 / c.total())
            } else {
                "-".into()
            };
            let _ = writeln!(
                t,
                "{:<9} {:<26} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                who(l),
                store.label(),
                c.plugin,
                c.etcd,
                c.bench,
                c.total(),
                ceiling
            );
        }
    }
    let f = &d.floor;
    let _ = writeln!(t, "{:<36} {:>5} {:>8} {:>8}", "", "n", "p50", "p99");
    let line = |t: &mut String, name: &str, s: &Samples| {
        let m = s.summary();
        let _ = writeln!(
            t,
            "{:<36} {:>5} {:>8} {:>8}",
            name,
            m.n,
            num(m.p50),
            num(m.p99)
        );
    };
    for store in Store::ETCD {
        if let Some(e) = etcd_index(store) {
            line(
                t,
                &format!("first ADD on a node, {}", short(store)),
                &d.claim_add[e],
            );
        }
    }
    line(t, "exec /bin/true like a plugin", &f.exec_true);
    line(t, "etcd-ipam VERSION (process start)", &f.version);
    for store in Store::ETCD {
        let Some(e) = etcd_index(store) else { continue };
        let s = short(store);
        line(t, &format!("in-process connect, {s}"), &f.connect[e]);
        line(t, &format!("  guarded put txn, {s}"), &f.put_txn[e]);
        line(t, &format!("  serializable read txn, {s}"), &f.read_txn[e]);
        line(t, &format!("connect + one txn, {s}"), &f.connect_put[e]);
    }
    for store in Store::ETCD {
        let Some(e) = etcd_index(store) else { continue };
        let seq = d.level(1).map(|l| l.run(store).add.summary().p50);
        if let (Some(floor), Some(seq)) = (f.floor_ms(e), seq) {
            let _ = writeln!(
                t,
                "floor, {}: process start + connect + one txn = {} ms; sequential ADD p50 {} ms = {:.2}x",
                short(store),
                num(floor),
                num(seq),
                seq / floor
            );
        }
    }
    let (re, rh) = (d.rss_etcd.summary(), d.rss_host_local.summary());
    if re.n > 0 && rh.n > 0 {
        let _ = writeln!(
            t,
            "peak RSS of an ADD, KiB (p50): etcd-ipam {:.0}, host-local {:.0}",
            re.p50, rh.p50
        );
    }
}

/// `1`, `10 (10x1)`, `50 (10x5)`: clients (nodes x clients per node).
fn who(l: &Level) -> String {
    if l.clients == 1 {
        "1".to_string()
    } else {
        format!(
            "{} ({}x{})",
            l.clients,
            l.nodes,
            l.clients.div_ceil(l.nodes.max(1))
        )
    }
}

fn short(store: Store) -> &'static str {
    match store {
        Store::Single => "1 member",
        Store::Cluster => "3 members",
        Store::HostLocal => "host-local",
    }
}

/// For tests of the pure parts.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_and_clients() {
        assert_eq!(per_client(1, 200, false), PER_CLIENT);
        assert_eq!(per_client(10, 200, false), 40);
        assert_eq!(per_client(50, 200, false), PER_CLIENT);
        assert_eq!(per_client(50, 3, true), 1);
        assert_eq!(per_client(1, 3, true), 3);
        // 200 sequential ADDs in rounds of 20, rounded up to a multiple of 3.
        assert_eq!(rounds(1, 20, 200, Some(1)), 12);
        assert_eq!(rounds(1, 3, 3, Some(1)), 3);
        assert_eq!(rounds(10, 40, 200, None), 3);
        assert_eq!(rounds(50, 20, 200, None), 3);
        assert_eq!(rounds(10, 40, 2000, None), 6);
        assert_eq!(rounds(10, 1, 3, Some(1)), 1);
        assert_eq!(level_id(1), "etcd-ipam/seq");
        assert_eq!(level_id(50), "etcd-ipam/x50");
    }

    #[test]
    fn store_order_rotates() {
        let firsts: Vec<Store> = (0..3).map(|r| Store::order(r)[0]).collect();
        assert_eq!(firsts, Store::ALL.to_vec());
        for r in 0..3 {
            let mut o = Store::order(r).to_vec();
            o.sort_by_key(|s| *s as usize);
            assert_eq!(o, Store::ALL.to_vec());
        }
    }

    #[test]
    fn rates_and_floor() {
        let run = StoreRun {
            add: Samples(vec![1.0; 100]),
            add_walls: Samples(vec![100.0, 100.0]),
            ..Default::default()
        };
        assert_eq!(run.allocations_per_s(), Some(500.0));
        assert_eq!(StoreRun::default().allocations_per_s(), None);
        let mut f = Floor::default();
        assert_eq!(f.floor_ms(0), None);
        f.version = Samples(vec![1.0, 2.0, 3.0]);
        f.connect_put[0] = Samples(vec![4.0, 5.0, 6.0]);
        assert_eq!(f.floor_ms(0), Some(7.0));
        assert_eq!(f.floor_ms(1), None);
    }
}
