//! LIST: network configuration lists run through a runtime (our `cnitool`,
//! libcni-compatible), spec section 3: plugins in order on ADD with the
//! previous result, in reverse on DEL with the cached final result, the
//! result cache, request derivation, version selection, disableCheck, GC.
//!
//! Most checks use small fake plugins (shell scripts written into a temp dir)
//! that record every call, so the runtime's behaviour is observable; the last
//! two drive the real plugins of the directory under test.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use cni_harness::Sandbox;
use serde_json::{json, Value};

use super::{BR, BR_PM, NONE};
use crate::check::{Check, Cmd, Group, Needs, Res};
use crate::ctx::{Ctx, TempDir};
use crate::exec::{excerpt, run_command, Out};
use crate::fixture::{ipam_section, leases_in, v4_ranges};
use crate::result::{self, Kind};
use crate::{ensure, fail};

const fn c(id: &'static str, rule: &'static str, needs: Needs, run: fn(&Ctx) -> Res) -> Check {
    Check::new(id, Group::List, rule, needs, run)
}

const FAKES: Needs = Needs::on(NONE).cnitool();

#[rustfmt::skip]
pub const CHECKS: &[Check] = &[
    c("LIST-001", "ADD runs the list in order: the first plugin gets no prevResult, each later one the previous result", FAKES, add_order),
    c("LIST-002", "DEL runs the list in reverse order, every plugin getting the cached final ADD result as prevResult", FAKES, del_reverse),
    c("LIST-003", "ADD stops at the first failing plugin: later plugins do not run, the error is reported, nothing is cached", FAKES, add_stops),
    c("LIST-004", "The final ADD result is cached (results/<net>-<id>-<ifname>, libcni format, mode 0600) and removed by DEL", FAKES, cache_file),
    c("LIST-005", "CHECK runs the list in order with the cached final ADD result as prevResult", FAKES, check_order),
    c("LIST-006", "DEL still runs every plugin (without prevResult) when the cached result is missing or corrupt", FAKES, del_without_cache),
    c("LIST-007", "Each plugin gets the list's name and cniVersion, its own keys, runtimeConfig only for declared capabilities, no capabilities", FAKES, request_derivation),
    c("LIST-008", "The list's version is the highest of cniVersion and cniVersions that the runtime supports", FAKES, version_selection),
    c("LIST-009", "With disableCheck, CHECK succeeds without running any plugin", FAKES, disable_check),
    c("LIST-010", "GC sends every plugin the valid attachments (both keys) and goes on after a plugin fails", FAKES, gc_all_plugins),
    c("LIST-011", "STATUS runs every plugin of the list in order", FAKES, status_order),
    c("LIST-012", "A bridge list driven by cnitool: add, check and del succeed and leave nothing behind", Needs::on(BR).cmds(&[Cmd::Check]).cnitool(), real_bridge),
    c("LIST-013", "A bridge + portmap list with port mappings driven by cnitool: add, check and del succeed", Needs::on(BR_PM).cmds(&[Cmd::Check]).cnitool(), real_bridge_portmap),
];

const LIST: &str = "cnc-list";

/// A runtime setup: sandbox, config dir, cache dir, plugin dir, call log.
struct Rt<'c, 'e> {
    ctx: &'c Ctx<'e>,
    sb: Sandbox,
    netconf: TempDir,
    cache: TempDir,
    /// Fake plugins (or unused when driving the real ones).
    fakes: TempDir,
    log: TempDir,
    plugin_path: PathBuf,
}

impl<'c, 'e> Rt<'c, 'e> {
    fn new(ctx: &'c Ctx<'e>, real: bool) -> Result<Rt<'c, 'e>, String> {
        let fakes = ctx.tempdir()?;
        let plugin_path = if real {
            ctx.plugin_dir().to_path_buf()
        } else {
            fakes.path().to_path_buf()
        };
        let mut sb = ctx.sandbox();
        sb.add_container();
        sb.add_container();
        Ok(Rt {
            ctx,
            sb,
            netconf: ctx.tempdir()?,
            cache: ctx.tempdir()?,
            fakes,
            log: ctx.tempdir()?,
            plugin_path,
        })
    }

    /// Writes fake plugin `name` answering ADD with a result naming it.
    fn fake(&self, name: &str, n: u8) -> Result<(), String> {
        let v = &self.ctx.version;
        let mut ip = json!({"address": format!("10.66.0.{n}/24"), "interface": 0});
        if crate::version::has_ip_version(v) {
            ip["version"] = json!("4");
        }
        let res = json!({
            "cniVersion": v,
            "interfaces": [{"name": format!("{name}0")}],
            "ips": [ip],
            "dns": {},
        });
        let versions = json!({"cniVersion": v, "supportedVersions": crate::version::KNOWN});
        let script = format!(
            r#"#!/bin/sh
# Fake CNI plugin written by cni-conformance: records each call, answers a fixed result.
log='{log}'
cat > "$log/{name}.$CNI_COMMAND.stdin"
echo "{name} $CNI_COMMAND" >> "$log/calls"
if [ -e "$log/{name}.fail.$CNI_COMMAND" ]; then
  printf '%s' '{{"cniVersion":"{v}","code":100,"msg":"{name} was told to fail"}}'
  exit 1
fi
case "$CNI_COMMAND" in
  ADD) printf '%s' '{res}' ;;
  VERSION) printf '%s' '{versions}' ;;
esac
exit 0
"#,
            log = self.log.path().display(),
        );
        let path = self.fakes.path().join(name);
        std::fs::write(&path, script).map_err(|e| format!("write {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        Ok(())
    }

    /// Fakes a, b, c and a list of them (plus `extra` top-level keys).
    fn fake_list(&self, extra: Value) -> Result<Value, String> {
        for (n, name) in ["fake-a", "fake-b", "fake-c"].iter().enumerate() {
            self.fake(name, n as u8 + 1)?;
        }
        let mut list = json!({
            "cniVersion": self.ctx.version,
            "name": LIST,
            "plugins": [{"type": "fake-a"}, {"type": "fake-b"}, {"type": "fake-c"}],
        });
        if let (Some(l), Some(e)) = (list.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                l.insert(k.clone(), v.clone());
            }
        }
        self.write_list(&list)?;
        Ok(list)
    }

    fn write_list(&self, list: &Value) -> Result<(), String> {
        let path = self.netconf.path().join("10-cnc.conflist");
        std::fs::write(&path, list.to_string())
            .map_err(|e| format!("write {}: {e}", path.display()))
    }

    fn netns(&self, i: usize) -> String {
        self.sb.container(i).path().to_string_lossy().into_owned()
    }

    /// `cnitool <cmd> <list> <netns of container i> --container-id ctr<i+1>`.
    fn tool(&self, cmd: &str, i: usize, env: &[(&str, &str)]) -> Result<Out, String> {
        let tool = self.ctx.cnitool()?;
        let mut c = self.sb.host().command(tool);
        let id = format!("ctr{}", i + 1);
        c.args([cmd, LIST, &self.netns(i), "--container-id", &id])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NETCONFPATH", self.netconf.path())
            .env("CNI_PATH", &self.plugin_path)
            .env("CNI_CACHE_DIR", self.cache.path())
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_PLUGIN_TIMEOUT",
                self.ctx.env.timeout.as_secs().to_string(),
            );
        for (k, v) in env {
            c.env(k, v);
        }
        let raw = run_command(c, b"", self.ctx.env.timeout * 4);
        Ok(Out {
            what: format!("cnitool {cmd}"),
            code: raw.code,
            stdout: raw.stdout,
            stderr: raw.stderr,
            timed_out: raw.timed_out,
        })
    }

    /// The calls the fakes recorded, as "name COMMAND".
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.log.path().join("calls"));
    }

    /// What fake `name` got on stdin for `cmd`.
    fn stdin(&self, name: &str, cmd: &str) -> Result<Value, String> {
        let path = self.log.path().join(format!("{name}.{cmd}.stdin"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{name} got no {cmd} call ({}: {e})", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{name} {cmd} stdin is not JSON ({e}): {text}"))
    }

    fn fail_next(&self, name: &str, cmd: &str) -> Result<(), String> {
        let p = self.log.path().join(format!("{name}.fail.{cmd}"));
        std::fs::write(&p, "").map_err(|e| format!("write {}: {e}", p.display()))
    }

    fn cache_file(&self, i: usize) -> PathBuf {
        self.cache
            .path()
            .join("results")
            .join(format!("{LIST}-ctr{}-eth0", i + 1))
    }
}

fn expect_calls(rt: &Rt, want: &[&str]) -> Result<(), String> {
    let got = rt.calls();
    if got == want {
        Ok(())
    } else {
        Err(format!("plugin calls were {got:?}, expected {want:?}"))
    }
}

/// What fake `name` answers to ADD (as written by `Rt::fake`).
fn fake_result(name: &str) -> Value {
    let n = match name {
        "fake-a" => 1,
        "fake-b" => 2,
        _ => 3,
    };
    json!({"interfaces": [{"name": format!("{name}0")}],
           "ips": [{"address": format!("10.66.0.{n}/24"), "interface": 0}]})
}

/// Equivalent, ignoring ips[].version (the runtime converts to the list's
/// version; the fakes' results are already there).
fn same_result(got: &Value, want: &Value) -> Result<(), String> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(ips) = v["ips"].as_array_mut() {
            for ip in ips {
                if let Some(o) = ip.as_object_mut() {
                    o.remove("version");
                }
            }
        }
        v
    };
    result::equivalent(&strip(got), &strip(want))
}

fn add(rt: &Rt, i: usize) -> Result<Value, String> {
    rt.tool("add", i, &[])?.result()
}

fn add_order(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    let out = add(&rt, 0)?;
    expect_calls(&rt, &["fake-a ADD", "fake-b ADD", "fake-c ADD"])?;
    let a = rt.stdin("fake-a", "ADD")?;
    ensure!(
        a.get("prevResult").is_none(),
        "the first plugin got a prevResult: {}",
        a["prevResult"]
    );
    same_result(
        &rt.stdin("fake-b", "ADD")?["prevResult"],
        &fake_result("fake-a"),
    )
    .map_err(|e| format!("fake-b's prevResult is not fake-a's result: {e}"))?;
    same_result(
        &rt.stdin("fake-c", "ADD")?["prevResult"],
        &fake_result("fake-b"),
    )
    .map_err(|e| format!("fake-c's prevResult is not fake-b's result: {e}"))?;
    same_result(&out, &fake_result("fake-c"))
        .map_err(|e| format!("the list's result is not the last plugin's: {e}"))?;
    Ok(())
}

fn del_reverse(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    add(&rt, 0)?;
    rt.clear_calls();
    rt.tool("del", 0, &[])?.succeeded()?;
    expect_calls(&rt, &["fake-c DEL", "fake-b DEL", "fake-a DEL"])?;
    for name in ["fake-a", "fake-b", "fake-c"] {
        same_result(
            &rt.stdin(name, "DEL")?["prevResult"],
            &fake_result("fake-c"),
        )
        .map_err(|e| format!("{name}'s DEL prevResult is not the final ADD result: {e}"))?;
    }
    Ok(())
}

fn add_stops(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    rt.fail_next("fake-b", "ADD")?;
    let out = rt.tool("add", 0, &[])?;
    ensure!(
        !out.ok(),
        "cnitool add succeeded although fake-b failed: {}",
        out.describe()
    );
    ensure!(
        out.stderr.contains("fake-b was told to fail"),
        "cnitool did not report fake-b's error: {}",
        out.describe()
    );
    expect_calls(&rt, &["fake-a ADD", "fake-b ADD"])?;
    ensure!(
        !rt.cache_file(0).exists(),
        "a failed ADD was cached at {}",
        rt.cache_file(0).display()
    );
    Ok(())
}

fn cache_file(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    let out = add(&rt, 0)?;
    let path = rt.cache_file(0);
    let meta =
        std::fs::metadata(&path).map_err(|e| format!("no cache file {}: {e}", path.display()))?;
    ensure!(
        meta.permissions().mode() & 0o777 == 0o600,
        "cache file mode is {:o}",
        meta.permissions().mode() & 0o777
    );
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let entry: Value =
        serde_json::from_str(&text).map_err(|e| format!("cache file is not JSON ({e}): {text}"))?;
    ensure!(
        entry["kind"] == "cniCacheV1",
        "cache kind is {}",
        entry["kind"]
    );
    ensure!(
        entry["containerId"] == "ctr1",
        "cache containerId is {}",
        entry["containerId"]
    );
    ensure!(
        entry["ifName"] == "eth0",
        "cache ifName is {}",
        entry["ifName"]
    );
    ensure!(
        entry["networkName"] == LIST,
        "cache networkName is {}",
        entry["networkName"]
    );
    ensure!(
        entry["netns"] == rt.netns(0).as_str(),
        "cache netns is {}",
        entry["netns"]
    );
    ensure!(
        entry["config"].as_str().is_some_and(|s| !s.is_empty()),
        "cache has no config"
    );
    same_result(&entry["result"], &out)
        .map_err(|e| format!("cached result differs from the ADD output: {e}"))?;
    rt.tool("del", 0, &[])?.succeeded()?;
    ensure!(!path.exists(), "DEL left the cache file {}", path.display());
    Ok(())
}

fn check_order(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    add(&rt, 0)?;
    rt.clear_calls();
    rt.tool("check", 0, &[])?.succeeded()?;
    expect_calls(&rt, &["fake-a CHECK", "fake-b CHECK", "fake-c CHECK"])?;
    for name in ["fake-a", "fake-b", "fake-c"] {
        same_result(
            &rt.stdin(name, "CHECK")?["prevResult"],
            &fake_result("fake-c"),
        )
        .map_err(|e| format!("{name}'s CHECK prevResult is not the final ADD result: {e}"))?;
    }
    Ok(())
}

fn del_without_cache(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    for how in ["missing", "corrupt"] {
        add(&rt, 0)?;
        let path = rt.cache_file(0);
        if how == "missing" {
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        } else {
            std::fs::write(&path, "{not json").map_err(|e| e.to_string())?;
        }
        rt.clear_calls();
        rt.tool("del", 0, &[])?
            .succeeded()
            .map_err(|e| format!("cache {how}: {e}"))?;
        expect_calls(&rt, &["fake-c DEL", "fake-b DEL", "fake-a DEL"])
            .map_err(|e| format!("cache {how}: {e}"))?;
        let got = rt.stdin("fake-a", "DEL")?;
        ensure!(
            got.get("prevResult").is_none(),
            "cache {how}: DEL got a prevResult {}",
            got["prevResult"]
        );
    }
    Ok(())
}

fn request_derivation(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    let list = rt.fake_list(json!({}))?;
    let mut list = list;
    list["plugins"][0] =
        json!({"type": "fake-a", "capabilities": {"portMappings": true}, "keyA": ["x", 1]});
    rt.write_list(&list)?;
    let caps = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                      "mac": "02:00:00:00:00:09"});
    rt.tool("add", 0, &[("CAP_ARGS", &caps.to_string())])?
        .result()?;
    let a = rt.stdin("fake-a", "ADD")?;
    let b = rt.stdin("fake-b", "ADD")?;
    for (name, got) in [("fake-a", &a), ("fake-b", &b)] {
        ensure!(got["name"] == LIST, "{name} got name {}", got["name"]);
        ensure!(
            got["cniVersion"] == ctx.version.as_str(),
            "{name} got cniVersion {}",
            got["cniVersion"]
        );
        ensure!(
            got.get("capabilities").is_none(),
            "{name} got \"capabilities\": {}",
            got["capabilities"]
        );
        ensure!(
            got.get("plugins").is_none(),
            "{name} got the list's \"plugins\""
        );
    }
    ensure!(
        a["keyA"] == json!(["x", 1]),
        "fake-a's own key was not passed through: {a}"
    );
    ensure!(
        a["runtimeConfig"] == json!({"portMappings": caps["portMappings"]}),
        "fake-a declared portMappings only, got runtimeConfig {}",
        a["runtimeConfig"]
    );
    ensure!(
        b["runtimeConfig"].as_object().is_none_or(|m| m.is_empty()),
        "fake-b declared no capability, got runtimeConfig {}",
        b["runtimeConfig"]
    );
    Ok(())
}

fn version_selection(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    let older = crate::version::KNOWN
        .iter()
        .copied()
        .rfind(|v| crate::version::cmp(v, &ctx.version).is_lt())
        .unwrap_or("0.3.1");
    rt.fake_list(json!({"cniVersion": older, "cniVersions": ["0.3.0", ctx.version, "99.0.0"]}))?;
    rt.tool("add", 0, &[])?.result()?;
    let a = rt.stdin("fake-a", "ADD")?;
    ensure!(
        a["cniVersion"] == ctx.version.as_str(),
        "cniVersion {older}, cniVersions [0.3.0, {}, 99.0.0]: plugins got {}",
        ctx.version,
        a["cniVersion"]
    );
    Ok(())
}

fn disable_check(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({"disableCheck": true}))?;
    add(&rt, 0)?;
    rt.fail_next("fake-a", "CHECK")?;
    rt.clear_calls();
    rt.tool("check", 0, &[])?.succeeded()?;
    expect_calls(&rt, &[])?;
    Ok(())
}

fn gc_all_plugins(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    add(&rt, 0)?;
    add(&rt, 1)?;
    rt.fail_next("fake-a", "GC")?;
    rt.clear_calls();
    let out = rt.tool("gc", 0, &[])?;
    ensure!(
        !out.ok(),
        "cnitool gc succeeded although fake-a failed: {}",
        out.describe()
    );
    expect_calls(&rt, &["fake-a GC", "fake-b GC", "fake-c GC"])?;
    let want = json!([{"containerID": "ctr1", "ifname": "eth0"}, {"containerID": "ctr2", "ifname": "eth0"}]);
    let sorted = |v: &Value| {
        let mut l = v.as_array().cloned().unwrap_or_default();
        l.sort_by_key(|x| x.to_string());
        l
    };
    for name in ["fake-a", "fake-b", "fake-c"] {
        let got = rt.stdin(name, "GC")?;
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            ensure!(
                sorted(&got[key]) == sorted(&want),
                "{name} got {key} = {}, expected {want}",
                got[key]
            );
        }
    }
    Ok(())
}

fn status_order(ctx: &Ctx) -> Res {
    let rt = Rt::new(ctx, false)?;
    rt.fake_list(json!({}))?;
    if !crate::version::at_least(&ctx.version, "1.1.0") {
        fail!("LIST-011 runs at {}, STATUS needs 1.1.0", ctx.version);
    }
    rt.tool("status", 0, &[])?.succeeded()?;
    expect_calls(&rt, &["fake-a STATUS", "fake-b STATUS", "fake-c STATUS"])?;
    Ok(())
}

/// A list of the real bridge (and optionally portmap) in `rt`'s config dir.
fn real_list(rt: &Rt, data: &TempDir, portmap: bool) -> Result<(), String> {
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": crate::fixture::BRIDGE,
        "isGateway": true,
        "ipam": ipam_section(data, v4_ranges()),
    })];
    if portmap {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
    }
    rt.write_list(&json!({"cniVersion": rt.ctx.version, "name": LIST, "plugins": plugins}))
}

fn real(ctx: &Ctx, portmap: bool) -> Res {
    let rt = Rt::new(ctx, true)?;
    let data = ctx.tempdir()?;
    real_list(&rt, &data, portmap)?;
    let caps =
        json!({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]})
            .to_string();
    let env: &[(&str, &str)] = if portmap { &[("CAP_ARGS", &caps)] } else { &[] };
    let out = rt.tool("add", 0, env)?.result()?;
    result::shape(&out, &ctx.version, Kind::Main)
        .map_err(|e| format!("{e}: {}", excerpt(&out.to_string())))?;
    result::container_iface(&out, "eth0", &rt.netns(0))?;
    ensure!(rt.cache_file(0).exists(), "cnitool wrote no cache file");
    // What del must remove is there first, or its absence proves nothing.
    ensure!(
        crate::kernel::link(rt.sb.container(0), "eth0")?.is_some(),
        "after add there is no eth0 in the container, so del's removal of it cannot be judged"
    );
    let held = leases_in(&data, LIST);
    ensure!(
        !held.is_empty(),
        "after add host-local holds no lease of {LIST}, so del's release cannot be judged"
    );
    rt.tool("check", 0, env)?
        .succeeded()
        .map_err(|e| format!("check: {e}"))?;
    rt.tool("del", 0, env)?
        .succeeded()
        .map_err(|e| format!("del: {e}"))?;
    ensure!(
        crate::kernel::link(rt.sb.container(0), "eth0")?.is_none(),
        "eth0 is still in the container after del"
    );
    ensure!(!rt.cache_file(0).exists(), "del left the cache file");
    let left = leases_in(&data, LIST);
    ensure!(left.is_empty(), "del left host-local leases: {left:?}");
    Ok(())
}

fn real_bridge(ctx: &Ctx) -> Res {
    real(ctx, false)
}

fn real_bridge_portmap(ctx: &Ctx) -> Res {
    real(ctx, true)
}
