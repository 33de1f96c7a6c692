//! The supervision gate's subscriptions: overdue hazards and colour changes, as they happen.

use async_graphql::{Context, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures::Stream;

use anquan_domain::{Actor, EnterpriseId, Role, Town};

use super::types::*;
use crate::AppState;
use crate::error::ApiError;
use crate::graphql::agency::types::HazardLevel;
use crate::graphql::args::scoped_town;
use crate::graphql::{actor, app};
use crate::watcher::SupervisionEvent;

// ----- subscriptions ---------------------------------------------------------------------------

/// A hazard passed its deadline without being closed.
#[derive(SimpleObject, Clone)]
pub(super) struct HazardBecameOverdue {
    /// The hazard.
    pub hazard_id: ID,
    /// Its enterprise.
    pub enterprise_id: ID,
    /// The enterprise's name.
    pub enterprise_name: String,
    /// The enterprise's town.
    pub town: String,
    /// General or major.
    pub level: HazardLevel,
    /// Found by a government inspection (its being overdue vetoes the enterprise).
    pub government: bool,
    /// The deadline that passed.
    pub deadline: DateTime<Utc>,
    /// When the service noticed.
    pub noticed_at: DateTime<Utc>,
}

/// An enterprise's colour changed.
#[derive(SimpleObject, Clone)]
pub(super) struct ColourChanged {
    /// The enterprise.
    pub enterprise_id: ID,
    /// Its name.
    pub enterprise_name: String,
    /// Its town.
    pub town: String,
    /// The colour before (none for a newly registered enterprise).
    pub previous: Option<RiskColour>,
    /// The colour now.
    pub colour: RiskColour,
    /// The rule that decided it (none for blue).
    pub rule: Option<String>,
    /// The rule set version whose rules decided it: the live one (after a promotion, the
    /// enterprises whose colour the new version changes are pushed).
    pub rule_set: String,
    /// When it changed (as noticed).
    pub at: DateTime<Utc>,
}

/// Live notifications for dashboards, over the websocket at `/graphql/ws` (pass the bearer
/// token as `{"Authorization": "Bearer …"}` in `connection_init`).
#[derive(Default)]
pub struct SubscriptionRoot;

/// Live notifications for dashboards: hazards becoming overdue, colours changing.
#[Subscription]
impl SubscriptionRoot {
    /// Hazards of a town (scoped like queries) that become overdue, as the clock passes their
    /// deadline; no event is needed.
    async fn hazard_became_overdue(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<impl Stream<Item = HazardBecameOverdue> + use<>, ApiError> {
        let (app, scope) = subscription_scope(ctx, town)?;
        Ok(notifications(app, scope, |event| match event {
            SupervisionEvent::HazardOverdue(overdue) => Some(HazardBecameOverdue {
                hazard_id: ID(overdue.hazard_id.to_string()),
                enterprise_id: ID(overdue.enterprise_id.to_string()),
                enterprise_name: overdue.enterprise_name,
                town: overdue.town.to_string(),
                level: hazard_level(overdue.level),
                government: overdue.government,
                deadline: overdue.deadline,
                noticed_at: overdue.noticed_at,
            }),
            SupervisionEvent::ColourChanged(_) => None,
        }))
    }

    /// Enterprises of a town (scoped like queries) whose four-colour risk changes, after new
    /// facts, as deadlines pass, or when a promoted rule set colours them otherwise.
    async fn colour_changed(
        &self,
        ctx: &Context<'_>,
        town: Option<String>,
    ) -> Result<impl Stream<Item = ColourChanged> + use<>, ApiError> {
        let (app, scope) = subscription_scope(ctx, town)?;
        Ok(notifications(app, scope, |event| match event {
            SupervisionEvent::ColourChanged(changed) => Some(ColourChanged {
                enterprise_id: ID(changed.enterprise_id.to_string()),
                enterprise_name: changed.enterprise_name,
                town: changed.town.to_string(),
                previous: changed.previous.map(Into::into),
                colour: changed.colour.into(),
                rule: changed.rule,
                rule_set: changed.rule_set,
                at: changed.at,
            }),
            SupervisionEvent::HazardOverdue(_) => None,
        }))
    }
}

/// What a subscriber may see.
#[derive(Clone)]
pub(crate) enum Scope {
    Town(Option<Town>),
    Enterprise(EnterpriseId),
}

impl Scope {
    fn allows(&self, event: &SupervisionEvent) -> bool {
        match self {
            Scope::Town(None) => true,
            Scope::Town(Some(town)) => event.town() == town,
            Scope::Enterprise(enterprise_id) => event.enterprise_id() == *enterprise_id,
        }
    }
}

fn subscription_scope(ctx: &Context<'_>, town: Option<String>) -> Result<(AppState, Scope), ApiError> {
    let app = app(ctx)?.clone();
    let actor: &Actor = actor(ctx)?;
    let scope = match &actor.role {
        Role::Enterprise { enterprise_id } if town.is_none() => Scope::Enterprise(*enterprise_id),
        _ => Scope::Town(scoped_town(ctx, town)?),
    };
    Ok((app, scope))
}

fn notifications<T, F>(app: AppState, scope: Scope, pick: F) -> impl Stream<Item = T> + use<T, F>
where
    T: Send + 'static,
    F: Fn(SupervisionEvent) -> Option<T> + Send + Sync + 'static,
{
    let receiver = app.supervision.subscribe();
    futures::stream::unfold((receiver, scope, pick), |(mut receiver, scope, pick)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if scope.allows(&event) => {
                    if let Some(item) = pick(event) {
                        return Some((item, (receiver, scope, pick)));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "a subscriber fell behind; notifications skipped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
