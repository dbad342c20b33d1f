//! Running a network configuration list: ADD, CHECK, DEL, STATUS (GC is in
//! `gc.rs`), the way libcni does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cache::{self, CacheEntry, Cached, CACHE_KIND};
use crate::conf::{attachment_request, status_request, NetworkConfigList};
use crate::error::{Command, Error, PluginFailure};
use crate::exec::{self, PluginEnv};
use crate::result::{convert, parse_add_output};
use crate::validate;

/// Where plugins and the result cache are, and how long a plugin may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    /// The CNI_PATH directories, searched in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// The cache root (libcni's `/var/lib/cni`); results live in `results/`.
    pub cache_dir: PathBuf,
    /// Kill a plugin (and its process group) that runs longer than this.
    pub timeout: Option<Duration>,
    /// Copy what plugins write on stderr to our stderr.
    pub forward_plugin_stderr: bool,
}

/// The per-attachment parameters of ADD, CHECK and DEL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attachment {
    pub container_id: String,
    /// The netns path; empty when there is none (DEL only).
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS as pairs, in order.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments (CAP_ARGS); each plugin gets the ones it declares.
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// CNI_ARGS as the plugin sees it: `K=V;K=V`.
    pub fn cni_args_string(&self) -> String {
        self.cni_args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Container id and ifname must follow the spec's rules.
    pub fn validate(&self) -> Result<(), Error> {
        validate::container_id(&self.container_id).map_err(Error::Usage)?;
        validate::ifname(&self.ifname).map_err(Error::Usage)?;
        Ok(())
    }
}

/// What an operation produced besides success.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// ADD: the final plugin's result (also cached).
    pub result: Option<Value>,
    /// Things the user should know (skipped work, unusable cache, ...).
    pub notes: Vec<String>,
}

impl Runtime {
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: PathBuf) -> Runtime {
        Runtime {
            plugin_dirs,
            cache_dir,
            timeout: None,
            forward_plugin_stderr: true,
        }
    }

    /// CNI_PATH for plugins: the plugin directories joined by ':'.
    pub fn cni_path(&self) -> String {
        self.plugin_dirs
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The binary of every plugin of the list, found before any plugin runs,
    /// so a missing plugin fails the operation before anything changed.
    pub fn resolve(&self, list: &NetworkConfigList) -> Result<Vec<PathBuf>, Error> {
        list.plugins
            .iter()
            .map(|p| exec::find_in_path(&p.plugin_type, &self.plugin_dirs).map_err(Error::Config))
            .collect()
    }

    /// The attachment's cache file.
    pub fn cache_path(&self, list: &NetworkConfigList, att: &Attachment) -> PathBuf {
        cache::cache_path(&self.cache_dir, &list.name, &att.container_id, &att.ifname)
    }

    fn attachment_env(&self, command: Command, att: &Attachment) -> PluginEnv {
        PluginEnv {
            command,
            container_id: att.container_id.clone(),
            netns: att.netns.clone(),
            ifname: att.ifname.clone(),
            cni_args: att.cni_args_string(),
            cni_path: self.cni_path(),
        }
    }

    /// Runs one plugin with `config` on stdin; its stdout on success.
    pub fn invoke(
        &self,
        binary: &Path,
        plugin_type: &str,
        env: &PluginEnv,
        config: &Value,
    ) -> Result<Vec<u8>, Error> {
        let fail = |failure| Error::Plugin {
            plugin_type: plugin_type.to_string(),
            command: env.command,
            failure,
        };
        let stdin =
            serde_json::to_vec(config).map_err(|e| fail(PluginFailure::Exec(e.to_string())))?;
        let out = exec::run(binary, env, &stdin, self.timeout)
            .map_err(|e| fail(PluginFailure::Exec(e)))?;
        let failure = exec::failure(&out, self.timeout);
        let stderr_in_message = matches!(failure, Some(PluginFailure::NoMessage { .. }));
        if self.forward_plugin_stderr && !out.stderr.is_empty() && !stderr_in_message {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&out.stderr);
            if !out.stderr.ends_with(b"\n") {
                let _ = stderr.write_all(b"\n");
            }
        }
        match failure {
            Some(f) => Err(fail(f)),
            None => Ok(out.stdout),
        }
    }

    /// ADD: every plugin in order, each getting the previous one's result as
    /// `prevResult`; stops at the first failure without undoing the plugins
    /// that succeeded (libcni does not either: the caller is expected to DEL).
    /// On success the final result is written to the cache and returned.
    pub fn add(&self, list: &NetworkConfigList, att: &Attachment) -> Result<Report, Error> {
        att.validate()?;
        let binaries = self.resolve(list)?;
        let env = self.attachment_env(Command::Add, att);
        let mut prev: Option<Value> = None;
        for (plugin, binary) in list.plugins.iter().zip(&binaries) {
            let conf = attachment_request(list, plugin, prev.as_ref(), &att.capability_args);
            let stdout = self.invoke(binary, &plugin.plugin_type, &env, &conf)?;
            let result =
                parse_add_output(&stdout, list.cni_version).map_err(|why| Error::Plugin {
                    plugin_type: plugin.plugin_type.clone(),
                    command: Command::Add,
                    failure: PluginFailure::BadResult(why),
                })?;
            prev = Some(result);
        }
        let result =
            prev.ok_or_else(|| Error::Config(format!("network {:?} has no plugins", list.name)))?;
        let entry = CacheEntry {
            kind: CACHE_KIND.into(),
            container_id: att.container_id.clone(),
            config: list.bytes.clone(),
            if_name: att.ifname.clone(),
            network_name: list.name.clone(),
            netns: att.netns.clone(),
            cni_args: att
                .cni_args
                .iter()
                .map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
            capability_args: att.capability_args.clone(),
            result: Some(result.clone()),
        };
        cache::write_entry(&self.cache_dir, &entry).map_err(|e| {
            Error::Cache(format!(
                "the plugins succeeded but the result cache {} could not be written: {e}",
                self.cache_path(list, att).display()
            ))
        })?;
        Ok(Report {
            result: Some(result),
            notes: Vec::new(),
        })
    }

    /// CHECK (0.4.0 and later): every plugin in order with the cached ADD
    /// result as `prevResult`; stops at the first failure. `disableCheck`
    /// makes it succeed without running anything. A missing or unusable cache
    /// is an error (libcni would run the plugins without `prevResult`, which
    /// they reject).
    pub fn check(&self, list: &NetworkConfigList, att: &Attachment) -> Result<Report, Error> {
        att.validate()?;
        if !list.cni_version.has_check() {
            return Err(Error::Unsupported(format!(
                "network {:?} is at CNI version {}, which does not support the CHECK command (0.4.0 or later needed)",
                list.name, list.cni_version
            )));
        }
        let mut report = Report::default();
        if list.disable_check {
            report.notes.push(format!(
                "network {:?} sets disableCheck: CHECK skipped",
                list.name
            ));
            return Ok(report);
        }
        let binaries = self.resolve(list)?;
        let path = self.cache_path(list, att);
        let prev = match cache::read_result(&path) {
            Cached::Result(r) => convert(&r, list.cni_version)
                .map_err(|e| Error::Cache(format!("cached result {}: {e}", path.display())))?,
            Cached::Missing => {
                let hint = "was ADD run for this network, container and interface?";
                let msg = format!("no cached result at {}: {hint}", path.display());
                return Err(Error::Cache(msg));
            }
            Cached::Corrupt(why) => {
                return Err(Error::Cache(format!("cached result is unusable: {why}")))
            }
        };
        let env = self.attachment_env(Command::Check, att);
        for (plugin, binary) in list.plugins.iter().zip(&binaries) {
            let conf = attachment_request(list, plugin, Some(&prev), &att.capability_args);
            self.invoke(binary, &plugin.plugin_type, &env, &conf)?;
        }
        Ok(report)
    }

    /// DEL: every plugin in reverse order; from 0.4.0 on with the cached ADD
    /// result as `prevResult`. A missing or unusable cache never blocks DEL:
    /// it runs without `prevResult` (and an unusable file is removed first, as
    /// libcni does). Stops at the first failure; after success the cache file
    /// is removed.
    pub fn del(&self, list: &NetworkConfigList, att: &Attachment) -> Result<Report, Error> {
        att.validate()?;
        let binaries = self.resolve(list)?;
        let path = self.cache_path(list, att);
        let mut report = Report::default();
        let prev = if list.cni_version.has_cached_prev_result() {
            match cache::read_result(&path) {
                Cached::Result(r) => match convert(&r, list.cni_version) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        report.notes.push(format!(
                            "cached result {} cannot be used ({e}): DEL runs without prevResult",
                            path.display()
                        ));
                        let _ = cache::remove(&path);
                        None
                    }
                },
                Cached::Missing => {
                    report.notes.push(format!(
                        "no cached result at {}: DEL runs without prevResult",
                        path.display()
                    ));
                    None
                }
                Cached::Corrupt(why) => {
                    report.notes.push(format!(
                        "cached result is unusable ({why}): DEL runs without prevResult"
                    ));
                    let _ = cache::remove(&path);
                    None
                }
            }
        } else {
            None
        };
        let env = self.attachment_env(Command::Del, att);
        for (plugin, binary) in list.plugins.iter().zip(&binaries).rev() {
            let conf = attachment_request(list, plugin, prev.as_ref(), &att.capability_args);
            self.invoke(binary, &plugin.plugin_type, &env, &conf)?;
        }
        if let Err(e) = cache::remove(&path) {
            report
                .notes
                .push(format!("cannot remove cache file {}: {e}", path.display()));
        }
        Ok(report)
    }

    /// STATUS (1.1.0 and later): every plugin in order; stops at the first
    /// failure. Below 1.1.0 it succeeds without running anything, as libcni.
    pub fn status(&self, list: &NetworkConfigList) -> Result<Report, Error> {
        let mut report = Report::default();
        if !list.cni_version.has_status_and_gc() {
            report.notes.push(format!(
                "network {:?} is at CNI {}: STATUS exists from 1.1.0 on, so no plugin was called",
                list.name, list.cni_version
            ));
            return Ok(report);
        }
        let binaries = self.resolve(list)?;
        let env = PluginEnv {
            command: Command::Status,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            cni_args: String::new(),
            cni_path: self.cni_path(),
        };
        for (plugin, binary) in list.plugins.iter().zip(&binaries) {
            let conf = status_request(list, plugin);
            self.invoke(binary, &plugin.plugin_type, &env, &conf)?;
        }
        Ok(report)
    }
}
