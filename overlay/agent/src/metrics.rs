//! Prometheus metrics and the health endpoint, on `--metrics-addr`:
//! `GET /metrics` (text format) and `GET /healthz` (200 once this node holds
//! its lease and the last programming pass succeeded, 503 otherwise).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Everything overlayd counts. Cheap to clone (the metrics are shared).
#[derive(Clone)]
pub struct Metrics {
    pub nodes_known: Gauge,
    pub programming_errors: Counter,
    /// From receiving an etcd event (or starting a reconcile) to the kernel
    /// holding the result, seconds.
    pub event_to_programmed: Histogram,
    pub lease_renewals: Counter,
    pub watch_events: Counter,
    pub kernel_changes: Counter,
    pub healthy: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("overlayd");
        let m = Metrics {
            nodes_known: Gauge::default(),
            programming_errors: Counter::default(),
            // 0.1 ms .. ~3.3 s
            event_to_programmed: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            lease_renewals: Counter::default(),
            watch_events: Counter::default(),
            kernel_changes: Counter::default(),
            healthy: Arc::new(AtomicBool::new(false)),
            registry: Arc::new(Registry::default()),
        };
        registry.register(
            "nodes_known",
            "Other nodes whose records this node programs",
            m.nodes_known.clone(),
        );
        registry.register(
            "programming_errors",
            "Programming passes that failed",
            m.programming_errors.clone(),
        );
        registry.register(
            "event_to_programmed_seconds",
            "From an etcd event (or a reconcile tick) to the kernel holding its result",
            m.event_to_programmed.clone(),
        );
        registry.register(
            "lease_renewals",
            "Lease keep-alives etcd acknowledged",
            m.lease_renewals.clone(),
        );
        registry.register(
            "watch_events",
            "Node record events received from etcd",
            m.watch_events.clone(),
        );
        registry.register(
            "kernel_changes",
            "Routes, neighbours and FDB entries added or removed",
            m.kernel_changes.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Serves `/metrics` and `/healthz` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // The request line and headers, until the blank line (a client
            // may send them in pieces); closing with unread bytes would
            // reset the connection under the answer.
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut chunk))
                    .await
                {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let request = String::from_utf8_lossy(&buf);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.encode()),
                "/healthz" if metrics.healthy.load(Ordering::Relaxed) => ("200 OK", "ok\n".into()),
                "/healthz" => ("503 Service Unavailable", "not ready\n".into()),
                _ => ("404 Not Found", "try /metrics or /healthz\n".into()),
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}
