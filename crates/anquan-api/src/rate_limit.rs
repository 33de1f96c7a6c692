//! Rate limits on mutations and uploads, per caller (the token's user and role) and per client
//! address, with `governor`'s keyed GCRA limiters: each key may spend a burst of a minute's
//! allowance at once and regains it evenly. Queries are bounded by their cost and time limit
//! instead (`graphql::limits`); a mutation is what appends to the log and waits for the read
//! models, and an upload is what fills the blob store.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use anquan_domain::Actor;

/// The default mutations (and uploads) per minute one caller may send.
pub const MUTATIONS_PER_MINUTE_PER_TOKEN_DEFAULT: u32 = 1_200;
/// The default mutations (and uploads) per minute one client address may send.
pub const MUTATIONS_PER_MINUTE_PER_ADDRESS_DEFAULT: u32 = 3_000;
/// The code of a request over a rate limit (answered 429 with `Retry-After`).
pub const RATE_LIMITED: &str = "RATE_LIMITED";
/// Forget idle keys every this many checks, so the limiters' memory follows the active callers.
const CHECKS_PER_CLEANUP: u64 = 4_096;

/// How many mutations per minute a caller and an address may send; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub mutations_per_minute_per_token: u32,
    pub mutations_per_minute_per_address: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            mutations_per_minute_per_token: MUTATIONS_PER_MINUTE_PER_TOKEN_DEFAULT,
            mutations_per_minute_per_address: MUTATIONS_PER_MINUTE_PER_ADDRESS_DEFAULT,
        }
    }
}

/// The client's address, which the HTTP handlers add to each request's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) IpAddr);

/// Request data saying the request's rate was already checked (an upload, before its body
/// was read), so it is not counted twice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateChecked;

/// The service's limiters, shared by every request.
pub struct RateLimiters {
    per_token: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RateLimiters")
            .field("per_token", &self.per_token.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish()
    }
}

impl Default for RateLimiters {
    fn default() -> Self {
        RateLimiters::new(RateLimitSettings::default())
    }
}

impl RateLimiters {
    /// Builds the limiters; a limit of 0 is off.
    pub fn new(settings: RateLimitSettings) -> Self {
        let quota = |per_minute: u32| NonZeroU32::new(per_minute).map(Quota::per_minute);
        RateLimiters {
            per_token: quota(settings.mutations_per_minute_per_token).map(governor::RateLimiter::keyed),
            per_address: quota(settings.mutations_per_minute_per_address).map(governor::RateLimiter::keyed),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one mutation of `caller` from `address`; `Err` with how long to wait when either
    /// is over its limit.
    pub(crate) fn check(&self, caller: Option<&Actor>, address: Option<IpAddr>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CHECKS_PER_CLEANUP == CHECKS_PER_CLEANUP - 1 {
            if let Some(limiter) = &self.per_token {
                limiter.retain_recent();
            }
            if let Some(limiter) = &self.per_address {
                limiter.retain_recent();
            }
        }
        let now = DefaultClock::default().now();
        if let (Some(limiter), Some(address)) = (&self.per_address, address) {
            limiter
                .check_key(&address)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        if let (Some(limiter), Some(caller)) = (&self.per_token, caller) {
            let key = format!("{}:{}", caller.role.name(), caller.user_id);
            limiter
                .check_key(&key)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }
}

/// The error of a request over a rate limit, with when to retry (whole seconds, at least 1).
pub(crate) fn rate_limited(wait: Duration) -> async_graphql::ServerError {
    let seconds = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut error = async_graphql::ServerError::new(format!("提交过于频繁，请在 {seconds} 秒后重试"), None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", RATE_LIMITED);
    extensions.set("retryAfterSeconds", seconds);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_and_an_address_are_limited_apart_and_zero_is_off() {
        let limiters = RateLimiters::new(RateLimitSettings {
            mutations_per_minute_per_token: 3,
            mutations_per_minute_per_address: 5,
        });
        let actor = Actor {
            user_id: anquan_domain::UserId::parse("admin").unwrap(),
            role: anquan_domain::Role::CityAdmin,
        };
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            limiters.check(Some(&actor), Some(here)).unwrap();
        }
        assert!(limiters.check(Some(&actor), Some(there)).is_err());
        limiters.check(None, Some(here)).unwrap();
        limiters.check(None, Some(here)).unwrap();
        assert!(limiters.check(None, Some(here)).is_err());
        let off = RateLimiters::new(RateLimitSettings {
            mutations_per_minute_per_token: 0,
            mutations_per_minute_per_address: 0,
        });
        for _ in 0..100 {
            off.check(Some(&actor), Some(here)).unwrap();
        }
    }
}
