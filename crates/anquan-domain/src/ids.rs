//! Identifiers and small validated values, parsed at the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a textual identifier could not be parsed. Its `Display` is the sentence a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// `kind` is the stable English name of what was expected (`enterprise id`), `label` the
    /// name a person reads (企业编号).
    #[error("{label}“{}”的格式不正确", value.escape_debug())]
    Malformed {
        kind: &'static str,
        label: &'static str,
        value: String,
    },
}

impl IdError {
    /// Returns the facts programs need: what was expected and the refused text.
    pub fn details(&self) -> crate::refusal::Details {
        match self {
            IdError::Malformed { kind, value, .. } => vec![("kind", (*kind).into()), ("value", value.clone().into())],
        }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// Returns the inner UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Uuid::parse_str(value.trim())
                    .map(Self)
                    .map_err(|_| IdError::Malformed { kind: $kind, label: $label, value: value.to_owned() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An enterprise on the platform; its event stream is `enterprise-<id>`.
    EnterpriseId,
    "enterprise id",
    "企业编号"
);
uuid_id!(
    /// One uploaded record (document, ledger page, report) in an enterprise's cloud file.
    DocumentId,
    "document id",
    "资料编号"
);
uuid_id!(
    /// A safety-service agency (中介服务机构); its event stream is `agency-<id>`.
    AgencyId,
    "agency id",
    "服务机构编号"
);
uuid_id!(
    /// One inspection of an enterprise by city or town inspectors.
    InspectionId,
    "inspection id",
    "检查编号"
);
uuid_id!(
    /// One hazard (隐患) found at an enterprise.
    HazardId,
    "hazard id",
    "隐患编号"
);
uuid_id!(
    /// A service contract between an agency and an enterprise, kept on the agency's stream.
    ContractId,
    "contract id",
    "合同编号"
);
uuid_id!(
    /// One service report (a visit) an agency filed under a contract.
    ServiceReportId,
    "service report id",
    "服务报告编号"
);
uuid_id!(
    /// A member of an agency's staff; stable across the half-yearly staff reports.
    StaffId,
    "staff id",
    "人员编号"
);
uuid_id!(
    /// A client-chosen id that makes a command idempotent: a retry appends nothing twice.
    CommandId,
    "command id",
    "请求编号（commandId）"
);

/// The person or system account that caused an event (the JWT subject).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const LEN_MAX: usize = 128;

    /// Parses a user id: 1 to 128 bytes, no control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let valid = !value.is_empty() && value.len() <= Self::LEN_MAX && !value.chars().any(char::is_control);
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError::Malformed {
                kind: "user id",
                label: "用户账号",
                value: value.to_owned(),
            })
        }
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A town (镇) or sub-district (街道): the unit a town officer supervises, e.g. `许村`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Town(String);

impl Town {
    /// Longest accepted town name, in characters.
    pub const CHARS_MAX: usize = 32;

    /// Parses a town name: 1 to 32 characters after trimming, no control characters.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let trimmed = value.trim();
        let count = trimmed.chars().count();
        if count == 0 || count > Self::CHARS_MAX || trimmed.chars().any(char::is_control) {
            return Err(IdError::Malformed {
                kind: "town",
                label: "镇（街道）名称",
                value: value.to_owned(),
            });
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Returns the town's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Town {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<Town> for String {
    fn from(town: Town) -> String {
        town.0
    }
}

impl fmt::Display for Town {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the safety-responsibility indicators of a rule set, e.g. `R10`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IndicatorCode(String);

impl IndicatorCode {
    /// Parses `R` followed by two digits.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bytes = value.as_bytes();
        let valid = bytes.len() == 3 && bytes[0] == b'R' && bytes[1..].iter().all(u8::is_ascii_digit);
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError::Malformed {
                kind: "indicator code",
                label: "指标代码",
                value: value.to_owned(),
            })
        }
    }

    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IndicatorCode {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<IndicatorCode> for String {
    fn from(code: IndicatorCode) -> String {
        code.0
    }
}

impl fmt::Display for IndicatorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One requirement item of an indicator, e.g. `R10.drill`: the thing a record is uploaded for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequirementCode(String);

impl RequirementCode {
    /// Parses `<indicator>.<name>` where the name is 1 to 40 of `a-z`, `0-9` and `_`.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let malformed = || IdError::Malformed {
            kind: "requirement code",
            label: "要求项代码",
            value: value.to_owned(),
        };
        let (indicator, name) = value.split_once('.').ok_or_else(malformed)?;
        IndicatorCode::parse(indicator).map_err(|_| malformed())?;
        let name_ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if name_ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(malformed())
        }
    }

    /// Returns the indicator this requirement belongs to.
    pub fn indicator(&self) -> IndicatorCode {
        // The constructor checked that the text before the dot is an indicator code.
        IndicatorCode(self.0.split('.').next().unwrap_or_default().to_owned())
    }

    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequirementCode {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<RequirementCode> for String {
    fn from(code: RequirementCode) -> String {
        code.0
    }
}

impl fmt::Display for RequirementCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_ids_are_rejected_with_their_kind() {
        let error = "not-a-uuid".parse::<EnterpriseId>().unwrap_err();
        assert_eq!(error.to_string(), "企业编号“not-a-uuid”的格式不正确");
        assert!(error.details().contains(&("kind", "enterprise id".into())));
        assert!(IndicatorCode::parse("R1").is_err());
        assert!(IndicatorCode::parse("X01").is_err());
        assert!(RequirementCode::parse("R10.Drill").is_err());
        assert!(Town::parse("   ").is_err());
    }

    #[test]
    fn requirement_code_names_its_indicator() {
        let code = RequirementCode::parse("R10.drill").unwrap();
        assert_eq!(code.indicator().as_str(), "R10");
    }
}
