//! A contribution as compact text: what the metrics history stores at each change of every
//! enterprise and what the cache of "now" holds for each enterprise, at about a third of its
//! JSON and a tenth of its unpacked size.

use anquan_domain::metrics::{Contribution, Tally};

use super::ScopeTallies;

/// A contribution as text, about a third of its JSON: `breakdowns;tallies;parts;town`, the
/// tallies their count then each in catalogue order, comma-separated, each empty for 0/0, `-` for
/// 0/1, `+` for 1/1, `n` for n/0 and `n/d` otherwise; the parts `index:a:b:c:d` comma-separated;
/// the town last, so any character it holds is its own. [`decode`] gives back exactly what was
/// encoded (integers are written in full, a town is a parsed `Town` written as it is).
pub fn encode(contribution: &Contribution) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(160);
    // Writing to a String cannot fail: the results below are ignored for that reason.
    let _ = write!(text, "{};{}", contribution.breakdowns, contribution.tallies.len());
    for (numerator, denominator) in &contribution.tallies {
        text.push(',');
        let _ = match (numerator, denominator) {
            (0, 0) => Ok(()),
            (0, 1) => write!(text, "-"),
            (1, 1) => write!(text, "+"),
            (numerator, 0) => write!(text, "{numerator}"),
            (numerator, denominator) => write!(text, "{numerator}/{denominator}"),
        };
    }
    text.push(';');
    for (index, (metric, [a, b, c, d])) in contribution.parts.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        let _ = write!(text, "{metric}:{a}:{b}:{c}:{d}");
    }
    text.push(';');
    text.push_str(contribution.town.as_str());
    text
}

/// The contribution [`encode`] wrote (`None`: the text is not one).
pub fn decode(text: &str) -> Option<Contribution> {
    let mut fields = text.splitn(4, ';');
    let breakdowns = fields.next()?.parse().ok()?;
    let mut tallies = fields.next()?.split(',');
    let count: usize = tallies.next()?.parse().ok()?;
    let tallies = tallies
        .map(|tally| match tally {
            "" => Some((0, 0)),
            "-" => Some((0, 1)),
            "+" => Some((1, 1)),
            tally => match tally.split_once('/') {
                Some((numerator, denominator)) => Some((numerator.parse().ok()?, denominator.parse().ok()?)),
                None => Some((tally.parse().ok()?, 0)),
            },
        })
        .collect::<Option<Vec<_>>>()?;
    if tallies.len() != count {
        return None;
    }
    let parts = match fields.next()? {
        "" => Vec::new(),
        parts => parts
            .split(',')
            .map(|part| {
                let mut numbers = part.split(':');
                let metric = numbers.next()?.parse().ok()?;
                let mut values = [0i64; 4];
                for value in &mut values {
                    *value = numbers.next()?.parse().ok()?;
                }
                numbers.next().is_none().then_some((metric, values))
            })
            .collect::<Option<Vec<_>>>()?,
    };
    let town = anquan_domain::Town::parse(fields.next()?).ok()?;
    Some(Contribution {
        town,
        breakdowns,
        tallies,
        parts,
    })
}

/// A town's summed tallies, or what a span of time added to them, as text (what the history
/// keeps by day and hour): the tallies that are not zero, comma-separated, each `index=n/d`
/// with `index` its place counting every metric of every enterprise, then of each breakdown
/// in turn, followed by `/a/b/c/d` when its parts are not all zero; empty when all are zero.
pub fn encode_tallies(tallies: &ScopeTallies) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let every = std::iter::once(&tallies.all).chain(&tallies.by_breakdown).flatten();
    for (index, tally) in every.enumerate() {
        if *tally == Tally::default() {
            continue;
        }
        if !text.is_empty() {
            text.push(',');
        }
        // Writing to a String cannot fail.
        let _ = write!(text, "{index}={}/{}", tally.numerator, tally.denominator);
        if tally.parts != [0; 4] {
            let [a, b, c, d] = tally.parts;
            let _ = write!(text, "/{a}/{b}/{c}/{d}");
        }
    }
    text
}

/// The tallies [`encode_tallies`] wrote for `metrics` metrics and `breakdowns` breakdowns
/// (`None`: the text is not such tallies).
pub fn decode_tallies(text: &str, metrics: usize, breakdowns: usize) -> Option<ScopeTallies> {
    let mut lists = vec![vec![Tally::default(); metrics]; breakdowns + 1];
    for entry in text.split(',').filter(|_| !text.is_empty()) {
        let (index, tally) = entry.split_once('=')?;
        let index: usize = index.parse().ok()?;
        let list = lists.get_mut(index.checked_div(metrics)?)?;
        let slot = list.get_mut(index % metrics)?;
        let numbers = tally
            .split('/')
            .map(|number| number.parse::<i64>().ok())
            .collect::<Option<Vec<_>>>()?;
        *slot = match numbers.as_slice() {
            [numerator, denominator] => Tally {
                numerator: *numerator,
                denominator: *denominator,
                parts: [0; 4],
            },
            [numerator, denominator, a, b, c, d] => Tally {
                numerator: *numerator,
                denominator: *denominator,
                parts: [*a, *b, *c, *d],
            },
            _ => return None,
        };
    }
    let mut lists = lists.into_iter();
    let all = lists.next()?;
    Some(ScopeTallies {
        all,
        by_breakdown: lists.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contribution_decodes_as_it_was_encoded() {
        let town = anquan_domain::Town::parse("许村;镇,1/2").unwrap();
        let contributions = [
            Contribution {
                town: town.clone(),
                breakdowns: 29,
                tallies: vec![
                    (0, 0),
                    (0, 1),
                    (1, 1),
                    (13, 0),
                    (1, 9),
                    (-3, 2),
                    (i64::MAX, i64::MIN),
                    (0, 7),
                ],
                parts: vec![(7, [1, 0, 0, 0]), (12, [-1, 2, i64::MAX, 4])],
            },
            Contribution {
                town,
                breakdowns: 0,
                tallies: vec![(0, 0)],
                parts: Vec::new(),
            },
        ];
        for contribution in contributions {
            let text = encode(&contribution);
            assert_eq!(decode(&text), Some(contribution), "{text}");
        }
        for text in [
            "",
            "x;;;许村",
            "1;a/b;;许村",
            "1;;7:1:2:3;许村",
            "1;;7:1:2:3:4:5;许村",
            "1;;;",
        ] {
            assert_eq!(decode(text), None, "{text}");
        }
    }

    #[test]
    fn a_town_s_tallies_decode_as_they_were_encoded() {
        let tally = |numerator, denominator, parts| Tally {
            numerator,
            denominator,
            parts,
        };
        let tallies = ScopeTallies {
            all: vec![
                tally(0, 0, [0; 4]),
                tally(3, 7, [0; 4]),
                tally(-1, 0, [1, -2, i64::MAX, 0]),
            ],
            by_breakdown: vec![
                vec![Tally::default(); 3],
                vec![tally(0, 1, [0; 4]), tally(i64::MIN, 2, [0; 4]), Tally::default()],
            ],
        };
        let text = encode_tallies(&tallies);
        assert_eq!(
            text,
            "1=3/7,2=-1/0/1/-2/9223372036854775807/0,6=0/1,7=-9223372036854775808/2"
        );
        assert_eq!(decode_tallies(&text, 3, 2), Some(tallies.clone()), "{text}");
        // Another catalogue's places.
        assert_ne!(decode_tallies(&text, 4, 2), Some(tallies.clone()));
        assert_eq!(decode_tallies(&text, 3, 1), None);
        let empty = ScopeTallies {
            all: vec![Tally::default(); 2],
            by_breakdown: vec![vec![Tally::default(); 2]],
        };
        assert_eq!(encode_tallies(&empty), "");
        assert_eq!(decode_tallies("", 2, 1), Some(empty));
        for text in [",", "1", "1=2", "1=2/3/4", "a=1/1", "4=1/1", "1=1/x", "=1/1", "1=1/1,"] {
            assert_eq!(decode_tallies(text, 2, 1), None, "{text}");
        }
        assert_eq!(decode_tallies("0=1/1", 0, 0), None);
    }
}
