//! placeholder

mod read_model;
pub use read_model::SqliteReadModelStore;
