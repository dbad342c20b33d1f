//! A TCP forwarder from a sandbox namespace's loopback to this process's:
//! how a plugin running in a throwaway "host" namespace reaches the etcd
//! fixture on the machine's 127.0.0.1, with no route or address added
//! anywhere (both ends are loopback sockets; the bytes are copied here).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::Netns;

/// Listens on `127.0.0.1:<port>` inside a namespace; stopped on drop.
pub struct TcpForward {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn relay(inside: TcpStream, target: SocketAddr) {
    let Ok(outside) = TcpStream::connect(target) else {
        return; // the client sees the connection close, as with a dead server
    };
    let _ = inside.set_nodelay(true);
    let _ = outside.set_nodelay(true);
    let (Ok(inside2), Ok(outside2)) = (inside.try_clone(), outside.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pipe(inside, outside));
    std::thread::spawn(move || pipe(outside2, inside2));
}

impl TcpForward {
    /// Forwards connections to `127.0.0.1:<free port>` in `ns` to `target`
    /// (an address of the test process's own namespace).
    pub fn start(ns: &Netns, target: SocketAddr) -> TcpForward {
        let listener = ns
            .run_in(|| TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0 in {}: {e}", ns.name()));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = listener.local_addr().expect("listener address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        relay(conn, target);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        TcpForward {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port inside the namespace.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, as a client inside the namespace dials it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TcpForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
