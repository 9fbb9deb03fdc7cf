//! A small fixed pool of threads for CPU-heavy work (Argon2id hashing, signature checks).
//!
//! Tokio's blocking pool would run as many hashes at once as there are requests, each on
//! its own thread; with glibc every such thread keeps its freed 19 MiB Argon2 buffer in its
//! own malloc arena, and the cores are oversubscribed. A pool of one thread per core bounds
//! both: hashing memory stays at cores × 19 MiB and excess requests queue.
//!
//! Password hashes are also the one thing strangers can ask for in bulk (a login costs
//! them nothing), so their queue is bounded: past [`QUEUED_HASHES_PER_CORE`] per core
//! waiting or running, a login or registration is answered `503 unavailable` with
//! `Retry-After` at once instead of queueing for seconds, and the signature checks that
//! share the pool never wait behind more than that.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use parley_specs::ErrorCode;

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Password hashes waiting or running, per core, past which more are refused.
pub const QUEUED_HASHES_PER_CORE: usize = 4;

struct CpuPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: usize,
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
            threads,
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

/// The password hashes one server waits for (its logins, registrations and password
/// changes), bounded: past [`QUEUED_HASHES_PER_CORE`] per core waiting or running, more
/// are refused at once. One per server (`AppState`), so servers sharing a process (tests)
/// do not shed each other's work.
#[derive(Default)]
pub struct PasswordHashes {
    queued: AtomicUsize,
}

/// Counts a password hash as queued until it is dropped (done, or given up).
struct QueuedHash<'a>(&'a AtomicUsize);

impl Drop for QueuedHash<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHashes {
    /// Runs a password hash on the CPU pool, unless too many are waiting already: then
    /// `503 unavailable` with `Retry-After`, at once.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let limit = pool().threads * QUEUED_HASHES_PER_CORE;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= limit {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let mut busy = ApiError::new(
                ErrorCode::Unavailable,
                "too many logins and registrations are being checked right now; retry in a second",
            );
            busy.retry_after = Some(Duration::from_secs(1));
            return Err(busy);
        }
        let _queued = QueuedHash(&self.queued);
        run(work).await
    }
}
