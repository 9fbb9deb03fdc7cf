//! SQL, one module per aggregate. Functions take any client or transaction so a
//! caller can compose several into one transaction. Statements are prepared once per
//! connection and cached.

pub mod accounts;
pub mod admin;
pub mod devices;
pub mod federation;
pub mod files;
pub mod groups;
pub mod inbox;
pub mod key_backup;
pub mod key_packages;
pub mod retention;
pub mod second_factor;
pub mod transparency;

pub use deadpool_postgres::GenericClient as Db;

/// Lets the current transaction commit without waiting for its WAL to reach the disk:
/// only for writes whose loss in a crash repeats work that is idempotent anyway.
pub async fn commit_without_waiting_for_disk(db: &impl Db) -> Result<(), tokio_postgres::Error> {
    db.batch_execute("SET LOCAL synchronous_commit TO OFF").await
}
