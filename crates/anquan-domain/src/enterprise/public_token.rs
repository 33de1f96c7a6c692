//! The public QR token of an enterprise (安全码): the secret part of its public page's URL.
//!
//! The API draws the token from a CSPRNG (the domain has no randomness) and passes it in
//! [`RotatePublicToken`]; the event keeps only its SHA-256 digest, so the event log and the read
//! models never hold a working token. A page is found by the digest of the token asked for.

use sha2::{Digest, Sha256};

use super::event::PublicTokenRotated;
use super::rejection::EnterpriseRejection;
use super::state::EnterpriseFile;
use crate::aggregate::DecisionContext;
use crate::event::Event;
use crate::ids::EnterpriseId;

/// Fewest characters a token has: 26 base32 characters carry 130 bits.
pub const PUBLIC_TOKEN_CHARS_MIN: usize = 26;
/// Most characters a token has.
pub const PUBLIC_TOKEN_CHARS_MAX: usize = 64;

/// A public token: 26 to 64 characters of `A-Z`, `a-z`, `0-9`, `-` and `_` (base32 or
/// base64url without padding). Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicToken(String);

impl PublicToken {
    /// Checks the token's alphabet and length; `None` if it cannot be a token (the HTTP layer
    /// answers 404 without touching the read models).
    pub fn parse(token: &str) -> Option<PublicToken> {
        let length_ok = (PUBLIC_TOKEN_CHARS_MIN..=PUBLIC_TOKEN_CHARS_MAX).contains(&token.len());
        let alphabet_ok = token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (length_ok && alphabet_ok).then(|| PublicToken(token.to_owned()))
    }

    /// Returns the token itself (for the URL only).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the lower-case hex SHA-256 of the token: what events and read models keep.
    pub fn digest(&self) -> String {
        Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// A token serialises as its digest, so a command's canonical form (its idempotency digest)
/// never holds a working token either.
impl serde::Serialize for PublicToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.digest())
    }
}

impl std::fmt::Debug for PublicToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicToken(…)")
    }
}

/// Issue a new public token, or replace the current one (the old one stops working).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RotatePublicToken {
    pub enterprise_id: EnterpriseId,
    pub token: PublicToken,
}

impl EnterpriseFile {
    pub(super) fn decide_rotate_public_token(
        &self,
        command: &RotatePublicToken,
        context: &DecisionContext<'_>,
    ) -> Result<Vec<Event>, EnterpriseRejection> {
        // `authorise` let through the enterprise itself and the city office only.
        Ok(vec![Event::PublicTokenRotated(PublicTokenRotated {
            token_digest: command.token.digest(),
            rotated_at: context.now,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_checked_and_hidden() {
        assert!(PublicToken::parse("short").is_none());
        assert!(PublicToken::parse("abcdefghijklmnopqrstuvwxyz012/").is_none());
        let token = PublicToken::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(format!("{token:?}"), "PublicToken(…)");
        assert_eq!(token.digest().len(), 64);
        assert!(
            token
                .digest()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let other = PublicToken::parse("abcdefghijklmnopqrstuvwxy0").unwrap();
        assert_ne!(token.digest(), other.digest());
    }
}
