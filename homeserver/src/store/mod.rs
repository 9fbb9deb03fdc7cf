//! SQL, one module per aggregate. Functions take any client or transaction so a
//! caller can compose several into one transaction. Statements are prepared once per
//! connection and cached.

pub mod accounts;
pub mod admin;
pub mod devices;
pub mod federation;
pub mod groups;
pub mod inbox;
pub mod key_packages;

pub use deadpool_postgres::GenericClient as Db;
