//! One statement for many rows: the portable `INSERT … VALUES ($1, …)`, `UPDATE … WHERE …` and
//! `DELETE … WHERE …` a projection writes, rewritten to take each parameter as an array and
//! run once per element (`unnest`), for a run of statements with disjoint footprints
//! (`anquan_event_store::runs`).
//!
//! `$k` becomes `anquan_rows.anquan_pk`, a column of `unnest($1::type[], …) AS anquan_rows(…)`
//! with each parameter's type as the server inferred it for the one-row statement:
//!
//! - `INSERT INTO t (…) VALUES (…) [ON CONFLICT …]` → `INSERT INTO t (…) SELECT … FROM unnest(…)
//!   [ON CONFLICT …]`, the conflict clause using no parameter;
//! - `UPDATE t SET … WHERE …` → `UPDATE t SET … FROM unnest(…) WHERE …`;
//! - `DELETE FROM t WHERE …` → `DELETE FROM t USING unnest(…) WHERE …`.
//!
//! Anything else is not rewritten, and its statements run one by one.
//!
//! A value of an insert that looks a row up by a parameter, `(SELECT c FROM t WHERE k = $n)`
//! (the enterprise's town a document, hazard or accident copies), runs once per element as a
//! scalar subquery, a plan of its own each time. Where `k` alone is unique in `t` (asked by
//! the caller, which reads the catalog), it becomes a column of `LEFT JOIN t ON t.k = $n`
//! instead, which the server answers for all rows at once (a hash or merge join): the same
//! rows, the same `NULL` where no row matches, and no row joined twice.

use tokio_postgres::types::{Kind, Type};

/// The alias of the unnested rows.
const ROWS: &str = "anquan_rows";

/// A value of an insert that reads one column of the row of `table` whose `key` is parameter
/// `parameter` (1-based): `(SELECT column FROM table WHERE key = $parameter)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub(crate) column: String,
    pub(crate) table: String,
    pub(crate) key: String,
    pub(crate) parameter: usize,
}

impl Lookup {
    /// Reads one value of a `VALUES` list; `None` unless it is exactly a lookup of plain
    /// (unquoted, lower-case) names.
    fn parse(value: &str) -> Option<Lookup> {
        let inner = value.trim().strip_prefix('(')?.strip_suffix(')')?;
        let words: Vec<&str> = inner.split_whitespace().collect();
        let [select, column, from, table, where_, key, "=", parameter] = words.as_slice() else {
            return None;
        };
        let plain = |name: &str| {
            name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let keywords = [(select, "SELECT"), (from, "FROM"), (where_, "WHERE")];
        if !keywords
            .iter()
            .all(|(word, keyword)| word.eq_ignore_ascii_case(keyword))
            || ![column, table, key].iter().all(|name| plain(name))
        {
            return None;
        }
        let parameter: usize = parameter.strip_prefix('$')?.parse().ok()?;
        Some(Lookup {
            column: (*column).to_owned(),
            table: (*table).to_owned(),
            key: (*key).to_owned(),
            parameter,
        })
    }
}

/// The lookups among the values of `sql` if it is an `INSERT … VALUES (…)`, for the caller to
/// ask which keys are unique before [`unnest_sql`].
pub(crate) fn insert_lookups(sql: &str) -> Vec<Lookup> {
    let sql = sql.trim();
    insert_values(sql)
        .map(|(_, open, close)| {
            top_level_items(&sql[open + 1..close])
                .into_iter()
                .filter_map(Lookup::parse)
                .collect()
        })
        .unwrap_or_default()
}

/// Where an `INSERT … VALUES (…)`'s `VALUES` keyword and the parentheses of its list are.
fn insert_values(sql: &str) -> Option<(usize, usize, usize)> {
    let verb = sql.split_whitespace().next()?;
    if !verb.eq_ignore_ascii_case("INSERT") {
        return None;
    }
    let values = find_keyword(sql, "VALUES")?;
    let after = values + "VALUES".len();
    let open = after + sql[after..].find(|c: char| !c.is_whitespace())?;
    if !sql[open..].starts_with('(') {
        return None;
    }
    Some((values, open, matching_paren(sql, open)?))
}

/// The comma-separated items of `list` at its top level (commas inside parentheses or quotes
/// do not separate).
fn top_level_items(list: &str) -> Vec<&str> {
    let top = top_level(list);
    let mut start = 0;
    let mut items = Vec::new();
    for (at, byte) in list.bytes().enumerate() {
        if byte == b',' && top[at] {
            items.push(&list[start..at]);
            start = at + 1;
        }
    }
    items.push(&list[start..]);
    items
}

/// The statement that runs `sql` once per element of its parameters' arrays, given the
/// parameters' types; `None` when `sql` is not one of the shapes above. `unique(table, key)`
/// says whether `key` alone is unique in `table`, which lets a lookup become a join.
pub(crate) fn unnest_sql(sql: &str, types: &[Type], unique: impl Fn(&str, &str) -> bool) -> Option<String> {
    if types.is_empty() || types.iter().any(|ty| matches!(ty.kind(), Kind::Array(_))) {
        return None;
    }
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(index, ty)| format!("${}::\"{}\".\"{}\"[]", index + 1, ty.schema(), ty.name()))
        .collect();
    let columns: Vec<String> = (1..=types.len()).map(|number| format!("anquan_p{number}")).collect();
    let rows = format!("unnest({}) AS {ROWS}({})", arrays.join(", "), columns.join(", "));
    let sql = sql.trim();
    let verb = sql.split_whitespace().next()?.to_ascii_uppercase();
    let substitute = |text: &str| substitute(text, types.len());
    match verb.as_str() {
        "INSERT" => {
            let (values, open, close) = insert_values(sql)?;
            let tail = &sql[close + 1..];
            if tail.contains('$') {
                return None;
            }
            let mut joins: Vec<Lookup> = Vec::new();
            let mut items = Vec::new();
            for item in top_level_items(&sql[open + 1..close]) {
                match Lookup::parse(item) {
                    Some(lookup)
                        if (1..=types.len()).contains(&lookup.parameter) && unique(&lookup.table, &lookup.key) =>
                    {
                        let same_row = |join: &Lookup| {
                            (&join.table, &join.key, join.parameter) == (&lookup.table, &lookup.key, lookup.parameter)
                        };
                        let alias = match joins.iter().position(same_row) {
                            Some(index) => index + 1,
                            None => {
                                joins.push(lookup.clone());
                                joins.len()
                            }
                        };
                        items.push(format!("anquan_j{alias}.{}", lookup.column));
                    }
                    _ => items.push(substitute(item.trim())?),
                }
            }
            let joins: String = joins
                .iter()
                .enumerate()
                .map(|(index, join)| {
                    let alias = format!("anquan_j{}", index + 1);
                    format!(
                        " LEFT JOIN {table} AS {alias} ON {alias}.{key} = {ROWS}.anquan_p{parameter}",
                        table = join.table,
                        key = join.key,
                        parameter = join.parameter
                    )
                })
                .collect();
            Some(format!(
                "{} SELECT {} FROM {rows}{joins}{tail}",
                sql[..values].trim_end(),
                items.join(", ")
            ))
        }
        "UPDATE" => {
            let at = find_keyword(sql, "WHERE")?;
            if find_keyword(&sql[..at], "FROM").is_some() {
                return None;
            }
            Some(format!(
                "{} FROM {rows} {}",
                substitute(sql[..at].trim_end())?,
                substitute(&sql[at..])?
            ))
        }
        "DELETE" => {
            let at = find_keyword(sql, "WHERE")?;
            if find_keyword(&sql[..at], "USING").is_some() || sql[..at].contains('$') {
                return None;
            }
            Some(format!(
                "{} USING {rows} {}",
                sql[..at].trim_end(),
                substitute(&sql[at..])?
            ))
        }
        _ => None,
    }
}

/// Where each byte of `sql` is: outside quotes and at parenthesis depth 0, or not.
fn top_level(sql: &str) -> Vec<bool> {
    let mut top = Vec::with_capacity(sql.len());
    let mut depth = 0_i64;
    let mut quote: Option<u8> = None;
    for byte in sql.bytes() {
        match quote {
            Some(open) => {
                top.push(false);
                if byte == open {
                    quote = None;
                }
            }
            None => match byte {
                b'\'' | b'"' => {
                    quote = Some(byte);
                    top.push(false);
                }
                b'(' => {
                    depth += 1;
                    top.push(false);
                }
                b')' => {
                    depth -= 1;
                    top.push(false);
                }
                _ => top.push(depth == 0),
            },
        }
    }
    top
}

/// The first top-level occurrence of `keyword` as a whole word, case-insensitively.
fn find_keyword(sql: &str, keyword: &str) -> Option<usize> {
    let top = top_level(sql);
    let bytes = sql.as_bytes();
    let word = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    (0..=sql.len().checked_sub(keyword.len())?).find(|&at| {
        top[at]
            && bytes[at..at + keyword.len()].eq_ignore_ascii_case(keyword.as_bytes())
            && (at == 0 || !word(bytes[at - 1]))
            && bytes.get(at + keyword.len()).is_none_or(|next| !word(*next))
    })
}

/// The `)` closing the `(` at `open`, outside quotes.
fn matching_paren(sql: &str, open: usize) -> Option<usize> {
    let mut depth = 0_i64;
    let mut quote: Option<u8> = None;
    for (at, byte) in sql.bytes().enumerate().skip(open) {
        match quote {
            Some(closing) if byte == closing => quote = None,
            Some(_) => {}
            None => match byte {
                b'\'' | b'"' => quote = Some(byte),
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(at);
                    }
                }
                _ => {}
            },
        }
    }
    None
}

/// `text` with each `$k` outside quotes read from the unnested rows; `None` if one names no
/// parameter.
fn substitute(text: &str, parameters: usize) -> Option<String> {
    let mut out = String::with_capacity(text.len() * 2);
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match quote {
            Some(closing) => {
                if c == closing {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' => {
                let mut number = String::new();
                while let Some((_, digit)) = chars.peek().filter(|(_, next)| next.is_ascii_digit()) {
                    number.push(*digit);
                    chars.next();
                }
                let index: usize = number.parse().ok()?;
                if index == 0 || index > parameters {
                    return None;
                }
                out.push_str(&format!("{ROWS}.anquan_p{index}"));
            }
            None => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_selects_from_the_rows_and_keeps_its_conflict_clause() {
        let sql = "INSERT INTO t (a, b, c) VALUES ($1, (SELECT x FROM u WHERE id = $2), 'it''s $3') \
                   ON CONFLICT (a) DO UPDATE SET b = excluded.b";
        assert_eq!(
            unnest_sql(sql, &[Type::TEXT, Type::INT8], no_unique_keys).unwrap(),
            "INSERT INTO t (a, b, c) SELECT anquan_rows.anquan_p1, (SELECT x FROM u WHERE id = anquan_rows.anquan_p2), \
             'it''s $3' FROM unnest($1::\"pg_catalog\".\"text\"[], $2::\"pg_catalog\".\"int8\"[]) \
             AS anquan_rows(anquan_p1, anquan_p2) ON CONFLICT (a) DO UPDATE SET b = excluded.b"
        );
    }

    #[test]
    fn an_update_joins_the_rows() {
        assert_eq!(
            unnest_sql(
                "UPDATE t SET a = $2, b = 'x' WHERE k = $1 AND c IS NOT NULL",
                &[Type::TEXT, Type::TIMESTAMPTZ],
                no_unique_keys
            )
            .unwrap(),
            "UPDATE t SET a = anquan_rows.anquan_p2, b = 'x' FROM unnest($1::\"pg_catalog\".\"text\"[], \
             $2::\"pg_catalog\".\"timestamptz\"[]) AS anquan_rows(anquan_p1, anquan_p2) \
             WHERE k = anquan_rows.anquan_p1 AND c IS NOT NULL"
        );
    }

    #[test]
    fn a_delete_uses_the_rows() {
        assert_eq!(
            unnest_sql(
                "DELETE FROM t WHERE a = $1 AND b = $2",
                &[Type::TEXT, Type::TEXT],
                no_unique_keys
            )
            .unwrap(),
            "DELETE FROM t USING unnest($1::\"pg_catalog\".\"text\"[], $2::\"pg_catalog\".\"text\"[]) \
             AS anquan_rows(anquan_p1, anquan_p2) WHERE a = anquan_rows.anquan_p1 AND b = anquan_rows.anquan_p2"
        );
    }

    #[test]
    fn other_shapes_are_not_rewritten() {
        for sql in [
            "SELECT $1",
            "UPDATE t SET a = $1",
            "UPDATE t SET a = u.b FROM u WHERE u.k = $1",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = $1",
            "INSERT INTO t (a) VALUES ($2)",
            "INSERT INTO t (a) SELECT $1",
        ] {
            assert_eq!(unnest_sql(sql, &[Type::TEXT], no_unique_keys), None, "{sql}");
        }
        assert_eq!(
            unnest_sql("INSERT INTO t (a) VALUES ($1)", &[Type::TEXT_ARRAY], no_unique_keys),
            None
        );
        assert_eq!(unnest_sql("DELETE FROM t", &[], no_unique_keys), None);
    }

    const INSERT_WITH_LOOKUPS: &str = "INSERT INTO d (id, e, town, region, note) VALUES ($1, $2, \
        (SELECT town FROM enterprises WHERE enterprise_id = $2), (SELECT region FROM enterprises WHERE enterprise_id = $2), \
        'a, (b)')";

    #[test]
    fn a_lookup_by_a_unique_key_becomes_one_left_join_per_row_looked_up() {
        let unique = |table: &str, key: &str| (table, key) == ("enterprises", "enterprise_id");
        assert_eq!(
            unnest_sql(INSERT_WITH_LOOKUPS, &[Type::TEXT, Type::TEXT], unique).unwrap(),
            "INSERT INTO d (id, e, town, region, note) SELECT anquan_rows.anquan_p1, anquan_rows.anquan_p2, \
             anquan_j1.town, anquan_j1.region, 'a, (b)' FROM unnest($1::\"pg_catalog\".\"text\"[], \
             $2::\"pg_catalog\".\"text\"[]) AS anquan_rows(anquan_p1, anquan_p2) \
             LEFT JOIN enterprises AS anquan_j1 ON anquan_j1.enterprise_id = anquan_rows.anquan_p2"
        );
        assert_eq!(
            insert_lookups(INSERT_WITH_LOOKUPS),
            ["town", "region"].map(|column| Lookup {
                column: column.to_owned(),
                table: "enterprises".to_owned(),
                key: "enterprise_id".to_owned(),
                parameter: 2,
            })
        );
    }

    #[test]
    fn a_lookup_stays_a_subquery_unless_its_key_is_unique_and_it_is_plain() {
        let subquery = unnest_sql(INSERT_WITH_LOOKUPS, &[Type::TEXT, Type::TEXT], no_unique_keys).unwrap();
        assert!(!subquery.contains("JOIN"), "{subquery}");
        assert!(
            subquery.contains("(SELECT town FROM enterprises WHERE enterprise_id = anquan_rows.anquan_p2)"),
            "{subquery}"
        );
        let every_key = |_: &str, _: &str| true;
        for value in [
            "(SELECT town FROM enterprises WHERE enterprise_id = $2 LIMIT 1)",
            "(SELECT town FROM enterprises WHERE enterprise_id > $2)",
            "(SELECT town FROM \"Enterprises\" WHERE enterprise_id = $2)",
            "(SELECT max(town) FROM enterprises WHERE enterprise_id = $2)",
            "(SELECT town FROM enterprises WHERE enterprise_id = $3)",
        ] {
            let sql = format!("INSERT INTO d (id, town) VALUES ($1, {value})");
            let unnested = unnest_sql(&sql, &[Type::TEXT, Type::TEXT], every_key);
            assert!(
                unnested.as_deref().is_none_or(|sql| !sql.contains("JOIN")),
                "{value}: {unnested:?}"
            );
        }
    }

    fn no_unique_keys(_: &str, _: &str) -> bool {
        false
    }
}
