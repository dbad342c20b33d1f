//! A network to test on: a sandbox (throwaway host namespace + containers),
//! a private host-local data directory, and the config of a bridge (or bare
//! host-local) network on it. Everything is removed on drop.

use std::net::IpAddr;
use std::path::PathBuf;

use cni_harness::{Netns, Sandbox};
use serde_json::{json, Value};

use crate::check::Plugin;
use crate::ctx::{Ctx, TempDir};
use crate::exec::{Call, Out};
use crate::result;

/// The network name every check uses (each check has its own data dir).
pub const NET: &str = "cnc-net";
/// The IPv4 subnet of the test network, and its gateway.
pub const SUBNET: &str = "10.77.0.0/24";
pub const GATEWAY: &str = "10.77.0.1";
/// The IPv6 subnet of dual-stack configs.
pub const SUBNET6: &str = "fd77::/64";
/// The bridge the configs name.
pub const BRIDGE: &str = "cnc0";

/// One ADD that succeeded.
#[derive(Debug, Clone)]
pub struct Att {
    /// Index of its container namespace in the sandbox.
    pub ctr: usize,
    pub id: String,
    pub ifname: String,
    pub result: Value,
}

impl Att {
    pub fn ipv4(&self) -> Result<IpAddr, String> {
        result::ipv4(&self.result)
    }
}

/// A network under test.
pub struct Net<'c, 'e> {
    pub ctx: &'c Ctx<'e>,
    pub plugin: Plugin,
    pub sb: Sandbox,
    pub data: TempDir,
    pub conf: Value,
}

/// The `ipam` section: host-local with its data in `data`.
pub fn ipam_section(data: &TempDir, ranges: Value) -> Value {
    json!({
        "type": "host-local",
        "dataDir": data.path(),
        "ranges": ranges,
        "routes": [{"dst": "0.0.0.0/0"}],
    })
}

/// One IPv4 range set of the test subnet.
pub fn v4_ranges() -> Value {
    json!([[{"subnet": SUBNET}]])
}

/// IPv4 and IPv6 range sets.
pub fn dual_ranges() -> Value {
    json!([[{"subnet": SUBNET}], [{"subnet": SUBNET6}]])
}

/// A v4 range of `n` addresses starting at .10.
pub fn small_ranges(n: u8) -> Value {
    json!([[{"subnet": SUBNET, "rangeStart": "10.77.0.10",
             "rangeEnd": format!("10.77.0.{}", 9 + n)}]])
}

impl<'c, 'e> Net<'c, 'e> {
    /// A bridge network (`isGateway`, host-local with one IPv4 range).
    pub fn bridge(ctx: &'c Ctx<'e>) -> Result<Net<'c, 'e>, String> {
        Net::bridge_with(ctx, v4_ranges())
    }

    pub fn bridge_with(ctx: &'c Ctx<'e>, ranges: Value) -> Result<Net<'c, 'e>, String> {
        let data = ctx.tempdir()?;
        let conf = json!({
            "cniVersion": ctx.version,
            "name": NET,
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipam": ipam_section(&data, ranges),
        });
        Ok(Net {
            ctx,
            plugin: Plugin::Bridge,
            sb: ctx.sandbox(),
            data,
            conf,
        })
    }

    /// host-local called directly, as a main plugin would call it.
    pub fn host_local(ctx: &'c Ctx<'e>, ranges: Value) -> Result<Net<'c, 'e>, String> {
        let data = ctx.tempdir()?;
        let conf = json!({
            "cniVersion": ctx.version,
            "name": NET,
            "type": "host-local",
            "ipam": ipam_section(&data, ranges),
        });
        Ok(Net {
            ctx,
            plugin: Plugin::HostLocal,
            sb: ctx.sandbox(),
            data,
            conf,
        })
    }

    /// Sets a top-level key of the config.
    pub fn set(&mut self, key: &str, value: Value) {
        self.conf[key] = value;
    }

    /// A new container namespace; its index.
    pub fn container(&mut self) -> usize {
        self.sb.add_container();
        self.sb.container_count() - 1
    }

    pub fn ns(&self, i: usize) -> &Netns {
        self.sb.container(i)
    }

    pub fn host(&self) -> &Netns {
        self.sb.host()
    }

    pub fn path(&self, i: usize) -> PathBuf {
        self.sb.container(i).path()
    }

    pub fn path_str(&self, i: usize) -> String {
        self.path(i).to_string_lossy().into_owned()
    }

    /// A call of this network's plugin for container `i` with `conf`.
    pub fn call_with(&self, cmd: &str, i: usize, id: &str, ifname: &str, conf: &Value) -> Call {
        self.ctx
            .call(self.plugin, cmd)
            .attach(id, &self.path(i), ifname)
            .config(conf)
    }

    pub fn call(&self, cmd: &str, i: usize, id: &str, ifname: &str) -> Call {
        self.call_with(cmd, i, id, ifname, &self.conf)
    }

    /// The config with `prevResult`.
    pub fn with_prev(&self, prev: &Value) -> Value {
        let mut c = self.conf.clone();
        c["prevResult"] = prev.clone();
        c
    }

    /// ADD into container `i`; the attachment when it succeeded.
    pub fn add_in(&self, i: usize, id: &str, ifname: &str) -> Result<Att, String> {
        let out = self.call("ADD", i, id, ifname).run(self.host());
        let result = out.result()?;
        Ok(Att {
            ctr: i,
            id: id.to_string(),
            ifname: ifname.to_string(),
            result,
        })
    }

    /// A new container and ADD `id`/`eth0` into it.
    pub fn add(&mut self, id: &str) -> Result<Att, String> {
        let i = self.container();
        self.add_in(i, id, "eth0")
    }

    /// DEL with the ADD result as prevResult (as a runtime does).
    pub fn del(&self, a: &Att) -> Out {
        self.call_with("DEL", a.ctr, &a.id, &a.ifname, &self.with_prev(&a.result))
            .run(self.host())
    }

    /// CHECK with the ADD result as prevResult.
    pub fn check(&self, a: &Att) -> Out {
        self.call_with("CHECK", a.ctr, &a.id, &a.ifname, &self.with_prev(&a.result))
            .run(self.host())
    }

    /// host-local's leases of this network: (address, owner text), using the
    /// reference on-disk layout (one file per address under
    /// `<dataDir>/<network>/`, content `<id>\r\n<ifname>`).
    pub fn leases(&self) -> Vec<(IpAddr, String)> {
        leases_in(&self.data, NET)
    }

    /// The addresses leased to (id, ifname).
    pub fn leased_to(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let owner = format!("{id}\r\n{ifname}");
        self.leases()
            .into_iter()
            .filter(|(_, o)| o.trim() == owner)
            .map(|(ip, _)| ip)
            .collect()
    }

    /// Fails unless (id, ifname) holds no lease.
    pub fn expect_released(&self, id: &str, ifname: &str) -> Result<(), String> {
        let held = self.leased_to(id, ifname);
        if held.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{id}/{ifname} still holds {held:?} in host-local's data dir"
            ))
        }
    }

    /// Fails unless (id, ifname) holds a lease.
    pub fn expect_leased(&self, id: &str, ifname: &str) -> Result<(), String> {
        if self.leased_to(id, ifname).is_empty() {
            Err(format!(
                "{id}/{ifname} holds no lease in host-local's data dir (leases: {:?})",
                self.leases()
            ))
        } else {
            Ok(())
        }
    }

    /// Fails unless no lease at all exists.
    pub fn expect_no_leases(&self) -> Result<(), String> {
        let l = self.leases();
        if l.is_empty() {
            Ok(())
        } else {
            Err(format!("host-local's data dir holds leases: {l:?}"))
        }
    }

    /// Fails unless container `i` has no link `ifname`.
    pub fn expect_no_link(&self, i: usize, ifname: &str) -> Result<(), String> {
        match crate::kernel::link(self.ns(i), ifname)? {
            None => Ok(()),
            Some(l) => Err(format!(
                "{ifname} still exists in the container ({}, flags {}, addresses {:?})",
                l["linkinfo"]["info_kind"]
                    .as_str()
                    .unwrap_or("unknown kind"),
                l["flags"],
                crate::kernel::addrs(self.ns(i), ifname).unwrap_or_default()
            )),
        }
    }

    /// Fails unless container `i` has a link `ifname`.
    pub fn expect_link(&self, i: usize, ifname: &str) -> Result<Value, String> {
        crate::kernel::link(self.ns(i), ifname)?
            .ok_or_else(|| format!("no interface {ifname} in the container"))
    }

    /// Fails unless what ADD made for `a` is there: its host-local lease,
    /// and for the bridge CNI_IFNAME in the container. A check that judges
    /// a removal (DEL, GC) calls this first: "nothing is left" proves
    /// nothing when nothing was ever there (or when the look misses it).
    pub fn expect_attached(&self, a: &Att) -> Result<(), String> {
        let never = |e: String| {
            format!(
                "after ADD of {}/{}: {e}; it was never there, so its removal cannot be judged",
                a.id, a.ifname
            )
        };
        if self.plugin == Plugin::Bridge {
            self.expect_link(a.ctr, &a.ifname).map_err(never)?;
        }
        self.expect_leased(&a.id, &a.ifname).map_err(never)?;
        Ok(())
    }
}

/// host-local leases of `network` under `data`.
pub fn leases_in(data: &TempDir, network: &str) -> Vec<(IpAddr, String)> {
    let dir = data.path().join(network);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(IpAddr, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
            let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
            Some((ip, owner))
        })
        .collect();
    out.sort();
    out
}
