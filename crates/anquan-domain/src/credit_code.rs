//! The unified social credit code (统一社会信用代码, GB 32100-2015) with its check digit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The 31 characters a credit code may use, in the order that gives each its value.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// The weight of each of the first 17 positions.
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Why a text is not a unified social credit code. Its `Display` is the sentence a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    #[error("统一社会信用代码“{}”应为18位，现为{length}位", code.escape_debug())]
    WrongLength { code: String, length: usize },
    #[error(
        "统一社会信用代码“{}”第{position}位的“{}”不是国家标准（GB 32100）允许的字符",
        code.escape_debug(),
        character.escape_debug()
    )]
    BadCharacter {
        code: String,
        character: char,
        position: usize,
    },
    #[error(
        "统一社会信用代码“{}”的校验码（第18位）应为“{expected}”，现为“{}”，请核对是否抄错",
        code.escape_debug(),
        found.escape_debug()
    )]
    WrongCheckCharacter { code: String, expected: char, found: char },
}

impl CreditCodeError {
    /// Returns the facts programs need: the refused code and what is wrong with it.
    pub fn details(&self) -> crate::refusal::Details {
        match self {
            CreditCodeError::WrongLength { code, length } => {
                vec![("value", code.clone().into()), ("length", (*length).into())]
            }
            CreditCodeError::BadCharacter { code, position, .. } => {
                vec![("value", code.clone().into()), ("position", (*position).into())]
            }
            CreditCodeError::WrongCheckCharacter { code, .. } => vec![("value", code.clone().into())],
        }
    }
}

/// A validated 18-character unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnifiedSocialCreditCode(String);

impl UnifiedSocialCreditCode {
    /// Parses a code, upper-casing it first, and checks its check character.
    pub fn parse(value: &str) -> Result<Self, CreditCodeError> {
        let code = value.trim().to_ascii_uppercase();
        let length = code.chars().count();
        if length != 18 {
            return Err(CreditCodeError::WrongLength { code, length });
        }
        let mut values = [0u32; 18];
        for (position, character) in code.chars().enumerate() {
            values[position] = char_value(character).ok_or_else(|| CreditCodeError::BadCharacter {
                code: code.clone(),
                character,
                position: position + 1,
            })?;
        }
        let expected = check_character(&values);
        let found = code.chars().last().unwrap_or_default();
        if expected != found {
            return Err(CreditCodeError::WrongCheckCharacter { code, expected, found });
        }
        Ok(Self(code))
    }

    /// Completes the first 17 characters of a code with its check character.
    pub fn with_check_character(first_17: &str) -> Result<Self, CreditCodeError> {
        let mut values = [0u32; 18];
        let upper = first_17.to_ascii_uppercase();
        if upper.chars().count() != 17 {
            return Err(CreditCodeError::WrongLength {
                code: upper.clone(),
                length: upper.chars().count() + 1,
            });
        }
        for (position, character) in upper.chars().enumerate() {
            values[position] = char_value(character).ok_or_else(|| CreditCodeError::BadCharacter {
                code: upper.clone(),
                character,
                position: position + 1,
            })?;
        }
        let check = check_character(&values);
        Ok(Self(format!("{upper}{check}")))
    }

    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn char_value(character: char) -> Option<u32> {
    let byte = u8::try_from(character).ok()?;
    ALPHABET
        .iter()
        .position(|&b| b == byte)
        .and_then(|p| u32::try_from(p).ok())
}

fn check_character(values: &[u32; 18]) -> char {
    let sum: u32 = values.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    // `check` is below 31, so it always indexes the 31-character alphabet.
    char::from(ALPHABET[check as usize])
}

impl TryFrom<String> for UnifiedSocialCreditCode {
    type Error = CreditCodeError;
    fn try_from(value: String) -> Result<Self, CreditCodeError> {
        Self::parse(&value)
    }
}

impl From<UnifiedSocialCreditCode> for String {
    fn from(code: UnifiedSocialCreditCode) -> String {
        code.0
    }
}

impl fmt::Display for UnifiedSocialCreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_codes_pass_their_check() {
        assert!(UnifiedSocialCreditCode::parse("91330100799655058B").is_ok());
        assert!(UnifiedSocialCreditCode::parse("91110000600037341l").is_ok());
    }

    #[test]
    fn a_wrong_check_character_is_named() {
        let error = UnifiedSocialCreditCode::parse("91330100799655058C").unwrap_err();
        assert_eq!(
            error,
            CreditCodeError::WrongCheckCharacter {
                code: "91330100799655058C".into(),
                expected: 'B',
                found: 'C'
            }
        );
    }

    #[test]
    fn letters_outside_the_alphabet_and_wrong_lengths_are_rejected() {
        assert!(matches!(
            UnifiedSocialCreditCode::parse("9133010079965505IB"),
            Err(CreditCodeError::BadCharacter {
                character: 'I',
                position: 17,
                ..
            })
        ));
        assert!(matches!(
            UnifiedSocialCreditCode::parse("913301"),
            Err(CreditCodeError::WrongLength { length: 6, .. })
        ));
    }

    #[test]
    fn completing_a_code_gives_a_valid_code() {
        let code = UnifiedSocialCreditCode::with_check_character("91330481MA28A0XX0").unwrap();
        assert_eq!(code.as_str(), "91330481MA28A0XX07");
        assert!(UnifiedSocialCreditCode::parse(code.as_str()).is_ok());
    }
}
