//! The `portmap` meta plugin: host port -> container port forwarding with
//! nftables (no iptables backend). Chained after a main plugin (bridge, ...)
//! it reads the container addresses from `prevResult` and the mappings from
//! the `portMappings` capability, and installs the rules of
//! [`nft::portmap`] (table `inet cni_portmap`, every rule tagged with the
//! attachment "<network>/<containerID>/<ifname>").
//!
//! Behaviour, and where it differs from the reference plugin:
//! - ADD without `prevResult` fails with code 7 (the config is not chained);
//!   without `portMappings` (or with an empty list) it prints `prevResult`
//!   unchanged and touches nothing.
//! - Container addresses: the first IPv4 and first IPv6 of `prevResult` whose
//!   `interface` is absent or names CNI_IFNAME with a sandbox (as the
//!   reference chooses them). Their prefix length gives the subnet whose
//!   members are masqueraded when they reach a mapping through the host
//!   (hairpin, `snat`).
//! - `snat` (default true) also masquerades 127.0.0.0/8 sources and sets
//!   `net.ipv4.conf.<iface>.route_localnet=1` on the interface the host routes
//!   the container's IPv4 address through, so `127.0.0.1:<hostPort>` works
//!   from the host. `masqAll` masquerades everything that goes through a
//!   mapping.
//! - `hostIP`: only that host address; `0.0.0.0` / `::` mean every address of
//!   that family; a mapping whose hostIP family has no container address is
//!   skipped. `protocol`: tcp (default), udp, sctp, case-insensitive.
//! - iptables-only keys: `markMasqBit` (validated 0..=31 like the reference,
//!   then ignored: hairpin masquerade uses conntrack state, not packet marks)
//!   and `externalSetMarkChain` (ignored; both together is code 7 as in the
//!   reference). `conditionsV4` / `conditionsV6` (non-empty) are refused with
//!   code 7: they are iptables (or nft-text) match fragments we cannot put in
//!   a JSON batch, and silently dropping them would expose the ports more
//!   widely than configured. `backend`: absent or `"nftables"`; `"iptables"`
//!   and anything else are code 7.
//! - DEL needs neither `prevResult` nor `portMappings`: it removes whatever
//!   carries the attachment's tag; repeated DEL and DEL without any state
//!   succeed. `route_localnet` is left on (shared by other containers).
//! - CHECK compares the kernel's rules with the expected ones for exactly the
//!   container's address families (the reference fails on IPv4-only
//!   containers), and that route_localnet is on when `snat` needs it.
//!   Differences are code 102.
//! - GC removes the rules of this network's attachments that are not in
//!   `cni.dev/valid-attachments` (absent list: nothing is removed).
//! - STATUS: code 50 unless `nft` is installed and the kernel accepts the
//!   table (checked with `nft -c`, nothing applied).
//! - Conntrack entries of UDP mappings are not flushed on ADD (the reference
//!   does): an already-tracked UDP flow to the host port keeps its old path
//!   until it times out.

use std::net::IpAddr;

use cni::{CniResult, Error, Plugin, Request};
use ipnetwork::IpNetwork;
use netlink::Sysctl;
use nft::portmap::{PortMapping, Protocol, Spec};
use serde::Deserialize;
use serde_json::Value;

/// The plugin.
pub struct Portmap;

/// The plugin-specific config keys.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    snat: Option<bool>,
    masq_all: Option<bool>,
    mark_masq_bit: Option<i64>,
    external_set_mark_chain: Option<String>,
    conditions_v4: Option<Vec<String>>,
    conditions_v6: Option<Vec<String>>,
    backend: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub snat: bool,
    pub masq_all: bool,
    pub mappings: Vec<PortMapping>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid_config(msg)
}

fn port(v: &Value, what: &str, i: usize) -> Result<u16, Error> {
    let n = v.as_i64().ok_or_else(|| {
        invalid(format!(
            "portMappings[{i}].{what} must be an integer, got {v}"
        ))
    })?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(invalid(format!(
            "Invalid {} port number: {n} (portMappings[{i}], must be 1-65535)",
            if what == "hostPort" {
                "host"
            } else {
                "container"
            }
        ))),
    }
}

fn parse_mapping(v: &Value, i: usize) -> Result<PortMapping, Error> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("portMappings[{i}] must be an object")))?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let host_port = port(
        get("hostPort").ok_or_else(|| invalid(format!("portMappings[{i}] has no hostPort")))?,
        "hostPort",
        i,
    )?;
    let container_port = port(
        get("containerPort")
            .ok_or_else(|| invalid(format!("portMappings[{i}] has no containerPort")))?,
        "containerPort",
        i,
    )?;
    let protocol = match get("protocol") {
        None => Protocol::Tcp,
        Some(Value::String(s)) if s.is_empty() => Protocol::Tcp,
        Some(Value::String(s)) => s
            .parse()
            .map_err(|e: String| invalid(format!("portMappings[{i}]: {e}")))?,
        Some(other) => {
            return Err(invalid(format!(
                "portMappings[{i}].protocol must be a string, got {other}"
            )))
        }
    };
    let host_ip = match get("hostIP") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            s.parse::<IpAddr>()
                .map_err(|e| invalid(format!("portMappings[{i}].hostIP {s:?}: {e}")))?,
        ),
        Some(other) => {
            return Err(invalid(format!(
                "portMappings[{i}].hostIP must be a string, got {other}"
            )))
        }
    };
    Ok(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

impl Config {
    /// Parses and validates the plugin keys and the `portMappings` capability.
    pub fn from_request(req: &Request) -> Result<Config, Error> {
        let raw: RawConf = req.config.plugin_config()?;
        match raw.backend.as_deref() {
            None | Some("") | Some("nftables") => {}
            Some("iptables") => return Err(invalid(
                "portmap: only the nftables backend is supported (backend \"iptables\" requested)",
            )),
            Some(other) => return Err(invalid(format!("portmap: unrecognized backend {other:?}"))),
        }
        if let Some(bit) = raw.mark_masq_bit {
            if !(0..=31).contains(&bit) {
                return Err(invalid(format!(
                    "MasqMarkBit must be between 0 and 31, got {bit}"
                )));
            }
            if raw.external_set_mark_chain.is_some() {
                return Err(invalid(
                    "Cannot specify externalSetMarkChain and markMasqBit",
                ));
            }
        }
        for (key, conds) in [
            ("conditionsV4", &raw.conditions_v4),
            ("conditionsV6", &raw.conditions_v6),
        ] {
            if conds.as_ref().is_some_and(|c| !c.is_empty()) {
                return Err(invalid(format!(
                    "portmap: {key} is not supported by this nftables-only plugin (the mappings would apply without those conditions)"
                )));
            }
        }
        let mappings = match req.config.capability("portMappings") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_mapping(v, i))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(format!(
                    "runtimeConfig.portMappings must be a list, got {other}"
                )))
            }
        };
        Ok(Config {
            snat: raw.snat.unwrap_or(true),
            masq_all: raw.masq_all.unwrap_or(false),
            mappings,
        })
    }
}

/// The first IPv4 and first IPv6 address of the container, chosen as the
/// reference does: `interface` absent, out of range, or naming `ifname` with
/// a sandbox.
pub fn container_ips(prev: &CniResult, ifname: &str) -> (Option<IpNetwork>, Option<IpNetwork>) {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &prev.ips {
        let ours = match ip.interface.and_then(|i| prev.interfaces.get(i)) {
            None => true,
            Some(iface) => iface.name == ifname && iface.sandbox.is_some(),
        };
        if !ours {
            continue;
        }
        let slot = if ip.address.is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        if slot.is_none() {
            *slot = Some(ip.address.inner());
        }
    }
    (v4, v6)
}

fn attachment<'a>(req: &'a Request) -> Result<nft::Attachment<'a>, Error> {
    Ok(nft::Attachment {
        network: req.config.name.as_str(),
        container_id: req.container_id()?.as_str(),
        ifname: req.ifname()?.as_str(),
    })
}

fn nft_error(e: nft::Error) -> Error {
    if e.is_mismatch() {
        Error::check_failed(format!("portmap: {e}"))
    } else {
        Error::plugin(format!("portmap: {e}"))
    }
}

fn kernel(e: netlink::Error) -> Error {
    Error::plugin(format!("portmap: {e}"))
}

/// The interface the host sends packets for `ip` out of, as the kernel
/// routes them: one `RTM_GETROUTE` lookup (what `ip route get` and the
/// reference plugin do), then the name of its output interface; on a plain
/// blocking socket (`netlink::lookup`): that is all the netlink portmap does.
fn iface_toward(ip: IpAddr) -> Result<String, Error> {
    let oif = netlink::lookup::route_oif(ip)
        .map_err(kernel)?
        .ok_or_else(|| Error::plugin(format!("portmap: no route to container address {ip}")))?;
    netlink::lookup::ifname(oif)
        .map_err(kernel)?
        .ok_or_else(|| {
            Error::plugin(format!(
                "portmap: route to {ip} uses missing interface {oif}"
            ))
        })
}

fn localnet_key(iface: &str) -> String {
    format!("net/ipv4/conf/{iface}/route_localnet")
}

/// What ADD and CHECK act on: the config and the container's addresses.
struct Work {
    conf: Config,
    v4: Option<IpNetwork>,
    v6: Option<IpNetwork>,
}

impl Work {
    /// `None` when there is nothing to do (no mappings, no container address).
    fn prepare(req: &Request, prev: &CniResult) -> Result<Option<Work>, Error> {
        let conf = Config::from_request(req)?;
        if conf.mappings.is_empty() {
            return Ok(None);
        }
        let (v4, v6) = container_ips(prev, req.ifname()?.as_str());
        if v4.is_none() && v6.is_none() {
            return Ok(None);
        }
        Ok(Some(Work { conf, v4, v6 }))
    }

    fn spec(&self) -> Spec<'_> {
        Spec {
            mappings: &self.conf.mappings,
            container_v4: self.v4,
            container_v6: self.v6,
            snat: self.conf.snat,
            masq_all: self.conf.masq_all,
        }
    }

    /// The IPv4 address whose route needs route_localnet, when snat wants it.
    fn localnet_target(&self) -> Option<IpAddr> {
        self.v4.filter(|_| self.conf.snat).map(|n| n.ip())
    }
}

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult, Error> {
        let prev =
            req.config.prev_result.as_ref().ok_or_else(|| {
                invalid("portmap must be called as a chained plugin (no prevResult)")
            })?;
        let Some(work) = Work::prepare(req, prev)? else {
            // No mappings, or no container address: hand prevResult on.
            return Ok(prev.clone());
        };
        // Looked up first (a failure changes nothing), set after the rules
        // are in: a failed ADD leaves no sysctl behind.
        let localnet = work.localnet_target().map(iface_toward).transpose()?;
        let att = attachment(req)?;
        nft::portmap::add(&att, &work.spec()).map_err(nft_error)?;
        if let Some(iface) = localnet {
            if let Err(e) = Sysctl::ensure_here(&localnet_key(&iface), "1") {
                if let Err(undo) = nft::portmap::del(&att) {
                    eprintln!("portmap: rollback failed: {undo}");
                }
                return Err(kernel(e));
            }
        }
        Ok(prev.clone())
    }

    fn del(&self, req: &Request) -> Result<(), Error> {
        // Nothing from the config or prevResult is needed: the rules are
        // found by the attachment's tag. Closing the socket that deleted
        // them waits for the kernel to free them: the guard hands that wait
        // to a forked child (on every return path), the runtime gets our
        // answer at once.
        let removed = {
            let _parked = nft::park_sockets();
            nft::portmap::del(&attachment(req)?)
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.is_missing_binary() => {
                eprintln!("portmap: DEL: {e}; assuming no rules were ever installed");
                Ok(())
            }
            Err(e) => Err(nft_error(e)),
        }
    }

    fn check(&self, req: &Request) -> Result<(), Error> {
        let prev = req
            .config
            .prev_result
            .as_ref()
            .ok_or_else(|| invalid("portmap CHECK: required prevResult missing"))?;
        let Some(work) = Work::prepare(req, prev)? else {
            return Ok(());
        };
        nft::portmap::check(&attachment(req)?, &work.spec()).map_err(nft_error)?;
        if let Some(c4) = work.localnet_target() {
            let iface = iface_toward(c4)?;
            let v = Sysctl::read_here(&localnet_key(&iface)).map_err(kernel)?;
            if v.trim() != "1" {
                return Err(Error::check_failed(format!(
                    "portmap: route_localnet is {v} on {iface}, expected 1"
                )));
            }
        }
        Ok(())
    }

    fn status(&self, _req: &Request) -> Result<(), Error> {
        nft::portmap::probe().map_err(|e| {
            Error::new(
                cni::ErrorCode::NOT_AVAILABLE,
                format!("portmap: nftables not usable: {e}"),
            )
        })
    }

    fn gc(&self, req: &Request) -> Result<(), Error> {
        let Some(valid) = &req.config.valid_attachments else {
            eprintln!("portmap: GC without cni.dev/valid-attachments: nothing removed");
            return Ok(());
        };
        let keep: Vec<(String, String)> = valid
            .iter()
            .map(|a| {
                (
                    a.container_id.as_str().to_string(),
                    a.ifname.as_str().to_string(),
                )
            })
            .collect();
        match nft::portmap::gc(req.config.name.as_str(), &keep) {
            Ok(_) => Ok(()),
            Err(e) if e.is_missing_binary() => Ok(()),
            Err(e) => Err(nft_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::{CniArgs, Command, NetConf, Version};
    use serde_json::json;

    fn request(conf: Value) -> Request {
        Request {
            command: Command::Add,
            container_id: Some("ctr1".parse().unwrap()),
            netns: None,
            ifname: Some("eth0".parse().unwrap()),
            args: CniArgs::parse("").unwrap(),
            cni_path: vec![],
            config: NetConf::parse(conf, Version::V1_0_0).unwrap(),
            stdin: vec![],
        }
    }

    fn conf(extra: Value) -> Value {
        let mut c = json!({"cniVersion": "1.0.0", "name": "net1", "type": "portmap"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn parse(extra: Value) -> Result<Config, Error> {
        Config::from_request(&request(conf(extra)))
    }

    #[test]
    fn defaults_and_mappings() {
        let c = parse(json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "192.0.2.1"},
            {"hostPort": 9000, "containerPort": 9000, "protocol": "sctp", "hostIP": ""}
        ]}}))
        .unwrap();
        assert!(c.snat);
        assert!(!c.masq_all);
        assert_eq!(c.mappings.len(), 3);
        assert_eq!(c.mappings[0].protocol, Protocol::Tcp);
        assert_eq!(c.mappings[0].host_ip, None);
        assert_eq!(c.mappings[1].protocol, Protocol::Udp);
        assert_eq!(c.mappings[1].host_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(c.mappings[2].host_ip, None);
        let c = parse(json!({"snat": false, "masqAll": true})).unwrap();
        assert!(!c.snat && c.masq_all && c.mappings.is_empty());
    }

    #[test]
    fn bad_configs_are_code_7() {
        let cases = [
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 70000, "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": -1}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": "80", "containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"containerPort": 80}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]}}),
            json!({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]}}),
            json!({"runtimeConfig": {"portMappings": {"hostPort": 80}}}),
            json!({"backend": "iptables"}),
            json!({"backend": "ebpf"}),
            json!({"markMasqBit": 32}),
            json!({"markMasqBit": 5, "externalSetMarkChain": "X"}),
            json!({"conditionsV4": ["-s", "1.2.3.4"]}),
            json!({"conditionsV6": ["ip6 saddr ::1"]}),
            json!({"snat": "yes"}),
        ];
        for c in cases {
            let e = parse(c.clone()).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::INVALID_CONFIG, "{c}: {e:?}");
        }
    }

    #[test]
    fn iptables_only_keys_are_accepted_when_harmless() {
        parse(json!({"markMasqBit": 13, "backend": "nftables", "conditionsV4": []})).unwrap();
        parse(json!({"externalSetMarkChain": "KUBE-MARK-MASQ"})).unwrap();
    }

    /// Accepted and also ignored: with any of the iptables-only keys the
    /// config, and so the rule spec handed to nftables, is exactly the one
    /// without them.
    #[test]
    fn iptables_only_keys_do_not_change_the_rules() {
        let mappings = json!({"portMappings": [
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"}
        ]});
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.88.0.5/24", "interface": 0},
                    {"address": "fd88::5/64", "interface": 0}]
        });
        let spec_of = |extra: Value| {
            let mut c = conf(extra);
            c["runtimeConfig"] = mappings.clone();
            c["prevResult"] = prev.clone();
            let req = request(c);
            let parsed = Config::from_request(&req).unwrap();
            let prev = req.config.prev_result.as_ref().unwrap();
            let work = Work::prepare(&req, prev).unwrap().expect("work to do");
            let spec = work.spec();
            let addrs = (
                spec.container_v4.map(|n| n.to_string()),
                spec.container_v6.map(|n| n.to_string()),
            );
            (parsed, format!("{spec:?}"), addrs)
        };
        let (plain_conf, plain_spec, addrs) = spec_of(json!({}));
        // The baseline is not empty: both mappings, both container addresses.
        assert_eq!(plain_conf.mappings.len(), 2);
        assert!(plain_conf.snat && !plain_conf.masq_all);
        assert_eq!(
            addrs,
            (Some("10.88.0.5/24".into()), Some("fd88::5/64".into()))
        );
        for extra in [
            json!({"markMasqBit": 13}),
            json!({"markMasqBit": 0, "backend": "nftables"}),
            json!({"externalSetMarkChain": "KUBE-MARK-MASQ"}),
            json!({"conditionsV4": [], "conditionsV6": []}),
            json!({"backend": ""}),
        ] {
            let (c, spec, _) = spec_of(extra.clone());
            assert_eq!(c, plain_conf, "{extra}");
            assert_eq!(spec, plain_spec, "{extra}");
        }
        // The comparison can fail: a key that does change the rules does.
        let (c, spec, _) = spec_of(json!({"masqAll": true}));
        assert_ne!(c, plain_conf);
        assert_ne!(spec, plain_spec);
    }

    #[test]
    fn container_ips_follow_the_reference_choice() {
        let prev = CniResult::from_json(
            &json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "cni0"},
                    {"name": "veth1"},
                    {"name": "eth0", "sandbox": "/run/netns/x"},
                    {"name": "eth1", "sandbox": "/run/netns/x"}
                ],
                "ips": [
                    {"address": "10.1.0.5/24", "interface": 0},
                    {"address": "10.2.0.5/24", "interface": 3},
                    {"address": "10.88.0.5/24", "interface": 2},
                    {"address": "10.88.0.6/24", "interface": 2},
                    {"address": "fd00::5/64"}
                ]
            }),
            Version::V1_0_0,
        )
        .unwrap();
        let (v4, v6) = container_ips(&prev, "eth0");
        assert_eq!(v4.unwrap().to_string(), "10.88.0.5/24");
        assert_eq!(v6.unwrap().to_string(), "fd00::5/64");
        let (v4, _) = container_ips(&prev, "eth1");
        assert_eq!(v4.unwrap().to_string(), "10.2.0.5/24");
    }
}
