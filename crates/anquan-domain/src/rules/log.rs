//! The rule-set log: analysts' decisions as facts. One stream, `rulesets`, holds every
//! publication (a version and the digest of its files) and every promotion (which published
//! version the live queries use from then on), so the history says when which rules were live,
//! and every node finds the live version by folding that one stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Instant;
use crate::event::Event;

/// The name of the one stream of rule-set events.
pub const RULE_SET_STREAM: &str = "rulesets";

/// A rule set's files were published under a version: from now on that version names exactly
/// these files (their digest), forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSetPublished {
    pub version: String,
    /// SHA-256 over the files, as `rule_set_digest` in `anquan-projections` computes it.
    pub digest: String,
    pub title: String,
    pub published_at: Instant,
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
}

impl RuleSetLog {
    /// Folds one event; events of other streams are ignored.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RuleSetPublished(published) => {
                self.published
                    .insert(published.version.clone(), published.digest.clone());
            }
            Event::RuleSetPromoted(promoted) => {
                self.live = Some((promoted.version.clone(), promoted.digest.clone()));
                self.promotions.push((promoted.version.clone(), promoted.promoted_at));
            }
            _ => {}
        }
    }

    /// Decides a publication: nothing if this version was already published with these files,
    /// a refusal if it was published with other files.
    pub fn publish(
        &self,
        version: &str,
        digest: &str,
        title: &str,
        now: Instant,
    ) -> Result<Vec<Event>, RuleSetLogRejection> {
        match self.published.get(version) {
            Some(published) if published == digest => Ok(Vec::new()),
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
