//! Loading network configuration lists the way libcni does, and deriving the
//! per-plugin request configuration that goes to a plugin's stdin.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::gc::GcAttachment;
use crate::validate;
use crate::version::{self, Version};

/// One plugin configuration object of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The `type`: the binary's file name in a CNI_PATH directory.
    pub plugin_type: String,
    /// The capabilities the plugin declares with value `true`.
    pub capabilities: BTreeSet<String>,
    /// The whole object as configured, unknown keys included.
    pub raw: Map<String, Value>,
}

/// A network configuration list, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    /// The version chosen from `cniVersion` and `cniVersions`.
    pub cni_version: Version,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<PluginConfig>,
    /// The bytes the list was parsed from: the `.conflist` file as it is on disk,
    /// or the list synthesised from a lifted `.conf`. The result cache stores
    /// these (base64) as `config`.
    pub bytes: Vec<u8>,
    /// The file the list came from, when it came from a file.
    pub source: Option<PathBuf>,
    /// Things worth telling the user that did not stop loading (skipped files,
    /// an implied version).
    pub notes: Vec<String>,
}

/// Parses one plugin configuration object. `what` names it in messages.
pub fn parse_plugin(value: &Value, what: &str) -> Result<PluginConfig, String> {
    let raw = value
        .as_object()
        .ok_or_else(|| format!("{what} is not a JSON object"))?;
    let plugin_type = match raw.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(format!("{what}: 'type' is not a string")),
        None => return Err(format!("{what}: missing 'type'")),
    };
    validate::plugin_type(&plugin_type).map_err(|e| format!("{what}: {e}"))?;
    let mut capabilities = BTreeSet::new();
    match raw.get("capabilities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(caps)) => {
            for (cap, enabled) in caps {
                match enabled {
                    Value::Bool(true) => {
                        capabilities.insert(cap.clone());
                    }
                    Value::Bool(false) => {}
                    _ => return Err(format!("{what}: capability {cap:?} must be true or false")),
                }
            }
        }
        Some(_) => return Err(format!("{what}: 'capabilities' is not an object")),
    }
    Ok(PluginConfig {
        plugin_type,
        capabilities,
        raw: raw.clone(),
    })
}

/// Chooses the version to run a list at: the highest version named by
/// `cniVersion` or `cniVersions` that cnitool supports. Versions it does not
/// know are ignored (a newer `cniVersions` entry is normal). With no version
/// at all (missing or empty `cniVersion`, no `cniVersions`), the spec's old
/// default 0.1.0 applies; the second value is then a note saying so.
pub fn select_version(
    cni_version: Option<&Value>,
    cni_versions: Option<&Value>,
) -> Result<(Version, Option<String>), String> {
    let mut named: Vec<String> = Vec::new();
    match cni_version {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => named.push(s.clone()),
        Some(_) => return Err("'cniVersion' is not a string".into()),
    }
    match cni_versions {
        None | Some(Value::Null) => {}
        Some(Value::Array(vs)) => {
            for (i, v) in vs.iter().enumerate() {
                match v {
                    Value::String(s) => named.push(s.clone()),
                    _ => return Err(format!("'cniVersions' entry {i} is not a string")),
                }
            }
        }
        Some(_) => return Err("'cniVersions' is not a list".into()),
    }
    if named.is_empty() {
        return Ok((
            Version::V0_1_0,
            Some("the configuration names no cniVersion; using 0.1.0 as the spec says".into()),
        ));
    }
    named
        .iter()
        .filter_map(|s| Version::parse(s))
        .max()
        .map(|v| (v, None))
        .ok_or_else(|| {
            format!(
                "none of the configuration's CNI versions ({}) is supported (supported: {})",
                named.join(", "),
                version::supported_list()
            )
        })
}

/// libcni's boolean keys accept `true`/`false` or the strings "true"/"false"
/// in any case.
fn read_bool(obj: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match obj.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("invalid value {s:?} for '{key}'")),
        },
        Some(_) => Err(format!("'{key}' is not a boolean")),
    }
}

/// Parses a configuration list from its bytes: inline plugins only (plugins
/// from the sibling directory are added by [`load_network_conf`]). The list
/// may have no `plugins` key unless `loadOnlyInlinedPlugins` is true.
pub fn parse_conflist(bytes: &[u8]) -> Result<NetworkConfigList, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or("the configuration list is not a JSON object")?;
    let name = match obj.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err("'name' is not a string".into()),
        None => return Err("missing 'name'".into()),
    };
    validate::network_name(&name)?;
    let (cni_version, version_note) =
        select_version(obj.get("cniVersion"), obj.get("cniVersions"))?;
    let disable_check = read_bool(obj, "disableCheck")?;
    let disable_gc = read_bool(obj, "disableGC")?;
    let load_only_inlined_plugins = read_bool(obj, "loadOnlyInlinedPlugins")?;
    let plugins = match obj.get("plugins") {
        None if load_only_inlined_plugins => {
            return Err("'loadOnlyInlinedPlugins' is true but there is no 'plugins' list".into())
        }
        None => Vec::new(),
        Some(Value::Array(list)) if list.is_empty() => {
            return Err("'plugins' is empty".into());
        }
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| parse_plugin(p, &format!("plugin {i}")))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("'plugins' is not a list".into()),
    };
    Ok(NetworkConfigList {
        name,
        cni_version,
        disable_check,
        disable_gc,
        load_only_inlined_plugins,
        plugins,
        bytes: bytes.to_vec(),
        source: None,
        notes: version_note.into_iter().collect(),
    })
}

/// Lifts an old single-plugin configuration (`.conf`/`.json`) to a one-plugin
/// list, as libcni's ConfListFromConf does: `{"cniVersion", "name",
/// "plugins": [<the whole conf>]}`. The list carries only the conf's
/// `cniVersion` (an absent one becomes "", i.e. 0.1.0).
pub fn lift_conf(bytes: &[u8]) -> Result<NetworkConfigList, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or("the configuration is not a JSON object")?;
    parse_plugin(&value, "the configuration")?;
    let name = match obj.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err("'name' is not a string".into()),
        None => return Err("missing 'name'".into()),
    };
    let cni_version = match obj.get("cniVersion") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(v)) => v.clone(),
        Some(_) => return Err("'cniVersion' is not a string".into()),
    };
    let mut list = Map::new();
    list.insert("cniVersion".into(), Value::String(cni_version));
    list.insert("name".into(), Value::String(name));
    list.insert("plugins".into(), Value::Array(vec![value.clone()]));
    let list_bytes =
        serde_json::to_vec(&Value::Object(list)).map_err(|e| format!("cannot encode: {e}"))?;
    parse_conflist(&list_bytes)
}

/// Files in `dir` whose extension (after the last '.') is one of `exts`,
/// sorted by name. A missing directory has no files.
fn conf_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read configuration directory {}: {e}",
                dir.display()
            )))
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let Some((_, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !exts.contains(&ext) {
            continue;
        }
        let path = entry.path();
        // Directories (also through symlinks) are not configuration files.
        if fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Reads a file and returns its bytes and its top-level `name`.
fn peek_name(path: &Path) -> Result<(Vec<u8>, String), String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    match value.get("name") {
        Some(Value::String(n)) => Ok((bytes, n.clone())),
        Some(_) => Err("'name' is not a string".into()),
        None => Err("no 'name'".into()),
    }
}

/// Plugin objects from `<dir>/<network>/*.conf`, sorted by file name: the
/// spec's aggregation of plugins from a directory named after the network.
fn sibling_plugins(dir: &Path, network: &str) -> Result<Vec<PluginConfig>, Error> {
    let plugin_dir = dir.join(network);
    let mut plugins = Vec::new();
    for file in conf_files(&plugin_dir, &["conf"])? {
        let bytes = fs::read(&file)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", file.display())))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Config(format!("{}: invalid JSON: {e}", file.display())))?;
        let plugin = parse_plugin(&value, &file.display().to_string()).map_err(Error::Config)?;
        plugins.push(plugin);
    }
    Ok(plugins)
}

/// Finds network `name` in `dir` as libcni's LoadNetworkConf does:
///
/// 1. `*.conflist` files sorted by file name; the first whose `name` matches.
///    Unless `loadOnlyInlinedPlugins` is true, plugin objects from
///    `<dir>/<name>/*.conf` are appended to its `plugins`.
/// 2. Otherwise `*.conf` and `*.json` files sorted by file name; the first whose
///    `name` matches is lifted to a one-plugin list ([`lift_conf`]).
///
/// Unlike libcni, a file that cannot be read or has no string `name` does not
/// abort the search: it is skipped and named in the list's notes (or in the
/// error when nothing matches). The file that matches must be valid.
pub fn load_network_conf(dir: &Path, name: &str) -> Result<NetworkConfigList, Error> {
    let mut skipped: Vec<String> = Vec::new();
    let conflists = conf_files(dir, &["conflist"])?;
    for file in &conflists {
        let (bytes, file_name) = match peek_name(file) {
            Ok(found) => found,
            Err(why) => {
                skipped.push(format!("skipped {}: {why}", file.display()));
                continue;
            }
        };
        if file_name != name {
            continue;
        }
        let mut list = parse_conflist(&bytes)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        if !list.load_only_inlined_plugins {
            let more = sibling_plugins(dir, name)?;
            list.plugins.extend(more);
        }
        if list.plugins.is_empty() {
            return Err(Error::Config(format!(
                "{}: network {name:?} has no plugins",
                file.display()
            )));
        }
        list.source = Some(file.clone());
        skipped.append(&mut list.notes);
        list.notes = skipped;
        return Ok(list);
    }

    let confs = conf_files(dir, &["conf", "json"])?;
    for file in &confs {
        let (bytes, file_name) = match peek_name(file) {
            Ok(found) => found,
            Err(why) => {
                skipped.push(format!("skipped {}: {why}", file.display()));
                continue;
            }
        };
        if file_name != name {
            continue;
        }
        let mut list =
            lift_conf(&bytes).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        list.source = Some(file.clone());
        skipped.append(&mut list.notes);
        list.notes = skipped;
        return Ok(list);
    }

    let mut msg = if conflists.is_empty() && confs.is_empty() {
        format!("no network configurations found in {}", dir.display())
    } else {
        format!(
            "no network configuration named {name:?} in {} ({} .conflist, {} .conf/.json files)",
            dir.display(),
            conflists.len(),
            confs.len()
        )
    };
    if !skipped.is_empty() {
        msg.push_str("; ");
        msg.push_str(&skipped.join("; "));
    }
    Err(Error::Config(msg))
}

/// The `runtimeConfig` for one plugin: the capability arguments whose key the
/// plugin declares in `capabilities` with value true.
pub fn runtime_config(
    plugin: &PluginConfig,
    capability_args: &Map<String, Value>,
) -> Map<String, Value> {
    plugin
        .capabilities
        .iter()
        .filter_map(|cap| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect()
}

/// The configuration an ADD, CHECK or DEL plugin gets on stdin: the plugin
/// object with `name` and `cniVersion` of the list, `prevResult` when given,
/// `runtimeConfig` when any declared capability has an argument, and without
/// `capabilities` (the spec says it must not be set; libcni leaves it in).
pub fn attachment_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.raw.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert(
        "cniVersion".into(),
        Value::String(list.cni_version.as_str().into()),
    );
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let rc = runtime_config(plugin, capability_args);
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    conf.remove("capabilities");
    Value::Object(conf)
}

/// The configuration a STATUS plugin gets: the plugin object with the list's
/// `name` and `cniVersion`.
pub fn status_request(list: &NetworkConfigList, plugin: &PluginConfig) -> Value {
    let mut conf = plugin.raw.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert(
        "cniVersion".into(),
        Value::String(list.cni_version.as_str().into()),
    );
    Value::Object(conf)
}

/// The configuration a GC plugin gets: as STATUS, plus the still-valid
/// attachments under both `cni.dev/valid-attachments` (the spec's key) and
/// `cni.dev/attachments` (the key of the spec's first draft), as libcni sends.
pub fn gc_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    valid: &[GcAttachment],
) -> Value {
    let mut conf = match status_request(list, plugin) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let attachments = Value::Array(valid.iter().map(GcAttachment::to_json).collect());
    conf.insert("cni.dev/valid-attachments".into(), attachments.clone());
    conf.insert("cni.dev/attachments".into(), attachments);
    Value::Object(conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn version_choice_takes_highest_supported() {
        let pick = |v: Value, vs: Value| {
            select_version(
                if v.is_null() { None } else { Some(&v) },
                if vs.is_null() { None } else { Some(&vs) },
            )
        };
        assert_eq!(
            pick(json!("1.0.0"), Value::Null).unwrap().0,
            Version::V1_0_0
        );
        assert_eq!(
            pick(
                json!("0.4.0"),
                json!(["1.1.0", "0.3.1", "42.0.0", "garbage"])
            )
            .unwrap()
            .0,
            Version::V1_1_0
        );
        assert_eq!(
            pick(json!("1.0.0"), json!(["0.3.1"])).unwrap().0,
            Version::V1_0_0
        );
        assert_eq!(
            pick(Value::Null, json!(["0.2.0"])).unwrap().0,
            Version::V0_2_0
        );
        assert_eq!(
            pick(json!("0.1.0"), Value::Null).unwrap().0,
            Version::V0_1_0
        );
        let (v, note) = pick(Value::Null, Value::Null).unwrap();
        assert_eq!(v, Version::V0_1_0);
        assert!(note.is_some());
        assert!(pick(json!("2.0.0"), Value::Null).is_err());
        assert!(pick(json!(["1.0.0"]), Value::Null).is_err());
        assert!(pick(json!("1.0.0"), json!("1.1.0")).is_err());
        assert!(pick(json!("1.0.0"), json!([1])).is_err());
    }

    #[test]
    fn parse_conflist_reads_flags_and_plugins() {
        let list = parse_conflist(&bytes(json!({
            "cniVersion": "1.0.0",
            "name": "net1",
            "disableCheck": "TRUE",
            "disableGC": true,
            "plugins": [
                {"type": "bridge", "capabilities": {"portMappings": true, "ips": false}},
                {"type": "portmap"}
            ]
        })))
        .unwrap();
        assert_eq!(list.name, "net1");
        assert_eq!(list.cni_version, Version::V1_0_0);
        assert!(list.disable_check);
        assert!(list.disable_gc);
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[0].plugin_type, "bridge");
        assert_eq!(
            list.plugins[0].capabilities.iter().collect::<Vec<_>>(),
            vec!["portMappings"]
        );
        assert!(list.plugins[1].capabilities.is_empty());
    }

    #[test]
    fn parse_conflist_rejects_bad_input() {
        let bad = [
            json!([]),
            json!({"cniVersion": "1.0.0", "plugins": [{"type": "a"}]}),
            json!({"cniVersion": "1.0.0", "name": "a/b", "plugins": [{"type": "a"}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": {}}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"nope": 1}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../sh"}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a", "capabilities": {"x": 1}}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "disableCheck": "yes", "plugins": [{"type": "a"}]}),
            json!({"cniVersion": "1.0.0", "name": "n", "loadOnlyInlinedPlugins": true}),
            json!({"cniVersion": "9.9.9", "name": "n", "plugins": [{"type": "a"}]}),
        ];
        for b in bad {
            assert!(parse_conflist(&bytes(b.clone())).is_err(), "accepted {b}");
        }
        assert!(parse_conflist(b"not json").is_err());
        assert!(parse_conflist(b"").is_err());
    }

    #[test]
    fn lifting_a_conf_makes_a_one_plugin_list() {
        let conf = json!({"cniVersion": "0.4.0", "name": "old", "type": "ptp", "ipMasq": true});
        let list = lift_conf(&bytes(conf.clone())).unwrap();
        assert_eq!(list.name, "old");
        assert_eq!(list.cni_version, Version::V0_4_0);
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(Value::Object(list.plugins[0].raw.clone()), conf);
        let cached: Value = serde_json::from_slice(&list.bytes).unwrap();
        assert_eq!(
            cached,
            json!({"cniVersion": "0.4.0", "name": "old", "plugins": [conf]})
        );
        assert!(lift_conf(&bytes(json!({"name": "x"}))).is_err());
        let implicit = lift_conf(&bytes(json!({"name": "x", "type": "t"}))).unwrap();
        assert_eq!(implicit.cni_version, Version::V0_1_0);
    }

    #[test]
    fn runtime_config_only_declared_true_capabilities() {
        let plugin = parse_plugin(
            &json!({"type": "p", "capabilities": {"portMappings": true, "bandwidth": false, "ips": true}}),
            "p",
        )
        .unwrap();
        let args = json!({"portMappings": [{"hostPort": 80}], "bandwidth": {"a": 1}, "mac": "x"});
        let rc = runtime_config(&plugin, args.as_object().unwrap());
        assert_eq!(
            Value::Object(rc),
            json!({"portMappings": [{"hostPort": 80}]})
        );
    }

    #[test]
    fn attachment_request_injects_and_strips() {
        let list = parse_conflist(&bytes(json!({
            "cniVersion": "1.1.0", "name": "n",
            "plugins": [{"type": "p", "name": "ignored", "cniVersion": "0.3.0",
                         "capabilities": {"portMappings": true}, "extra": {"k": 1}}]
        })))
        .unwrap();
        let prev = json!({"cniVersion": "1.1.0", "ips": []});
        let args = json!({"portMappings": [], "other": 1});
        let req = attachment_request(
            &list,
            &list.plugins[0],
            Some(&prev),
            args.as_object().unwrap(),
        );
        assert_eq!(
            req,
            json!({"type": "p", "name": "n", "cniVersion": "1.1.0", "extra": {"k": 1},
                   "prevResult": prev, "runtimeConfig": {"portMappings": []}})
        );
        let bare = attachment_request(&list, &list.plugins[0], None, &Map::new());
        assert!(bare.get("prevResult").is_none());
        assert!(bare.get("runtimeConfig").is_none());
    }

    fn write(dir: &Path, name: &str, v: &Value) {
        fs::write(dir.join(name), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    fn list(name: &str, plugin: &str) -> Value {
        json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": plugin}]})
    }

    #[test]
    fn load_picks_first_matching_conflist_by_file_name() {
        let tmp = crate::testutil::TempDir::new();
        let d = tmp.path();
        write(d, "30-c.conflist", &list("y", "third"));
        write(d, "10-a.conflist", &list("x", "first"));
        write(d, "20-b.conflist", &list("y", "second"));
        write(
            d,
            "05-y.conf",
            &json!({"cniVersion": "1.0.0", "name": "y", "type": "conf"}),
        );
        fs::write(d.join("01-broken.conflist"), "{ not json").unwrap();
        fs::create_dir(d.join("00-dir.conflist")).unwrap();

        let y = load_network_conf(d, "y").unwrap();
        assert_eq!(y.plugins[0].plugin_type, "second");
        assert_eq!(y.source.as_deref(), Some(d.join("20-b.conflist").as_path()));
        assert_eq!(y.bytes, fs::read(d.join("20-b.conflist")).unwrap());
        assert!(
            y.notes.iter().any(|n| n.contains("01-broken.conflist")),
            "{:?}",
            y.notes
        );
        assert_eq!(
            load_network_conf(d, "x").unwrap().plugins[0].plugin_type,
            "first"
        );

        let err = load_network_conf(d, "zzz").unwrap_err();
        assert!(
            err.to_string()
                .contains("no network configuration named \"zzz\""),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn load_lifts_conf_and_json_when_no_conflist_matches() {
        let tmp = crate::testutil::TempDir::new();
        let d = tmp.path();
        write(d, "10-other.conflist", &list("other", "p"));
        write(
            d,
            "20-old.json",
            &json!({"cniVersion": "0.3.1", "name": "old", "type": "json"}),
        );
        write(
            d,
            "10-old.conf",
            &json!({"cniVersion": "0.4.0", "name": "old", "type": "conf"}),
        );
        let l = load_network_conf(d, "old").unwrap();
        assert_eq!(l.plugins[0].plugin_type, "conf");
        assert_eq!(l.cni_version, Version::V0_4_0);
        write(
            d,
            "05-old.json",
            &json!({"cniVersion": "0.3.1", "name": "old", "type": "json"}),
        );
        assert_eq!(
            load_network_conf(d, "old").unwrap().plugins[0].plugin_type,
            "json"
        );
    }

    #[test]
    fn load_fails_on_an_invalid_matching_file() {
        let tmp = crate::testutil::TempDir::new();
        let d = tmp.path();
        write(
            d,
            "10-bad.conflist",
            &json!({"cniVersion": "1.0.0", "name": "bad", "plugins": [{"notype": 1}]}),
        );
        let err = load_network_conf(d, "bad").unwrap_err();
        assert!(err.to_string().contains("10-bad.conflist"), "{err}");
        let missing = load_network_conf(&d.join("nope"), "bad").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no network configurations found"),
            "{missing}"
        );
    }

    #[test]
    fn load_appends_plugins_from_the_network_directory() {
        let tmp = crate::testutil::TempDir::new();
        let d = tmp.path();
        write(d, "10-n.conflist", &list("n", "inline"));
        fs::create_dir(d.join("n")).unwrap();
        write(&d.join("n"), "20-b.conf", &json!({"type": "b"}));
        write(&d.join("n"), "10-a.conf", &json!({"type": "a"}));
        write(&d.join("n"), "ignored.json", &json!({"type": "z"}));
        let types = |l: &NetworkConfigList| {
            l.plugins
                .iter()
                .map(|p| p.plugin_type.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            types(&load_network_conf(d, "n").unwrap()),
            ["inline", "a", "b"]
        );

        write(
            d,
            "10-n.conflist",
            &json!({"cniVersion": "1.0.0", "name": "n", "loadOnlyInlinedPlugins": true, "plugins": [{"type": "inline"}]}),
        );
        assert_eq!(types(&load_network_conf(d, "n").unwrap()), ["inline"]);

        write(
            d,
            "10-n.conflist",
            &json!({"cniVersion": "1.0.0", "name": "n"}),
        );
        assert_eq!(types(&load_network_conf(d, "n").unwrap()), ["a", "b"]);

        fs::remove_dir_all(d.join("n")).unwrap();
        assert!(load_network_conf(d, "n").is_err());
    }

    #[test]
    fn gc_request_has_both_attachment_keys() {
        let list = parse_conflist(&bytes(json!({
            "cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "p", "capabilities": {"a": true}}]
        })))
        .unwrap();
        let valid = [GcAttachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        let req = gc_request(&list, &list.plugins[0], &valid);
        let expect = json!([{"containerID": "c1", "ifname": "eth0"}]);
        assert_eq!(req["cni.dev/valid-attachments"], expect);
        assert_eq!(req["cni.dev/attachments"], expect);
        assert_eq!(req["name"], "n");
        assert_eq!(req["cniVersion"], "1.1.0");
        assert!(req.get("runtimeConfig").is_none());
    }
}
