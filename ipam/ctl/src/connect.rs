//! The etcd settings from the global options, checked as the plugin checks
//! `ipam.etcd` (so ipamctl reaches etcd as the plugin does), and the
//! connection.

use std::time::Instant;

use admin_cli::Schemes;
use cni::Error;
use etcd_ipam::config::{EtcdConfig, TlsFiles, DEFAULT_PREFIX};
use etcd_ipam::etcd::Etcd;

use crate::cli::Global;

/// The plugin's `EtcdConfig` from the global options; `Err` is a usage error.
/// Mixed http:// and https:// endpoints are fine: the plugin's client dials
/// one endpoint at a time, each with its own options.
pub fn etcd_config(g: &Global) -> Result<EtcdConfig, String> {
    let options = g.etcd.check(&g.prefix, DEFAULT_PREFIX, Schemes::Mixed)?;
    let (username, password) = match options.user {
        Some(user) => (Some(user.name), user.password),
        None => (g.username.clone(), g.password.clone()),
    };
    if username.as_deref() == Some("") {
        return Err("--username needs a user name".into());
    }
    let tls = options.tls.map(|files| {
        let (cert, key) = files.identity.unzip();
        TlsFiles {
            ca: files.ca,
            cert,
            key,
        }
    });
    Ok(EtcdConfig {
        endpoints: options.endpoints,
        prefix: options.prefix,
        timeout: options.timeout,
        tls,
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
    use std::time::Duration;

    fn config(args: &[&str]) -> Result<EtcdConfig, String> {
        let cli = Cli::try_parse_from([&["ipamctl"], args, &["usage"]].concat())
            .map_err(|e| e.to_string())?;
        etcd_config(&cli.global)
    }

    #[test]
    fn defaults_are_the_plugins() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.endpoints, ["http://127.0.0.1:2379"]);
        assert_eq!(
            admin_cli::DEFAULT_ENDPOINT,
            etcd_ipam::config::DEFAULT_ENDPOINT
        );
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
