//! The rule-set log: analysts' decisions as facts. One stream, `rulesets`, holds every
//! publication (a version and the digest of its files) and every promotion (which published
//! version the live queries use from then on), so the history says when which rules were live,
//! and every node finds the live version by folding that one stream.
//!
//! Since `RuleSetPublished` v2 a publication carries the full text of the rule set's files, so
//! the log alone reproduces any past status: [`RuleSetLog::in_force_at`] says which version was
//! in force at an instant, and [`RuleSetLog::contents`] holds that version's files, whatever is
//! on a node's disk. A v1 publication (digest only) is upcast with no files; publishing the same
//! version again with the same files then records them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::event::Event;

/// The name of the one stream of rule-set events.
pub const RULE_SET_STREAM: &str = "rulesets";

/// A rule set's files were published under a version: from now on that version names exactly
/// these files (their digest), forever.
///
/// Schema v2 adds `files`, the text of every file by name (content-addressed by `digest`); a
/// v1 event upcasts to an empty map (its files were not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetPublished {
    pub version: String,
    /// SHA-256 over the files, as `rule_set_digest` in `anquan-projections` computes it.
    pub digest: String,
    pub title: String,
    pub published_at: Instant,
    /// The files' texts by file name (`ruleset.toml`, `indicators.toml`, …); empty in v1.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// A published version became the live one: queries evaluate with it from the next batch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetPromoted {
    pub version: String,
    /// The digest the version was published with; a node whose files differ refuses to switch.
    pub digest: String,
    pub promoted_at: Instant,
}

/// Why a rule-set command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetLogRejection {
    #[error(
        "rule set {version} was published with digest {published}; these files have {offered}: publish a new version instead of editing one"
    )]
    DigestChanged {
        version: String,
        published: String,
        offered: String,
    },
    #[error("rule set {0} has not been published")]
    NotPublished(String),
    #[error("rule set {0} is already the live one")]
    AlreadyLive(String),
}

impl RuleSetLogRejection {
    /// A stable code for clients and exit messages.
    pub fn code(&self) -> &'static str {
        match self {
            RuleSetLogRejection::DigestChanged { .. } => "RULE_SET_DIGEST_CHANGED",
            RuleSetLogRejection::NotPublished(_) => "RULE_SET_NOT_PUBLISHED",
            RuleSetLogRejection::AlreadyLive(_) => "RULE_SET_ALREADY_LIVE",
        }
    }
}

/// The state of the rule-set stream: what was published, and which version is live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSetLog {
    /// Published versions with their digests.
    pub published: BTreeMap<String, String>,
    /// The last promoted version and its digest; none means the node's configured rule set.
    pub live: Option<(String, String)>,
    /// Every promotion in order, with its instant: when which rules were live.
    pub promotions: Vec<(String, Instant)>,
    /// The files of every version whose publication carried them (schema v2), by version.
    pub contents: BTreeMap<String, BTreeMap<String, String>>,
}

impl RuleSetLog {
    /// Folds one event; events of other streams are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RuleSetPublished(published) => {
                self.published
                    .insert(published.version.clone(), published.digest.clone());
                if !published.files.is_empty() {
                    self.contents.insert(published.version.clone(), published.files.clone());
                }
            }
            Event::RuleSetPromoted(promoted) => {
                self.live = Some((promoted.version.clone(), promoted.digest.clone()));
                self.promotions.push((promoted.version.clone(), promoted.promoted_at));
            }
            _ => {}
        }
    }

    /// The version in force at `at` by this log: the last one promoted at or before `at`, in
    /// log order; `None` before the first promotion (the node's configured rule set was live).
    pub fn in_force_at(&self, at: Instant) -> Option<&str> {
        self.promotions
            .iter()
            .rev()
            .find(|(_, promoted_at)| *promoted_at <= at)
            .map(|(version, _)| version.as_str())
    }

    /// Decides a publication of `files` (whose digest is `digest`): nothing if this version was
    /// already published with these files and the log holds them, a new publication carrying
    /// them if it was published with the same digest but without its files (a v1 event), a
    /// refusal if it was published with other files.
    pub fn publish(
        &self,
        version: &str,
        digest: &str,
        title: &str,
        files: &BTreeMap<String, String>,
        now: Instant,
    ) -> Result<Vec<Event>, RuleSetLogRejection> {
        match self.published.get(version) {
            Some(published) if published == digest && self.contents.contains_key(version) => Ok(Vec::new()),
            Some(published) if published == digest => Ok(vec![Event::RuleSetPublished(RuleSetPublished {
                version: version.to_owned(),
                digest: digest.to_owned(),
                title: title.to_owned(),
                published_at: now,
                files: files.clone(),
            })]),
            Some(published) => Err(RuleSetLogRejection::DigestChanged {
                version: version.to_owned(),
                published: published.clone(),
                offered: digest.to_owned(),
            }),
            None => Ok(vec![Event::RuleSetPublished(RuleSetPublished {
                version: version.to_owned(),
                digest: digest.to_owned(),
                title: title.to_owned(),
                published_at: now,
                files: files.clone(),
            })]),
        }
    }

    /// Decides a promotion of a published version.
    pub fn promote(&self, version: &str, now: Instant) -> Result<Vec<Event>, RuleSetLogRejection> {
        let digest = self
            .published
            .get(version)
            .ok_or_else(|| RuleSetLogRejection::NotPublished(version.to_owned()))?;
        if self.live.as_ref().is_some_and(|(live, _)| live == version) {
            return Err(RuleSetLogRejection::AlreadyLive(version.to_owned()));
        }
        Ok(vec![Event::RuleSetPromoted(RuleSetPromoted {
            version: version.to_owned(),
            digest: digest.clone(),
            promoted_at: now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> Instant {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, day, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn files(text: &str) -> BTreeMap<String, String> {
        [("ruleset.toml".to_owned(), text.to_owned())].into_iter().collect()
    }

    #[test]
    fn the_version_in_force_follows_the_promotions_by_their_instants() {
        let mut log = RuleSetLog::default();
        for event in log.publish("v2", "d2", "two", &files("v2"), at(1)).unwrap() {
            log.apply(&event);
        }
        assert_eq!(log.contents.get("v2"), Some(&files("v2")));
        assert_eq!(log.in_force_at(at(5)), None);
        for event in log.promote("v2", at(5)).unwrap() {
            log.apply(&event);
        }
        assert_eq!(log.in_force_at(at(4)), None);
        assert_eq!(log.in_force_at(at(5)), Some("v2"));
        assert_eq!(log.in_force_at(at(9)), Some("v2"));
    }

    #[test]
    fn a_publication_without_files_is_completed_by_publishing_the_same_files_again() {
        let mut log = RuleSetLog::default();
        log.apply(&Event::RuleSetPublished(RuleSetPublished {
            version: "v2".to_owned(),
            digest: "d2".to_owned(),
            title: "two".to_owned(),
            published_at: at(1),
            files: BTreeMap::new(),
        }));
        let events = log.publish("v2", "d2", "two", &files("v2"), at(2)).unwrap();
        assert_eq!(events.len(), 1);
        for event in &events {
            log.apply(event);
        }
        assert!(log.publish("v2", "d2", "two", &files("v2"), at(3)).unwrap().is_empty());
        assert_eq!(
            log.publish("v2", "d3", "two", &files("other"), at(3))
                .unwrap_err()
                .code(),
            "RULE_SET_DIGEST_CHANGED"
        );
    }
}
