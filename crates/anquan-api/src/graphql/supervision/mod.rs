//! The supervision gate's queries, mutations and subscriptions: inspections, hazards and their
//! rectification, accidents, the four-colour risk, the overdue queue and the inspector's plan.
//! Status is computed by the domain at the instant asked for (`asOf`, default now); nothing here
//! decides a rule.
mod mutation;
mod query;
pub(crate) mod relay;
mod subscription;
pub mod types;

pub use mutation::SupervisionMutation;
pub use query::SupervisionQuery;
pub use subscription::SubscriptionRoot;
pub use types::*;
