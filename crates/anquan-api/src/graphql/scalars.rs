//! The API's scalar policy, in one place.
//!
//! GraphQL's `Int` is a signed 32-bit integer, so a 64-bit value sent as `Int` is out of the
//! specification and strict clients reject it. The rule:
//!
//! - **`Int64`**: every value that can outgrow 32 bits: stream versions, global positions,
//!   `expectedVersion`, sizes in bytes, amounts of money in yuan, attempt counters. On the wire it
//!   is a decimal string (`"41"`); as input a decimal string or, for convenience, an `Int`.
//! - **`Int`**: counts and small numbers that the bounds contract keeps below 2³¹ (counts of
//!   enterprises, events checked in one stream, stars, percentages, page sizes).
//!
//! `tests/schema_policy.rs` walks every GraphQL-facing Rust type and fails on a 64-bit integer
//! (or a `u32`/`usize`) typed as `Int`, and walks `schema.graphql` for names that say 64 bits.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A non-negative 64-bit integer (0 to 9223372036854775807), sent as a decimal string because
/// GraphQL's `Int` holds 32 bits: stream versions, positions, sizes in bytes, amounts in yuan.
/// Input takes a decimal string (`"41"`) or an `Int` (`41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Int64(pub u64);

/// How the API shows a global position. Positions have two parts (commit, prepare) so
/// KurrentDB's fit: a `position` field is the commit part, and the `preparePosition` beside it
/// is the prepare part only where it differs from the commit part, else null. SQLite and
/// PostgreSQL hand out one dense sequence for both, so there `preparePosition` is always null
/// and `position` is the event's number in the log.
pub fn position_parts(position: anquan_event_store::Position) -> (Int64, Option<Int64>) {
    let prepare = (position.prepare != position.commit).then_some(Int64(position.prepare));
    (Int64(position.commit), prepare)
}

/// The largest `Int64`: what a signed 64-bit client type (Java's `long`, a database `bigint`)
/// holds, so every client reads every value the API sends.
pub const INT64_MAX: u64 = i64::MAX as u64;

/// A non-negative 64-bit integer (0 to 9223372036854775807) as a decimal string, e.g. `"41"`,
/// because GraphQL's `Int` holds only 32 bits. Stream versions, global positions, sizes in bytes
/// and amounts in yuan use it. As input, a decimal string or an `Int`.
#[Scalar(name = "Int64")]
impl ScalarType for Int64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        let parsed = match &value {
            Value::String(text) => text
                .parse::<u64>()
                .ok()
                .filter(|_| text.bytes().all(|byte| byte.is_ascii_digit())),
            Value::Number(number) => number.as_u64(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        match parsed {
            Some(parsed) if parsed <= INT64_MAX => Ok(Int64(parsed)),
            _ => Err(InputValueError::custom(
                "Int64 取值为 0 到 9223372036854775807 的十进制整数字符串",
            )),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_) | Value::Number(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<u64> for Int64 {
    fn from(value: u64) -> Self {
        Int64(value)
    }
}

impl From<Int64> for u64 {
    fn from(value: Int64) -> Self {
        value.0
    }
}

impl std::fmt::Display for Int64 {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Option<u64> {
        <Int64 as ScalarType>::parse(value).ok().map(|parsed| parsed.0)
    }

    #[test]
    fn takes_decimal_strings_and_ints_and_sends_strings() {
        assert_eq!(parse(Value::String("41".into())), Some(41));
        assert_eq!(parse(Value::Number(41.into())), Some(41));
        assert_eq!(
            parse(Value::String("9223372036854775807".into())),
            Some(9_223_372_036_854_775_807)
        );
        assert_eq!(Int64(7).to_value(), Value::String("7".into()));
    }

    #[test]
    fn refuses_what_is_not_a_non_negative_64_bit_decimal() {
        for text in [
            "",
            "-1",
            "+1",
            " 1",
            "1.0",
            "0x10",
            "9223372036854775808",
            "18446744073709551616",
        ] {
            assert_eq!(parse(Value::String(text.into())), None, "{text:?}");
        }
        assert_eq!(parse(Value::Number((-1).into())), None);
        assert_eq!(parse(Value::Boolean(true)), None);
    }
}
