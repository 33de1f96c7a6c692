//! Bearer-token identity: HS256 JWTs carry the user, the role and its scope (town, enterprise).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use anquan_domain::{Actor, AgencyId, EnterpriseId, Role, Town, UserId};

/// Shortest accepted signing secret, in bytes.
pub const SECRET_BYTES_MIN: usize = 32;

/// The claims of an anquan token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub town: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_id: Option<String>,
    pub exp: i64,
    pub iat: i64,
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the signing secret must be at least {SECRET_BYTES_MIN} bytes")]
    WeakSecret,
    #[error("the bearer token is invalid: {0}")]
    InvalidToken(String),
    #[error("the token's role {role:?} needs {needs}")]
    BadScope { role: String, needs: &'static str },
    #[error(
        "unknown role {0:?}; roles are city_admin, town_officer, enterprise, city_inspector, town_inspector, agency, \
         auditor, analyst"
    )]
    UnknownRole(String),
}

impl AuthError {
    /// Returns why a token was refused, as a person reads it; `Display` keeps the verifier's
    /// own words for logs, the CLI and `extensions.reason`.
    pub fn sentence(&self) -> String {
        match self {
            AuthError::WeakSecret => "服务的签名密钥过短，请联系系统运维人员".to_owned(),
            AuthError::InvalidToken(_) => "登录凭据无效或已过期，请重新登录".to_owned(),
            AuthError::BadScope { .. } => "登录凭据中的角色缺少其管辖范围，请联系管理员重新签发".to_owned(),
            AuthError::UnknownRole(role) => {
                format!("登录凭据中的角色“{}”不存在，请联系管理员重新签发", role.escape_debug())
            }
        }
    }
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenAuthority {
    /// Builds the authority from a secret of at least [`SECRET_BYTES_MIN`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(AuthError::WeakSecret);
        }
        let encoding = EncodingKey::from_secret(secret).map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        let decoding = DecodingKey::from_secret(secret).map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        Ok(Self { encoding, decoding })
    }

    /// Mints a token for an actor, valid until `expires_at`.
    pub fn mint(
        &self,
        actor: &Actor,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let (mut town, mut enterprise_id, mut agency_id) = (None, None, None);
        match &actor.role {
            Role::CityAdmin | Role::CityInspector | Role::Analyst | Role::Auditor { town: None } => {}
            Role::TownOfficer { town: own } | Role::TownInspector { town: own } | Role::Auditor { town: Some(own) } => {
                town = Some(own.to_string())
            }
            Role::Enterprise { enterprise_id: own } => enterprise_id = Some(own.to_string()),
            Role::Agency { agency_id: own } => agency_id = Some(own.to_string()),
        }
        let claims = Claims {
            sub: actor.user_id.to_string(),
            role: actor.role.name().to_owned(),
            town,
            enterprise_id,
            agency_id,
            exp: expires_at.timestamp(),
            iat: issued_at.timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))
    }

    /// Verifies a token (signature, algorithm, expiry) and returns its actor.
    pub fn verify(&self, token: &str) -> Result<Actor, AuthError> {
        self.verify_until(token).map(|(actor, _)| actor)
    }

    /// Verifies a token and returns its actor and the instant it expires (`exp`), for a
    /// connection that outlives one request (a subscription) and must end when it does.
    pub fn verify_until(&self, token: &str) -> Result<(Actor, DateTime<Utc>), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        let expires_at = DateTime::<Utc>::from_timestamp(data.claims.exp, 0)
            .ok_or_else(|| AuthError::InvalidToken("the token's expiry is out of range".to_owned()))?;
        Ok((actor_from_claims(&data.claims)?, expires_at))
    }
}

/// Turns claims into an actor, checking the scope each role needs.
pub fn actor_from_claims(claims: &Claims) -> Result<Actor, AuthError> {
    let user_id = UserId::parse(&claims.sub).map_err(|error| AuthError::InvalidToken(error.to_string()))?;
    let bad_scope = |needs| AuthError::BadScope {
        role: claims.role.clone(),
        needs,
    };
    let role = match claims.role.as_str() {
        "city_admin" => Role::CityAdmin,
        "city_inspector" => Role::CityInspector,
        "town_inspector" => {
            let town = claims.town.as_deref().ok_or_else(|| bad_scope("a town"))?;
            Role::TownInspector {
                town: Town::parse(town).map_err(|_| bad_scope("a valid town"))?,
            }
        }
        "town_officer" => {
            let town = claims.town.as_deref().ok_or_else(|| bad_scope("a town"))?;
            Role::TownOfficer {
                town: Town::parse(town).map_err(|_| bad_scope("a valid town"))?,
            }
        }
        "enterprise" => {
            let id = claims
                .enterprise_id
                .as_deref()
                .ok_or_else(|| bad_scope("an enterprise_id"))?;
            let enterprise_id: EnterpriseId = id.parse().map_err(|_| bad_scope("a valid enterprise_id"))?;
            Role::Enterprise { enterprise_id }
        }
        "agency" => {
            let id = claims.agency_id.as_deref().ok_or_else(|| bad_scope("an agency_id"))?;
            let agency_id: AgencyId = id.parse().map_err(|_| bad_scope("a valid agency_id"))?;
            Role::Agency { agency_id }
        }
        "auditor" => Role::Auditor {
            town: claims
                .town
                .as_deref()
                .map(|town| Town::parse(town).map_err(|_| bad_scope("a valid town, or none for the whole city")))
                .transpose()?,
        },
        "analyst" if claims.town.is_some() || claims.enterprise_id.is_some() || claims.agency_id.is_some() => {
            return Err(bad_scope("no town, enterprise or agency (analysts read city-wide)"));
        }
        "analyst" => Role::Analyst,
        other => return Err(AuthError::UnknownRole(other.to_owned())),
    };
    Ok(Actor { user_id, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_to_the_same_actor() {
        let authority = TokenAuthority::new(&[7u8; 32]).unwrap();
        let actor = Actor {
            user_id: UserId::parse("officer-1").unwrap(),
            role: Role::TownOfficer {
                town: Town::parse("许村").unwrap(),
            },
        };
        let now = Utc::now();
        let token = authority.mint(&actor, now, now + chrono::Duration::hours(1)).unwrap();
        assert_eq!(authority.verify(&token).unwrap(), actor);
    }

    #[test]
    fn auditor_and_analyst_tokens_verify_to_their_roles() {
        let authority = TokenAuthority::new(&[7u8; 32]).unwrap();
        let now = Utc::now();
        for role in [
            Role::Auditor { town: None },
            Role::Auditor {
                town: Some(Town::parse("许村").unwrap()),
            },
            Role::Analyst,
        ] {
            let actor = Actor {
                user_id: UserId::parse("reader").unwrap(),
                role,
            };
            let token = authority.mint(&actor, now, now + chrono::Duration::hours(1)).unwrap();
            assert_eq!(authority.verify(&token).unwrap(), actor);
        }
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let authority = TokenAuthority::new(&[7u8; 32]).unwrap();
        let other = TokenAuthority::new(&[8u8; 32]).unwrap();
        let actor = Actor {
            user_id: UserId::parse("admin").unwrap(),
            role: Role::CityAdmin,
        };
        let now = Utc::now();
        let expired = authority
            .mint(
                &actor,
                now - chrono::Duration::hours(2),
                now - chrono::Duration::hours(1),
            )
            .unwrap();
        assert!(authority.verify(&expired).is_err());
        let foreign = other.mint(&actor, now, now + chrono::Duration::hours(1)).unwrap();
        assert!(authority.verify(&foreign).is_err());
        assert!(TokenAuthority::new(b"short").is_err());
    }
}
