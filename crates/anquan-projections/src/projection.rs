//! The `Projection` trait: how one read model is defined, created and folded, and the
//! statements a batch of events folds into.

use std::collections::HashMap;

use anquan_domain::Event;
use anquan_event_store::{Dialect, RecordedEvent, SqlValue, Statement};

use crate::error::ProjectionError;

/// One read model: its tables and how each event changes them.
///
/// `apply` is a pure function of the event: it never reads the clock, a random source, the
/// read model itself or hash-map iteration order, so the same log always yields the same rows.
pub trait Projection: Send + Sync + 'static {
    /// Returns the projection's stable name; it keys the checkpoint.
    fn name(&self) -> &'static str;

    /// Returns the idempotent table definitions (`CREATE … IF NOT EXISTS`) for a dialect,
    /// with the indexes the projection's own statements need.
    fn schema(&self, dialect: Dialect) -> &'static str;

    /// Returns the idempotent definitions of the indexes only queries use. A rebuild creates
    /// them once its tables are filled, which is much faster than keeping them up to date row
    /// by row; everything else creates them with the tables.
    fn query_indexes(&self, dialect: Dialect) -> &'static str {
        let _ = dialect;
        ""
    }

    /// Returns the tables the projection owns, in creation order; reset deletes them in reverse.
    fn tables(&self) -> &'static [&'static str];

    /// Returns the layout of the projection's tables: raise it with a change of their shape
    /// that `CREATE TABLE IF NOT EXISTS` cannot make (a column's type), and stores in an older
    /// layout drop the tables and fold the log again ([`crate::layout`]).
    fn layout(&self) -> u32 {
        1
    }

    /// Appends the statements that fold one event into the read model.
    fn apply(&self, event: &RecordedEvent, decoded: &Event, out: &mut BatchStatements) -> Result<(), ProjectionError>;
}

/// The statements one batch of events folds into, in the order they run.
///
/// Two kinds of statements let a batch run fewer statements than its events would one by one,
/// with the same rows as the outcome:
///
/// - An overwrite (`push_overwrite`) sets some columns of one row to values that depend on
///   nothing in the database, such as an enterprise's `last_position`. A later overwrite of the
///   same columns of the same row leaves the row as running both would, so the earlier one is
///   dropped: a batch of ten thousand document events touches each enterprise once instead of
///   once per event. Nothing a projection writes may read a column an overwrite sets.
/// - An insert (`push_insert`) of a row that a later event of the batch changes can take the
///   change itself (`insert_mut`), instead of an update running after it: a document's review
///   usually follows its upload within a thousand events, so most documents are inserted
///   reviewed. Nothing in between may read or change what the later event changes.
/// - An increment (`push_increment`) adds a number to one row's counter. A later increment of
///   the same counter and row adds its number to the first one's instead of running again, so a
///   batch counts each row once however many events it counts: additions commute, and nothing a
///   projection writes may read a counter between its increments. (Updating one row many times
///   in a transaction is slow on PostgreSQL, each update leaving a row version the next walks.)
///
/// No map here is ever iterated, so the statements' order is the order they were pushed in.
#[derive(Debug, Default)]
pub struct BatchStatements {
    /// `None` where an overwrite was dropped.
    statements: Vec<Option<Statement>>,
    /// Where the last overwrite of each row is in `statements`, by the columns it sets.
    overwrites: HashMap<&'static str, HashMap<String, usize>>,
    /// Where the insert of each row is in `statements`, by table.
    inserts: HashMap<&'static str, HashMap<String, usize>>,
    /// Where the first increment of each row is in `statements`, by the counter it adds to.
    increments: HashMap<&'static str, HashMap<String, usize>>,
}

impl BatchStatements {
    /// Creates an empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a statement.
    pub fn push(&mut self, statement: Statement) {
        self.statements.push(Some(statement));
    }

    /// Appends an overwrite of `columns` (a stable label such as `"enterprises.last_position"`)
    /// of the row keyed `row` (its whole primary key), dropping the previous overwrite of the
    /// same columns and row.
    pub fn push_overwrite(&mut self, columns: &'static str, row: String, statement: Statement) {
        let index = self.statements.len();
        self.statements.push(Some(statement));
        if let Some(previous) = self.overwrites.entry(columns).or_default().insert(row, index)
            && let Some(slot) = self.statements.get_mut(previous)
        {
            *slot = None;
        }
    }

    /// Appends an insert of the row keyed `row` into `table`, which later events of the batch
    /// may change through [`BatchStatements::insert_mut`]. `row` must name the row's whole
    /// primary key: two rows with one key here are one row to the batch.
    pub fn push_insert(&mut self, table: &'static str, row: String, statement: Statement) {
        let index = self.statements.len();
        self.statements.push(Some(statement));
        self.inserts.entry(table).or_default().insert(row, index);
    }

    /// Returns the insert of the row keyed `row` into `table` if this batch holds one, for a
    /// later event to change it so that it inserts the row as that event leaves it.
    pub fn insert_mut(&mut self, table: &'static str, row: &str) -> Option<&mut Statement> {
        let index = *self.inserts.get(table)?.get(row)?;
        self.statements.get_mut(index)?.as_mut()
    }

    /// Appends an increment of `counter` (a stable label such as `"log_tally.events"`) of the
    /// row keyed `row` by the integer parameter `amount` (its index) of `statement`, or adds
    /// that amount to the batch's earlier increment of the same counter and row.
    pub fn push_increment(&mut self, counter: &'static str, row: String, amount: usize, statement: Statement) {
        let add = match statement.params.get(amount) {
            Some(SqlValue::Int(add)) => Some(*add),
            _ => None,
        };
        let rows = self.increments.entry(counter).or_default();
        if let Some(add) = add
            && let Some(&earlier) = rows.get(&row)
            && let Some(Some(first)) = self.statements.get_mut(earlier)
            && let Some(SqlValue::Int(total)) = first.params.get_mut(amount)
            && let Some(sum) = total.checked_add(add)
        {
            *total = sum;
            return;
        }
        // The first increment, or one that cannot be added (not an integer, or the sum would
        // overflow): it runs on its own, and later increments add to it.
        rows.insert(row, self.statements.len());
        self.statements.push(Some(statement));
    }

    /// Returns the number of statements that will run.
    pub fn len(&self) -> usize {
        self.statements.iter().flatten().count()
    }

    /// Returns true when no statement will run.
    pub fn is_empty(&self) -> bool {
        self.statements.iter().all(Option::is_none)
    }

    /// Returns the statements that will run, in order.
    pub fn into_statements(self) -> Vec<Statement> {
        self.statements.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(row: &str, position: i64) -> Statement {
        Statement::new(
            "UPDATE t SET p = $2 WHERE id = $1",
            vec![SqlValue::Text(row.into()), SqlValue::Int(position)],
        )
    }

    fn other(n: i64) -> Statement {
        Statement::new("INSERT INTO u VALUES ($1)", vec![SqlValue::Int(n)])
    }

    #[test]
    fn only_the_last_overwrite_of_a_row_runs_and_it_stays_where_it_was_pushed() {
        let mut batch = BatchStatements::new();
        batch.push(other(1));
        batch.push_overwrite("t.p", "a".into(), touch("a", 1));
        batch.push_overwrite("t.p", "b".into(), touch("b", 2));
        batch.push(other(3));
        batch.push_overwrite("t.p", "a".into(), touch("a", 4));
        batch.push_overwrite("t.q", "a".into(), touch("a", 5));
        assert_eq!(batch.len(), 5);
        assert_eq!(
            batch.into_statements(),
            vec![other(1), touch("b", 2), other(3), touch("a", 4), touch("a", 5)]
        );
    }

    #[test]
    fn a_later_event_changes_an_insert_of_the_same_batch_in_place() {
        let mut batch = BatchStatements::new();
        batch.push_insert("u", "a".into(), other(1));
        batch.push(other(2));
        assert!(batch.insert_mut("u", "b").is_none());
        assert!(batch.insert_mut("t", "a").is_none());
        let insert = batch.insert_mut("u", "a").unwrap();
        insert.params = vec![SqlValue::Int(3)];
        assert_eq!(batch.into_statements(), vec![other(3), other(2)]);
    }

    #[test]
    fn increments_of_one_row_add_up_in_the_first_one() {
        let count = |row: &str, by: i64| {
            Statement::new(
                "INSERT INTO c VALUES ($1, $2)",
                vec![SqlValue::Text(row.into()), SqlValue::Int(by)],
            )
        };
        let mut batch = BatchStatements::new();
        batch.push_increment("c.n", "a".into(), 1, count("a", 1));
        batch.push(other(1));
        batch.push_increment("c.n", "b".into(), 1, count("b", 1));
        batch.push_increment("c.n", "a".into(), 1, count("a", 2));
        batch.push_increment("c.m", "a".into(), 1, count("a", 5));
        batch.push_increment("c.n", "b".into(), 1, count("b", i64::MAX));
        assert_eq!(
            batch.into_statements(),
            vec![
                count("a", 3),
                other(1),
                count("b", 1),
                count("a", 5),
                count("b", i64::MAX)
            ]
        );
    }

    #[test]
    fn an_empty_batch_has_no_statements() {
        let batch = BatchStatements::new();
        assert!(batch.is_empty());
        assert!(batch.into_statements().is_empty());
    }
}
