//! GC: the still-valid attachments, and garbage-collecting a network.

use std::io;
use std::path::Path;

use serde_json::{json, Value};

use crate::cache;
use crate::conf::{gc_request, NetworkConfigList};
use crate::error::{Command, Error};
use crate::exec::PluginEnv;
use crate::runtime::{Attachment, Report, Runtime};

/// One still-valid attachment, as GC sends it: `{"containerID", "ifname"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GcAttachment {
    pub container_id: String,
    pub ifname: String,
}

impl GcAttachment {
    pub fn to_json(&self) -> Value {
        json!({"containerID": self.container_id, "ifname": self.ifname})
    }
}

/// The attachments of `network` recorded in the result cache, in cache file
/// name order. cnitool has no other record of which containers exist, so it
/// treats every attachment it added (and has not deleted) as still valid.
pub fn cached_valid_attachments(cache_dir: &Path, network: &str) -> io::Result<Vec<GcAttachment>> {
    Ok(cache::attachments(cache_dir)?
        .into_iter()
        .filter(|e| e.network_name == network)
        .map(|e| GcAttachment {
            container_id: e.container_id,
            ifname: e.if_name,
        })
        .collect())
}

impl Runtime {
    /// Garbage-collects `list`, given the attachments that are still valid, as
    /// libcni's GCNetworkList does:
    ///
    /// 1. every attachment of this network in the result cache that is not in
    ///    `valid` gets a DEL (with the netns, CNI_ARGS and capability args
    ///    recorded in its cache entry);
    /// 2. at version 1.1.0 or later, every plugin gets GC with `valid` under
    ///    `cni.dev/valid-attachments` and `cni.dev/attachments`.
    ///
    /// Both steps keep going after a failure and report all failures.
    /// `disableGC` makes GC do nothing.
    pub fn gc(&self, list: &NetworkConfigList, valid: &[GcAttachment]) -> Result<Report, Error> {
        let mut report = Report::default();
        if list.disable_gc {
            report.notes.push(format!(
                "network {:?} sets disableGC: GC skipped",
                list.name
            ));
            return Ok(report);
        }
        let binaries = self.resolve(list)?;
        let mut errors = Vec::new();

        match cache::attachments(&self.cache_dir) {
            Ok(entries) => {
                for entry in entries.into_iter().filter(|e| e.network_name == list.name) {
                    let key = GcAttachment {
                        container_id: entry.container_id.clone(),
                        ifname: entry.if_name.clone(),
                    };
                    if valid.contains(&key) {
                        continue;
                    }
                    let att = Attachment {
                        container_id: entry.container_id,
                        netns: entry.netns,
                        ifname: entry.if_name,
                        cni_args: entry.cni_args.into_iter().map(|[k, v]| (k, v)).collect(),
                        capability_args: entry.capability_args,
                    };
                    match self.del(list, &att) {
                        Ok(r) => {
                            report.notes.extend(r.notes);
                            report.notes.push(format!(
                                "deleted stale attachment {} {}",
                                key.container_id, key.ifname
                            ));
                        }
                        Err(e) => errors.push(Error::Cache(format!(
                            "failed to delete stale attachment {} {}: {e}",
                            key.container_id, key.ifname
                        ))),
                    }
                }
            }
            Err(e) => report.notes.push(format!(
                "cannot list the result cache {}: {e}",
                cache::results_dir(&self.cache_dir).display()
            )),
        }

        if list.cni_version.has_status_and_gc() {
            let env = PluginEnv {
                command: Command::Gc,
                container_id: String::new(),
                netns: String::new(),
                ifname: String::new(),
                cni_args: String::new(),
                cni_path: self.cni_path(),
            };
            for (plugin, binary) in list.plugins.iter().zip(&binaries) {
                let conf = gc_request(list, plugin, valid);
                if let Err(e) = self.invoke(binary, &plugin.plugin_type, &env, &conf) {
                    errors.push(e);
                }
            }
        } else {
            report.notes.push(format!(
                "network {:?} is at CNI {}: plugins get GC from 1.1.0 on, so none was called",
                list.name, list.cni_version
            ));
        }

        match errors.len() {
            0 => Ok(report),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{write_entry, CacheEntry, CACHE_KIND};
    use crate::testutil::TempDir;

    #[test]
    fn valid_set_is_this_networks_cached_attachments() {
        let tmp = TempDir::new();
        for (net, cid, ifname) in [
            ("a", "c2", "eth0"),
            ("b", "c1", "eth0"),
            ("a", "c1", "net1"),
        ] {
            write_entry(
                tmp.path(),
                &CacheEntry {
                    kind: CACHE_KIND.into(),
                    container_id: cid.into(),
                    config: vec![],
                    if_name: ifname.into(),
                    network_name: net.into(),
                    netns: String::new(),
                    cni_args: vec![],
                    capability_args: Default::default(),
                    result: None,
                },
            )
            .unwrap();
        }
        let got = cached_valid_attachments(tmp.path(), "a").unwrap();
        assert_eq!(
            got,
            vec![
                GcAttachment {
                    container_id: "c1".into(),
                    ifname: "net1".into()
                },
                GcAttachment {
                    container_id: "c2".into(),
                    ifname: "eth0".into()
                },
            ]
        );
        assert_eq!(
            got[0].to_json(),
            json!({"containerID": "c1", "ifname": "net1"})
        );
        assert!(cached_valid_attachments(tmp.path(), "zzz")
            .unwrap()
            .is_empty());
    }
}
