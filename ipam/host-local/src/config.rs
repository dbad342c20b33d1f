//! The host-local configuration, read from the whole network config exactly as
//! the reference reads it: `ipam.ranges`, the legacy flat range
//! (`ipam.subnet`/`rangeStart`/`rangeEnd`/`gateway`, prepended as its own
//! set), `runtimeConfig.ipRanges` (prepended before both), `ipam.routes`,
//! `ipam.resolvConf`, `ipam.dataDir`, and the requested addresses from CNI_ARGS
//! `IP=`, `args.cni.ips` and `runtimeConfig.ips`.
//!
//! Keys are matched like Go's `encoding/json`, which the reference uses: an
//! exact match first, else any key equal ignoring ASCII case (`"RANGES"` is
//! `ranges`). A `null` value counts as absent; an empty string for an address
//! counts as absent as it does for Go's `net.IP`.
//!
//! Everything is validated here, before the plugin touches the disk: every
//! failure is code 7.

use std::net::IpAddr;
use std::path::PathBuf;

use cni::{Error, NetConf, NetworkName, Route};
use ipam_core::conf::{
    as_object, assign_requested, field, ipam_section, opt_string, range_config, range_sets,
    requested_ips, routes, validate_sets,
};
use ipam_core::{RangeConfig, RangeSet};
use serde_json::Value;

/// Where leases live unless `ipam.dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A validated host-local configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The network name: the lease directory is `<data_dir>/<network>`.
    pub network: NetworkName,
    pub data_dir: PathBuf,
    /// Range sets in allocation order (runtime ranges, legacy range, `ranges`).
    pub sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: Option<PathBuf>,
    /// For each range set, the address requested from it, if any.
    pub requested: Vec<Option<IpAddr>>,
}

/// `ipam.dataDir`, or the default. DEL and GC need nothing else, so they still
/// work when the ranges of a config no longer validate.
pub fn data_dir(raw: &Value) -> Result<PathBuf, Error> {
    let ipam = ipam_section(raw)?;
    Ok(opt_string(ipam, "dataDir", "ipam")?
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
}

impl Config {
    /// Reads and validates the config of a request.
    pub fn load(conf: &NetConf, env_ip: Option<&str>) -> Result<Config, Error> {
        Config::parse(&conf.raw, conf.name.clone(), env_ip)
    }

    /// Reads and validates a config; `env_ip` is CNI_ARGS `IP=`.
    pub fn parse(raw: &Value, network: NetworkName, env_ip: Option<&str>) -> Result<Config, Error> {
        let ipam = ipam_section(raw)?;
        let top = as_object(raw, "network config")?;

        let mut cfgs: Vec<Vec<RangeConfig>> = Vec::new();
        if let Some(rc) = field(top, "runtimeConfig") {
            let rc = as_object(rc, "runtimeConfig")?;
            if let Some(r) = field(rc, "ipRanges") {
                cfgs.extend(range_sets(r, "runtimeConfig.ipRanges")?);
            }
        }
        // The legacy flat range counts only when it has a subnet.
        if field(ipam, "subnet").is_some() {
            cfgs.push(vec![range_config(&Value::Object(ipam.clone()), "ipam")?]);
        }
        if let Some(r) = field(ipam, "ranges") {
            cfgs.extend(range_sets(r, "ipam.ranges")?);
        }
        let sets = validate_sets(&cfgs)?;
        let routes = routes(ipam)?;
        let requested = assign_requested(&sets, &requested_ips(raw, env_ip)?)?;
        Ok(Config {
            network,
            data_dir: data_dir(raw)?,
            sets,
            routes,
            resolv_conf: opt_string(ipam, "resolvConf", "ipam")?.map(PathBuf::from),
            requested,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::ErrorCode;
    use ipam_core::conf::parse_requested;
    use serde_json::json;

    fn net() -> NetworkName {
        "net1".parse().unwrap()
    }

    fn parse(raw: Value) -> Result<Config, Error> {
        Config::parse(&raw, net(), None)
    }

    fn with_ipam(ipam: Value) -> Value {
        json!({"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "ipam": ipam})
    }

    fn set_strings(c: &Config) -> Vec<String> {
        c.sets.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranges_routes_data_dir_and_resolv_conf() {
        let c = parse(with_ipam(json!({
            "type": "host-local",
            "ranges": [
                [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20", "gateway": "10.1.0.254"},
                 {"subnet": "10.2.0.0/24"}],
                [{"subnet": "fd00::/120"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.0.254"}],
            "dataDir": "/tmp/x",
            "resolvConf": "/etc/resolv.conf"
        })))
        .unwrap();
        assert_eq!(
            set_strings(&c),
            [
                "10.1.0.10-10.1.0.20,10.2.0.1-10.2.0.254",
                "fd00::1-fd00::ff"
            ]
        );
        assert_eq!(
            c.sets[0].ranges()[0].gateway().unwrap().to_string(),
            "10.1.0.254"
        );
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].gw.unwrap().to_string(), "10.1.0.254");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));
        assert_eq!(c.requested, vec![None, None]);
        assert_eq!(c.network.as_str(), "net1");
    }

    #[test]
    fn defaults() {
        let c = parse(with_ipam(
            json!({"type": "host-local", "subnet": "10.1.0.0/24"}),
        ))
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.routes.is_empty());
        assert!(c.resolv_conf.is_none());
        // Empty strings mean "not set", as for Go's net.IP and string fields.
        let c = parse(with_ipam(json!({
            "type": "host-local", "subnet": "10.1.0.0/24", "rangeStart": "", "gateway": "",
            "dataDir": "", "resolvConf": ""
        })))
        .unwrap();
        assert_eq!(set_strings(&c), ["10.1.0.1-10.1.0.254"]);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(c.resolv_conf.is_none());
    }

    #[test]
    fn legacy_range_then_runtime_ranges_are_prepended_in_the_references_order() {
        let mut raw = with_ipam(json!({
            "type": "host-local",
            "subnet": "10.5.0.0/24", "rangeStart": "10.5.0.50", "rangeEnd": "10.5.0.60",
            "ranges": [[{"subnet": "fd05::/64"}]]
        }));
        raw["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.4.0.0/24"}]]});
        let c = parse(raw).unwrap();
        assert_eq!(
            set_strings(&c),
            [
                "10.4.0.1-10.4.0.254",
                "10.5.0.50-10.5.0.60",
                "fd05::1-fd05::ffff:ffff:ffff:ffff"
            ]
        );
        // Legacy keys without a subnet are ignored, as in the reference.
        let c = parse(with_ipam(json!({
            "type": "host-local", "rangeStart": "10.5.0.50",
            "ranges": [[{"subnet": "10.6.0.0/24"}]]
        })))
        .unwrap();
        assert_eq!(set_strings(&c), ["10.6.0.1-10.6.0.254"]);
    }

    #[test]
    fn keys_match_case_insensitively_like_gos_decoder() {
        let raw = json!({
            "cniVersion": "1.0.0", "name": "net1", "type": "bridge",
            "IPAM": {"Type": "host-local", "RANGES": [[{"SUBNET": "10.1.0.0/24", "RangeStart": "10.1.0.7"}]],
                     "datadir": "/tmp/y", "Routes": [{"dst": "0.0.0.0/0"}]},
            "RuntimeConfig": {"IPS": ["10.1.0.9"]},
            "ARGS": {"CNI": {"Ips": ["10.1.0.8"]}}
        });
        // Two requests for one set: rejected, which proves both were read.
        let e = parse(raw.clone()).unwrap_err();
        assert!(e.msg.contains("10.1.0.8 and 10.1.0.9"), "{}", e.msg);
        let mut raw = raw;
        raw["ARGS"] = json!({});
        let c = parse(raw).unwrap();
        assert_eq!(set_strings(&c), ["10.1.0.7-10.1.0.254"]);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.requested, vec![Some("10.1.0.9".parse().unwrap())]);
        // An exact match wins over a case-insensitive one.
        let c = parse(with_ipam(json!({
            "type": "host-local", "dataDir": "/exact", "DATADIR": "/folded",
            "subnet": "10.1.0.0/24"
        })))
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/exact"));
    }

    #[test]
    fn requested_ips_from_all_three_channels() {
        let mut raw = with_ipam(json!({
            "type": "host-local",
            "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}], [{"subnet": "fd00::/64"}]]
        }));
        raw["args"] = json!({"cni": {"ips": ["10.2.0.20/24"]}});
        raw["runtimeConfig"] = json!({"ips": ["fd00::30"]});
        let c = Config::parse(&raw, net(), Some("10.1.0.10")).unwrap();
        let want: Vec<Option<IpAddr>> = ["10.1.0.10", "10.2.0.20", "fd00::30"]
            .iter()
            .map(|s| Some(s.parse().unwrap()))
            .collect();
        assert_eq!(c.requested, want);
        // A comma-separated CNI_ARGS list (the reference accepts only one).
        raw["args"] = json!({});
        raw["runtimeConfig"] = json!({});
        let c = Config::parse(&raw, net(), Some("10.1.0.10, 10.2.0.20,fd00::30")).unwrap();
        assert_eq!(c.requested, want);
    }

    #[test]
    fn requested_address_forms() {
        assert_eq!(
            parse_requested("10.0.0.5", "x").unwrap().to_string(),
            "10.0.0.5"
        );
        assert_eq!(
            parse_requested("10.0.0.5/24", "x").unwrap().to_string(),
            "10.0.0.5"
        );
        assert_eq!(
            parse_requested("fd00::5/64", "x").unwrap().to_string(),
            "fd00::5"
        );
        assert_eq!(
            parse_requested("::ffff:10.0.0.5", "x").unwrap().to_string(),
            "10.0.0.5"
        );
        for bad in [
            "",
            "10.0.0",
            "10.0.0.5/33",
            "10.0.0.5/",
            "10.0.0.5/x",
            "fd00::5/129",
            "a,b",
        ] {
            let e = parse_requested(bad, "x").unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_CONFIG, "{bad}");
        }
    }

    #[test]
    fn requested_ips_that_cannot_be_served_are_code_7() {
        let raw = with_ipam(json!({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]}));
        for ip in [
            "10.9.0.5",
            "10.1.0.1",
            "10.1.0.5,10.1.0.6",
            "10.1.0.255",
            "nonsense",
        ] {
            let e = Config::parse(&raw, net(), Some(ip)).unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_CONFIG, "{ip}: {}", e.msg);
        }
        // The same address twice is one request.
        let c = Config::parse(&raw, net(), Some("10.1.0.5,10.1.0.5")).unwrap();
        assert_eq!(c.requested, vec![Some("10.1.0.5".parse().unwrap())]);
    }

    #[test]
    fn invalid_configs_are_code_7() {
        let cases = [
            json!({"cniVersion": "1.0.0", "name": "n", "type": "host-local"}),
            with_ipam(json!({"type": "host-local"})),
            with_ipam(json!({"type": "host-local", "ranges": []})),
            with_ipam(json!({"type": "host-local", "ranges": [[]]})),
            with_ipam(json!({"type": "host-local", "ranges": [null]})),
            with_ipam(json!({"type": "host-local", "ranges": "10.0.0.0/24"})),
            with_ipam(json!({"type": "host-local", "ranges": [[{"rangeStart": "10.0.0.5"}]]})),
            with_ipam(json!({"type": "host-local", "ranges": [[{"subnet": 5}]]})),
            with_ipam(
                json!({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": 1}]]}),
            ),
            with_ipam(json!({"type": "host-local", "subnet": "10.0.0.1/24"})),
            with_ipam(json!({"type": "host-local", "subnet": "10.0.0.0/31"})),
            with_ipam(json!({"type": "host-local", "subnet": ""})),
            with_ipam(
                json!({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            ),
            with_ipam(
                json!({"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}),
            ),
            with_ipam(
                json!({"type": "host-local", "subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
            ),
            with_ipam(
                json!({"type": "host-local", "subnet": "10.0.0.0/24", "routes": [{"gw": "10.0.0.1"}]}),
            ),
            with_ipam(json!({"type": "host-local", "subnet": "10.0.0.0/24", "routes": {}})),
            with_ipam(json!({"type": "host-local", "subnet": "10.0.0.0/24", "dataDir": 5})),
            with_ipam(json!({"type": "host-local", "subnet": "10.0.0.0/24", "resolvConf": []})),
        ];
        for c in cases {
            let e = parse(c.clone()).unwrap_err();
            assert_eq!(e.code, ErrorCode::INVALID_CONFIG, "{c}");
        }
        let e = parse(with_ipam(json!({"type": "host-local", "ranges": [[]]}))).unwrap_err();
        assert_eq!(e.msg, "invalid range set 0: empty range set");
        let e = parse(with_ipam(json!({"type": "host-local"}))).unwrap_err();
        assert_eq!(e.msg, "no IP ranges specified");
    }

    #[test]
    fn data_dir_alone_ignores_broken_ranges() {
        let raw = with_ipam(json!({"type": "host-local", "dataDir": "/d", "ranges": [[]]}));
        assert_eq!(data_dir(&raw).unwrap(), PathBuf::from("/d"));
        assert!(data_dir(&json!({"name": "x"})).is_err());
    }
}
