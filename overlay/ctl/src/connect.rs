//! The etcd settings from the global options (checked before any etcd
//! work: a bad one is a usage error), the connection, and every request
//! bounded by the command's time budget.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use admin_cli::Schemes;
pub use admin_cli::TlsFiles;
use cni::Error;
use etcd_client::{
    Certificate, Client, ConnectOptions, Identity, LeaseTimeToLiveOptions, TlsOptions, Txn,
    TxnResponse,
};
use overlay_core::DEFAULT_PREFIX;

use crate::cli::Global;

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

/// The settings of the global options; `Err` is a usage error. All
/// endpoints are of one scheme: etcd-client takes one set of connection
/// options (TLS or none) for every endpoint.
pub fn settings(g: &Global) -> Result<Settings, String> {
    let options = g
        .etcd
        .check(&g.prefix, DEFAULT_PREFIX, Schemes::OneForAll)?;
    Ok(Settings {
        endpoints: options.endpoints,
        prefix: options.prefix,
        timeout: options.timeout,
        tls: options.tls,
        // `--user NAME` without a password: an empty one (etcd-client
        // takes a user only with a password).
        user: options
            .user
            .map(|u| (u.name, u.password.unwrap_or_default())),
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
