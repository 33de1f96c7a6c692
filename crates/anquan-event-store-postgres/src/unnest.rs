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

use tokio_postgres::types::{Kind, Type};

/// The alias of the unnested rows.
const ROWS: &str = "anquan_rows";

/// The statement that runs `sql` once per element of its parameters' arrays, given the
/// parameters' types; `None` when `sql` is not one of the shapes above.
pub(crate) fn unnest_sql(sql: &str, types: &[Type]) -> Option<String> {
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
            let values = find_keyword(sql, "VALUES")?;
            let after = values + "VALUES".len();
            let open = after + sql[after..].find(|c: char| !c.is_whitespace())?;
            if !sql[open..].starts_with('(') {
                return None;
            }
            let close = matching_paren(sql, open)?;
            let tail = &sql[close + 1..];
            if tail.contains('$') {
                return None;
            }
            Some(format!(
                "{} SELECT {} FROM {rows}{tail}",
                sql[..values].trim_end(),
                substitute(&sql[open + 1..close])?
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
            unnest_sql(sql, &[Type::TEXT, Type::INT8]).unwrap(),
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
                &[Type::TEXT, Type::TIMESTAMPTZ]
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
            unnest_sql("DELETE FROM t WHERE a = $1 AND b = $2", &[Type::TEXT, Type::TEXT]).unwrap(),
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
            assert_eq!(unnest_sql(sql, &[Type::TEXT]), None, "{sql}");
        }
        assert_eq!(unnest_sql("INSERT INTO t (a) VALUES ($1)", &[Type::TEXT_ARRAY]), None);
        assert_eq!(unnest_sql("DELETE FROM t", &[]), None);
    }
}
