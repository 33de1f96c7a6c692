//! The foundation gate: enterprises, their records and reviews, the 21 indicators, and the
//! public QR page.

pub mod mutation;
pub mod public_page;
pub mod query;
pub mod types;

pub use mutation::EnterpriseMutation;
pub use public_page::PublicPageMutation;
pub use query::EnterpriseQuery;
