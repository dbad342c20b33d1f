//! What still runs on a node, from the runtime: a list of container ids, or
//! libcni's result cache. Read before any etcd work, and strictly: a line or
//! a cache file we cannot make sense of could be a live container, whose
//! addresses must not be called leaked.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use cni::{ContainerId, Error};
use etcd_ipam::admin::Alive;
use serde_json::Value;

/// The container ids of `text`, one a line; blank lines and `#` comments
/// skipped. `source` names the input in errors.
fn parse_container_list(text: &str, source: &str) -> Result<BTreeSet<String>, Error> {
    let mut ids = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id: ContainerId = line.parse().map_err(|_| {
            Error::invalid_config(format!(
                "{source} line {}: {line:?} is not a container id (one id a line)",
                n + 1
            ))
        })?;
        ids.insert(id.as_str().to_string());
    }
    Ok(ids)
}

/// `--containers FILE` (`-`: stdin).
pub fn from_container_list(path: &Path) -> Result<Alive, Error> {
    let (text, source) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io(format!("cannot read the container list from stdin: {e}")))?;
        (text, "stdin".to_string())
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
        (text, path.display().to_string())
    };
    Ok(Alive::Containers(parse_container_list(&text, &source)?))
}

/// The fields of a libcni result cache entry (`cniCacheV1`) we need.
struct CacheEntry {
    container_id: String,
    if_name: String,
    network_name: String,
}

fn parse_cache_entry(bytes: &[u8]) -> Result<CacheEntry, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no string {name:?}"))
    };
    Ok(CacheEntry {
        container_id: field("containerId")?,
        if_name: field("ifName")?,
        network_name: field("networkName")?,
    })
}

fn read_cache_entry(path: &Path) -> Result<CacheEntry, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read {}: {e}", path.display())))?;
    parse_cache_entry(&bytes).map_err(|e| {
        Error::plugin(format!(
            "{} is no libcni result cache entry ({e}): it may belong to a live container, so no handle is judged by this cache; fix or remove it",
            path.display()
        ))
    })
}

/// `--cache-dir DIR`: the attachments of `network` that the cache records.
pub fn from_cache_dir(dir: &Path, network: &str) -> Result<Alive, Error> {
    // The cache root (/var/lib/cni) holds results/ and no entries: read as
    // is, it would make every handle look leaked.
    if dir.join("results").is_dir() {
        return Err(Error::invalid_config(format!(
            "{} looks like the cache root: pass {}",
            dir.display(),
            dir.join("results").display()
        )));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}: {e}", dir.display())))?;
    let mut attachments = BTreeSet::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("cannot list {}: {e}", dir.display())))?
            .path();
        if !path.is_file() {
            continue;
        }
        let e = read_cache_entry(&path)?;
        if e.network_name == network {
            attachments.insert((e.container_id, e.if_name));
        }
    }
    Ok(Alive::Attachments(attachments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_takes_ids_skips_blanks_and_comments_and_refuses_junk() {
        let ids = parse_container_list("# live\nc1\n\n  c2  \n", "f").unwrap();
        assert_eq!(ids, ["c1".to_string(), "c2".to_string()].into());
        let e = parse_container_list("c1\nPOD ID  CREATED\n", "f").unwrap_err();
        assert!(e.msg.contains("f line 2"), "{}", e.msg);
    }

    #[test]
    fn a_cache_dir_gives_the_networks_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
        write(
            "net1-c1-eth0",
            r#"{"kind":"cniCacheV1","containerId":"c1","ifName":"eth0","networkName":"net1","result":{}}"#,
        );
        write(
            "net2-c2-eth0",
            r#"{"kind":"cniCacheV1","containerId":"c2","ifName":"eth0","networkName":"net2"}"#,
        );
        let alive = from_cache_dir(dir.path(), "net1").unwrap();
        assert_eq!(
            alive,
            Alive::Attachments([("c1".to_string(), "eth0".to_string())].into())
        );
        write("broken", "{");
        let e = from_cache_dir(dir.path(), "net1").unwrap_err();
        assert!(e.msg.contains("broken"), "{}", e.msg);
    }

    #[test]
    fn the_cache_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("results")).unwrap();
        let e = from_cache_dir(dir.path(), "net1").unwrap_err();
        assert!(e.msg.contains("results"), "{}", e.msg);
    }
}
