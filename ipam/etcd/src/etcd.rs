//! The one etcd connection of an invocation, and its deadline.
//!
//! Endpoints are tried one at a time, from a random one on (so the clients
//! of a cluster spread over its members), until one accepts the connection:
//! one connection per invocation, never one per member. A request that fails
//! in transport (the member died, lost its leader, or never answered) moves
//! the connection to the next endpoint, and the operation reads again: every
//! operation is a read-plan-write loop whose write is guarded, so a retry
//! after a lost answer finds its own earlier write and keeps it.
//!
//! Everything (connecting, authenticating, every request, backoff) runs
//! within `timeoutMs` of the start; past it the invocation answers code 11.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use cni::Error;
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, GetResponse, Identity, KvClient, TlsOptions,
    Txn, TxnResponse,
};
use tonic::transport::Endpoint;

use crate::config::{EtcdConfig, TlsFiles};

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// In transport, or etcd was unavailable: another endpoint or a later
    /// attempt may succeed. The message says what happened.
    Retry(String),
    /// Anything else (refused credentials, a malformed request): final.
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Fatal(e)
    }
}

/// A connected client and the invocation's deadline.
pub struct Etcd {
    cfg: EtcdConfig,
    deadline: Instant,
    /// Endpoint indexes in the order they are tried; `next` walks it round.
    order: Vec<usize>,
    next: usize,
    kv: Option<KvClient>,
    /// Requests sent (connecting and authenticating not counted).
    round_trips: u32,
    last_failure: String,
}

/// A random number, without a dependency: std's hasher keys are random per
/// process and per `RandomState`.
pub fn random_u64() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::io(format!(
            "cannot read ipam.etcd.tls.{what} {}: {e}",
            path.display()
        ))
    })
}

fn tls_options(files: &TlsFiles) -> Result<TlsOptions, Error> {
    let mut tls =
        TlsOptions::new().ca_certificate(Certificate::from_pem(read_pem(&files.ca, "ca")?));
    if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
        tls = tls.identity(Identity::from_pem(
            read_pem(cert, "cert")?,
            read_pem(key, "key")?,
        ));
    }
    Ok(tls)
}

/// Sorts an etcd client error into retry-or-not.
pub fn classify(e: etcd_client::Error) -> Failure {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            Code::Unauthenticated | Code::PermissionDenied => Failure::Fatal(
                Error::invalid_config(format!("etcd refused access: {}", s.message())),
            ),
            // etcd 3.4 answers a bad password and a missing user alike.
            Code::InvalidArgument
                if s.message().contains("authentication failed")
                    || s.message().contains("user name is empty") =>
            {
                Failure::Fatal(Error::invalid_config(format!(
                    "etcd refused access (check ipam.etcd.username and password): {}",
                    s.message()
                )))
            }
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => Failure::Fatal(
                Error::plugin(format!("etcd refused a request: {}", s.message())),
            ),
            _ => Failure::Retry(format!("{:?}: {}", s.code(), s.message())),
        },
        etcd_client::Error::TransportError(e) => Failure::Retry(format!("transport: {e}")),
        etcd_client::Error::IoError(e) => Failure::Retry(format!("I/O: {e}")),
        other => Failure::Fatal(Error::plugin(format!("etcd client: {other}"))),
    }
}

impl Etcd {
    /// Connects to the first endpoint that answers before `deadline` (the
    /// invocation's start + `timeoutMs`).
    pub async fn connect(cfg: &EtcdConfig, deadline: Instant) -> Result<Etcd, Error> {
        let n = cfg.endpoints.len();
        let first = (random_u64() % n as u64) as usize;
        let mut etcd = Etcd {
            cfg: cfg.clone(),
            deadline,
            order: (0..n).map(|i| (first + i) % n).collect(),
            next: 0,
            kv: None,
            round_trips: 0,
            last_failure: String::new(),
        };
        etcd.dial().await?;
        Ok(etcd)
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub fn round_trips(&self) -> u32 {
        self.round_trips
    }

    fn unreachable(&self) -> Error {
        Error::try_again_later(format!(
            "etcd at {} did not serve the request (timeout {} ms)",
            self.cfg.endpoints.join(", "),
            self.cfg.timeout.as_millis()
        ))
        .with_details(self.last_failure.clone())
    }

    /// Connects to the next endpoints in turn until one accepts.
    async fn dial(&mut self) -> Result<(), Error> {
        self.kv = None;
        let tls = self.cfg.tls.as_ref().map(tls_options).transpose()?;
        let mut tried = 0;
        while tried < self.order.len() && !self.remaining().is_zero() {
            let url = &self.cfg.endpoints[self.order[self.next % self.order.len()]];
            self.next += 1;
            tried += 1;
            // A dead member must not eat the whole budget: each endpoint left
            // gets an equal share of the time left.
            let share = self.remaining() / (self.order.len() - tried + 1) as u32;
            match self.dial_one(url, tls.clone(), share).await {
                Ok(kv) => {
                    self.kv = Some(kv);
                    return Ok(());
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(why)) => self.last_failure = format!("{url}: {why}"),
            }
        }
        Err(self.unreachable())
    }

    async fn dial_one(
        &self,
        url: &str,
        tls: Option<TlsOptions>,
        budget: Duration,
    ) -> Result<KvClient, Failure> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::invalid_config(format!("ipam.etcd.endpoints {url:?}: {e}")))?
            .connect_timeout(budget);
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::invalid_config(format!("ipam.etcd.tls: {e}")))?;
        }
        let channel = tokio::time::timeout(budget, endpoint.connect())
            .await
            .map_err(|_| Failure::Retry(format!("no connection within {budget:?}")))?
            .map_err(|e| Failure::Retry(format!("connect: {e}")))?;
        // require_leader: a member cut off from its leader answers at once
        // instead of holding the request, so we move on to another.
        let mut options = ConnectOptions::new().with_require_leader(true);
        if let Some(user) = &self.cfg.username {
            options =
                options.with_user(user.clone(), self.cfg.password.clone().unwrap_or_default());
        }
        let client = tokio::time::timeout(
            budget,
            Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options)),
        )
        .await
        .map_err(|_| Failure::Retry(format!("no authentication answer within {budget:?}")))?
        .map_err(classify)?;
        Ok(client.kv_client())
    }

    /// Moves to the next endpoint after a transport failure. Err (code 11)
    /// when time is up or no endpoint accepts.
    pub async fn failover(&mut self, why: String) -> Result<(), Error> {
        self.last_failure = why;
        if self.remaining().is_zero() {
            return Err(self.unreachable());
        }
        self.dial().await
    }

    async fn request<T>(
        &mut self,
        call: impl FnOnce(
            KvClient,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<T, etcd_client::Error>>>>,
    ) -> Result<T, Failure> {
        let Some(kv) = self.kv.clone() else {
            return Err(Failure::Retry("not connected".into()));
        };
        self.round_trips += 1;
        match tokio::time::timeout(self.remaining(), call(kv)).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(Failure::Retry(format!(
                "no answer within {} ms",
                self.cfg.timeout.as_millis()
            ))),
        }
    }

    pub async fn txn(&mut self, txn: Txn) -> Result<TxnResponse, Failure> {
        self.request(|mut kv| Box::pin(async move { kv.txn(txn).await }))
            .await
    }

    pub async fn get(&mut self, key: String, options: GetOptions) -> Result<GetResponse, Failure> {
        self.request(|mut kv| Box::pin(async move { kv.get(key, Some(options)).await }))
            .await
    }

    /// Settles a failed request: a retryable one fails over (Ok: try again),
    /// a final one, or one past the deadline, is the answer.
    pub async fn recover(&mut self, failure: Failure) -> Result<(), Error> {
        match failure {
            Failure::Fatal(e) => Err(e),
            Failure::Retry(why) => self.failover(why).await,
        }
    }

    /// Sleeps a random 1-`4 * attempt` ms (capped by the deadline) before a
    /// retry after a conflict, so two racing writers don't collide again.
    pub async fn backoff(&mut self, attempt: u32) -> Result<(), Error> {
        let ms = 1 + random_u64() % u64::from(4 * attempt.clamp(1, 25));
        let pause = Duration::from_millis(ms);
        if pause >= self.remaining() {
            self.last_failure = format!("still conflicting after {attempt} attempts");
            return Err(self.unreachable());
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// Runs an async operation on a current-thread runtime (plugins are one-shot:
/// no worker threads).
pub fn block_on<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::plugin(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(f)
}
