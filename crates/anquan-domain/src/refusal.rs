//! How a refusal speaks to its two audiences.
//!
//! A person reads a refusal's `Display`: one plain Chinese sentence naming the record, field or
//! period at fault. A program reads its stable English code (`DomainRejection::code`) and its
//! [`Details`], the facts it acts on (the field, the limit, the record's id) named in camelCase
//! as GraphQL names fields. The wording of every refusal lives next to its variant; this module
//! holds what they share: the names of fields as a person reads them, and what is wrong with a
//! field.

use crate::Instant;

/// Named facts about a refusal for programs, sent as GraphQL `extensions` beside the code.
/// Names are camelCase; 64-bit numbers (bytes, yuan, versions) are decimal strings, as the
/// schema's 64-bit scalar sends them, and small numbers (a count of characters) are numbers.
pub type Details = Vec<(&'static str, serde_json::Value)>;

/// What is wrong with a field a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// A required text is empty or only spaces.
    Empty,
    /// A text is longer than it may be.
    TooLong { chars_max: usize },
    /// A list names nothing where it must name something.
    NoItems,
    /// A list has more items than it may.
    TooManyItems { items_max: usize },
    /// An id the client chose for something new was used before.
    UsedBefore,
    /// A file's digest is not 64 lower-case hexadecimal digits.
    NotSha256,
}

impl FieldProblem {
    /// Returns the stable name programs see as `extensions.problem`.
    pub fn name(self) -> &'static str {
        match self {
            FieldProblem::Empty => "EMPTY",
            FieldProblem::TooLong { .. } => "TOO_LONG",
            FieldProblem::NoItems => "NO_ITEMS",
            FieldProblem::TooManyItems { .. } => "TOO_MANY_ITEMS",
            FieldProblem::UsedBefore => "USED_BEFORE",
            FieldProblem::NotSha256 => "NOT_SHA256",
        }
    }

    /// Returns the sentence about `field`, in Chinese.
    pub fn sentence(self, field: &str) -> String {
        let label = field_label(field);
        match self {
            FieldProblem::Empty => format!("{label}不能为空"),
            FieldProblem::TooLong { chars_max } => format!("{label}不能超过{chars_max}个字"),
            FieldProblem::NoItems => format!("{label}至少要填写一项"),
            FieldProblem::TooManyItems { items_max } => format!("{label}最多{items_max}项"),
            FieldProblem::UsedBefore => format!("{label}已经用过，新记录请使用新的编号"),
            FieldProblem::NotSha256 => format!("{label}应为64位小写十六进制数字（SHA-256）"),
        }
    }

    /// Returns the facts programs need: the problem and its limit.
    pub fn details(self, field: &'static str) -> Details {
        let mut details: Details = vec![("field", field.into()), ("problem", self.name().into())];
        match self {
            FieldProblem::TooLong { chars_max } => details.push(("charsMax", chars_max.into())),
            FieldProblem::TooManyItems { items_max } => details.push(("itemsMax", items_max.into())),
            FieldProblem::Empty | FieldProblem::NoItems | FieldProblem::UsedBefore | FieldProblem::NotSha256 => {}
        }
        details
    }
}

/// Returns the name of a field as a person reads it: the label on the form, not the GraphQL
/// name. A field not listed here is named as the API spells it, so a new field is never
/// unnamed, only unlabelled.
pub fn field_label(field: &str) -> std::borrow::Cow<'_, str> {
    let label = match field {
        "name" => "名称",
        "industry" => "行业",
        "title" => "标题",
        "description" => "描述",
        "comment" => "意见",
        "text" => "文字内容",
        "reason" => "理由",
        "note" => "备注",
        "basis" => "认定依据说明",
        "documentNumber" => "督办文号",
        "files" => "附件",
        "feedback" => "反馈意见",
        "findings" => "检查发现",
        "complaint" => "投诉内容",
        "qualifications" => "资质",
        "licence" => "许可证",
        "certificateNumber" => "证书编号",
        "phone" | "contactPhone" => "联系电话",
        "serviceStandards" => "服务标准",
        "serviceScope" => "服务范围",
        "services" => "服务项目",
        "staff" => "人员",
        "staff.name" => "人员姓名",
        "hazards.category" => "隐患类别",
        "hazards.description" => "隐患描述",
        "hazards.photos" => "隐患照片",
        "staffIds" => "人员名单",
        "photos" => "照片",
        "hazards" => "隐患",
        "documents" => "资料",
        "file.sha256" => "文件摘要",
        "file.fileName" => "文件名",
        "file.mediaType" => "文件类型",
        "file.sizeBytes" => "文件大小",
        "validFrom" => "有效期起始时间",
        "validUntil" => "有效期截止时间",
        "period" => "报告期",
        "halfYear" => "半年度",
        "year" => "年份",
        "inspectedAt" => "检查时间",
        "deadline" | "hazard.deadline" | "hazards.deadline" => "整改期限",
        "hazards.suggestedDeadline" => "建议整改期限",
        "occurredAt" => "事故发生时间",
        "effectiveAt" => "生效时间",
        "fatalities" => "死亡人数",
        "visitedAt" => "服务时间",
        "visitsPromised" => "承诺服务次数",
        "feeYuan" => "服务费用",
        "profile.feeBand.minYuan" => "收费标准下限",
        "profile.feeBand.maxYuan" => "收费标准上限",
        "profile.staffCount" => "从业人员数",
        "profile.annualRevenue10kYuan" => "年营业收入",
        "missedFindings" => "漏查隐患数",
        "rectificationId" => "整改编号",
        "accidentId" => "事故编号",
        "stars" => "评价星级",
        "asOf" | "at" => "查询时点",
        "from" => "起始时间",
        "to" => "截止时间",
        "periodEnd" => "报告期末",
        _ => return std::borrow::Cow::Owned(format!("字段 {field} ")),
    };
    std::borrow::Cow::Borrowed(label)
}

/// Writes an instant as a person reads it. The domain does not know the rule set's time zone
/// here, so it says UTC rather than guess.
pub fn instant_text(instant: Instant) -> String {
    instant.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Tells whether a text holds at least one Han character (tests check every refusal has one).
pub fn has_han(text: &str) -> bool {
    text.chars()
        .any(|character| matches!(character, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}'))
}

/// Tells whether a code has the shape of every code clients branch on: UPPER_SNAKE ASCII.
pub fn is_stable_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_uppercase() || byte == b'_')
}

/// Checks a sample of every variant of a rejection: `variant_index` numbers the variants with
/// an exhaustive match (so a new variant breaks it), and every number below `variants` must
/// have a sample; each sample reads in Chinese and has a stable code.
#[cfg(test)]
pub(crate) fn assert_every_variant_speaks_to_both_audiences<R: crate::DomainRejection>(
    samples: &[R],
    variant_index: fn(&R) -> usize,
    variants: usize,
) {
    let mut covered: Vec<usize> = samples.iter().map(variant_index).collect();
    covered.sort_unstable();
    covered.dedup();
    assert_eq!(covered, (0..variants).collect::<Vec<_>>(), "a sample of every variant");
    for rejection in samples {
        let message = rejection.to_string();
        assert!(has_han(&message), "{rejection:?}: {message}");
        assert!(!message.contains("may not") && !message.contains(" is "), "{message}");
        assert!(is_stable_code(rejection.code()), "{}", rejection.code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_problem_reads_in_chinese_and_names_its_limit() {
        let problems = [
            FieldProblem::Empty,
            FieldProblem::TooLong { chars_max: 200 },
            FieldProblem::NoItems,
            FieldProblem::TooManyItems { items_max: 20 },
            FieldProblem::UsedBefore,
            FieldProblem::NotSha256,
        ];
        for problem in problems {
            assert!(has_han(&problem.sentence("title")), "{problem:?}");
        }
        assert_eq!(
            FieldProblem::TooLong { chars_max: 200 }.sentence("title"),
            "标题不能超过200个字"
        );
        assert!(
            FieldProblem::TooLong { chars_max: 200 }
                .details("title")
                .contains(&("charsMax", 200.into()))
        );
    }

    #[test]
    fn an_unlabelled_field_is_named_as_the_api_spells_it() {
        assert_eq!(field_label("validUntil"), "有效期截止时间");
        assert_eq!(field_label("somethingNew"), "字段 somethingNew ");
    }

    #[test]
    fn every_refusal_of_a_value_reads_in_chinese() {
        use crate::bounds;
        let before = bounds::INSTANT_MIN - chrono::Duration::days(1);
        let nul = crate::Event::AgencyWarned(crate::agency::event::AgencyWarned {
            kind: crate::agency::WarningKind::Summons,
            reason: "nul\0".to_owned(),
            issued_at: bounds::INSTANT_MIN,
        });
        let out_of_range = [
            bounds::check_instant("validUntil", before).unwrap_err(),
            bounds::check_count("fatalities", u64::MAX).unwrap_err(),
            bounds::check_signed_count("stars", -1).unwrap_err(),
            bounds::check_year("year", 1900).unwrap_err(),
            bounds::check_events(&[nul]).unwrap_err(),
        ];
        for error in &out_of_range {
            assert!(has_han(&error.to_string()), "{error:?}");
            assert!(error.details().contains(&("field", error.field.into())), "{error:?}");
        }
        assert!(
            out_of_range[0]
                .to_string()
                .starts_with("有效期截止时间（1949-09-29T16:00:00+00:00）超出")
        );
        let parse_errors = [
            "x".parse::<crate::EnterpriseId>().unwrap_err().to_string(),
            crate::Town::parse(" ").unwrap_err().to_string(),
            crate::RequirementCode::parse("R10.Drill").unwrap_err().to_string(),
            "2019-Q5".parse::<crate::Period>().unwrap_err().to_string(),
            crate::UnifiedSocialCreditCode::parse("123").unwrap_err().to_string(),
            crate::UnifiedSocialCreditCode::parse("91330481MA28A0XXI7")
                .unwrap_err()
                .to_string(),
            crate::UnifiedSocialCreditCode::parse("91330481MA28A0XX08")
                .unwrap_err()
                .to_string(),
        ];
        for message in parse_errors {
            assert!(has_han(&message), "{message}");
        }
    }
}
