//! One thread owns the netlink socket; the daemon hands it jobs and awaits
//! their answers, so the async runtime never blocks on the kernel.

use std::sync::mpsc;

use netlink::Netlink;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&Netlink) + Send>;

/// A handle to the kernel thread; the thread ends when the handle is dropped.
pub struct KernelWorker {
    jobs: mpsc::Sender<Job>,
}

impl KernelWorker {
    /// Starts the thread with a socket in the daemon's own namespace.
    pub fn start() -> Result<KernelWorker, String> {
        let nl = Netlink::connect_current().map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("overlayd-kernel".into())
            .spawn(move || {
                for job in rx {
                    job(&nl);
                }
            })
            .map_err(|e| format!("cannot start the kernel thread: {e}"))?;
        Ok(KernelWorker { jobs: tx })
    }

    /// Runs `f` on the kernel thread and returns its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Netlink) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |nl| {
                let _ = tx.send(f(nl));
            }))
            .map_err(|_| "the kernel thread is gone".to_string())?;
        rx.await
            .map_err(|_| "the kernel thread dropped a job".to_string())?
    }
}
