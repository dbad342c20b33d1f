//! The etcd settings from the global options, checked as the plugin checks
//! `ipam.etcd` (so ipamctl reaches etcd as the plugin does), and the
//! connection.

use std::time::{Duration, Instant};

use cni::Error;
use etcd_ipam::config::{EtcdConfig, TlsFiles};
use etcd_ipam::etcd::Etcd;

use crate::cli::Global;

/// `http://HOST:PORT` or `https://HOST:PORT` (a trailing `/` allowed).
fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|r| r.trim_end_matches('/'));
    match rest {
        Some(r) if !r.is_empty() && !r.contains('/') => Ok(()),
        _ => Err(format!(
            "--etcd-endpoints: {url:?} is not http://HOST:PORT or https://HOST:PORT"
        )),
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.trim_matches('/').is_empty() || prefix.contains("//") {
        return Err(format!(
            "--prefix {prefix:?} must name a key prefix such as /cni-ipam"
        ));
    }
    Ok(())
}

/// TLS files: https:// endpoints need the CA, and a CA makes sense only with
/// https:// endpoints (the plugin's rule).
fn tls_files(g: &Global) -> Result<Option<TlsFiles>, String> {
    let https = g.etcd_endpoints.iter().any(|e| e.starts_with("https://"));
    match (&g.cacert, https) {
        (Some(ca), true) => Ok(Some(TlsFiles {
            ca: ca.clone(),
            cert: g.cert.clone(),
            key: g.key.clone(),
        })),
        (None, false) if g.cert.is_none() => Ok(None),
        (None, _) => Err("https:// endpoints and --cert/--key need --cacert".into()),
        (Some(_), false) => Err("--cacert needs https:// endpoints".into()),
    }
}

/// `--user USER[:PASSWORD]`, or `--username` and `--password`.
fn credentials(g: &Global) -> (Option<String>, Option<String>) {
    match &g.user {
        Some(user) => match user.split_once(':') {
            Some((name, password)) => (Some(name.to_string()), Some(password.to_string())),
            None => (Some(user.clone()), None),
        },
        None => (g.username.clone(), g.password.clone()),
    }
}

/// The plugin's `EtcdConfig` from the global options; `Err` is a usage error.
pub fn etcd_config(g: &Global) -> Result<EtcdConfig, String> {
    if g.etcd_endpoints.is_empty() {
        return Err("--etcd-endpoints is empty".into());
    }
    for url in &g.etcd_endpoints {
        check_endpoint(url)?;
    }
    check_prefix(&g.prefix)?;
    let (username, password) = credentials(g);
    if username.as_deref() == Some("") {
        return Err("--user needs a user name".into());
    }
    Ok(EtcdConfig {
        endpoints: g.etcd_endpoints.clone(),
        prefix: g.prefix.clone(),
        timeout: Duration::from_millis(g.timeout_ms),
        tls: tls_files(g)?,
        username,
        password,
    })
}

/// Where and until when a command may talk to etcd. Commands connect
/// themselves, after checking their own input.
pub struct Target {
    pub cfg: EtcdConfig,
    /// The command's start + `--timeout-ms`.
    pub deadline: Instant,
}

impl Target {
    pub async fn connect(&self) -> Result<Etcd, Error> {
        Etcd::connect(&self.cfg, self.deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<EtcdConfig, String> {
        let cli = Cli::try_parse_from([&["ipamctl"], args, &["usage"]].concat())
            .map_err(|e| e.to_string())?;
        etcd_config(&cli.global)
    }

    #[test]
    fn defaults_are_the_plugins() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(cfg.prefix, "/cni-ipam");
        assert_eq!(cfg.timeout, Duration::from_millis(5000));
        assert_eq!((cfg.tls, cfg.username, cfg.password), (None, None, None));
    }

    #[test]
    fn https_and_the_ca_go_together() {
        let https = ["--etcd-endpoints", "https://e:2379"];
        assert!(config(&https).is_err());
        let cfg = config(&[&https[..], &["--cacert", "/ca.pem"]].concat()).unwrap();
        assert_eq!(cfg.tls.map(|t| t.ca), Some("/ca.pem".into()));
        assert!(config(&["--cacert", "/ca.pem"]).is_err());
        assert!(config(&["--cert", "/c.pem", "--key", "/k.pem"]).is_err());
    }

    #[test]
    fn bad_endpoints_and_prefixes_are_refused() {
        for bad in [
            &["--etcd-endpoints", "127.0.0.1:2379"][..],
            &["--etcd-endpoints", "http://h:1/path"],
            &["--etcd-endpoints", "http://"],
            &["--prefix", "/"],
            &["--prefix", "/a//b"],
        ] {
            assert!(config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_splits_at_the_first_colon() {
        let cfg = config(&["--user", "root:pa:ss"]).unwrap();
        assert_eq!(cfg.username.as_deref(), Some("root"));
        assert_eq!(cfg.password.as_deref(), Some("pa:ss"));
        let cfg = config(&["--username", "u", "--password", "p"]).unwrap();
        assert_eq!(
            (cfg.username.as_deref(), cfg.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert!(
            config(&["--password", "p"]).is_err(),
            "a password needs a user"
        );
        assert!(config(&["--user", "u", "--username", "v"]).is_err());
    }
}
