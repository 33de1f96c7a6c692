//! Files taken by mutations. The order is the security contract: every upload of a request is
//! read and checked (how many, how large, not empty) before anything is stored; the command
//! naming them is authorised and decided against its stream (`execute::prepare`) before they
//! are stored; the uploading enterprise's or agency's quota is checked before they are stored.
//! So a refused caller, a refused command or a request over a limit leaves no bytes behind.

use async_graphql::{Context, Upload};

use anquan_domain::{Actor, Aggregate, Role};
use anquan_event_store::execute::{CommandEnvelope, DecisionContext, Prepared, prepare};

use crate::AppState;
use crate::blobs::{BlobOwner, StagedFile};
use crate::error::ApiError;

/// Reads a request's uploads for one argument and checks them, storing nothing: at most
/// `max_files` files, each non-empty and within the largest upload.
pub(crate) fn stage(
    ctx: &Context<'_>,
    app: &AppState,
    uploads: &[Upload],
    argument: &'static str,
    max_files: usize,
) -> Result<Vec<StagedFile>, ApiError> {
    if uploads.len() > max_files {
        return Err(ApiError::Refused {
            code: "TOO_MANY_FILES",
            message: format!("一次最多上传 {max_files} 个文件，本次有 {} 个", uploads.len()),
            details: vec![
                ("field", argument.into()),
                ("count", uploads.len().into()),
                ("max", max_files.into()),
            ],
        });
    }
    let mut staged = Vec::with_capacity(uploads.len());
    for upload in uploads {
        let upload = upload.value(ctx).map_err(|error| ApiError::Refused {
            code: "BAD_INPUT",
            message: "上传的文件无法读取，请重新上传".to_owned(),
            details: vec![("field", argument.into()), ("reason", error.to_string().into())],
        })?;
        let size = upload.content.len() as u64;
        if size > app.upload_bytes_max {
            return Err(ApiError::FileTooLarge {
                size,
                max: app.upload_bytes_max,
            });
        }
        if size == 0 {
            return Err(ApiError::Refused {
                code: "EMPTY_FILE",
                message: format!("文件“{}”是空的，请重新选择文件", upload.filename.escape_debug()),
                details: vec![("field", argument.into()), ("fileName", upload.filename.clone().into())],
            });
        }
        let media_type = upload.content_type.as_deref().unwrap_or("application/octet-stream");
        let file = StagedFile::new(upload.content.clone(), media_type, &upload.filename);
        if file.looks_sealed() {
            return Err(ApiError::Refused {
                code: "BAD_INPUT",
                message: format!(
                    "文件“{}”的格式与本系统加密保存的个人文件相同，不能作为普通文件上传",
                    upload.filename.escape_debug()
                ),
                details: vec![("field", argument.into()), ("fileName", upload.filename.clone().into())],
            });
        }
        staged.push(file);
    }
    Ok(staged)
}

/// Whose quota a caller's uploads count against: an enterprise's or an agency's own staff.
/// Government staff (the city, towns, inspectors) are accountable users and have no quota.
pub(crate) fn owner_of(actor: &Actor) -> Option<BlobOwner> {
    match &actor.role {
        Role::Enterprise { enterprise_id } => Some(BlobOwner::Enterprise(*enterprise_id)),
        Role::Agency { agency_id } => Some(BlobOwner::Agency(*agency_id)),
        _ => None,
    }
}

/// Checks the caller's quota and stores the files. Only after the caller is authorised.
pub(crate) async fn store_checked(app: &AppState, actor: &Actor, files: &[StagedFile]) -> Result<(), ApiError> {
    if files.is_empty() {
        return Ok(());
    }
    let owner = owner_of(actor);
    if let Some(owner) = owner
        && let Some(quota) = app.blobs.quota_of(owner)
    {
        let (used, known) = app
            .blobs
            .usage(owner)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        let mut adding = 0u64;
        let mut counted = std::collections::HashSet::new();
        for staged in files {
            if !known.contains(&staged.file.sha256) && counted.insert(staged.file.sha256.as_str()) {
                adding = adding.saturating_add(staged.file.size_bytes);
            }
        }
        if adding > 0 && used.saturating_add(adding) > quota {
            return Err(ApiError::QuotaExceeded { used, adding, quota });
        }
    }
    app.blobs
        .store(files, owner)
        .await
        .map_err(|error| ApiError::internal(&error))
}

/// Decides the command as `execute` would, without appending, and stores the files only when
/// it would append them: a refusal (`FORBIDDEN` or any rule) stores nothing, and a retry of a
/// command id already answered stores nothing again (the first call stored them).
pub(crate) async fn store_for_command<A: Aggregate>(
    app: &AppState,
    command: &A::Command,
    context: &DecisionContext<'_>,
    envelope: &CommandEnvelope,
    files: &[StagedFile],
) -> Result<(), ApiError> {
    if files.is_empty() {
        return Ok(());
    }
    match prepare::<A>(app.event_store.as_ref(), command, context, envelope).await? {
        Prepared::Repeated => Ok(()),
        Prepared::Fresh(events) if events.is_empty() => Ok(()),
        Prepared::Fresh(_) => store_checked(app, context.actor, files).await,
    }
}
