//! The global etcd options every admin CLI takes, and their checks. They
//! are checked before any etcd work, so a bad one is a usage error (exit 2)
//! and never a failed request.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Where etcd listens when no --etcd-endpoints is given (the default of
/// etcd-ipam and overlayd too).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// How to reach etcd, and the output format; valid before or after the
/// subcommand. `--prefix` is not here: each CLI declares its own, since its
/// default and what it names differ.
#[derive(Debug, Clone, Args)]
pub struct EtcdArgs {
    /// etcd client URLs (http:// or https://HOST:PORT)
    #[arg(long, global = true, value_name = "URL[,URL]", value_delimiter = ',',
          default_value = DEFAULT_ENDPOINT)]
    pub etcd_endpoints: Vec<String>,
    /// Time budget of the whole command: connecting and every request
    #[arg(long, global = true, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// CA certificate (PEM) that signed etcd's server certificate; needed for https://
    #[arg(long, global = true, value_name = "PEM")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), with --key
    #[arg(long, global = true, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client certificate's private key (PEM), with --cert
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// etcd user and password, as etcdctl takes them
    #[arg(long, global = true, value_name = "USER[:PASSWORD]")]
    pub user: Option<String>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

/// Whether one command line may list http:// and https:// endpoints
/// together: it depends on how the CLI's etcd client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// Allowed: the client sets up each endpoint's connection on its own
    /// (etcd-ipam's, one endpoint at a time).
    Mixed,
    /// Refused: the client has one set of connection options for every
    /// endpoint (etcd-client's).
    OneForAll,
}

/// TLS files: the CA of etcd's server certificate, and an optional client
/// certificate with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    /// Client certificate and key (clap takes both or neither).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// `--user NAME[:PASSWORD]`, split at the first colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// `None` without a colon.
    pub password: Option<String>,
}

/// The global options, checked: what a client needs to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// Budget of the whole command.
    pub timeout: Duration,
    pub tls: Option<TlsFiles>,
    pub user: Option<User>,
}

impl EtcdArgs {
    /// The options checked, with the CLI's own `prefix` (its --prefix);
    /// `default_prefix` is named as an example when the prefix is bad.
    /// `Err` is a usage error, for clap to print.
    pub fn check(
        &self,
        prefix: &str,
        default_prefix: &str,
        schemes: Schemes,
    ) -> Result<EtcdOptions, String> {
        if self.etcd_endpoints.is_empty() {
            return Err("--etcd-endpoints is empty".into());
        }
        for url in &self.etcd_endpoints {
            check_endpoint(url)?;
        }
        check_prefix(prefix, default_prefix)?;
        Ok(EtcdOptions {
            endpoints: self.etcd_endpoints.clone(),
            prefix: prefix.to_string(),
            timeout: Duration::from_millis(self.timeout_ms),
            tls: self.tls_files(schemes)?,
            user: self.user()?,
        })
    }

    /// https:// endpoints need the CA, and a CA or a client certificate
    /// makes sense only with https:// endpoints (the plugin's rule).
    fn tls_files(&self, schemes: Schemes) -> Result<Option<TlsFiles>, String> {
        let https = self
            .etcd_endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        if schemes == Schemes::OneForAll && https != 0 && https != self.etcd_endpoints.len() {
            return Err("--etcd-endpoints mixes http:// and https://".into());
        }
        let identity = self.cert.clone().zip(self.key.clone());
        match (&self.cacert, https != 0) {
            (Some(ca), true) => Ok(Some(TlsFiles {
                ca: ca.clone(),
                identity,
            })),
            (None, false) if identity.is_none() => Ok(None),
            (None, _) => Err("https:// endpoints and --cert/--key need --cacert".into()),
            (Some(_), false) => Err("--cacert needs https:// endpoints".into()),
        }
    }

    fn user(&self) -> Result<Option<User>, String> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let (name, password) = match user.split_once(':') {
            Some((name, password)) => (name, Some(password.to_string())),
            None => (user.as_str(), None),
        };
        if name.is_empty() {
            return Err("--user needs a user name".into());
        }
        Ok(Some(User {
            name: name.to_string(),
            password,
        }))
    }
}

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

fn check_prefix(prefix: &str, example: &str) -> Result<(), String> {
    if prefix.trim_matches('/').is_empty() || prefix.contains("//") {
        return Err(format!(
            "--prefix {prefix:?} must name a key prefix such as {example}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A CLI as the admin CLIs declare theirs: the shared options and its
    /// own --prefix.
    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[arg(long, global = true, default_value = "/test")]
        prefix: String,
    }

    fn check(args: &[&str], schemes: Schemes) -> Result<EtcdOptions, String> {
        let cli = TestCli::try_parse_from([&["test"], args].concat()).map_err(|e| e.to_string())?;
        cli.etcd.check(&cli.prefix, "/test", schemes)
    }

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        TestCli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let options = check(&[], Schemes::Mixed).unwrap();
        assert_eq!(
            options,
            EtcdOptions {
                endpoints: vec![DEFAULT_ENDPOINT.into()],
                prefix: "/test".into(),
                timeout: Duration::from_millis(5000),
                tls: None,
                user: None,
            }
        );
    }

    #[test]
    fn mixed_schemes_depend_on_the_client() {
        let mixed = [
            "--etcd-endpoints",
            "https://a:1,http://b:2",
            "--cacert",
            "/ca",
        ];
        let options = check(&mixed, Schemes::Mixed).unwrap();
        assert_eq!(options.tls.map(|t| t.ca), Some("/ca".into()));
        assert_eq!(
            check(&mixed, Schemes::OneForAll),
            Err("--etcd-endpoints mixes http:// and https://".into())
        );
    }

    #[test]
    fn the_client_certificate_goes_with_https_and_the_ca() {
        let args = [
            "--etcd-endpoints",
            "https://e:2379",
            "--cacert",
            "/ca.pem",
            "--cert",
            "/c.pem",
            "--key",
            "/k.pem",
        ];
        let options = check(&args, Schemes::OneForAll).unwrap();
        assert_eq!(
            options.tls,
            Some(TlsFiles {
                ca: "/ca.pem".into(),
                identity: Some(("/c.pem".into(), "/k.pem".into())),
            })
        );
        assert!(check(&["--cert", "/c.pem"], Schemes::Mixed).is_err());
        assert!(check(&["--cert", "/c.pem", "--key", "/k.pem"], Schemes::Mixed).is_err());
    }

    #[test]
    fn a_bad_prefix_is_refused_naming_the_example() {
        let refused = check(&["--prefix", "/a//b"], Schemes::Mixed).unwrap_err();
        assert!(refused.contains("such as /test"), "{refused}");
    }

    #[test]
    fn user_splits_at_the_first_colon_and_needs_a_name() {
        let user = |arg: &str| check(&["--user", arg], Schemes::Mixed).map(|o| o.user);
        assert_eq!(
            user("root:pa:ss"),
            Ok(Some(User {
                name: "root".into(),
                password: Some("pa:ss".into())
            }))
        );
        assert_eq!(
            user("root"),
            Ok(Some(User {
                name: "root".into(),
                password: None
            }))
        );
        assert_eq!(user(":pw"), Err("--user needs a user name".into()));
    }
}
