//! How a projection turns a fact into the `SqlValue` a read model stores: one place for both
//! projections.

use anquan_event_store::{Position, SqlValue};

use crate::error::ProjectionError;

/// A value stored as its display text (ids, names).
pub(crate) fn text(value: impl std::fmt::Display) -> SqlValue {
    SqlValue::Text(value.to_string())
}

/// An amount or count as the read model stores it: a signed 64-bit integer. `decide` keeps
/// every such value far below `i64::MAX` (`anquan_domain::bounds`); an event decided before the
/// bounds were enforced is stored at the ceiling, and logged, instead of stopping the
/// projection.
pub(crate) fn int(what: &'static str, value: u64) -> SqlValue {
    SqlValue::Int(i64::try_from(value).unwrap_or_else(|_| {
        tracing::warn!(
            what,
            value,
            "a value is above what the read model holds; stored as i64::MAX"
        );
        i64::MAX
    }))
}

/// A global position as the read models store it: both parts, each as 20 decimal digits
/// (commit, then prepare), so the text orders as the positions do and two events never share
/// one, on every backend: SQLite's and PostgreSQL's one dense sequence and KurrentDB's two
/// offsets alike. Decimal digits alone, so every collation orders it bytewise.
pub(crate) fn position(position: Position) -> SqlValue {
    SqlValue::Text(format!("{:020}{:020}", position.commit, position.prepare))
}

/// A value stored as JSON text.
pub(crate) fn json(what: &'static str, value: &impl serde::Serialize) -> Result<SqlValue, ProjectionError> {
    serde_json::to_string(value)
        .map(SqlValue::Json)
        .map_err(|source| ProjectionError::Json { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_positions_order_as_the_positions_do() {
        let positions = [
            Position { commit: 0, prepare: 0 },
            Position { commit: 7, prepare: 7 },
            Position { commit: 9, prepare: 3 },
            Position { commit: 9, prepare: 12 },
            Position { commit: 10, prepare: 1 },
            Position {
                commit: u64::MAX,
                prepare: u64::MAX,
            },
        ];
        let stored: Vec<String> = positions
            .iter()
            .map(|&at| match position(at) {
                SqlValue::Text(text) => text,
                other => panic!("a position is stored as text, not {other:?}"),
            })
            .collect();
        assert!(stored.windows(2).all(|pair| pair[0] < pair[1]), "{stored:?}");
        assert!(stored.iter().all(|text| text.len() == 40));
    }

    #[test]
    fn amounts_past_the_column_are_stored_at_its_ceiling() {
        assert_eq!(int("fee", u64::MAX), SqlValue::Int(i64::MAX));
        assert_eq!(int("fee", 7), SqlValue::Int(7));
    }
}
