//! Read-model layouts: which shape of its tables a projection's rows are in, so a change of
//! shape that `CREATE TABLE IF NOT EXISTS` cannot make (a column's type) rebuilds the read
//! model instead of failing on the old tables.
//!
//! `projection_layouts` keeps each projection's layout. Before a projection's tables are
//! created, [`ensure_layout`] compares the stored layout with [`Projection::layout`]: the same
//! layout is left alone; an older one (or none, where the projection's layout is above 1: a
//! store made before layouts were kept) drops the projection's tables, records the new layout
//! and removes the checkpoint in one transaction, so the tables are created anew and the whole
//! log is folded into them again. A newer layout than this build knows is refused: an older
//! build must not write into tables it does not understand.

use anquan_event_store::{ReadModelError, ReadModelStore, SqlValue, Statement};

use crate::projection::Projection;

/// The table of layouts, the same in both dialects.
const LAYOUTS_DDL: &str =
    "CREATE TABLE IF NOT EXISTS projection_layouts (projection TEXT PRIMARY KEY, layout INTEGER NOT NULL)";
const LAYOUT_SQL: &str = "SELECT layout FROM projection_layouts WHERE projection = $1";
const RECORD_LAYOUT: &str = "INSERT INTO projection_layouts (projection, layout) VALUES ($1, $2) \
    ON CONFLICT (projection) DO UPDATE SET layout = excluded.layout";

/// What [`ensure_layout`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutCheck {
    /// The stored layout is the projection's (or the store had none and the projection is at
    /// layout 1, the shape of every store made before layouts were kept).
    Current,
    /// The projection's tables were in an older layout (`None`: a store made before layouts
    /// were kept) and were dropped with its checkpoint: it folds the log again from the start.
    Dropped { from: Option<i64> },
}

/// Makes sure the projection's tables, once created, are in its layout (module docs). Call it
/// before the projection's `CREATE TABLE IF NOT EXISTS` statements.
pub async fn ensure_layout(
    store: &dyn ReadModelStore,
    projection: &dyn Projection,
) -> Result<LayoutCheck, ReadModelError> {
    store.migrate(LAYOUTS_DDL).await?;
    let layout = i64::from(projection.layout());
    let name = projection.name();
    let rows = store.query(LAYOUT_SQL, &[SqlValue::Text(name.to_owned())]).await?;
    let stored = rows.first().map(|row| row.int(0)).transpose()?;
    let record = Statement::new(
        RECORD_LAYOUT,
        vec![SqlValue::Text(name.to_owned()), SqlValue::Int(layout)],
    );
    match stored {
        Some(stored) if stored == layout => Ok(LayoutCheck::Current),
        Some(stored) if stored > layout => Err(ReadModelError::Backend {
            message: format!(
                "projection {name}'s tables are in layout {stored}, newer than this build's {layout}: \
                 run a build that knows layout {stored}"
            ),
            source: None,
        }),
        None if layout == 1 => {
            // No statement with parameters runs outside a batch or a reset, and a reset would
            // drop the checkpoint: the row goes in as schema bookkeeping, its values inlined.
            // A projection's name is a constant of the code; it is checked to need no quoting.
            if !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b':'))
            {
                return Err(ReadModelError::Backend {
                    message: format!("projection name {name:?} is not a plain identifier"),
                    source: None,
                });
            }
            store
                .migrate(&format!(
                    "INSERT INTO projection_layouts (projection, layout) VALUES ('{name}', {layout}) \
                     ON CONFLICT (projection) DO NOTHING"
                ))
                .await?;
            Ok(LayoutCheck::Current)
        }
        from => {
            let mut statements: Vec<Statement> = projection
                .tables()
                .iter()
                .rev()
                .map(|table| Statement::new(format!("DROP TABLE IF EXISTS {table}"), Vec::new()))
                .collect();
            statements.push(record);
            // A store that never folded the projection (a fresh one, the demo's log alone) has
            // nothing to drop: only the layout is news, and no warning.
            let folded_before = from.is_some() || store.checkpoint(name).await?.is_some();
            store.reset(name, statements).await?;
            if folded_before {
                tracing::warn!(
                    projection.name = name,
                    from,
                    to = layout,
                    "projection tables dropped for a new layout: the projection folds the log again"
                );
            } else {
                tracing::info!(projection.name = name, layout, "projection tables created");
            }
            Ok(LayoutCheck::Dropped { from })
        }
    }
}
