//! Running many read-model statements as few: the rows a statement touches (its
//! [`Footprint`], declared by the projection that writes it, once for both backends) and the
//! plan that groups a transaction's statements into [`Run`]s of one SQL text each, which a
//! backend may execute as one statement over arrays of parameters (PostgreSQL's `unnest`).
//!
//! A plan keeps every pair of statements that could see each other's effects in their order;
//! only statements whose footprints are disjoint change places or share a run. A statement
//! without a footprint may touch anything: it runs alone, after everything before it and
//! before everything after it.

use std::collections::HashMap;

use crate::read_model::{SqlValue, Statement};

/// The rows one statement writes and reads, named by its parameters.
///
/// A table's key columns are taken in one fixed order (its primary key's, say
/// `(enterprise_id, hazard_id)`); a statement names the rows it writes by values for a prefix
/// of them: `key` lists the parameters (0-based) that hold those values, in that order. The
/// statement must write only rows of `table` whose leading key columns equal them (an
/// `INSERT`'s and an `ON CONFLICT` target's whole key; an `UPDATE … WHERE enterprise_id = $1`
/// names only the first), read nothing of `table` but those rows, and read nothing of any
/// other table but the rows `reads` names the same way. Two statements whose keys for one
/// table are not prefixes of one another then touch disjoint rows and run in either order or
/// together with the same outcome.
///
/// The SQL itself must be one of the shapes a backend can run over rows of parameters:
/// `INSERT INTO t (…) VALUES (…)` (with an optional `ON CONFLICT (key) DO …` clause that uses no
/// parameter), `UPDATE t SET … WHERE …` or `DELETE FROM t WHERE …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// The one table the statement writes.
    pub table: &'static str,
    /// The parameters naming the rows it writes: a prefix of the table's key.
    pub key: &'static [usize],
    /// Another table whose rows it reads, and the parameters naming them.
    pub reads: Option<(&'static str, &'static [usize])>,
}

impl Footprint {
    /// A statement writing the rows of `table` that `key` names, reading no other table.
    pub const fn writes(table: &'static str, key: &'static [usize]) -> Self {
        Self {
            table,
            key,
            reads: None,
        }
    }

    /// Also reads the rows of `table` that `key` names.
    pub const fn reading(mut self, table: &'static str, key: &'static [usize]) -> Self {
        self.reads = Some((table, key));
        self
    }
}

/// A statement's SQL text with its footprint: how a projection writes the statements it may
/// run many of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shaped {
    pub sql: &'static str,
    pub footprint: Footprint,
}

impl Shaped {
    pub const fn new(sql: &'static str, footprint: Footprint) -> Self {
        Self { sql, footprint }
    }

    /// The statement with these parameters.
    pub fn statement(&self, params: Vec<SqlValue>) -> Statement {
        Statement::new(self.sql, params).with_footprint(self.footprint)
    }
}

/// Statements of one SQL text, by their index in the planned slice, in their original order;
/// they touch disjoint rows. A run of several always has a footprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub statements: Vec<usize>,
}

/// One key prefix of one table, rendered.
type Rows = (&'static str, String);

/// Where the conflicting statements planned so far are.
#[derive(Default)]
struct Seen {
    /// The last run that touched exactly this key prefix.
    at: HashMap<Rows, usize>,
    /// The last run that touched this key prefix or a longer one under it.
    under: HashMap<Rows, usize>,
}

impl Seen {
    /// The last run that touched rows overlapping `key` of `table`.
    fn last_overlap(&self, table: &'static str, key: &[String]) -> Option<usize> {
        let mut last = self.under.get(&(table, join(key))).copied();
        for length in 0..key.len() {
            last = last.max(self.at.get(&(table, join(&key[..length]))).copied());
        }
        last
    }

    fn record(&mut self, table: &'static str, key: &[String], run: usize) {
        let at = self.at.entry((table, join(key))).or_insert(run);
        *at = (*at).max(run);
        for length in 0..=key.len() {
            let under = self.under.entry((table, join(&key[..length]))).or_insert(run);
            *under = (*under).max(run);
        }
    }
}

fn join(parts: &[String]) -> String {
    parts.join("\u{1f}")
}

/// A key value as the stores compare it: text as stored (NUL replaced), instants to the
/// microsecond inside the platform's window.
fn key_part(value: Option<&SqlValue>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(SqlValue::Null) => "null".to_owned(),
        Some(SqlValue::Bool(value)) => format!("b{}", i64::from(*value)),
        Some(SqlValue::Int(value)) => format!("i{value}"),
        Some(SqlValue::Real(value)) => format!("r{}", value.to_bits()),
        Some(SqlValue::Text(text) | SqlValue::Json(text)) => format!("t{}", text.replace('\0', "\u{FFFD}")),
        Some(SqlValue::Timestamp(instant)) => {
            format!(
                "s{}",
                anquan_domain::bounds::clamp_instant(*instant).0.timestamp_micros()
            )
        }
    }
}

fn key_of(statement: &Statement, key: &[usize]) -> Vec<String> {
    key.iter().map(|index| key_part(statement.params.get(*index))).collect()
}

/// Groups `statements` into runs that, executed in the returned order (each run's statements
/// together), leave the same rows as executing the statements one by one in slice order.
pub fn plan_runs(statements: &[&Statement]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut writes = Seen::default();
    let mut reads = Seen::default();
    // The last run of a statement without a footprint.
    let mut barrier: Option<usize> = None;
    // The latest run of each SQL text.
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (index, statement) in statements.iter().enumerate() {
        let Some(footprint) = statement.footprint else {
            barrier = Some(runs.len());
            runs.push(Run {
                statements: vec![index],
            });
            continue;
        };
        let key = key_of(statement, footprint.key);
        let read = footprint
            .reads
            .map(|(table, read_key)| (table, key_of(statement, read_key)));
        // The last run this statement must follow: it wrote or read what this one writes, or
        // wrote what this one reads.
        let mut after = barrier
            .max(writes.last_overlap(footprint.table, &key))
            .max(reads.last_overlap(footprint.table, &key));
        if let Some((table, read_key)) = &read {
            after = after.max(writes.last_overlap(table, read_key));
        }
        let sql: &str = &statement.sql;
        let run = match latest.get(sql) {
            Some(&run) if after.is_none_or(|after| run > after) => {
                runs[run].statements.push(index);
                run
            }
            _ => {
                runs.push(Run {
                    statements: vec![index],
                });
                latest.insert(sql, runs.len() - 1);
                runs.len() - 1
            }
        };
        writes.record(footprint.table, &key, run);
        if let Some((table, read_key)) = &read {
            reads.record(table, read_key, run);
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: Footprint = Footprint::writes("documents", &[1, 0]).reading("enterprises", &[1]);
    const TOWN: Footprint = Footprint::writes("enterprises", &[0]);
    const DOCS_TOWN: Footprint = Footprint::writes("documents", &[0]);

    fn insert(document: &str, enterprise: &str) -> Statement {
        Statement::new("INSERT doc", vec![text(document), text(enterprise)]).with_footprint(DOCS)
    }

    fn set_town(enterprise: &str, town: &str) -> Statement {
        Statement::new("UPDATE enterprise town", vec![text(enterprise), text(town)]).with_footprint(TOWN)
    }

    fn docs_town(enterprise: &str, town: &str) -> Statement {
        Statement::new("UPDATE docs town", vec![text(enterprise), text(town)]).with_footprint(DOCS_TOWN)
    }

    fn text(value: &str) -> SqlValue {
        SqlValue::Text(value.to_owned())
    }

    fn plan(statements: &[Statement]) -> Vec<Vec<usize>> {
        let refs: Vec<&Statement> = statements.iter().collect();
        plan_runs(&refs).into_iter().map(|run| run.statements).collect()
    }

    #[test]
    fn inserts_of_distinct_rows_share_a_run_across_other_tables_statements() {
        let statements = [
            insert("d1", "e1"),
            set_town("e2", "x"),
            insert("d2", "e1"),
            insert("d3", "e3"),
        ];
        assert_eq!(plan(&statements), vec![vec![0, 2, 3], vec![1]]);
    }

    #[test]
    fn a_statement_follows_the_write_of_a_row_it_reads() {
        // d2 reads e1's town after it changed: it cannot join d1's run.
        let statements = [
            insert("d1", "e1"),
            set_town("e1", "x"),
            insert("d2", "e1"),
            insert("d3", "e2"),
        ];
        assert_eq!(plan(&statements), vec![vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn a_write_follows_the_reads_of_its_rows() {
        let statements = [insert("d1", "e1"), set_town("e1", "x"), set_town("e2", "y")];
        assert_eq!(plan(&statements), vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn a_key_prefix_orders_against_every_row_under_it() {
        let statements = [
            insert("d1", "e1"),
            docs_town("e1", "x"),
            insert("d2", "e1"),
            docs_town("e2", "y"),
            insert("d3", "e2"),
        ];
        assert_eq!(plan(&statements), vec![vec![0], vec![1, 3], vec![2, 4]]);
    }

    #[test]
    fn a_repeated_key_starts_a_new_run() {
        let statements = [set_town("e1", "x"), set_town("e2", "y"), set_town("e1", "z")];
        assert_eq!(plan(&statements), vec![vec![0, 1], vec![2]]);
    }

    #[test]
    fn a_statement_without_a_footprint_runs_alone_between_the_others() {
        let statements = [
            set_town("e1", "x"),
            Statement::new("anything", Vec::new()),
            set_town("e2", "y"),
            set_town("e3", "z"),
        ];
        assert_eq!(plan(&statements), vec![vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn instants_in_one_microsecond_are_one_key() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 1_000).unwrap();
        let later = chrono::DateTime::from_timestamp(1_700_000_000, 1_500).unwrap();
        let profile = |at| {
            Statement::new("UPSERT profile", vec![text("e1"), SqlValue::Timestamp(at)])
                .with_footprint(Footprint::writes("enterprise_profiles", &[0, 1]))
        };
        assert_eq!(plan(&[profile(at), profile(later)]), vec![vec![0], vec![1]]);
    }
}
