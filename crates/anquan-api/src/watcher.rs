//! `SupervisionWatcher`: tells dashboards when a hazard becomes overdue or an enterprise's colour
//! changes. Overdue is a fact of time, not an event, so something must watch the clock: the
//! watcher keeps the upcoming deadlines of open hazards (loaded from the read model at start,
//! refreshed for every enterprise whose events the projections apply) and, when the clock
//! passes one, broadcasts `HazardOverdue`; after new events and passed deadlines it re-assesses
//! the enterprise's colour and broadcasts `ColourChanged` when it differs from the last known.
//!
//! Colours are assessed with the live rule set. When a promotion switches it, the watcher
//! re-assesses every enterprise with the new version and broadcasts `ColourChanged` for those
//! whose colour the new rules change.
//!
//! It reads the read models only through `anquan-projections` and the clock only through
//! `AppState::now`, so tests can drive time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::enterprise::event::HazardLevel;
use anquan_domain::risk;
use anquan_domain::rules::{RiskColour, RuleSet};
use anquan_domain::{EnterpriseId, HazardId, Town};
use anquan_event_store::{Position, error_chain};
use anquan_projections::compliance as read_model;

use crate::AppState;
use crate::observability::{PassTimer, SUPERVISION_WATCHER_PASS_DURATION_SECONDS};

/// How many supervision notifications a slow subscriber may fall behind before it skips some.
pub const SUPERVISION_EVENTS_CAPACITY: usize = 1024;
/// Most upcoming deadlines held in memory; when they run out, the next ones are loaded.
pub const WATCHED_DEADLINES_MAX: usize = 100_000;
/// The longest the watcher sleeps before looking at the clock again (the clock may be moved
/// by tests, and a sleep of the runtime does not follow it).
const CLOCK_POLL: Duration = Duration::from_millis(500);
/// Events read per page while following the log.
const LOG_PAGE: usize = 500;
/// The pause after a failed read, before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The projections are catching up while they are more than this many events behind the
/// head of the log: the watchers wait for them (one tick over the whole span at the end)
/// instead of re-reading the files of every batch's enterprises.
const CATCH_UP_LAG: u64 = 10_000;

/// Whether the projections that applied up to `applied` are still catching up with the log, for
/// the watchers: more than [`CATCH_UP_LAG`] events behind its head where the backend can count
/// events (dense positions), else while the runner reports a projection folding its backlog (a
/// distance in positions of another backend's log says nothing about how many events remain).
pub(crate) fn projections_catching_up(app: &crate::AppState, applied: Option<Position>) -> bool {
    match events_behind(app, applied) {
        Some(events) => events > CATCH_UP_LAG,
        None => app.projections.catch_up().is_some_and(|status| status.catching_up),
    }
}

/// How many events of the log's head the projections that applied up to `applied` have yet to
/// apply, where the backend can count them (dense positions); `None` on another backend, whose
/// distance in positions says nothing about how many events remain.
pub(crate) fn events_behind(app: &crate::AppState, applied: Option<Position>) -> Option<u64> {
    let head = *app.event_store.head().borrow();
    match app.event_store.traits().distance(applied, head) {
        anquan_event_store::LogDistance::Events(events) => Some(events),
        anquan_event_store::LogDistance::Positions(_) => None,
    }
}
/// A tick whose events touch more enterprises than this looks at every enterprise, reading
/// the files in rounds of [`FILES_PER_ROUND`], instead of reading the rest of the log to learn
/// which ones (after a catch-up, the whole log, which the store may map into memory).
const TOUCHED_MAX: usize = 500;
/// Files read per round when a tick looks at every enterprise.
const FILES_PER_ROUND: usize = 100;

/// The instant just before `decided`: a file assessed here does not show the facts of an
/// event decided at `decided` (a registration, an upload, a review), only those of events
/// decided earlier and facts dated earlier (an inspection recorded after the visit).
fn just_before(decided: DateTime<Utc>) -> DateTime<Utc> {
    decided
        .checked_sub_signed(chrono::TimeDelta::nanoseconds(1))
        .unwrap_or(decided)
}

/// The enterprises a tick looks at.
enum Touched {
    /// Each enterprise with events in the span, with the instant the first of them was decided
    /// at: what it looked like before them is what a colour change is measured from.
    These(BTreeMap<EnterpriseId, DateTime<Utc>>),
    Every,
}

/// A notification for dashboards.
#[derive(Debug, Clone, PartialEq)]
pub enum SupervisionEvent {
    HazardOverdue(HazardOverdue),
    ColourChanged(ColourChanged),
}

/// A hazard passed its deadline without being closed.
#[derive(Debug, Clone, PartialEq)]
pub struct HazardOverdue {
    pub enterprise_id: EnterpriseId,
    pub enterprise_name: String,
    pub town: Town,
    pub hazard_id: HazardId,
    pub level: HazardLevel,
    /// Found by a government inspection (its being overdue vetoes the enterprise).
    pub government: bool,
    pub deadline: DateTime<Utc>,
    /// When the watcher saw it pass.
    pub noticed_at: DateTime<Utc>,
}

/// An enterprise's four-colour risk changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ColourChanged {
    pub enterprise_id: EnterpriseId,
    pub enterprise_name: String,
    pub town: Town,
    /// None for an enterprise that was not registered before.
    pub previous: Option<RiskColour>,
    pub colour: RiskColour,
    /// The rule that decided the new colour (none for blue).
    pub rule: Option<String>,
    /// The rule set version whose rules decided it.
    pub rule_set: String,
    pub at: DateTime<Utc>,
}

impl SupervisionEvent {
    /// The enterprise it is about.
    pub fn enterprise_id(&self) -> EnterpriseId {
        match self {
            SupervisionEvent::HazardOverdue(event) => event.enterprise_id,
            SupervisionEvent::ColourChanged(event) => event.enterprise_id,
        }
    }

    /// The town of that enterprise.
    pub fn town(&self) -> &Town {
        match self {
            SupervisionEvent::HazardOverdue(event) => &event.town,
            SupervisionEvent::ColourChanged(event) => &event.town,
        }
    }
}

/// The broadcast channel of supervision notifications, shared by the watcher and subscriptions.
#[derive(Clone)]
pub struct SupervisionEvents(broadcast::Sender<SupervisionEvent>);

impl Default for SupervisionEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl SupervisionEvents {
    /// Creates a channel holding up to `SUPERVISION_EVENTS_CAPACITY` notifications.
    pub fn new() -> Self {
        SupervisionEvents(broadcast::Sender::new(SUPERVISION_EVENTS_CAPACITY))
    }

    /// Returns a receiver of every notification sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SupervisionEvent> {
        self.0.subscribe()
    }

    fn send(&self, event: SupervisionEvent) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.0.send(event);
    }
}

/// Watches deadlines, applied events and promotions; see the module documentation.
pub struct SupervisionWatcher {
    app: AppState,
    /// The rule set colours are assessed with: the live one, switched at a promotion.
    rules: Arc<RuleSet>,
    /// Upcoming deadlines of open hazards: (deadline, enterprise, hazard).
    deadlines: BTreeSet<(DateTime<Utc>, EnterpriseId, HazardId)>,
    /// Whether the last load of deadlines from the read model was cut at the maximum.
    truncated: bool,
    /// The last colour announced (or first seen) per enterprise.
    colours: HashMap<EnterpriseId, RiskColour>,
    /// The last event of the log looked at.
    after: Option<Position>,
    /// The instant everything was last checked at.
    checked_at: DateTime<Utc>,
}

impl SupervisionWatcher {
    /// Creates a watcher over the application's stores, clock and channel.
    pub fn new(app: AppState) -> Self {
        let checked_at = app.now();
        SupervisionWatcher {
            rules: app.rule_sets.active(),
            app,
            deadlines: BTreeSet::new(),
            truncated: false,
            colours: HashMap::new(),
            after: None,
            checked_at,
        }
    }

    /// Runs until the projections' position channel closes. Read failures are logged and
    /// retried; they never stop the service.
    pub async fn run(mut self) {
        // It reads the compliance read model only, so it follows that projection alone: a
        // stalled agency projection does not stop the supervision notifications.
        let mut projected = self
            .app
            .projections
            .applied_of(anquan_projections::ComplianceProjection::NAME)
            .unwrap_or_else(|| self.app.projected.clone());
        let mut promotions = self.app.rule_sets.subscribe();
        self.rules = Arc::clone(&promotions.borrow_and_update().1);
        self.after = *projected.borrow_and_update();
        self.checked_at = self.app.now();
        while let Err(error) = self.load_deadlines().await {
            tracing::warn!(error = %error_chain(&error), "supervision watcher cannot load deadlines, retrying");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        tracing::info!(deadlines = self.deadlines.len(), "supervision watcher started");
        loop {
            let pause = self.pause();
            tokio::select! {
                changed = projected.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(pause) => {}
                promoted = promotions.changed() => {
                    // The registry lives in `self.app`: its sender cannot be gone.
                    if promoted.is_err() {
                        return;
                    }
                    let rules = Arc::clone(&promotions.borrow_and_update().1);
                    self.switch_rules(rules).await;
                    continue;
                }
            }
            let applied = *projected.borrow_and_update();
            if self.catching_up(applied) {
                continue;
            }
            if let Err(error) = self.tick(applied).await {
                tracing::warn!(error = %error, "supervision watcher tick failed, retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// Whether the projections are still far behind the head of the log.
    fn catching_up(&self, applied: Option<Position>) -> bool {
        projections_catching_up(&self.app, applied)
    }

    /// How long to sleep: until the next deadline has passed, at most `CLOCK_POLL`.
    fn pause(&self) -> Duration {
        let Some((deadline, _, _)) = self.deadlines.first() else {
            return CLOCK_POLL;
        };
        let until = (*deadline - self.app.now()).to_std().unwrap_or(Duration::ZERO);
        (until + Duration::from_millis(1)).min(CLOCK_POLL)
    }

    async fn load_deadlines(&mut self) -> Result<(), anquan_projections::QueryError> {
        let open =
            read_model::open_deadlines(self.app.read_models.as_ref(), self.checked_at, WATCHED_DEADLINES_MAX).await?;
        self.truncated = open.len() >= WATCHED_DEADLINES_MAX;
        self.deadlines.extend(
            open.into_iter()
                .map(|open| (open.deadline, open.enterprise_id, open.hazard_id)),
        );
        Ok(())
    }

    /// Handles the events applied since the last tick and the deadlines passed since then.
    ///
    /// Files are read one at a time and dropped once looked at: a tick may span many
    /// enterprises (after a catch-up, every one), and holding all their files at once is what
    /// made the watcher's memory grow with the city. What is announced is the same as looking
    /// at them together: overdue hazards first, then colour changes in enterprise order.
    async fn tick(&mut self, applied: Option<Position>) -> Result<(), String> {
        let _pass = PassTimer::start(metrics::histogram!(SUPERVISION_WATCHER_PASS_DURATION_SECONDS));
        let now = self.app.now();
        let previous = self.checked_at;
        // Refresh the deadlines of changed enterprises before looking at passed ones, so a
        // deadline set and passed within one tick still fires.
        let mut colours: BTreeMap<EnterpriseId, Option<ColourChanged>> = BTreeMap::new();
        match self.applied_enterprises(applied).await? {
            Touched::These(touched) => {
                for (enterprise_id, first_decided) in touched {
                    // An enterprise not seen before is compared with its colour before these
                    // events, not at the last check: the read models deliver an event after it
                    // was decided (on a follower, after the leader's checkpoint), so a check
                    // may fall between, and the enterprise would already look as it does now.
                    let before = previous.min(just_before(first_decided));
                    let file = self.file(enterprise_id).await?;
                    let change = file.map(|file| self.look_at(enterprise_id, &file, before, now));
                    colours.insert(enterprise_id, change.flatten());
                }
            }
            Touched::Every => {
                let mut cursor = String::new();
                loop {
                    let files = read_model::files_after(self.app.read_models.as_ref(), "", &cursor, FILES_PER_ROUND)
                        .await
                        .map_err(|error| error_chain(&error))?;
                    let count = files.len();
                    for (enterprise_id, file) in files {
                        cursor = enterprise_id.to_string();
                        let change = self.look_at(enterprise_id, &file, previous, now);
                        colours.insert(enterprise_id, change);
                    }
                    if count < FILES_PER_ROUND {
                        break;
                    }
                }
            }
        }
        let mut passed = Vec::new();
        while let Some(&(deadline, enterprise_id, hazard_id)) = self.deadlines.first() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop_first();
            passed.push((deadline, enterprise_id, hazard_id));
        }
        // Passed deadlines are few (they pass one by one as time goes): their enterprises'
        // files are read again, together.
        let mut files: BTreeMap<EnterpriseId, Option<EnterpriseFile>> = BTreeMap::new();
        for (deadline, enterprise_id, hazard_id) in passed {
            if let std::collections::btree_map::Entry::Vacant(entry) = files.entry(enterprise_id) {
                entry.insert(self.file(enterprise_id).await?);
            }
            let Some(Some(file)) = files.get(&enterprise_id) else {
                continue;
            };
            self.announce_overdue(file, hazard_id, deadline, now);
        }
        for (enterprise_id, file) in files {
            if let (std::collections::btree_map::Entry::Vacant(entry), Some(file)) =
                (colours.entry(enterprise_id), file)
            {
                entry.insert(self.colour_change(&file, previous, now));
            }
        }
        for change in colours.into_values().flatten() {
            self.app.supervision.send(SupervisionEvent::ColourChanged(change));
        }
        self.checked_at = now;
        if self.deadlines.is_empty() && self.truncated {
            self.load_deadlines().await.map_err(|error| error_chain(&error))?;
        }
        Ok(())
    }

    /// Watches an enterprise's open hazards and returns its colour change, if any.
    fn look_at(
        &mut self,
        enterprise_id: EnterpriseId,
        file: &EnterpriseFile,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<ColourChanged> {
        self.watch_hazards(enterprise_id, file);
        self.colour_change(file, before, now)
    }

    /// The enterprises with events in the log after `self.after` up to `applied`, or every
    /// enterprise once they are more than [`TOUCHED_MAX`] (the rest of the span is not read).
    async fn applied_enterprises(&mut self, applied: Option<Position>) -> Result<Touched, String> {
        let mut enterprises: BTreeMap<EnterpriseId, DateTime<Utc>> = BTreeMap::new();
        let Some(applied) = applied else {
            return Ok(Touched::These(enterprises));
        };
        while self.after.is_none_or(|after| after < applied) {
            let page = self
                .app
                .event_store
                .read_all(self.after, LOG_PAGE)
                .await
                .map_err(|error| error_chain(&error))?;
            let Some(last) = page.last() else {
                break;
            };
            let last = last.position;
            for event in page.iter().filter(|event| event.position <= applied) {
                if let Some(id) = event.stream_id.as_str().strip_prefix("enterprise-")
                    && let Ok(enterprise_id) = id.parse()
                {
                    let decided = event.metadata.occurred_at;
                    enterprises
                        .entry(enterprise_id)
                        .and_modify(|first| *first = (*first).min(decided))
                        .or_insert(decided);
                }
            }
            self.after = Some(last.min(applied));
            if enterprises.len() > TOUCHED_MAX {
                self.after = Some(applied);
                return Ok(Touched::Every);
            }
            if last >= applied {
                break;
            }
        }
        Ok(Touched::These(enterprises))
    }

    async fn file(&self, enterprise_id: EnterpriseId) -> Result<Option<EnterpriseFile>, String> {
        read_model::enterprise_file(self.app.read_models.as_ref(), enterprise_id)
            .await
            .map_err(|error| error_chain(&error))
    }

    /// Replaces the enterprise's watched deadlines by those of its hazards open now and not
    /// passed before the last check.
    fn watch_hazards(&mut self, enterprise_id: EnterpriseId, file: &EnterpriseFile) {
        self.deadlines.retain(|(_, watched, _)| *watched != enterprise_id);
        let now = self.app.now().max(self.checked_at);
        for hazard in file.hazards.values() {
            let deadline = hazard.deadline();
            if hazard.closed_at(now).is_none() && deadline >= self.checked_at {
                self.deadlines.insert((deadline, enterprise_id, hazard.hazard_id));
            }
        }
    }

    fn announce_overdue(
        &self,
        file: &EnterpriseFile,
        hazard_id: HazardId,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let (Some(registration), Some(hazard)) = (&file.registration, file.hazards.get(&hazard_id)) else {
            return;
        };
        // Closed or extended meanwhile: nothing to tell.
        if !hazard.overdue_at(now) || hazard.deadline_at(now) != deadline {
            return;
        }
        tracing::info!(hazard.id = %hazard_id, enterprise.id = %registration.enterprise_id, "hazard became overdue");
        self.app
            .supervision
            .send(SupervisionEvent::HazardOverdue(HazardOverdue {
                enterprise_id: registration.enterprise_id,
                enterprise_name: registration.name.clone(),
                town: registration.town.clone(),
                hazard_id,
                level: hazard.level,
                government: hazard.is_government(),
                deadline,
                noticed_at: now,
            }));
    }

    /// Switches to a promoted rule set: re-assesses every enterprise's colour now with it, and
    /// announces those that differ from the last known one (for an enterprise not seen before,
    /// its colour now under the rules that were live). Files are read a round at a time; a
    /// failed read is retried from where it stopped.
    async fn switch_rules(&mut self, rules: Arc<RuleSet>) {
        if rules.version == self.rules.version {
            return;
        }
        let before = std::mem::replace(&mut self.rules, rules);
        let now = self.app.now();
        let mut cursor = String::new();
        let mut changed = 0usize;
        loop {
            let files = match read_model::files_after(self.app.read_models.as_ref(), "", &cursor, FILES_PER_ROUND).await
            {
                Ok(files) => files,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "supervision watcher cannot re-assess colours, retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
            };
            let count = files.len();
            for (enterprise_id, file) in files {
                cursor = enterprise_id.to_string();
                let known = self.colours.get(&enterprise_id).copied();
                let last = known.or_else(|| risk::assess(&file, &before, now).map(|earlier| earlier.colour));
                let Some(change) = self.colour_change_from(&file, last, now) else {
                    if known.is_none() {
                        // Unchanged and never announced: no need to remember it.
                        self.colours.remove(&enterprise_id);
                    }
                    continue;
                };
                changed += 1;
                self.app.supervision.send(SupervisionEvent::ColourChanged(change));
            }
            if count < FILES_PER_ROUND {
                break;
            }
        }
        tracing::info!(rule_set.version = %self.rules.version, changed, "colours re-assessed with the promoted rule set");
    }

    /// The colour change to announce at `now`, if the colour differs from the last known one
    /// (for an enterprise not seen before, its colour at `before`: the last check, or just
    /// before the first of its events this tick looks at if that is earlier); remembers the
    /// colour.
    fn colour_change(
        &mut self,
        file: &EnterpriseFile,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<ColourChanged> {
        let registration = file.registration.as_ref()?;
        let last = match self.colours.get(&registration.enterprise_id) {
            Some(colour) => Some(*colour),
            None => risk::assess(file, &self.rules, before).map(|earlier| earlier.colour),
        };
        self.colour_change_from(file, last, now)
    }

    /// The colour change to announce at `now` if the colour differs from `last`; remembers
    /// the colour.
    fn colour_change_from(
        &mut self,
        file: &EnterpriseFile,
        last: Option<RiskColour>,
        now: DateTime<Utc>,
    ) -> Option<ColourChanged> {
        let registration = file.registration.as_ref()?;
        let assessment = risk::assess(file, &self.rules, now)?;
        let enterprise_id = registration.enterprise_id;
        self.colours.insert(enterprise_id, assessment.colour);
        if last == Some(assessment.colour) {
            return None;
        }
        Some(ColourChanged {
            enterprise_id,
            enterprise_name: registration.name.clone(),
            town: registration.town.clone(),
            previous: last,
            colour: assessment.colour,
            rule: assessment.rule,
            rule_set: self.rules.version.clone(),
            at: now,
        })
    }
}
