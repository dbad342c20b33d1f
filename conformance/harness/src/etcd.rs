//! A real `etcd` for tests: one member ([`EtcdServer`]) or a cluster
//! ([`EtcdCluster`]), each member a child process on free 127.0.0.1 ports with a
//! throwaway data directory. Nothing is mocked.
//!
//! Cleanup: `Drop` kills every member by the PID of the `Child` we spawned (SIGKILL),
//! reaps it and removes the directory, also while a test unwinds from a panic. As a
//! second line of defence every member is started with `PR_SET_PDEATHSIG = SIGKILL`
//! from a spawner thread that lives as long as the test process, so even a test
//! binary killed outright (timeout, `panic = "abort"`) leaves no etcd behind (only its
//! directory under the temp dir).
//!
//! Layout of a fixture directory (`<temp>/cni-harness-etcd-<pid>-<n>-<nanos>/`):
//! `member-<i>/data` is etcd's `--data-dir`, `member-<i>/etcd.log` its stdout and
//! stderr (zap, level warn; appended to across restarts).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::tool::require_tool;

/// How long a (re)started member has to report `"health":"true"`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// Start attempts with fresh ports when etcd cannot bind the ones we picked.
const START_ATTEMPTS: usize = 5;
/// Restart attempts (same ports: they are part of the cluster membership).
const RESTART_ATTEMPTS: usize = 10;
/// Lines of etcd's log quoted in a panic message.
const LOG_TAIL_LINES: usize = 40;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A one-member etcd on 127.0.0.1, stopped and deleted on drop.
#[derive(Debug)]
pub struct EtcdServer {
    cluster: EtcdCluster,
}

/// TLS for the client port of every member (PEM files the test made).
/// Health is then checked on a plain-HTTP metrics port of its own.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require a client certificate signed by `ca`.
    pub client_cert_auth: bool,
}

impl EtcdServer {
    /// Starts etcd and returns once it answers `/health` with `"health":"true"`.
    /// Panics (quoting etcd's log) when it does not within ~20 s, and names the
    /// Debian package `etcd-server` when `etcd` is not on PATH.
    pub fn start() -> EtcdServer {
        EtcdServer {
            cluster: EtcdCluster::start(1),
        }
    }

    /// Like [`EtcdServer::start`], but inside the network namespace at
    /// `netns` (a sandbox's underlay), listening on `ip` there (which must be
    /// an address of that namespace): etcd as the nodes of a simulated
    /// cluster reach it over their underlay.
    pub fn start_in(netns: &Path, ip: Ipv4Addr) -> EtcdServer {
        EtcdServer {
            cluster: EtcdCluster::start_placed(
                1,
                None,
                Placement {
                    netns: Some(netns.to_path_buf()),
                    host: ip,
                },
            ),
        }
    }

    /// Like [`EtcdServer::start`], serving clients over TLS (`https://`).
    pub fn start_tls(tls: ServerTls) -> EtcdServer {
        EtcdServer {
            cluster: EtcdCluster::start_with(1, Some(tls)),
        }
    }

    /// Client URLs, ready for `etcd_client::Client::connect`.
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// PID of the etcd process.
    pub fn pid(&self) -> u32 {
        self.cluster.member_pid(0).expect("the etcd member runs")
    }

    /// The fixture directory (data dir and log inside); removed on drop.
    pub fn dir(&self) -> &Path {
        self.cluster.dir()
    }

    /// The last lines etcd wrote to its log (handy in assertion messages).
    pub fn log_tail(&self) -> String {
        self.cluster.member_log_tail(0)
    }
}

/// An `n`-member etcd cluster on 127.0.0.1. Members can be killed and restarted
/// (same ports, same data) for fault tests. Everything is stopped and deleted on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: PathBuf,
    token: String,
    tls: Option<ServerTls>,
    placement: Placement,
    members: Vec<Member>,
}

/// Where members run: this process's namespace on 127.0.0.1, or a given
/// namespace on one of its addresses.
#[derive(Debug, Clone)]
struct Placement {
    netns: Option<PathBuf>,
    host: Ipv4Addr,
}

#[derive(Debug)]
struct Member {
    name: String,
    placement: Placement,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` and `/metrics` when clients speak TLS.
    metrics_port: Option<u16>,
    tls: Option<ServerTls>,
    dir: PathBuf,
    child: Option<Child>,
}

/// Why a member did not come up.
enum StartError {
    /// etcd exited because a port we picked was taken meanwhile: retry.
    PortTaken,
    /// Anything else: the message is ready for a panic.
    Fatal(String),
}

impl EtcdCluster {
    /// Starts `n` members (`--initial-cluster` listing all of them, state `new`, a
    /// cluster token unique to this fixture) and returns once every member reports
    /// `"health":"true"` (in etcd 3.4: no alarm, a leader, and a quorum read
    /// through raft succeeded). Retries with fresh ports when etcd cannot bind them.
    pub fn start(n: usize) -> EtcdCluster {
        EtcdCluster::start_with(n, None)
    }

    /// [`EtcdCluster::start`] with TLS on the client ports when `tls` says so.
    pub fn start_with(n: usize, tls: Option<ServerTls>) -> EtcdCluster {
        let here = Placement {
            netns: None,
            host: Ipv4Addr::LOCALHOST,
        };
        EtcdCluster::start_placed(n, tls, here)
    }

    fn start_placed(n: usize, tls: Option<ServerTls>, placement: Placement) -> EtcdCluster {
        assert!(n > 0, "an etcd cluster needs at least one member");
        require_tool("etcd", "etcd-server");
        let (dir, id) = make_fixture_dir();
        let token = format!("cni-harness-{id}");
        let mut cluster = EtcdCluster {
            dir,
            token,
            tls,
            placement,
            members: Vec::new(),
        };
        for attempt in 1..=START_ATTEMPTS {
            match cluster.try_start(n) {
                Ok(()) => return cluster,
                Err(StartError::PortTaken) if attempt < START_ATTEMPTS => {
                    cluster.discard_members();
                }
                Err(StartError::PortTaken) => panic!(
                    "etcd could not bind its ports in {START_ATTEMPTS} attempts:\n{}",
                    cluster.all_log_tails()
                ),
                // `cluster` is dropped while unwinding: members killed, dir removed.
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        unreachable!()
    }

    /// Number of members (running or stopped).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URLs of all members, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Client URL of member `i` alone.
    pub fn member_endpoints(&self, i: usize) -> Vec<String> {
        vec![self.member(i).client_url()]
    }

    /// PID of member `i`, `None` while it is stopped.
    pub fn member_pid(&self, i: usize) -> Option<u32> {
        self.member(i).child.as_ref().map(Child::id)
    }

    /// Member `i`'s directory (`data/` and `etcd.log`).
    pub fn member_dir(&self, i: usize) -> &Path {
        &self.member(i).dir
    }

    /// The last lines of member `i`'s log.
    pub fn member_log_tail(&self, i: usize) -> String {
        log_tail(&self.member(i).log_path())
    }

    /// The fixture directory holding every member's; removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills member `i` (SIGKILL to the PID we spawned, like a crash) and reaps it.
    /// Its data and ports are kept for [`EtcdCluster::restart_member`].
    pub fn stop_member(&mut self, i: usize) {
        let member = self.member_mut(i);
        assert!(member.child.is_some(), "etcd member {i} is not running");
        member.kill();
    }

    /// Restarts stopped member `i` on the same ports with the same data dir, and
    /// returns once it has rejoined and reports `"health":"true"`.
    pub fn restart_member(&mut self, i: usize) {
        assert!(
            self.member(i).child.is_none(),
            "etcd member {i} is still running"
        );
        let initial_cluster = self.initial_cluster();
        for attempt in 1..=RESTART_ATTEMPTS {
            let token = self.token.clone();
            let member = self.member_mut(i);
            member.spawn(&initial_cluster, &token);
            match member.wait_healthy(Instant::now() + HEALTH_TIMEOUT) {
                Ok(()) => return,
                // Someone holds one of its ports for now; they cannot change (the
                // peer URL is in the membership), so wait and try again.
                Err(StartError::PortTaken) if attempt < RESTART_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(300));
                }
                Err(StartError::PortTaken) => panic!(
                    "restarted etcd member {i} could not bind its ports:\n{}",
                    self.member_log_tail(i)
                ),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
    }

    fn member(&self, i: usize) -> &Member {
        let n = self.members.len();
        self.members
            .get(i)
            .unwrap_or_else(|| panic!("no etcd member {i} (cluster of {n})"))
    }

    fn member_mut(&mut self, i: usize) -> &mut Member {
        let n = self.members.len();
        self.members
            .get_mut(i)
            .unwrap_or_else(|| panic!("no etcd member {i} (cluster of {n})"))
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn try_start(&mut self, n: usize) -> Result<(), StartError> {
        // A namespace of the test's own has every port free.
        let ports = match self.placement.netns {
            Some(_) => (0..3 * n).map(|i| 2379 + i as u16).collect(),
            None => free_ports(3 * n),
        };
        let tls = self.tls.clone();
        let placement = self.placement.clone();
        self.members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                placement: placement.clone(),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                metrics_port: tls.as_ref().map(|_| ports[3 * i + 2]),
                tls: tls.clone(),
                dir: self.dir.join(format!("member-{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = self.initial_cluster();
        for member in &mut self.members {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&member.dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", member.dir.display()));
            member.spawn(&initial_cluster, &self.token);
        }
        // Poll all members together: one that failed to bind shows up as exited
        // while the others may wait for a quorum that never comes.
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut healthy = vec![false; n];
        loop {
            for member in &mut self.members {
                if let Some(err) = member.exited_error() {
                    return Err(err);
                }
            }
            for (member, ok) in self.members.iter().zip(&mut healthy) {
                *ok = *ok || member.healthy();
            }
            if healthy.iter().all(|ok| *ok) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let sick = self.members.iter().zip(&healthy).filter(|(_, ok)| !**ok);
                let report = sick
                    .map(|(m, _)| {
                        format!(
                            "--- {} ({}), end of its log ---\n{}",
                            m.name,
                            m.client_url(),
                            log_tail(&m.log_path())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(StartError::Fatal(format!(
                    "etcd members not healthy after {HEALTH_TIMEOUT:?}:\n{report}"
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills all members and deletes their directories (before a retry).
    fn discard_members(&mut self) {
        for member in &mut self.members {
            member.kill();
            let _ = fs::remove_dir_all(&member.dir);
        }
        self.members.clear();
    }

    fn all_log_tails(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, log_tail(&m.log_path())))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("cni-harness: cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}

impl Member {
    fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.placement.host, self.client_port)
    }

    fn health_port(&self) -> u16 {
        self.metrics_port.unwrap_or(self.client_port)
    }

    /// `/health` answers true, asked from the member's own namespace.
    fn healthy(&self) -> bool {
        let (host, port) = (self.placement.host, self.health_port());
        match &self.placement.netns {
            None => health_ok(host, port),
            Some(ns) => {
                let Ok(file) = File::open(ns) else {
                    return false;
                };
                thread::scope(|s| {
                    s.spawn(|| {
                        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
                            && health_ok(host, port)
                    })
                    .join()
                    .unwrap_or(false)
                })
            }
        }
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.placement.host, self.peer_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn spawn(&mut self, initial_cluster: &str, token: &str) {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("dup {}: {e}", log_path.display()));
        let client_url = self.client_url();
        let peer_url = self.peer_url();
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", token])
            // Fast elections and small snapshots: tests, not production.
            .args(["--heartbeat-interval", "50"])
            .args(["--election-timeout", "500"])
            .args(["--snapshot-count", "1000"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .args(["--log-outputs", "stderr"]);
        if let (Some(tls), Some(metrics)) = (&self.tls, self.metrics_port) {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg(format!("--client-cert-auth={}", tls.client_cert_auth))
                .arg(format!(
                    "--listen-metrics-urls=http://{}:{metrics}",
                    self.placement.host
                ));
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(stderr);
        // etcd reads every ETCD_<FLAG> variable as a flag: keep the caller's out.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(key);
            }
        }
        // etcd 3.4 refuses to run on architectures other than amd64 / ppc64le
        // unless this names the (Go) architecture it runs on.
        cmd.env("ETCD_UNSUPPORTED_ARCH", go_arch());
        let parent = std::process::id();
        let netns =
            self.placement.netns.as_ref().map(|p| {
                File::open(p).unwrap_or_else(|e| panic!("open netns {}: {e}", p.display()))
            });
        // SAFETY: prctl, getppid and setns are plain syscalls, fine between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(ns) = &netns {
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                }
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(io::Error::other("test process exited before etcd started"));
                }
                Ok(())
            });
        }
        let child =
            spawn_from_long_lived_thread(cmd).unwrap_or_else(|e| panic!("cannot run etcd: {e}"));
        self.child = Some(child);
    }

    /// Kills the process we spawned, by its PID, and reaps it. No-op when stopped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Err only when it was already reaped; wait() below settles it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Some` when the process has exited (it is then reaped and forgotten).
    fn exited_error(&mut self) -> Option<StartError> {
        let child = self.child.as_mut()?;
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return None,
            Err(e) => panic!("wait for etcd {}: {e}", self.name),
        };
        self.child = None;
        let tail = log_tail(&self.log_path());
        if tail.contains("address already in use") {
            return Some(StartError::PortTaken);
        }
        Some(StartError::Fatal(format!(
            "etcd member {} ({}) exited with {status} before it was healthy; end of its log:\n{tail}",
            self.name,
            self.client_url(),
        )))
    }

    fn wait_healthy(&mut self, deadline: Instant) -> Result<(), StartError> {
        loop {
            if let Some(err) = self.exited_error() {
                return Err(err);
            }
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::Fatal(format!(
                    "etcd member {} ({}) not healthy after {HEALTH_TIMEOUT:?}; end of its log:\n{}",
                    self.name,
                    self.client_url(),
                    log_tail(&self.log_path())
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `GET /health` over a plain TCP connection; true on `"health":"true"`.
fn health_ok(host: Ipv4Addr, port: u16) -> bool {
    let addr = SocketAddr::from((host, port));
    let attempt = || -> io::Result<String> {
        let timeout = Duration::from_secs(2);
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        // HTTP/1.0: the server closes the connection after the response.
        write!(
            stream,
            "GET /health HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    attempt().is_ok_and(|r| r.starts_with("HTTP/1.") && r.contains("\"health\":\"true\""))
}

/// `count` distinct free ports on 127.0.0.1, none handed out before by this process
/// (so a stopped member's ports don't go to another fixture). All listeners are held
/// until every port is picked, then closed for etcd to bind.
fn free_ports(count: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"))
            .port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    ports
}

/// Creates `<temp>/cni-harness-etcd-<pid>-<n>-<nanos>` (mode 0700); returns it and
/// the unique suffix.
fn make_fixture_dir() -> (PathBuf, String) {
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("cni-harness-etcd-{id}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return (dir, id),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
}

/// The last [`LOG_TAIL_LINES`] lines of a log file (or why it cannot be read).
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Err(e) = File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        return format!("(cannot read {}: {e})", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

/// Go's name for the architecture we run on (what `ETCD_UNSUPPORTED_ARCH` must say).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => other,
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process. The parent-death
/// signal fires when the *thread* that forked the child exits, so spawning from a
/// test's own thread would kill etcd when that thread ends, even though the fixture
/// might still be alive elsewhere.
fn spawn_from_long_lived_thread(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("cni-harness-etcd-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the etcd spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("etcd spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("etcd spawner thread is gone"))?
}
