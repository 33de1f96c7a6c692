//! Queries behind the public QR page: an enterprise found by the digest of its current public
//! token, and when its token was last rotated.

use anquan_domain::enterprise::EnterpriseFile;
use anquan_domain::{EnterpriseId, Instant};
use anquan_event_store::{ReadModelStore, SqlValue};

use super::query::enterprise_file;
use crate::error::QueryError;

const ENTERPRISE_BY_DIGEST: &str = "SELECT enterprise_id FROM public_tokens WHERE token_digest = $1";
const ROTATED_AT: &str = "SELECT rotated_at FROM public_tokens WHERE enterprise_id = $1";

/// Rebuilds the file of the enterprise whose current public token has this digest (lower-case
/// hex SHA-256); `None` for an unknown or rotated-away token.
pub async fn enterprise_by_public_token_digest(
    store: &dyn ReadModelStore,
    token_digest: &str,
) -> Result<Option<EnterpriseFile>, QueryError> {
    let rows = store
        .query(ENTERPRISE_BY_DIGEST, &[SqlValue::Text(token_digest.to_owned())])
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let enterprise_id: EnterpriseId = super::query::parse_id(row, 0, "public_tokens")?;
    enterprise_file(store, enterprise_id).await
}

/// When the enterprise's current public token was issued; `None` if it has none.
pub async fn public_token_rotated_at(
    store: &dyn ReadModelStore,
    enterprise_id: EnterpriseId,
) -> Result<Option<Instant>, QueryError> {
    let rows = store
        .query(ROTATED_AT, &[SqlValue::Text(enterprise_id.to_string())])
        .await?;
    rows.first().map(|row| row.timestamp(0)).transpose().map_err(Into::into)
}
