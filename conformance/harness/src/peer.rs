//! Servers and clients inside sandbox namespaces that tell each other the
//! source address they saw: how tests observe NAT (masquerade, DNAT, hairpin).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.run_in(f)
}

/// A server in a namespace answering every client with the source address it
/// saw (TCP: written then closed; UDP: sent back). Stopped on drop.
pub struct PeerServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    pub fn tcp(ns: &Netns, bind: impl ToString) -> PeerServer {
        let bind: SocketAddr = bind.to_string().parse().expect("bind address");
        let listener =
            in_ns(ns, || TcpListener::bind(bind)).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        PeerServer::spawn(addr, move |stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    }

    pub fn udp(ns: &Netns, bind: impl ToString) -> PeerServer {
        let bind: SocketAddr = bind.to_string().parse().expect("bind address");
        let sock =
            in_ns(ns, || UdpSocket::bind(bind)).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        PeerServer::spawn(addr, move |stop| {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        })
    }

    fn spawn(addr: SocketAddr, body: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> PeerServer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || body(flag));
        PeerServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TCP exchange from inside `ns`: the source address the server saw, or
/// why it failed.
pub fn tcp_ask(ns: &Netns, to: impl ToString) -> Result<String, String> {
    let to: SocketAddr = to.to_string().parse().expect("address");
    in_ns(ns, || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(1500))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(|e| format!("read from {to}: {e}"))?;
        Ok(out)
    })
}

/// `tcp_ask`, retried for up to 5 s (neighbour discovery on fresh links).
pub fn tcp_ask_eventually(ns: &Netns, to: impl ToString) -> Result<String, String> {
    let to = to.to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tcp_ask(ns, &to) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One UDP request/answer from inside `ns`, retried a few times.
pub fn udp_ask(ns: &Netns, to: impl ToString) -> Result<String, String> {
    let to: SocketAddr = to.to_string().parse().expect("address");
    let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    in_ns(ns, || {
        let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        for _ in 0..6 {
            sock.send_to(b"?", to)
                .map_err(|e| format!("send to {to}: {e}"))?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err(format!("no UDP answer from {to}"))
    })
}
