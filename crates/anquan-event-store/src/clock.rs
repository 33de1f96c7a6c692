//! The instant a backend stamps an append with (`recorded_at`): the system clock, unless the
//! process installed another once at start. `anquan serve` installs its one clock here, so in
//! its test mode (a controllable clock, see `anquan_cli::test_clock`) events are recorded at the
//! moved instant as their commands are decided at it. Nothing else installs one.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

/// A source of "now".
pub type RecordingClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

static CLOCK: OnceLock<RecordingClock> = OnceLock::new();

/// Installs the process's recording clock; returns false (and changes nothing) if one was
/// installed already.
pub fn install(clock: RecordingClock) -> bool {
    CLOCK.set(clock).is_ok()
}

/// The instant to record an append at.
pub fn now() -> DateTime<Utc> {
    CLOCK.get().map_or_else(Utc::now, |clock| clock())
}
