//! The contract of bounds between the write side and the read side.
//!
//! Every value a command carries into an event is checked here, where the command is decided,
//! against a range that every read model can store and every query can compute with. A value
//! outside it is refused with `VALUE_OUT_OF_RANGE`, naming the field, and nothing is appended:
//! the read side never meets a value it cannot hold.
//!
//! | value | range | why |
//! |---|---|---|
//! | an instant | [`INSTANT_MIN`] (1949-10-01 00:00 +08:00) up to, not including, [`INSTANT_END`] (2200-01-01 00:00 +08:00) | nothing the platform supervises happened before the People's Republic, and no certificate or deadline runs for 175 years; the window leaves room for any rule-set arithmetic (a grace period, a deadline plus days, a metric window minus a year) far inside what SQLite's text timestamps (years 0000-9999), PostgreSQL's `timestamptz` (4713 BC-294276 AD) and chrono (±262,143) hold |
//! | an amount of yuan | 0 ..= [`YUAN_MAX`] (one trillion) | read models store money as a signed 64-bit integer; a trillion yuan is far above any service fee |
//! | a count (staff, visits, fatalities, missed findings) | 0 ..= [`COUNT_MAX`] | stored as a signed 64-bit integer and summed over a province |
//! | a period's year | [`PERIOD_YEAR_MIN`] ..= [`PERIOD_YEAR_MAX`] | its end and due date must fall inside the instant window |
//!
//! Strings and lists are bounded where each command is defined (`NAME_CHARS_MAX`,
//! `TEXT_CHARS_MAX`, `LIST_ITEMS_MAX`, …).

use chrono::{DateTime, Utc};

use crate::Instant;

/// Microseconds since the epoch of 1949-10-01T00:00:00+08:00, the first instant the platform
/// accepts.
const INSTANT_MIN_MICROS: i64 = -639_129_600 * 1_000_000;
/// Microseconds since the epoch of 2200-01-01T00:00:00+08:00, the first instant past the window.
const INSTANT_END_MICROS: i64 = 7_258_089_600 * 1_000_000;

/// The first instant the platform accepts: 1949-10-01T00:00:00+08:00.
pub const INSTANT_MIN: Instant = DateTime::<Utc>::from_timestamp_nanos(INSTANT_MIN_MICROS * 1_000);
/// The first instant past the platform's window: 2200-01-01T00:00:00+08:00 (exclusive).
pub const INSTANT_END: Instant = DateTime::<Utc>::from_timestamp_nanos(INSTANT_END_MICROS * 1_000);
/// The largest amount of yuan a command may state.
pub const YUAN_MAX: u64 = 1_000_000_000_000;
/// The largest count a command may state.
pub const COUNT_MAX: u64 = 1_000_000_000;
/// The first year a reporting period may be in.
pub const PERIOD_YEAR_MIN: i32 = 1970;
/// The last year a reporting period may be in (its due date falls in the next year).
pub const PERIOD_YEAR_MAX: i32 = 2198;

/// A value outside the platform's bounds: which field, the value, and what it must be. Its
/// `Display` is the sentence a person reads (`crate::refusal`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.sentence())]
pub struct OutOfRange {
    /// The field as the API names it (`validUntil`, `profile.staffCount`).
    pub field: &'static str,
    /// The refused value, as text.
    pub value: String,
    pub allowed: Allowed,
}

/// What a bounded value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// An instant from [`INSTANT_MIN`] up to, not including, [`INSTANT_END`].
    InstantWindow,
    /// A whole number from 0 to `max`.
    AtMost { max: u64 },
    /// A year from `min` to `max`.
    Years { min: i32, max: i32 },
    /// Text without a NUL character; `value` names the event that would have held one.
    NoNulCharacter,
}

impl OutOfRange {
    fn sentence(&self) -> String {
        let label = crate::refusal::field_label(self.field);
        let value = &self.value;
        match self.allowed {
            Allowed::InstantWindow => format!(
                "{label}（{value}）超出平台可记录的时间范围，应在北京时间1949年10月1日0时（含）至2200年1月1日0时（不含）之间"
            ),
            Allowed::AtMost { max } if value.starts_with('-') => {
                format!("{label}不能为负数（收到 {value}），应在0至{max}之间")
            }
            Allowed::AtMost { max } => format!("{label}为 {value}，超过了上限 {max}"),
            Allowed::Years { min, max } => format!("{label}（{value}）应在{min}年至{max}年之间"),
            Allowed::NoNulCharacter => {
                format!("{label}中含有空字符（NUL），无法保存，请删除后重新提交")
            }
        }
    }

    /// Returns the facts programs need: the field, the value and the range.
    pub fn details(&self) -> crate::refusal::Details {
        let mut details: crate::refusal::Details =
            vec![("field", self.field.into()), ("value", self.value.clone().into())];
        match self.allowed {
            Allowed::InstantWindow => {
                details.push(("min", INSTANT_MIN.to_rfc3339().into()));
                details.push(("end", INSTANT_END.to_rfc3339().into()));
            }
            Allowed::AtMost { max } => {
                details.push(("min", "0".into()));
                details.push(("max", max.to_string().into()));
            }
            Allowed::Years { min, max } => {
                details.push(("min", min.into()));
                details.push(("max", max.into()));
            }
            Allowed::NoNulCharacter => {}
        }
        details
    }
}

/// Is `instant` inside the platform's window?
pub fn instant_in_window(instant: Instant) -> bool {
    (INSTANT_MIN..INSTANT_END).contains(&instant)
}

/// Checks that an instant lies inside the platform's window.
pub fn check_instant(field: &'static str, instant: Instant) -> Result<(), OutOfRange> {
    if instant_in_window(instant) {
        Ok(())
    } else {
        Err(OutOfRange {
            field,
            value: instant.to_rfc3339(),
            allowed: Allowed::InstantWindow,
        })
    }
}

/// Checks an optional instant.
pub fn check_optional_instant(field: &'static str, instant: Option<Instant>) -> Result<(), OutOfRange> {
    instant.map_or(Ok(()), |instant| check_instant(field, instant))
}

/// Checks an amount of yuan.
pub fn check_yuan(field: &'static str, yuan: u64) -> Result<(), OutOfRange> {
    check_at_most(field, yuan, YUAN_MAX)
}

/// Checks a count.
pub fn check_count(field: &'static str, count: u64) -> Result<(), OutOfRange> {
    check_at_most(field, count, COUNT_MAX)
}

fn check_at_most(field: &'static str, value: u64, max: u64) -> Result<(), OutOfRange> {
    if value <= max {
        Ok(())
    } else {
        Err(OutOfRange {
            field,
            value: value.to_string(),
            allowed: Allowed::AtMost { max },
        })
    }
}

/// Checks a signed count.
pub fn check_signed_count(field: &'static str, count: i64) -> Result<(), OutOfRange> {
    match u64::try_from(count) {
        Ok(count) => check_count(field, count),
        Err(_) => Err(OutOfRange {
            field,
            value: count.to_string(),
            allowed: Allowed::AtMost { max: COUNT_MAX },
        }),
    }
}

/// Checks a calendar year a client names (a statistics year): one a reporting period may be in.
pub fn check_year(field: &'static str, year: i32) -> Result<(), OutOfRange> {
    if (PERIOD_YEAR_MIN..=PERIOD_YEAR_MAX).contains(&year) {
        Ok(())
    } else {
        Err(OutOfRange {
            field,
            value: year.to_string(),
            allowed: Allowed::Years {
                min: PERIOD_YEAR_MIN,
                max: PERIOD_YEAR_MAX,
            },
        })
    }
}

/// Checks that a reporting period's year is one whose end and due date fall in the window.
pub fn check_period(field: &'static str, period: &crate::Period) -> Result<(), OutOfRange> {
    if (PERIOD_YEAR_MIN..=PERIOD_YEAR_MAX).contains(&period.year()) {
        Ok(())
    } else {
        Err(OutOfRange {
            field,
            value: period.to_string(),
            allowed: Allowed::Years {
                min: PERIOD_YEAR_MIN,
                max: PERIOD_YEAR_MAX,
            },
        })
    }
}

/// `instant + duration`, or the end of chrono's calendar it would pass. Every sum of an instant
/// from an event or a request and a rule's duration goes through here or [`minus`]: the bounds
/// keep new values far inside the calendar, and an old event's value must not panic a query.
pub fn plus(instant: Instant, duration: chrono::Duration) -> Instant {
    instant
        .checked_add_signed(duration)
        .unwrap_or(if duration < chrono::Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// `instant - duration`, or the end of chrono's calendar it would pass.
pub fn minus(instant: Instant, duration: chrono::Duration) -> Instant {
    instant
        .checked_sub_signed(duration)
        .unwrap_or(if duration < chrono::Duration::zero() {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

/// Checks that the events a command decided hold no text a read model cannot store: a NUL
/// character (PostgreSQL's `text` and `jsonb` refuse it). Checked over the events rather than
/// field by field, so no text field of any command can be missed.
pub fn check_events(events: &[crate::Event]) -> Result<(), OutOfRange> {
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(fields) => fields.iter().any(|(key, field)| key.contains('\0') || has_nul(field)),
            _ => false,
        }
    }
    for event in events {
        let data = event.encode_data();
        // serde_json writes a NUL in a string as `\u0000`; most events have none.
        if data.contains("\\u0000")
            && serde_json::from_str::<serde_json::Value>(&data).is_ok_and(|value| has_nul(&value))
        {
            return Err(OutOfRange {
                field: "text",
                value: event.event_type().to_owned(),
                allowed: Allowed::NoNulCharacter,
            });
        }
    }
    Ok(())
}

/// Moves an instant that an old event recorded outside the window to the nearest instant inside
/// it, and says whether it had to. Only the read side uses it, for events decided before the
/// window was enforced; a command is refused instead.
pub fn clamp_instant(instant: Instant) -> (Instant, bool) {
    if instant < INSTANT_MIN {
        (INSTANT_MIN, true)
    } else if instant >= INSTANT_END {
        (INSTANT_END - chrono::Duration::microseconds(1), true)
    } else {
        (instant, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_documented_local_dates() {
        assert_eq!(INSTANT_MIN.to_rfc3339(), "1949-09-30T16:00:00+00:00");
        assert_eq!(INSTANT_END.to_rfc3339(), "2199-12-31T16:00:00+00:00");
        assert!(check_instant("at", INSTANT_MIN).is_ok());
        assert!(check_instant("at", INSTANT_END).is_err());
        assert!(check_instant("at", INSTANT_MIN - chrono::Duration::microseconds(1)).is_err());
        assert_eq!(
            clamp_instant(DateTime::<Utc>::MAX_UTC),
            (INSTANT_END - chrono::Duration::microseconds(1), true)
        );
        assert_eq!(clamp_instant(DateTime::<Utc>::MIN_UTC), (INSTANT_MIN, true));
    }

    #[test]
    fn arithmetic_saturates_at_the_ends_of_the_calendar() {
        let max = DateTime::<Utc>::MAX_UTC;
        let min = DateTime::<Utc>::MIN_UTC;
        assert_eq!(plus(max, chrono::Duration::microseconds(1)), max);
        assert_eq!(minus(min, chrono::Duration::days(7)), min);
        assert_eq!(plus(min, chrono::Duration::days(-1)), min);
        assert_eq!(minus(max, chrono::Duration::days(-1)), max);
        assert_eq!(
            plus(INSTANT_MIN, chrono::Duration::days(1)),
            INSTANT_MIN + chrono::Duration::days(1)
        );
    }

    #[test]
    fn events_with_a_nul_character_are_refused() {
        let warned = |reason: &str| {
            crate::Event::AgencyWarned(crate::agency::event::AgencyWarned {
                kind: crate::agency::WarningKind::Summons,
                reason: reason.to_owned(),
                issued_at: INSTANT_MIN,
            })
        };
        assert!(check_events(&[warned("约谈")]).is_ok());
        assert!(check_events(&[warned("a literal \\u0000 is text")]).is_ok());
        assert_eq!(check_events(&[warned("nul\0")]).unwrap_err().field, "text");
    }

    #[test]
    fn amounts_and_counts_have_ceilings() {
        assert!(check_yuan("fee", YUAN_MAX).is_ok());
        assert_eq!(check_yuan("fee", u64::MAX).unwrap_err().field, "fee");
        assert!(check_signed_count("stars", -1).is_err());
        assert!(check_count("staff", COUNT_MAX + 1).is_err());
    }
}
