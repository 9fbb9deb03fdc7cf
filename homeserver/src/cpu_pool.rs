//! A small fixed pool of threads for CPU-heavy work (Argon2id hashing, signature checks).
//!
//! Tokio's blocking pool would run as many hashes at once as there are requests, each on
//! its own thread; with glibc every such thread keeps its freed 19 MiB Argon2 buffer in its
//! own malloc arena, and the cores are oversubscribed. A pool of one thread per core bounds
//! both: hashing memory stays at cores × 19 MiB and excess requests queue.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

struct CpuPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

fn pool() -> &'static CpuPool {
    static POOL: OnceLock<CpuPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("parley-cpu-{i}"))
                .spawn(move || {
                    loop {
                        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a CPU pool thread");
            }
        }
        CpuPool {
            jobs: Mutex::new(sender),
        }
    })
}

/// Runs `work` on the CPU pool and waits for its result without blocking the runtime.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let (reply, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    pool()
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(job)
        .map_err(|_| ApiError::internal("CPU pool", "no worker threads"))?;
    result
        .await
        .map_err(|_| ApiError::internal("CPU pool", "a job was dropped"))
}
