//! A contribution as compact text: what the metrics history stores at each change of every
//! enterprise and what the cache of "now" holds for each enterprise, at about a third of its
//! JSON and a tenth of its unpacked size.

use anquan_domain::metrics::Contribution;

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
}
