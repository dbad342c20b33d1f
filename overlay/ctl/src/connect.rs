//! The etcd settings from the global options (checked before any etcd
//! work: a bad one is a usage error), the connection, and every request
//! bounded by the command's time budget.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cni::Error;
use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, LeaseTimeToLiveOptions, TlsOptions, Txn,
    TxnResponse,
};

use crate::cli::Global;

/// TLS files: the CA of etcd's server certificate, and an optional client
/// certificate with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// Budget of the whole command.
    pub timeout: Duration,
    pub tls: Option<TlsFiles>,
    /// User and password.
    pub user: Option<(String, String)>,
}

impl Settings {
    /// Plain `http://` endpoints, no TLS, no user, this budget.
    pub fn plain(endpoints: Vec<String>, prefix: &str, timeout: Duration) -> Settings {
        Settings {
            endpoints,
            prefix: prefix.to_string(),
            timeout,
            tls: None,
            user: None,
        }
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

fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.trim_matches('/').is_empty() || prefix.contains("//") {
        return Err(format!(
            "--prefix {prefix:?} must name a key prefix such as /overlay"
        ));
    }
    Ok(())
}

/// https:// endpoints need the CA, and TLS options make sense only with
/// https:// endpoints (all of them: one connection options set serves all).
fn tls_files(g: &Global) -> Result<Option<TlsFiles>, String> {
    let https = g
        .etcd_endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https != 0 && https != g.etcd_endpoints.len() {
        return Err("--etcd-endpoints mixes http:// and https://".into());
    }
    let identity = g.cert.clone().zip(g.key.clone());
    match (&g.cacert, https != 0) {
        (Some(ca), true) => Ok(Some(TlsFiles {
            ca: ca.clone(),
            identity,
        })),
        (None, false) if identity.is_none() => Ok(None),
        (None, _) => Err("https:// endpoints and --cert/--key need --cacert".into()),
        (Some(_), false) => Err("--cacert needs https:// endpoints".into()),
    }
}

/// `--user USER[:PASSWORD]`, split at the first colon.
fn credentials(user: Option<&str>) -> Result<Option<(String, String)>, String> {
    let Some(user) = user else {
        return Ok(None);
    };
    let (name, password) = user.split_once(':').unwrap_or((user, ""));
    if name.is_empty() {
        return Err("--user needs a user name".into());
    }
    Ok(Some((name.to_string(), password.to_string())))
}

/// The settings of the global options; `Err` is a usage error.
pub fn settings(g: &Global) -> Result<Settings, String> {
    if g.etcd_endpoints.is_empty() {
        return Err("--etcd-endpoints is empty".into());
    }
    for url in &g.etcd_endpoints {
        check_endpoint(url)?;
    }
    check_prefix(&g.prefix)?;
    Ok(Settings {
        endpoints: g.etcd_endpoints.clone(),
        prefix: g.prefix.clone(),
        timeout: Duration::from_millis(g.timeout_ms),
        tls: tls_files(g)?,
        user: credentials(g.user.as_deref())?,
    })
}

/// Runs `f` on a current-thread runtime.
pub fn block_on<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io(format!("cannot start the async runtime: {e}")))?
        .block_on(f)
}

fn read_pem(path: &Path, option: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read {option} {}: {e}", path.display())))
}

fn tls_options(files: &TlsFiles) -> Result<TlsOptions, Error> {
    let mut tls =
        TlsOptions::new().ca_certificate(Certificate::from_pem(read_pem(&files.ca, "--cacert")?));
    if let Some((cert, key)) = &files.identity {
        tls = tls.identity(Identity::from_pem(
            read_pem(cert, "--cert")?,
            read_pem(key, "--key")?,
        ));
    }
    Ok(tls)
}

/// A connected client and the command's deadline.
pub struct Etcd {
    client: Client,
    deadline: Instant,
    /// The endpoints, for messages.
    endpoints: String,
    timeout: Duration,
}

impl Etcd {
    /// Connects (and authenticates, with a user) before `deadline`.
    pub async fn connect(settings: &Settings, deadline: Instant) -> Result<Etcd, Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(settings.timeout)
            .with_timeout(settings.timeout);
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        if let Some((user, password)) = &settings.user {
            options = options.with_user(user.clone(), password.clone());
        }
        let endpoints = settings.endpoints.join(", ");
        let remaining = deadline.saturating_duration_since(Instant::now());
        let connecting = Client::connect(&settings.endpoints, Some(options));
        let client = match tokio::time::timeout(remaining, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(failed(&endpoints, &e)),
            Err(_) => return Err(too_late(&endpoints, settings.timeout)),
        };
        Ok(Etcd {
            client,
            deadline,
            endpoints,
            timeout: settings.timeout,
        })
    }

    /// `call` on the client, within the time left.
    async fn request<T, F>(&self, call: impl FnOnce(Client) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, call(self.client.clone())).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(failed(&self.endpoints, &e)),
            Err(_) => Err(too_late(&self.endpoints, self.timeout)),
        }
    }

    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        self.request(|mut c| async move { c.txn(txn).await }).await
    }

    /// What is left of lease `id`, in seconds; `None` when it has expired
    /// (or never existed).
    pub async fn lease_ttl(&self, id: i64) -> Result<Option<u64>, Error> {
        let r = self
            .request(|mut c| async move {
                c.lease_time_to_live(id, None::<LeaseTimeToLiveOptions>)
                    .await
            })
            .await?;
        Ok(u64::try_from(r.ttl()).ok())
    }
}

fn too_late(endpoints: &str, timeout: Duration) -> Error {
    Error::try_again_later(format!(
        "etcd at {endpoints} did not answer within {} ms (is it running and reachable?)",
        timeout.as_millis()
    ))
}

/// An etcd client error in a line: gRPC's code and message, and the
/// innermost cause (`Connection refused`), not the whole debug chain.
fn failed(endpoints: &str, e: &etcd_client::Error) -> Error {
    let what = match e {
        etcd_client::Error::GRpcStatus(s) => {
            let mut root: Option<&dyn std::error::Error> = std::error::Error::source(s);
            while let Some(next) = root.and_then(|r| r.source()) {
                root = Some(next);
            }
            match root {
                Some(cause) => format!("{:?}: {}: {cause}", s.code(), s.message()),
                None => format!("{:?}: {}", s.code(), s.message()),
            }
        }
        other => other.to_string(),
    };
    Error::plugin(format!("etcd at {endpoints}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn settings_of(args: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from([&["overlayctl"], args, &["nodes"]].concat())
            .map_err(|e| e.to_string())?;
        settings(&cli.global)
    }

    #[test]
    fn defaults_are_overlayds() {
        let s = settings_of(&[]).unwrap();
        assert_eq!(
            s,
            Settings::plain(
                vec!["http://127.0.0.1:2379".into()],
                "/overlay",
                Duration::from_millis(5000)
            )
        );
    }

    #[test]
    fn https_and_the_ca_go_together() {
        let https = ["--etcd-endpoints", "https://e:2379"];
        assert!(settings_of(&https).is_err());
        let s = settings_of(&[&https[..], &["--cacert", "/ca.pem"]].concat()).unwrap();
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                ca: "/ca.pem".into(),
                identity: None
            })
        );
        let s = settings_of(
            &[
                &https[..],
                &["--cacert", "/ca.pem", "--cert", "/c.pem", "--key", "/k.pem"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(
            s.tls.and_then(|t| t.identity),
            Some(("/c.pem".into(), "/k.pem".into()))
        );
        assert!(settings_of(&["--cacert", "/ca.pem"]).is_err());
        assert!(settings_of(&["--cert", "/c.pem", "--key", "/k.pem"]).is_err());
        let mixed = [
            "--etcd-endpoints",
            "https://a:1,http://b:2",
            "--cacert",
            "/ca",
        ];
        assert!(settings_of(&mixed).is_err());
    }

    #[test]
    fn bad_endpoints_and_prefixes_are_refused() {
        for bad in [
            &["--etcd-endpoints", "127.0.0.1:2379"][..],
            &["--etcd-endpoints", "http://h:1/path"],
            &["--etcd-endpoints", "http://"],
            &["--prefix", "/"],
            &["--prefix", ""],
            &["--prefix", "/a//b"],
        ] {
            assert!(settings_of(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            settings_of(&["--prefix", "net/a/"]).unwrap().prefix,
            "net/a/"
        );
    }

    #[test]
    fn user_splits_at_the_first_colon() {
        let s = settings_of(&["--user", "root:pa:ss"]).unwrap();
        assert_eq!(s.user, Some(("root".into(), "pa:ss".into())));
        let s = settings_of(&["--user", "root"]).unwrap();
        assert_eq!(s.user, Some(("root".into(), String::new())));
        assert!(settings_of(&["--user", ":pw"]).is_err());
    }
}
