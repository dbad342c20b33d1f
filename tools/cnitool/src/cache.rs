//! libcni's result cache: `<cache dir>/results/<network>-<containerID>-<ifname>`,
//! one JSON file per attachment, written after ADD, read by CHECK and DEL,
//! removed after DEL, listed by GC.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::result::result_version;

/// The `kind` of every cache file libcni writes today.
pub const CACHE_KIND: &str = "cniCacheV1";

/// One cache file, field for field as libcni writes it (same names, same
/// order, same fields left out when empty; `config` is base64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(rename = "containerId", default, deserialize_with = "null_default")]
    pub container_id: String,
    /// The network configuration list's bytes.
    #[serde(
        default,
        serialize_with = "b64_encode",
        deserialize_with = "b64_decode"
    )]
    pub config: Vec<u8>,
    #[serde(rename = "ifName", default, deserialize_with = "null_default")]
    pub if_name: String,
    #[serde(rename = "networkName", default, deserialize_with = "null_default")]
    pub network_name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default"
    )]
    pub netns: String,
    #[serde(
        rename = "cniArgs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub cni_args: Vec<[String; 2]>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "null_default"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn b64_encode<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn b64_decode<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text {
        None => Ok(Vec::new()),
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t.as_bytes())
            .map_err(serde::de::Error::custom),
    }
}

impl CacheEntry {
    /// Encodes the entry as libcni does (compact JSON).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings, arrays and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a cache file, which must be of kind `cniCacheV1`.
    pub fn decode(bytes: &[u8]) -> Result<CacheEntry, String> {
        let entry: CacheEntry =
            serde_json::from_slice(bytes).map_err(|e| format!("not a cache file: {e}"))?;
        if entry.kind != CACHE_KIND {
            return Err(format!(
                "cache file has kind {:?}, not {CACHE_KIND:?}",
                entry.kind
            ));
        }
        Ok(entry)
    }
}

/// `<cache dir>/results`
pub fn results_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("results")
}

/// `<cache dir>/results/<network>-<containerID>-<ifname>`
pub fn cache_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    results_dir(cache_dir).join(format!("{network}-{container_id}-{ifname}"))
}

/// Writes the entry to its file: the results directory is created with mode
/// 0700, the file has mode 0600. The file is written under a temporary name
/// and renamed into place, so a reader never sees half a file.
pub fn write_entry(cache_dir: &Path, entry: &CacheEntry) -> io::Result<PathBuf> {
    let dir = results_dir(cache_dir);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let path = cache_path(
        cache_dir,
        &entry.network_name,
        &entry.container_id,
        &entry.if_name,
    );
    let tmp = dir.join(format!(
        ".{}-{}-{}.tmp{}",
        entry.network_name,
        entry.container_id,
        entry.if_name,
        std::process::id()
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&entry.encode())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

/// What a cache file holds for CHECK and DEL.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    /// No cache file.
    Missing,
    /// The cached result of the ADD.
    Result(Value),
    /// A file that cannot be used, and why.
    Corrupt(String),
}

/// Reads the cached result. Besides `cniCacheV1` files, a file that is a bare
/// result (what libcni wrote before the cache had a kind) is accepted, as
/// libcni does.
pub fn read_result(path: &Path) -> Cached {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Cached::Missing,
        Err(e) => return Cached::Corrupt(format!("cannot read {}: {e}", path.display())),
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Cached::Corrupt(format!("{} is not JSON: {e}", path.display())),
    };
    let is_v1 = value.get("kind").and_then(Value::as_str) == Some(CACHE_KIND);
    let result = if is_v1 {
        match CacheEntry::decode(&bytes) {
            Ok(CacheEntry {
                result: Some(r @ Value::Object(_)),
                ..
            }) => r,
            Ok(_) => return Cached::Corrupt(format!("{} holds no result object", path.display())),
            Err(e) => return Cached::Corrupt(format!("{}: {e}", path.display())),
        }
    } else {
        value
    };
    match result_version(&result) {
        Ok(_) if result.is_object() => Cached::Result(result),
        Ok(_) => Cached::Corrupt(format!("{}: result is not an object", path.display())),
        Err(e) => Cached::Corrupt(format!("{}: {e}", path.display())),
    }
}

/// Removes a cache file; a missing file is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Every valid `cniCacheV1` entry in the results directory, sorted by file
/// name, as libcni's GetCachedAttachments lists them: unreadable files, other
/// kinds and entries without network name or ifname are left out. A missing
/// directory has no entries.
pub fn attachments(cache_dir: &Path) -> io::Result<Vec<CacheEntry>> {
    let dir = results_dir(cache_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Ok(bytes) = fs::read(dir.join(&name)) else {
            continue;
        };
        let Ok(entry) = CacheEntry::decode(&bytes) else {
            continue;
        };
        if entry.if_name.is_empty() || entry.network_name.is_empty() {
            continue;
        }
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn entry(net: &str, cid: &str, ifname: &str) -> CacheEntry {
        CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: cid.into(),
            config: br#"{"name":"n"}"#.to_vec(),
            if_name: ifname.into(),
            network_name: net.into(),
            netns: "/run/netns/x".into(),
            cni_args: vec![["K".into(), "V".into()]],
            capability_args: json!({"portMappings": []}).as_object().unwrap().clone(),
            result: Some(json!({"cniVersion": "1.0.0", "ips": []})),
        }
    }

    #[test]
    fn encodes_like_libcni() {
        let e = entry("n", "c", "eth0");
        let text = String::from_utf8(e.encode()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"kind":"cniCacheV1","containerId":"c","config":"eyJuYW1lIjoibiJ9","ifName":"eth0","#,
                r#""networkName":"n","netns":"/run/netns/x","cniArgs":[["K","V"]],"#,
                r#""capabilityArgs":{"portMappings":[]},"result":{"cniVersion":"1.0.0","ips":[]}}"#
            )
        );
        assert_eq!(CacheEntry::decode(text.as_bytes()).unwrap(), e);

        let bare = CacheEntry {
            netns: String::new(),
            cni_args: vec![],
            capability_args: Map::new(),
            ..e
        };
        let v: Value = serde_json::from_slice(&bare.encode()).unwrap();
        assert!(v.get("netns").is_none());
        assert!(v.get("cniArgs").is_none());
        assert!(v.get("capabilityArgs").is_none());
    }

    #[test]
    fn decodes_what_go_writes_with_nulls() {
        let go = br#"{"kind":"cniCacheV1","containerId":"c","config":null,"ifName":"eth0","networkName":"n","cniArgs":null,"capabilityArgs":null,"result":{"cniVersion":"0.4.0"}}"#;
        let e = CacheEntry::decode(go).unwrap();
        assert!(e.config.is_empty());
        assert!(e.cni_args.is_empty());
        assert!(CacheEntry::decode(br#"{"kind":"other"}"#).is_err());
        assert!(CacheEntry::decode(br#"{"kind":"cniCacheV1","config":"!!"}"#).is_err());
        assert!(CacheEntry::decode(b"garbage").is_err());
    }

    #[test]
    fn write_read_remove() {
        let tmp = TempDir::new();
        let cache = tmp.path().join("cache");
        let e = entry("n", "c", "eth0");
        let path = write_entry(&cache, &e).unwrap();
        assert_eq!(path, cache.join("results/n-c-eth0"));
        let dir_mode = fs::metadata(cache.join("results"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let file_mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(
            read_result(&path),
            Cached::Result(e.result.clone().unwrap())
        );
        // Overwriting keeps the mode and leaves no temporary file behind.
        write_entry(&cache, &e).unwrap();
        assert_eq!(fs::read_dir(cache.join("results")).unwrap().count(), 1);

        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read_result(&path), Cached::Missing);
    }

    #[test]
    fn corrupt_and_legacy_files() {
        let tmp = TempDir::new();
        let p = tmp.path().join("f");
        for bad in [
            &b"garbage"[..],
            br#"{"kind":"cniCacheV1","containerId":"c"}"#,
            br#"{"kind":"cniCacheV1","result":{"cniVersion":"9"}}"#,
            br#"{"kind":"cniCacheV1","result":[]}"#,
            br#"{"kind":"cniCacheV1","config":5,"result":{"cniVersion":"1.0.0"}}"#,
            br#"[1]"#,
        ] {
            fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_result(&p), Cached::Corrupt(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        fs::write(&p, br#"{"cniVersion":"0.4.0","ips":[]}"#).unwrap();
        assert_eq!(
            read_result(&p),
            Cached::Result(json!({"cniVersion":"0.4.0","ips":[]}))
        );
    }

    #[test]
    fn lists_valid_attachments_sorted() {
        let tmp = TempDir::new();
        let cache = tmp.path();
        write_entry(cache, &entry("b", "c2", "eth0")).unwrap();
        write_entry(cache, &entry("a", "c1", "eth1")).unwrap();
        write_entry(cache, &entry("a", "c1", "eth0")).unwrap();
        let dir = results_dir(cache);
        fs::write(dir.join("a-junk-eth0"), "garbage").unwrap();
        fs::write(dir.join("a-old-eth0"), r#"{"cniVersion":"0.4.0"}"#).unwrap();
        let mut no_if = entry("a", "c3", "x");
        no_if.if_name = String::new();
        fs::write(dir.join("a-c3-"), no_if.encode()).unwrap();
        let got: Vec<(String, String, String)> = attachments(cache)
            .unwrap()
            .into_iter()
            .map(|e| (e.network_name, e.container_id, e.if_name))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "c1".into(), "eth0".into()),
                ("a".into(), "c1".into(), "eth1".into()),
                ("b".into(), "c2".into(), "eth0".into()),
            ]
        );
        assert!(attachments(&tmp.path().join("nope")).unwrap().is_empty());
    }
}
