//! The floors, measured in the same run: what it costs to start a trivial
//! process the way plugins are started, what the kernel itself takes to delete
//! an attached container veth, and two partial costs of each implementation
//! (process start answering VERSION; the IPAM plugin alone).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cni_harness::Sandbox;
use netlink::{BridgeSpec, IpNetwork, Netlink, Route, VethPeer, VethSpec};
use serde_json::json;

use crate::chain::{ms, settle, Dirs, Mode, Side, PENDING_MAX};
use crate::exec::Spawn;
use crate::signals;
use crate::stats::Samples;

/// A pair of sample sets, one per side.
#[derive(Debug, Clone, Default)]
pub struct PerSide {
    pub ours: Samples,
    pub reference: Samples,
}

impl PerSide {
    fn get_mut(&mut self, side: Side) -> &mut Samples {
        match side {
            Side::Ours => &mut self.ours,
            Side::Reference => &mut self.reference,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FloorData {
    /// `/bin/true` started exactly like a plugin (setns, env, stdin), ms;
    /// its peak RSS through the launcher (the smallest a process gets), KiB.
    pub exec_true: Samples,
    pub exec_true_rss: Samples,
    /// `ip link del <host veth>` started like a plugin in the host netns, ms.
    pub veth_del_ip: Samples,
    /// RTM_DELLINK on an open netlink socket (the netlink crate), in-process, ms.
    pub veth_del_netlink: Samples,
    /// `bridge` answering VERSION: process start and exit of each side, ms.
    pub version: PerSide,
    pub version_rss: PerSide,
    /// `host-local` run directly (no bridge around it), ms / KiB.
    pub ipam_add: PerSide,
    pub ipam_del: PerSide,
    pub ipam_rss: PerSide,
    pub seconds: f64,
}

/// Finds `name` in PATH (falling back to the usual directories).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct FloorNet {
    host_ns_file: File,
    host: Netlink,
    bridge: u32,
    data_dirs: [PathBuf; 2],
    /// A container namespace for the IPAM-only runs (never attached).
    ipam_netns: PathBuf,
    made: usize,
    /// Container namespaces awaiting deletion (batched as in [`crate::chain::Net`]).
    pending: Vec<usize>,
    // Dropped last.
    sb: Sandbox,
}

impl Drop for FloorNet {
    fn drop(&mut self) {
        for d in &self.data_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

const GATEWAY: &str = "10.77.0.1";

impl FloorNet {
    fn new() -> Result<FloorNet, String> {
        let mut sb = Sandbox::new("benchfloor");
        let host_ns = netlink::Netns::open(sb.host().path()).map_err(|e| e.to_string())?;
        let host = Netlink::connect(&host_ns).map_err(|e| e.to_string())?;
        let br = host
            .ensure_bridge(&BridgeSpec::new("cni0"))
            .map_err(|e| e.to_string())?;
        let gw: IpNetwork = format!("{GATEWAY}/16")
            .parse()
            .map_err(|e| format!("{e}"))?;
        host.add_address(br.index, gw).map_err(|e| e.to_string())?;
        let host_ns_file = File::open(sb.host().path()).map_err(|e| e.to_string())?;
        let base = sb.host().name().to_string();
        let data_dirs = [
            std::env::temp_dir().join(format!("{base}-ipam-ours")),
            std::env::temp_dir().join(format!("{base}-ipam-ref")),
        ];
        let ipam_netns = sb.add_container().path();
        Ok(FloorNet {
            host_ns_file,
            host,
            bridge: br.index,
            data_dirs,
            ipam_netns,
            made: 0,
            pending: Vec::new(),
            sb,
        })
    }

    fn remove_container(&mut self, index: usize) {
        self.pending.push(index);
        if self.pending.len() >= PENDING_MAX {
            for i in self.pending.drain(..) {
                self.sb.container_mut(i).delete();
            }
            settle();
        }
    }

    fn fd(&self) -> i32 {
        self.host_ns_file.as_raw_fd()
    }

    /// A container namespace with a veth whose host end is on the bridge and
    /// whose container end is up with an address and a default route: the
    /// state a bridge ADD leaves. Returns the container index, the host end's
    /// name and index.
    fn attached_veth(&mut self) -> Result<(usize, String, u32), String> {
        let n = self.made;
        self.made += 1;
        let ctr_path = self.sb.add_container().path();
        let index = self.sb.container_count() - 1;
        let ctr_ns = netlink::Netns::open(&ctr_path).map_err(|e| e.to_string())?;
        let name = format!("vfl{n:08x}");
        let host_end = self
            .host
            .create_veth(&VethSpec {
                name: name.clone(),
                mtu: None,
                mac: None,
                master: Some(self.bridge),
                peer: VethPeer {
                    name: "eth0".into(),
                    mtu: None,
                    mac: None,
                    netns: &ctr_ns,
                },
            })
            .map_err(|e| e.to_string())?;
        let ctr = Netlink::connect(&ctr_ns).map_err(|e| e.to_string())?;
        let eth0 = ctr.require_link("eth0").map_err(|e| e.to_string())?;
        let host_part = 2 + (n % 65000) as u32;
        let addr: IpNetwork = format!("10.77.{}.{}/16", host_part >> 8, host_part & 0xff)
            .parse()
            .map_err(|e| format!("{e}"))?;
        ctr.add_address(eth0.index, addr)
            .map_err(|e| e.to_string())?;
        ctr.set_up(eth0.index).map_err(|e| e.to_string())?;
        let gw = GATEWAY.parse().map_err(|e| format!("{e}"))?;
        ctr.add_route(&Route::default_via(gw).dev(eth0.index))
            .map_err(|e| e.to_string())?;
        Ok((index, name, host_end.index))
    }

    fn ipam_conf(&self, side: Side) -> String {
        json!({
            "cniVersion": "1.0.0", "name": "benchipam", "type": "bridge", "bridge": "cni0",
            "ipam": {
                "type": "host-local",
                "dataDir": self.data_dirs[side as usize],
                "ranges": [[{"subnet": "10.66.0.0/16"}]],
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        })
        .to_string()
    }
}

#[derive(Clone, Copy)]
enum Probe {
    ExecTrue(Mode),
    Version(Side, Mode),
    Ipam(Side, Mode),
    VethIp,
    VethNetlink,
}

const PROBES: [Probe; 7] = [
    Probe::ExecTrue(Mode::Timed),
    Probe::Version(Side::Ours, Mode::Timed),
    Probe::Version(Side::Reference, Mode::Timed),
    Probe::Ipam(Side::Ours, Mode::Timed),
    Probe::Ipam(Side::Reference, Mode::Timed),
    Probe::VethIp,
    Probe::VethNetlink,
];

/// Peak-RSS samples, through the launcher, in the first iterations.
const RSS_PROBES: [Probe; 5] = [
    Probe::ExecTrue(Mode::Rss),
    Probe::Version(Side::Ours, Mode::Rss),
    Probe::Version(Side::Reference, Mode::Rss),
    Probe::Ipam(Side::Ours, Mode::Rss),
    Probe::Ipam(Side::Reference, Mode::Rss),
];

/// `n` samples of every floor, the probes interleaved (the starting probe
/// rotates from one iteration to the next).
pub fn run(n: usize, dirs: &Dirs) -> Result<FloorData, String> {
    let started = Instant::now();
    let true_bin = which("true").ok_or("`true` not found (Debian package coreutils)")?;
    let ip_bin = which("ip").ok_or("`ip` not found (Debian package iproute2)")?;
    let mut net = FloorNet::new()?;
    let mut d = FloorData::default();
    // One untimed round first (page cache, first bridge port, lease dirs).
    for i in 0..n + 1 {
        for k in 0..PROBES.len() {
            signals::check()?;
            let probe = PROBES[(i + k) % PROBES.len()];
            let record = i > 0;
            step(probe, record, &mut net, &mut d, dirs, &true_bin, &ip_bin, i)?;
        }
        if (1..=crate::scenario::RSS_PASSES).contains(&i) {
            for probe in RSS_PROBES {
                signals::check()?;
                step(probe, true, &mut net, &mut d, dirs, &true_bin, &ip_bin, i)?;
            }
        }
    }
    d.seconds = started.elapsed().as_secs_f64();
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
fn step(
    probe: Probe,
    record: bool,
    net: &mut FloorNet,
    d: &mut FloorData,
    dirs: &Dirs,
    true_bin: &Path,
    ip_bin: &Path,
    i: usize,
) -> Result<(), String> {
    match probe {
        Probe::ExecTrue(mode) => {
            // The same environment and stdin size as a bridge ADD.
            let conf = net.ipam_conf(Side::Ours);
            let netns = net.ipam_netns.to_string_lossy().into_owned();
            let env = [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "bench-floor"),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/usr/lib/cni"),
            ];
            let out = Spawn {
                program: true_bin,
                args: &[],
                env: &env,
                stdin: conf.as_bytes(),
                rss_launcher: (mode == Mode::Rss).then_some(dirs.launcher.as_path()),
            }
            .run_in(net.fd())
            .map_err(|e| format!("run {}: {e}", true_bin.display()))?;
            if !out.success() {
                return Err(out.describe("true"));
            }
            match (record, mode) {
                (false, _) => {}
                (true, Mode::Timed) => d.exec_true.push(ms(out.elapsed)),
                (true, Mode::Rss) => d.exec_true_rss.push(out.maxrss_kb as f64),
            }
        }
        Probe::Version(side, mode) => {
            let program = dirs.of(side).join("bridge");
            let out = Spawn {
                program: &program,
                args: &[],
                env: &[("CNI_COMMAND", "VERSION")],
                stdin: br#"{"cniVersion":"1.0.0"}"#,
                rss_launcher: (mode == Mode::Rss).then_some(dirs.launcher.as_path()),
            }
            .run_in(net.fd())
            .map_err(|e| format!("run {}: {e}", program.display()))?;
            if !out.success() {
                return Err(out.describe(&format!("{} bridge VERSION", side.key())));
            }
            match (record, mode) {
                (false, _) => {}
                (true, Mode::Timed) => d.version.get_mut(side).push(ms(out.elapsed)),
                (true, Mode::Rss) => d.version_rss.get_mut(side).push(out.maxrss_kb as f64),
            }
        }
        Probe::Ipam(side, mode) => {
            let program = dirs.of(side).join("host-local");
            let conf = net.ipam_conf(side);
            let netns = net.ipam_netns.to_string_lossy().into_owned();
            let id = format!("bench-ipam-{i}-{mode:?}");
            let cni_path = dirs.of(side).to_string_lossy().into_owned();
            for command in ["ADD", "DEL"] {
                let env = [
                    ("CNI_COMMAND", command),
                    ("CNI_CONTAINERID", id.as_str()),
                    ("CNI_NETNS", netns.as_str()),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_PATH", cni_path.as_str()),
                ];
                let out = Spawn {
                    program: &program,
                    args: &[],
                    env: &env,
                    stdin: conf.as_bytes(),
                    rss_launcher: (mode == Mode::Rss).then_some(dirs.launcher.as_path()),
                }
                .run_in(net.fd())
                .map_err(|e| format!("run {}: {e}", program.display()))?;
                if !out.success() {
                    return Err(out.describe(&format!("{} host-local {command}", side.key())));
                }
                let t = ms(out.elapsed);
                match (record, mode, command) {
                    (false, _, _) => {}
                    (true, Mode::Timed, "ADD") => d.ipam_add.get_mut(side).push(t),
                    (true, Mode::Timed, _) => d.ipam_del.get_mut(side).push(t),
                    (true, Mode::Rss, "ADD") => d.ipam_rss.get_mut(side).push(out.maxrss_kb as f64),
                    (true, Mode::Rss, _) => {}
                }
            }
        }
        Probe::VethIp => {
            let (ctr, name, _) = net.attached_veth()?;
            let out = Spawn {
                program: ip_bin,
                args: &["link", "del", &name],
                env: &[],
                stdin: b"",
                rss_launcher: None,
            }
            .run_in(net.fd())
            .map_err(|e| format!("run {}: {e}", ip_bin.display()))?;
            net.remove_container(ctr);
            if !out.success() {
                return Err(out.describe(&format!("ip link del {name}")));
            }
            if record {
                d.veth_del_ip.push(ms(out.elapsed));
            }
        }
        Probe::VethNetlink => {
            let (ctr, name, index) = net.attached_veth()?;
            let t0 = Instant::now();
            let r = net.host.delete_link(index);
            let t = ms(t0.elapsed());
            net.remove_container(ctr);
            r.map_err(|e| format!("delete {name}: {e}"))?;
            if record {
                d.veth_del_netlink.push(t);
            }
        }
    }
    Ok(())
}
