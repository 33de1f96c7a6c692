//! The public side of the safety QR code (安全码): `GET /p/{token}` (a small, server-rendered,
//! mobile-first page in Chinese), `GET /qr/{token}.svg` and `.png` (the QR code of the page's
//! URL) and `GET /qr/{token}/poster` (an A4 poster to print and post in the workshop).
//!
//! A token is 160 bits from the operating system's CSPRNG, base32 (32 characters); the event
//! log and the read models keep only its SHA-256, and a page is found by the digest of the token
//! asked for. An unknown or rotated-away token gets 404. The page shows nothing private: no
//! personal names, phone numbers, certificate numbers or documents.

pub mod qr;
mod render;

use std::collections::BTreeMap;
use std::time::Instant as Stopwatch;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use anquan_domain::compliance::{IndicatorState, Veto, evaluate};
use anquan_domain::credit::Grade;
use anquan_domain::enterprise::hazard::HazardState;
use anquan_domain::enterprise::{EnterpriseFile, PublicToken};
use anquan_domain::rules::RiskColour;
use anquan_projections::{agency, compliance};

use crate::AppState;
use crate::error::ApiError;
use qr::QrMatrix;

/// What shows on every page when the town has no entry in `town_contacts`.
pub const DEFAULT_CONTACT: &str = "如发现安全隐患或有安全问题，请联系企业所在镇（街道）安全生产监管部门。";

/// What the public pages need from the configuration.
#[derive(Debug, Clone)]
pub struct PublicPageSettings {
    /// The URL the QR codes point at, without a trailing slash (`https://anquan.example.cn`).
    pub base_url: String,
    /// Town → how to reach its safety office (office, phone), shown on the page.
    pub town_contacts: BTreeMap<String, String>,
    /// Shown for a town without an entry.
    pub default_contact: String,
}

impl PublicPageSettings {
    /// Settings with no town contacts.
    pub fn new(base_url: &str) -> Self {
        PublicPageSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            town_contacts: BTreeMap::new(),
            default_contact: DEFAULT_CONTACT.to_owned(),
        }
    }

    /// The public page's URL for a token.
    pub fn page_url(&self, token: &PublicToken) -> String {
        format!("{}/p/{}", self.base_url, token.as_str())
    }

    /// The path-absolute URL of something under the base URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// How to contact the town's office.
    pub fn contact(&self, town: &str) -> &str {
        self.town_contacts
            .get(town)
            .map_or(&self.default_contact, String::as_str)
    }
}

/// Bytes of randomness in a token: 160 bits.
const TOKEN_BYTES: usize = 20;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Draws a new token from the operating system's CSPRNG: 160 bits in 32 base32 characters.
pub fn new_token() -> Result<PublicToken, ApiError> {
    let mut bytes = [0_u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| ApiError::Internal(format!("no randomness: {error}")))?;
    let mut text = String::with_capacity(TOKEN_BYTES * 8 / 5);
    let (mut buffer, mut bits) = (0_u32, 0_u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    PublicToken::parse(&text).ok_or_else(|| ApiError::Internal("a drawn token failed its own check".into()))
}

/// The public routes, with their state applied.
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState) -> Router<S> {
    Router::new()
        .route("/p/{token}", get(page))
        .route("/qr/{file}", get(qr_code))
        .route("/qr/{token}/poster", get(poster))
        .with_state(app)
}

/// Everything the page shows, read from the read models and evaluated at `at`.
#[derive(Debug, Clone)]
pub(crate) struct PageData {
    pub name: String,
    pub town: String,
    pub industry: String,
    pub implemented: u32,
    pub not_implemented: u32,
    pub not_yet_due: u32,
    pub not_applicable: u32,
    pub indicator_total: usize,
    pub responsibility_implemented: bool,
    /// (code, Chinese name) of the indicators not implemented.
    pub missing: Vec<(String, String)>,
    pub vetoes: Vec<Veto>,
    pub colour: Option<RiskColour>,
    /// The closure it is under (label such as 已注销 or 停业, effective since); `None` while active.
    pub closed: Option<(&'static str, DateTime<Utc>)>,
    pub last_inspection: Option<DateTime<Utc>>,
    pub open_hazards: usize,
    pub overdue_hazards: usize,
    /// (name, grade) of the agency with a contract in force.
    pub agency: Option<(String, Option<Grade>)>,
    pub contact: String,
    pub at: DateTime<Utc>,
    pub time_zone: chrono::FixedOffset,
}

/// Looks up the enterprise of a token; `None` for a malformed, unknown or rotated token.
async fn enterprise_of(app: &AppState, token: &str) -> Result<Option<(PublicToken, EnterpriseFile)>, ApiError> {
    let Some(token) = PublicToken::parse(token) else {
        return Ok(None);
    };
    let file = compliance::enterprise_by_public_token_digest(app.compliance_read_models()?, &token.digest()).await?;
    Ok(file.map(|file| (token, file)))
}

/// Reads and evaluates what the page of this file shows at `at`.
async fn page_data(app: &AppState, file: &EnterpriseFile, at: DateTime<Utc>) -> Result<Option<PageData>, ApiError> {
    let rules = &app.rules;
    let (Some(registration), Some(report)) = (file.registration.as_ref(), evaluate(file, rules, at)) else {
        return Ok(None);
    };
    let missing = report
        .indicators
        .iter()
        .filter(|status| status.state == IndicatorState::NotImplemented)
        .map(|status| {
            let name = rules.indicator(&status.code).map(|rule| rule.name_zh.clone());
            (status.code.to_string(), name.unwrap_or_default())
        })
        .collect();
    // A closed enterprise is not assessed: its page says since when it is closed, no colour.
    let closed = file
        .closure_at(at)
        .map(|closure| (closure.kind.label(), closure.effective_at));
    let colour = closed
        .is_none()
        .then(|| anquan_domain::risk::assess_with(file, rules, at, &report).colour);
    let last_inspection = file
        .inspections
        .values()
        .filter(|inspection| inspection.recorded_at <= at && inspection.inspected_at <= at)
        .map(|inspection| inspection.inspected_at)
        .max();
    let known = || file.hazards.values().filter(|hazard| hazard.known_at(at));
    let open_hazards = known()
        .filter(|hazard| hazard.state_at(at) != HazardState::Closed)
        .count();
    let overdue_hazards = known().filter(|hazard| hazard.overdue_at(at)).count();
    let agency = agency::serving_agency(app.agency_read_models()?, registration.enterprise_id, at)
        .await?
        .map(|serving| (serving.name, serving.grade.map(|(_, grade)| grade)));
    Ok(Some(PageData {
        name: registration.name.clone(),
        town: registration.town.to_string(),
        industry: registration.industry.clone(),
        implemented: report.implemented,
        not_implemented: report.not_implemented,
        not_yet_due: report.not_yet_due,
        not_applicable: report.not_applicable,
        indicator_total: report.indicators.len(),
        responsibility_implemented: report.responsibility_implemented,
        missing,
        vetoes: report.vetoes.clone(),
        colour,
        closed,
        last_inspection,
        open_hazards,
        overdue_hazards,
        agency,
        contact: app.public_page.contact(registration.town.as_str()).to_owned(),
        at,
        time_zone: rules.time_zone,
    }))
}

async fn page(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    let started = Stopwatch::now();
    let at = app.now();
    let data = match enterprise_of(&app, &token).await {
        Ok(Some((_, file))) => page_data(&app, &file, at).await,
        Ok(None) => Ok(None),
        Err(error) => Err(error),
    };
    let response = match data {
        Ok(Some(data)) => html(StatusCode::OK, render::page(&data)),
        Ok(None) => not_found(),
        Err(error) => failed(&error),
    };
    timed(response, started)
}

async fn qr_code(State(app): State<AppState>, Path(file): Path<String>) -> Response {
    let started = Stopwatch::now();
    let (token, svg) = if let Some(token) = file.strip_suffix(".svg") {
        (token, true)
    } else if let Some(token) = file.strip_suffix(".png") {
        (token, false)
    } else {
        return not_found();
    };
    let token = match enterprise_of(&app, token).await {
        Ok(Some((token, _))) => token,
        Ok(None) => return not_found(),
        Err(error) => return failed(&error),
    };
    let matrix = match QrMatrix::encode(&app.public_page.page_url(&token)) {
        Ok(matrix) => matrix,
        Err(error) => return failed(&ApiError::Internal(format!("cannot encode the QR code: {error}"))),
    };
    let response = if svg {
        with_type(matrix.svg().into_response(), "image/svg+xml")
    } else {
        match matrix.png() {
            Ok(bytes) => with_type(bytes.into_response(), "image/png"),
            Err(error) => return failed(&ApiError::Internal(format!("cannot encode the PNG: {error}"))),
        }
    };
    timed(private(response), started)
}

async fn poster(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    let started = Stopwatch::now();
    let (token, file) = match enterprise_of(&app, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(error) => return failed(&error),
    };
    let Some(registration) = file.registration.as_ref() else {
        return not_found();
    };
    let url = app.public_page.page_url(&token);
    let matrix = match QrMatrix::encode(&url) {
        Ok(matrix) => matrix,
        Err(error) => return failed(&ApiError::Internal(format!("cannot encode the QR code: {error}"))),
    };
    let contact = app.public_page.contact(registration.town.as_str());
    let body = render::poster(&registration.name, &url, &matrix.svg(), contact);
    timed(html(StatusCode::OK, body), started)
}

fn html(status: StatusCode, body: String) -> Response {
    private(with_type((status, body).into_response(), "text/html; charset=utf-8"))
}

fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, render::not_found())
}

fn failed(error: &ApiError) -> Response {
    if let ApiError::ProjectionStalled(stalled) = error {
        // Not an answer from a read model that stopped changing: the page comes back when
        // the projection resumes.
        tracing::warn!(
            projection = %stalled.projection,
            position = ?stalled.position,
            failing_event.position = ?stalled.failing_event,
            "public page not served: a read model is stalled"
        );
        return html(StatusCode::SERVICE_UNAVAILABLE, render::failed());
    }
    tracing::error!(error = ?error, "public page failed");
    html(StatusCode::INTERNAL_SERVER_ERROR, render::failed())
}

fn with_type(mut response: Response, content_type: &'static str) -> Response {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Headers every public response carries: never cached (a rotated token must stop at once),
/// never indexed, no referrer (the URL is the token), and nothing loaded from elsewhere.
fn private(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    response
}

/// Adds `Server-Timing: app;dur=<ms>` and logs the time at debug.
fn timed(mut response: Response, started: Stopwatch) -> Response {
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(millis, status = response.status().as_u16(), "public page served");
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={millis:.2}")) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_has_160_bits_in_32_base32_characters() {
        let token = new_token().unwrap();
        assert_eq!(token.as_str().len(), 32);
        assert!(token.as_str().bytes().all(|b| BASE32.contains(&b)));
        assert_ne!(new_token().unwrap(), token);
    }
}
