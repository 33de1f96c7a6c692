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
use std::hash::{BuildHasher, Hasher};

use crate::read_model::{SqlValue, Statement, text_as_stored};

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

/// Fingerprints of one statement's rows in one table: `[0]` names the whole table, `[k]` the
/// rows whose first `k` key columns equal the statement's values (see [`Footprint`]).
///
/// A fingerprint is a 64-bit hash of the table's name and the key values as the stores compare
/// them, chained value by value. Equal keys always have equal fingerprints; two different keys
/// that collide only look as if they overlapped, which keeps a pair of statements in order that
/// could have changed places: a collision costs a run, never a reordering.
type Prefixes = Vec<u64>;

/// The planner's hasher: fixed, so equal keys get equal fingerprints within a plan.
type Fingerprinter = foldhash::fast::FixedState;

/// Where the conflicting statements planned so far are.
#[derive(Default)]
struct Seen {
    /// The last run that touched exactly this key prefix.
    at: HashMap<u64, usize, Fingerprinter>,
    /// The last run that touched this key prefix or a longer one under it.
    under: HashMap<u64, usize, Fingerprinter>,
}

impl Seen {
    /// The last run that touched rows overlapping the rows `prefixes` name.
    fn last_overlap(&self, prefixes: &[u64]) -> Option<usize> {
        let (whole, shorter) = prefixes.split_last()?;
        let mut last = self.under.get(whole).copied();
        for prefix in shorter {
            last = last.max(self.at.get(prefix).copied());
        }
        last
    }

    fn record(&mut self, prefixes: &[u64], run: usize) {
        let Some(whole) = prefixes.last() else { return };
        let at = self.at.entry(*whole).or_insert(run);
        *at = (*at).max(run);
        for prefix in prefixes {
            let under = self.under.entry(*prefix).or_insert(run);
            *under = (*under).max(run);
        }
    }
}

/// Feeds a key value to `hasher` as the stores compare it: text as stored (NUL replaced),
/// instants to the microsecond inside the platform's window; text and JSON alike.
fn hash_key_part(hasher: &mut impl Hasher, value: Option<&SqlValue>) {
    match value {
        None => hasher.write_u8(0),
        Some(SqlValue::Null) => hasher.write_u8(1),
        Some(SqlValue::Bool(value)) => {
            hasher.write_u8(2);
            hasher.write_u8(u8::from(*value));
        }
        Some(SqlValue::Int(value)) => {
            hasher.write_u8(3);
            hasher.write_i64(*value);
        }
        Some(SqlValue::Real(value)) => {
            hasher.write_u8(4);
            hasher.write_u64(value.to_bits());
        }
        Some(SqlValue::Text(text) | SqlValue::Json(text)) => {
            hasher.write_u8(5);
            let stored = text_as_stored(text);
            hasher.write_usize(stored.len());
            hasher.write(stored.as_bytes());
        }
        Some(SqlValue::Timestamp(instant)) => {
            hasher.write_u8(6);
            hasher.write_i64(anquan_domain::bounds::clamp_instant(*instant).0.timestamp_micros());
        }
    }
}

fn prefixes_of(state: &Fingerprinter, table: &str, statement: &Statement, key: &[usize]) -> Prefixes {
    let mut hasher = state.build_hasher();
    hasher.write(table.as_bytes());
    hasher.write_u8(0xff);
    let mut prefixes = Vec::with_capacity(key.len() + 1);
    prefixes.push(hasher.finish());
    for index in key {
        hash_key_part(&mut hasher, statement.params.get(*index));
        prefixes.push(hasher.finish());
    }
    prefixes
}

/// Groups `statements` into runs that, executed in the returned order (each run's statements
/// together), leave the same rows as executing the statements one by one in slice order.
pub fn plan_runs(statements: &[&Statement]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let state = Fingerprinter::default();
    let mut writes = Seen::default();
    let mut reads = Seen::default();
    // The last run of a statement without a footprint.
    let mut barrier: Option<usize> = None;
    // The latest run of each SQL text.
    let mut latest: HashMap<&str, usize, Fingerprinter> = HashMap::default();
    for (index, statement) in statements.iter().enumerate() {
        let Some(footprint) = statement.footprint else {
            barrier = Some(runs.len());
            runs.push(Run {
                statements: vec![index],
            });
            continue;
        };
        let key = prefixes_of(&state, footprint.table, statement, footprint.key);
        let read = footprint
            .reads
            .map(|(table, read_key)| prefixes_of(&state, table, statement, read_key));
        // The last run this statement must follow: it wrote or read what this one writes, or
        // wrote what this one reads.
        let mut after = barrier.max(writes.last_overlap(&key)).max(reads.last_overlap(&key));
        if let Some(read) = &read {
            after = after.max(writes.last_overlap(read));
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
        writes.record(&key, run);
        if let Some(read) = &read {
            reads.record(read, run);
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
    fn text_is_one_key_as_stored() {
        // The stores keep a NUL as U+FFFD, so these two name one row; JSON compares as text.
        let statements = [
            set_town("e\u{0}1", "x"),
            set_town("e\u{FFFD}1", "y"),
            set_town("e1", "z"),
            Statement::new(
                "UPDATE enterprise town",
                vec![SqlValue::Json("e1".to_owned()), text("w")],
            )
            .with_footprint(TOWN),
        ];
        assert_eq!(plan(&statements), vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn a_key_value_does_not_run_into_the_next() {
        // ("ab", "c") and ("a", "bc") are different rows of a two-column key.
        let profile = |enterprise: &str, at: &str| {
            Statement::new("UPSERT profile", vec![text(enterprise), text(at)])
                .with_footprint(Footprint::writes("enterprise_profiles", &[0, 1]))
        };
        assert_eq!(plan(&[profile("ab", "c"), profile("a", "bc")]), vec![vec![0, 1]]);
        assert_eq!(plan(&[profile("ab", "c"), profile("ab", "c")]), vec![vec![0], vec![1]]);
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
