//! The safety QR code's GraphQL side: `rotatePublicToken` issues or replaces an enterprise's
//! public token and returns it once; `Enterprise.publicPage` tells those who may read the
//! enterprise when its current token was issued. The token itself is never stored, so no query
//! can return it again: whoever holds the QR code can reprint it at `/qr/{token}/poster`.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use anquan_domain::enterprise::{EnterpriseCommand, EnterpriseFile, RotatePublicToken};
use anquan_projections::compliance as read_model;

use crate::error::ApiError;
use crate::graphql::app;
use crate::graphql::args::parse_enterprise_id;
use crate::graphql::command::{CommandArgs, ReadBack, execute_command};
use crate::graphql::scalars::Int64;
use crate::public_page::new_token;

/// Mutations of the public QR page; part of the mutation root.
#[derive(Default)]
pub struct PublicPageMutation;

/// A newly issued public token. It is shown once: only its SHA-256 is stored.
#[derive(SimpleObject)]
pub struct PublicTokenPayload {
    /// The token (32 base32 characters, 160 random bits).
    pub token: String,
    /// The public page the QR code points at (`<base>/p/<token>`).
    pub url: String,
    /// The printable A4 poster with the QR code.
    pub poster_url: String,
    /// The QR code as SVG.
    pub qr_svg_url: String,
    /// The QR code as PNG.
    pub qr_png_url: String,
    /// When it was issued; the previous token stopped working at this instant.
    pub rotated_at: DateTime<Utc>,
    /// The global position of the rotation event (its commit part).
    pub position: Option<Int64>,
    /// The prepare part of that position where it differs from the commit part (a KurrentDB
    /// store); null on SQLite and PostgreSQL.
    pub prepare_position: Option<Int64>,
}

/// Whether an enterprise has a public page, for those who may read the enterprise.
#[derive(SimpleObject)]
pub struct PublicPageInfo {
    /// When the current token was issued. The URL is returned only by `rotatePublicToken`.
    pub rotated_at: DateTime<Utc>,
}

#[Object]
impl PublicPageMutation {
    /// Issues the enterprise's public QR token, or replaces it: the old QR code stops working
    /// at once (the enterprise itself or the city admin). Returns the new token and URLs once;
    /// only the token's SHA-256 is stored. Not idempotent: every call draws a new token.
    async fn rotate_public_token(&self, ctx: &Context<'_>, enterprise_id: ID) -> Result<PublicTokenPayload, ApiError> {
        let app = app(ctx)?;
        let token = new_token()?;
        let command = EnterpriseCommand::RotatePublicToken(RotatePublicToken {
            enterprise_id: parse_enterprise_id(&enterprise_id)?,
            token: token.clone(),
        });
        // The token is shown only here, so a stalled read model must not swallow it: the
        // payload is the command's own, and the page answers once the read model resumes.
        let executed = execute_command::<EnterpriseFile>(
            ctx,
            &command,
            CommandArgs::default(),
            &[],
            ReadBack::BestEffort(anquan_projections::ComplianceProjection::NAME),
        )
        .await?;
        let settings = &app.public_page;
        let path = token.as_str();
        Ok(PublicTokenPayload {
            url: settings.page_url(&token),
            poster_url: settings.url(&format!("/qr/{path}/poster")),
            qr_svg_url: settings.url(&format!("/qr/{path}.svg")),
            qr_png_url: settings.url(&format!("/qr/{path}.png")),
            token: path.to_owned(),
            rotated_at: executed.decided_at,
            position: executed.recorded().position,
            prepare_position: executed.recorded().prepare_position,
        })
    }
}

/// `Enterprise.publicPage`: for callers who may read the enterprise, when its token was issued.
pub(crate) async fn page_info(ctx: &Context<'_>, file: &EnterpriseFile) -> Result<Option<PublicPageInfo>, ApiError> {
    let app = app(ctx)?;
    let Some(registration) = file.registration.as_ref() else {
        return Ok(None);
    };
    let allowed = ctx
        .data_opt::<anquan_domain::Actor>()
        .is_some_and(|actor| actor.may_read_enterprise(registration.enterprise_id, &registration.town));
    if !allowed {
        return Ok(None);
    }
    let rotated_at =
        read_model::public_token_rotated_at(app.compliance_read_models()?, registration.enterprise_id).await?;
    Ok(rotated_at.map(|rotated_at| PublicPageInfo { rotated_at }))
}
