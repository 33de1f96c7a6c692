//! Personal data in events: the one place that states which event fields identify a person,
//! and of which data subject (ARCHITECTURE.md, "Erasable personal data").
//!
//! The event store seals each field listed here under a key of its data subject before the hash
//! chain covers the event, and opens it again when events are read; erasing the subject's key
//! leaves the field as [`ERASED`]. This module is pure: it names fields and subjects, it never
//! encrypts.
//!
//! A data subject is named after the stream its data lives on: `agency-<uuid>/staff/<staff id>`
//! for a staff member of an agency, `agency-<uuid>/contact` for an agency's contact phone.

use std::fmt;

use serde_json::Value;

use crate::ids::{AgencyId, StaffId};

/// What an erased personal field reads as, in events, read models, pages, history and exports.
pub const ERASED: &str = "〔已删除〕";

/// Whose personal data a field is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSubject {
    /// A staff member an agency reported (name, certificate numbers, phone).
    Staff { agency_id: AgencyId, staff_id: StaffId },
    /// The person behind an agency's contact phone.
    AgencyContact { agency_id: AgencyId },
}

/// Why a text is not a data subject id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a data subject id (agency-<uuid>/staff/<uuid> or agency-<uuid>/contact)")]
pub struct DataSubjectError(pub String);

impl DataSubject {
    /// Parses `agency-<uuid>/staff/<uuid>` or `agency-<uuid>/contact`.
    pub fn parse(text: &str) -> Result<DataSubject, DataSubjectError> {
        let error = || DataSubjectError(text.to_owned());
        let mut parts = text.split('/');
        let agency = parts
            .next()
            .and_then(|stream| stream.strip_prefix("agency-"))
            .ok_or_else(error)?;
        let agency_id = agency.parse::<AgencyId>().map_err(|_| error())?;
        let subject = match (parts.next(), parts.next(), parts.next()) {
            (Some("staff"), Some(staff), None) => DataSubject::Staff {
                agency_id,
                staff_id: staff.parse::<StaffId>().map_err(|_| error())?,
            },
            (Some("contact"), None, None) => DataSubject::AgencyContact { agency_id },
            _ => return Err(error()),
        };
        // Only the canonical spelling (lower-case hyphenated UUIDs) names a subject, so one
        // person has one id and one key.
        if subject.to_string() == text {
            Ok(subject)
        } else {
            Err(error())
        }
    }

    /// The agency whose stream holds the subject's data.
    pub fn agency_id(&self) -> AgencyId {
        match self {
            DataSubject::Staff { agency_id, .. } | DataSubject::AgencyContact { agency_id } => *agency_id,
        }
    }
}

impl fmt::Display for DataSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSubject::Staff { agency_id, staff_id } => write!(f, "agency-{agency_id}/staff/{staff_id}"),
            DataSubject::AgencyContact { agency_id } => write!(f, "agency-{agency_id}/contact"),
        }
    }
}

impl TryFrom<String> for DataSubject {
    type Error = DataSubjectError;
    fn try_from(text: String) -> Result<Self, DataSubjectError> {
        DataSubject::parse(&text)
    }
}

impl From<DataSubject> for String {
    fn from(subject: DataSubject) -> String {
        subject.to_string()
    }
}

/// How the subject of a group of personal fields is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRule {
    /// A staff member of the agency whose stream it is; the staff id is this field of the
    /// object that holds the personal fields.
    StaffOfAgency { staff_id_field: &'static str },
    /// The contact of the agency whose stream it is.
    ContactOfAgency,
}

/// One group of personal fields of an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalRecord {
    pub event_type: &'static str,
    /// Where the object holding the fields is: JSON-pointer segments from the data's root, `*`
    /// for every element of an array.
    pub at: &'static [&'static str],
    pub subject: SubjectRule,
    /// The personal fields, as segment paths from that object (`*` for every element).
    pub fields: &'static [&'static [&'static str]],
}

/// Every personal field of every event type. An event type not listed has none; the test
/// `personal_data_registry` in this crate walks every event fixture to hold this list complete.
pub const PERSONAL_DATA: &[PersonalRecord] = &[
    PersonalRecord {
        event_type: "StaffReported",
        at: &["staff", "*"],
        subject: SubjectRule::StaffOfAgency {
            staff_id_field: "staff_id",
        },
        fields: &[&["name"], &["phone"], &["qualifications", "*", "certificate_number"]],
    },
    PersonalRecord {
        event_type: "AgencyRegistered",
        at: &["profile"],
        subject: SubjectRule::ContactOfAgency,
        fields: &[&["contact_phone"]],
    },
    PersonalRecord {
        event_type: "AgencyProfileChanged",
        at: &["profile"],
        subject: SubjectRule::ContactOfAgency,
        fields: &[&["contact_phone"]],
    },
];

/// Fields that name persons and are deliberately kept readable, with the reason. The registry
/// test accepts a person-naming field only if it is in [`PERSONAL_DATA`] or here.
pub const KEPT_READABLE: &[(&str, &[&str], &str)] = &[(
    "InspectionRecorded",
    &["inspectors", "*"],
    "law-enforcement officers named on an enforcement record, which the office must keep",
)];

/// One personal field of one stored event: where it is and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalField {
    /// The field's JSON pointer (RFC 6901) in the event's data.
    pub pointer: String,
    pub subject: DataSubject,
}

/// Lists the personal fields present in an event's data on `stream` (absent optional fields
/// are not listed). Data of a stream no rule can name a subject on has none.
pub fn personal_fields(stream: &str, event_type: &str, data: &Value) -> Vec<PersonalField> {
    let agency_id = stream
        .strip_prefix("agency-")
        .and_then(|id| id.parse::<AgencyId>().ok());
    let mut found = Vec::new();
    for record in PERSONAL_DATA.iter().filter(|record| record.event_type == event_type) {
        let Some(agency_id) = agency_id else { continue };
        for (holder_pointer, holder) in matches(data, record.at, String::new()) {
            let subject = match record.subject {
                SubjectRule::ContactOfAgency => DataSubject::AgencyContact { agency_id },
                SubjectRule::StaffOfAgency { staff_id_field } => {
                    let Some(staff_id) = holder
                        .get(staff_id_field)
                        .and_then(Value::as_str)
                        .and_then(|id| id.parse::<StaffId>().ok())
                    else {
                        continue;
                    };
                    DataSubject::Staff { agency_id, staff_id }
                }
            };
            for field in record.fields {
                for (pointer, value) in matches(holder, field, holder_pointer.clone()) {
                    if !value.is_null() {
                        found.push(PersonalField {
                            pointer,
                            subject: subject.clone(),
                        });
                    }
                }
            }
        }
    }
    found
}

/// The values at a segment path (`*` for every array element), with their JSON pointers.
pub fn matches<'a>(value: &'a Value, path: &[&str], pointer: String) -> Vec<(String, &'a Value)> {
    let Some((first, rest)) = path.split_first() else {
        return vec![(pointer, value)];
    };
    match (*first, value) {
        ("*", Value::Array(items)) => items
            .iter()
            .enumerate()
            .flat_map(|(index, item)| matches(item, rest, format!("{pointer}/{index}")))
            .collect(),
        (key, Value::Object(map)) => map
            .get(key)
            .map(|item| matches(item, rest, format!("{pointer}/{key}")))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn subject_ids_round_trip_and_refuse_other_spellings() {
        let text = "agency-0190a8b2-0000-7000-8000-000000000001/staff/0190a8b2-0000-7000-8000-000000000002";
        let subject = DataSubject::parse(text).unwrap();
        assert_eq!(subject.to_string(), text);
        let contact = "agency-0190a8b2-0000-7000-8000-000000000001/contact";
        assert_eq!(DataSubject::parse(contact).unwrap().to_string(), contact);
        for bad in [
            "",
            "agency-0190A8B2-0000-7000-8000-000000000001/contact",
            "enterprise-0190a8b2-0000-7000-8000-000000000001/contact",
            "agency-0190a8b2-0000-7000-8000-000000000001/staff",
            "agency-0190a8b2-0000-7000-8000-000000000001/contact/x",
        ] {
            assert!(DataSubject::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn staff_fields_are_found_with_their_subjects() {
        let agency = "0190a8b2-0000-7000-8000-000000000001";
        let staff = "0190a8b2-0000-7000-8000-000000000002";
        let data = serde_json::json!({"staff": [{"staff_id": staff, "name": "张三",
            "qualifications": [{"kind": "other", "certificate_number": "C1"}]}]});
        let fields = personal_fields(&format!("agency-{agency}"), "StaffReported", &data);
        let pointers: Vec<_> = fields.iter().map(|field| field.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/staff/0/name", "/staff/0/qualifications/0/certificate_number"]
        );
        assert_eq!(fields[0].subject.to_string(), format!("agency-{agency}/staff/{staff}"));
        assert!(personal_fields("enterprise-x", "StaffReported", &data).is_empty());
    }
}
