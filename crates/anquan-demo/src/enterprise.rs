//! One enterprise's year(s): registration, the records its profile calls for (from the rule
//! set), their reviews, returns and re-uploads, government inspections, hazards and their
//! rectification. Each enterprise runs as one task in simulated time.

use std::collections::BTreeMap;

use chrono::Duration;

use anquan_domain::enterprise::event::{
    CriterionRef, HazardCategory, HazardLevel, InspectionDocument, InspectionDocumentKind, InspectionKind,
};
use anquan_domain::enterprise::supervision::{
    NewHazard, RecordInspection, SubmitRectification, VerifyRectification, default_deadline,
};
use anquan_domain::enterprise::{
    Coverage, EnterpriseCommand, EnterpriseFile, FileRef, PublicToken, RegisterEnterprise, ReviewDecision,
    ReviewDocument, RotatePublicToken, UploadDocument,
};
use anquan_domain::ids::{HazardId, InspectionId};
use anquan_domain::rules::supervision::CatalogueScope;
use anquan_domain::rules::{Evidence, RuleSet, Severity};
use anquan_domain::{Actor, DocumentId, Instant, Period, RequirementCode, Role, UserId};
use anquan_event_store::EventStore;

use crate::plan::{EnterprisePlan, Habit, World, tag};
use crate::rates::{self, EnterpriseFacts};
use crate::rng::Rng;
use crate::writer::StreamWriter;
use crate::{DemoError, Tuning};

const FEEDBACK: [&str; 8] = [
    "盖章缺失，请补盖公章后重新上传",
    "文件不清晰，请重新扫描上传",
    "记录内容不完整，缺少签字确认",
    "上传文件与该项要求不符",
    "有效期填写有误，请核对证书",
    "培训签到表缺少培训课时记录",
    "演练记录缺少现场照片及评估总结",
    "台账未按月填写，请补充完整",
];

const COMMENTS: [&str; 4] = [
    "资料齐全，审核通过",
    "请注意下次按期上传",
    "建议补充现场照片",
    "已核对原件",
];

const HAZARD_TEXT: [(HazardCategory, &str); 10] = [
    (HazardCategory::Electrical, "配电箱未上锁，线路私拉乱接"),
    (HazardCategory::Fire, "灭火器过期未检，消防通道堆放杂物"),
    (HazardCategory::MachineGuarding, "设备传动部位防护罩缺失"),
    (HazardCategory::SpecialEquipment, "叉车未按期检验"),
    (HazardCategory::HazardousChemicals, "危化品未分类存放，标签缺失"),
    (HazardCategory::ConfinedSpace, "有限空间未设置警示标志"),
    (HazardCategory::Dust, "除尘设施积尘未及时清理"),
    (HazardCategory::WorkEnvironment, "车间照明不足，通道不畅"),
    (HazardCategory::Records, "隐患排查台账记录不全"),
    (HazardCategory::Other, "安全警示标志缺失"),
];

/// What happened in one enterprise's history.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnterpriseOutcome {
    pub(crate) events: u64,
    pub(crate) appends: u64,
    pub(crate) uploads: u64,
    pub(crate) reviews: u64,
    pub(crate) returned: u64,
    pub(crate) feedback: u64,
    pub(crate) inspections: u64,
    pub(crate) hazards: u64,
    pub(crate) major_hazards: u64,
    pub(crate) overdue_at_end: u64,
    pub(crate) facts: EnterpriseFacts,
}

enum Action {
    Upload {
        requirement: RequirementCode,
        title: String,
        coverage: Coverage,
        attempt: u32,
    },
    Review {
        document_id: DocumentId,
        requirement: RequirementCode,
        title: String,
        coverage: Coverage,
        attempt: u32,
    },
    Inspect,
    Submit {
        hazard_id: HazardId,
        attempt: u32,
    },
    Verify {
        hazard_id: HazardId,
        rectification_id: uuid::Uuid,
        attempt: u32,
    },
}

struct Life<'a> {
    world: &'a World,
    tuning: &'a Tuning,
    rules: &'a RuleSet,
    plan: &'a EnterprisePlan,
    rng: Rng,
    queue: BTreeMap<(Instant, u64), Action>,
    sequence: u64,
    outcome: EnterpriseOutcome,
}

impl Life<'_> {
    fn at(&mut self, when: Instant, action: Action) {
        if when < self.world.end {
            self.sequence += 1;
            self.queue.insert((when, self.sequence), action);
        }
    }

    fn days(&mut self, low: i64, high: i64) -> Duration {
        Duration::days(self.rng.between(low, high)) + Duration::minutes(self.rng.between(0, 8 * 60))
    }

    fn file(&mut self, name: &str) -> FileRef {
        FileRef {
            sha256: self.rng.sha256_hex(),
            size_bytes: u64::try_from(self.rng.between(40_000, 2_000_000)).unwrap_or(100_000),
            media_type: "application/pdf".to_owned(),
            file_name: name.to_owned(),
        }
    }

    fn lax(&self) -> bool {
        self.plan.habit == Habit::Lax
    }

    /// Schedules the records the rule set asks of this profile.
    fn plan_records(&mut self) {
        let rules = self.rules;
        let profile = &self.plan.profile;
        let registered = self.plan.registered_at;
        let offset = rules.time_zone;
        for indicator in &rules.indicators {
            if !rules.holds(&indicator.applies_to, profile) {
                continue;
            }
            for requirement in &indicator.requirements {
                if !rules.holds(&requirement.applies_to, profile) {
                    continue;
                }
                let code = requirement.code.clone();
                let name = requirement.name_zh.clone();
                let is_service = code.as_str().starts_with(&self.tuning.service_indicator);
                let has_service = self.plan.contract.is_some() || self.plan.outside_service;
                if is_service && !has_service {
                    continue;
                }
                match &requirement.evidence {
                    Evidence::Review => {
                        let when = registered + self.days(1, 30);
                        self.at(
                            when,
                            Action::Upload {
                                requirement: code,
                                title: name,
                                coverage: Coverage::Once,
                                attempt: 0,
                            },
                        );
                    }
                    Evidence::Validity { validity_days_max } => {
                        let days = i64::from(validity_days_max.unwrap_or(1096));
                        let lapses = code.as_str() == self.tuning.training_requirement && self.plan.certificate_lapses;
                        let upload = registered + self.days(1, 30);
                        let (mut valid_from, mut valid_until) =
                            if is_service && let Some(contract) = &self.plan.contract {
                                (contract.signed_at, contract.valid_until)
                            } else if lapses {
                                // Issued long ago; it ends during the year and is not renewed.
                                let left = (self.world.end - upload).num_days();
                                let ends = upload + self.days(20.min(left / 2), (left - 5).clamp(21, 240));
                                (ends - Duration::days(days), ends)
                            } else {
                                let from = upload - Duration::days(self.rng.between(0, (days - 45).max(1)));
                                (from, from + Duration::days(days))
                            };
                        let mut when = if is_service && let Some(contract) = &self.plan.contract {
                            contract.signed_at + self.days(1, 10)
                        } else {
                            upload
                        };
                        loop {
                            self.at(
                                when,
                                Action::Upload {
                                    requirement: code.clone(),
                                    title: name.clone(),
                                    coverage: Coverage::Validity {
                                        valid_from,
                                        valid_until,
                                    },
                                    attempt: 0,
                                },
                            );
                            if lapses || valid_until >= self.world.end || (self.lax() && self.rng.chance(0.3)) {
                                break;
                            }
                            // Renewed before it ends.
                            when = valid_until - self.days(10, 40);
                            valid_from = when;
                            valid_until = when + Duration::days(days);
                        }
                    }
                    Evidence::Periodic { .. } => {
                        let Some(cadence) = rules.cadence_for(&requirement.evidence, profile) else {
                            continue;
                        };
                        let is_drill = code.as_str() == self.tuning.drill_requirement;
                        let mut period = cadence.period_containing(registered, offset);
                        let mut periods = Vec::new();
                        while period.start(offset) < self.world.end {
                            periods.push(period);
                            period = period.next();
                        }
                        let last_year = periods.last().map(Period::year);
                        for (position, period) in periods.iter().enumerate() {
                            if is_drill && self.plan.misses_drill {
                                let final_period = position + 1 == periods.len() && Some(period.year()) == last_year;
                                if self.lax() || final_period {
                                    continue;
                                }
                            }
                            if self.lax() && self.rng.chance(self.tuning.lax_record_skip) {
                                continue;
                            }
                            let start = period.start(offset).max(registered);
                            let end = period.end(offset);
                            let length = (end - start).num_days();
                            let when = if is_drill || length > 120 {
                                // Drills, and plans and registers of long periods, are filed
                                // during their period.
                                start + self.days(length.min(7), (length - 10).max(8))
                            } else {
                                end + self.days(-5, 10)
                            };
                            let when = when.max(start + Duration::hours(1));
                            let title = format!("{name}（{period}）");
                            self.at(
                                when,
                                Action::Upload {
                                    requirement: code.clone(),
                                    title,
                                    coverage: Coverage::Period { period: *period },
                                    attempt: 0,
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    fn plan_inspections(&mut self) {
        let years = (self.world.end - self.plan.registered_at).num_days() as f64 / 365.0;
        let count = self.rng.poisson(self.tuning.inspections_per_enterprise_year * years);
        let span = (self.world.end - self.plan.registered_at).num_days();
        for _ in 0..count {
            let when = self.plan.registered_at + self.days(7, span.max(8));
            self.at(when, Action::Inspect);
        }
    }

    fn enterprise_actor(&self) -> Result<Actor, DemoError> {
        actor(
            &format!("enterprise-{}", self.plan.index),
            Role::Enterprise {
                enterprise_id: self.plan.enterprise_id,
            },
        )
    }

    fn officer(&self) -> Result<Actor, DemoError> {
        actor(
            &format!("officer-{}", self.plan.town_latin),
            Role::TownOfficer {
                town: self.plan.town.clone(),
            },
        )
    }

    fn inspector(&mut self) -> Result<Actor, DemoError> {
        if self.rng.chance(self.tuning.city_inspection_share) {
            let n = self.rng.below(6);
            actor(&format!("city-inspector-{n}"), Role::CityInspector)
        } else {
            actor(
                &format!("inspector-{}", self.plan.town_latin),
                Role::TownInspector {
                    town: self.plan.town.clone(),
                },
            )
        }
    }

    async fn run(mut self, store: &dyn EventStore) -> Result<EnterpriseOutcome, DemoError> {
        let rules = self.rules;
        let mut writer: StreamWriter<EnterpriseFile> = StreamWriter::new(self.plan.enterprise_id.as_uuid());
        let officer = self.officer()?;
        let enterprise = self.enterprise_actor()?;
        let register = EnterpriseCommand::Register(RegisterEnterprise {
            name: self.plan.name.clone(),
            credit_code: self.plan.credit_code.clone(),
            town: self.plan.town.clone(),
            industry: self.plan.industry.clone(),
            profile: self.plan.profile.clone(),
        });
        let correlation = self.rng.uuid();
        writer
            .command(store, rules, &officer, self.plan.registered_at, correlation, &register)
            .await?;
        // The safety QR code is issued with the file (the demo's tokens derive from the seed:
        // demo data only).
        if let Some(token) = public_token(self.world.seed, self.plan.index) {
            let command = EnterpriseCommand::RotatePublicToken(RotatePublicToken {
                enterprise_id: self.plan.enterprise_id,
                token,
            });
            let correlation = self.rng.uuid();
            let when = self.plan.registered_at + Duration::minutes(5);
            writer
                .command(store, rules, &enterprise, when, correlation, &command)
                .await?;
        }
        self.plan_records();
        self.plan_inspections();
        while let Some(((now, _), action)) = self.queue.pop_first() {
            let correlation = self.rng.uuid();
            match action {
                Action::Upload {
                    requirement,
                    title,
                    coverage,
                    attempt,
                } => {
                    let document_id = DocumentId(self.rng.uuid());
                    let file = self.file(&format!("{}.pdf", requirement.as_str()));
                    let command = EnterpriseCommand::UploadDocument(UploadDocument {
                        enterprise_id: self.plan.enterprise_id,
                        document_id,
                        requirement: requirement.clone(),
                        title: title.clone(),
                        file,
                        coverage: coverage.clone(),
                    });
                    writer
                        .command(store, rules, &enterprise, now, correlation, &command)
                        .await?;
                    self.outcome.uploads += 1;
                    let review_at = now + self.days(0, self.tuning.review_days_max);
                    self.at(
                        review_at,
                        Action::Review {
                            document_id,
                            requirement,
                            title,
                            coverage,
                            attempt,
                        },
                    );
                }
                Action::Review {
                    document_id,
                    requirement,
                    title,
                    coverage,
                    attempt,
                } => {
                    let return_share = if attempt == 0 {
                        self.tuning.return_share
                    } else {
                        self.tuning.return_share_again
                    };
                    let decision = if self.rng.chance(return_share) {
                        ReviewDecision::Return {
                            feedback: FEEDBACK[self.rng.below(FEEDBACK.len())].to_owned(),
                        }
                    } else if self.rng.chance(self.tuning.comment_share) {
                        ReviewDecision::Approve {
                            comment: Some(COMMENTS[self.rng.below(COMMENTS.len())].to_owned()),
                        }
                    } else {
                        ReviewDecision::Approve { comment: None }
                    };
                    let returned = matches!(decision, ReviewDecision::Return { .. });
                    let feedback = returned || matches!(decision, ReviewDecision::Approve { comment: Some(_) });
                    let command = EnterpriseCommand::ReviewDocument(ReviewDocument {
                        enterprise_id: self.plan.enterprise_id,
                        document_id,
                        decision,
                    });
                    writer
                        .command(store, rules, &officer, now, correlation, &command)
                        .await?;
                    self.outcome.reviews += 1;
                    self.outcome.returned += u64::from(returned);
                    self.outcome.feedback += u64::from(feedback);
                    let gives_up = self.lax() && self.rng.chance(0.3);
                    if returned && attempt < 3 && !gives_up {
                        let again = now + self.days(1, 6);
                        self.at(
                            again,
                            Action::Upload {
                                requirement,
                                title,
                                coverage,
                                attempt: attempt + 1,
                            },
                        );
                    }
                }
                Action::Inspect => self.inspect(&mut writer, store, now, correlation).await?,
                Action::Submit { hazard_id, attempt } => {
                    let rectification_id = self.rng.uuid();
                    let photo = self.file("整改后照片.jpg");
                    let command = EnterpriseCommand::SubmitRectification(SubmitRectification {
                        enterprise_id: self.plan.enterprise_id,
                        hazard_id,
                        rectification_id,
                        text: "已按要求完成整改，附整改后照片".to_owned(),
                        photos: vec![photo],
                    });
                    writer
                        .command(store, rules, &enterprise, now, correlation, &command)
                        .await?;
                    let verify_at = now + self.days(1, 6);
                    self.at(
                        verify_at,
                        Action::Verify {
                            hazard_id,
                            rectification_id,
                            attempt,
                        },
                    );
                }
                Action::Verify {
                    hazard_id,
                    rectification_id,
                    attempt,
                } => {
                    let returned = attempt == 0 && self.rng.chance(self.tuning.rectification_return_share);
                    let inspector = self.inspector()?;
                    let command = EnterpriseCommand::VerifyRectification(VerifyRectification {
                        enterprise_id: self.plan.enterprise_id,
                        hazard_id,
                        rectification_id,
                        returned_because: returned.then(|| "整改不到位，请重新整改".to_owned()),
                    });
                    writer
                        .command(store, rules, &inspector, now, correlation, &command)
                        .await?;
                    if returned {
                        let again = now + self.days(2, 8);
                        self.at(
                            again,
                            Action::Submit {
                                hazard_id,
                                attempt: attempt + 1,
                            },
                        );
                    }
                }
            }
        }
        let year_end = self.world.end;
        self.outcome.overdue_at_end = writer
            .state
            .hazards
            .values()
            .filter(|hazard| hazard.is_government() && hazard.overdue_at(year_end))
            .count() as u64;
        self.outcome.facts = rates::enterprise_facts(&writer.state, rules, year_end);
        self.outcome.events = writer.events;
        self.outcome.appends = writer.appends;
        Ok(self.outcome)
    }

    async fn inspect(
        &mut self,
        writer: &mut StreamWriter<EnterpriseFile>,
        store: &dyn EventStore,
        now: Instant,
        correlation: uuid::Uuid,
    ) -> Result<(), DemoError> {
        let rules = self.rules;
        let inspector = self.inspector()?;
        let inspected_at = now - Duration::hours(self.rng.between(1, 48));
        let count = self.rng.poisson(self.tuning.hazards_per_inspection);
        let day = inspected_at.with_timezone(&rules.time_zone).date_naive();
        // Demo enterprises are industry and trade: cite that catalogue's items.
        let catalogue = rules
            .supervision
            .catalogues_in_force(day)
            .find(|catalogue| catalogue.scope == CatalogueScope::IndustryAndTrade);
        let mut hazards = Vec::new();
        for _ in 0..count.min(40) {
            let (category, text) = HAZARD_TEXT[self.rng.below(HAZARD_TEXT.len())];
            let major = self.rng.chance(self.tuning.major_hazard_share);
            let criterion = match catalogue {
                Some(catalogue) if major && !catalogue.items.is_empty() => {
                    let item = &catalogue.items[self.rng.below(catalogue.items.len())];
                    Some(CriterionRef {
                        catalogue: catalogue.code.clone(),
                        item: item.code.clone(),
                    })
                }
                _ => None,
            };
            let level = if criterion.is_some() {
                HazardLevel::Major
            } else {
                HazardLevel::General
            };
            let severity = match level {
                HazardLevel::Major => None,
                HazardLevel::General => Some(
                    [
                        Severity::OnTheSpot,
                        Severity::Minor,
                        Severity::Moderate,
                        Severity::Serious,
                    ][self.rng.weighted(&[15.0, 35.0, 35.0, 15.0])],
                ),
            };
            let photo = self.file("隐患照片.jpg");
            hazards.push(NewHazard {
                hazard_id: HazardId(self.rng.uuid()),
                category,
                level,
                severity,
                criterion,
                basis: None,
                description: text.to_owned(),
                photos: vec![photo],
                deadline: None,
            });
        }
        let mut documents = vec![InspectionDocument {
            kind: InspectionDocumentKind::InspectionRecord,
            file: self.file("安全检查记录.pdf"),
        }];
        if !hazards.is_empty() {
            documents.push(InspectionDocument {
                kind: InspectionDocumentKind::RectificationOrder,
                file: self.file("隐患整改通知书.pdf"),
            });
        }
        let command = EnterpriseCommand::RecordInspection(RecordInspection {
            enterprise_id: self.plan.enterprise_id,
            inspection_id: InspectionId(self.rng.uuid()),
            kind: if self.rng.chance(0.8) {
                InspectionKind::OnSite
            } else {
                InspectionKind::Online
            },
            inspected_at,
            inspectors: vec![inspector.user_id.to_string()],
            documents,
            notes: String::new(),
            hazards: hazards.clone(),
        });
        writer
            .command(store, rules, &inspector, now, correlation, &command)
            .await?;
        self.outcome.inspections += 1;
        self.outcome.hazards += hazards.len() as u64;
        for hazard in &hazards {
            if hazard.level == HazardLevel::Major {
                self.outcome.major_hazards += 1;
            }
            let deadline = default_deadline(rules, inspected_at, hazard.level, hazard.severity);
            let never = if self.lax() {
                self.tuning.lax_never_rectify
            } else {
                self.tuning.diligent_never_rectify
            };
            if self.rng.chance(never) {
                continue;
            }
            let window = (deadline - now).num_minutes().max(60);
            let share = if self.rng.chance(self.tuning.late_rectification_share) {
                1.05 + self.rng.unit() * 0.5
            } else {
                0.1 + self.rng.unit() * 0.7
            };
            let when = now + Duration::minutes((window as f64 * share) as i64);
            self.at(
                when,
                Action::Submit {
                    hazard_id: hazard.hazard_id,
                    attempt: 0,
                },
            );
        }
        Ok(())
    }
}

/// The demo's public QR token of enterprise `index` (derived from the seed: demo data only, so
/// a load test can name a page).
pub fn public_token(seed: u64, index: u64) -> Option<PublicToken> {
    let mut rng = Rng::derive(seed, tag::PUBLIC_TOKEN, index);
    PublicToken::parse(&format!("demo{}", &rng.sha256_hex()[..32]))
}

fn actor(user: &str, role: Role) -> Result<Actor, DemoError> {
    Ok(Actor {
        user_id: UserId::parse(user).map_err(|error| DemoError::Plan(error.to_string()))?,
        role,
    })
}

pub(crate) fn agency_actor(user: &str, role: Role) -> Result<Actor, DemoError> {
    actor(user, role)
}

/// Runs one enterprise's history through the store.
pub(crate) async fn simulate(
    store: &dyn EventStore,
    rules: &RuleSet,
    world: &World,
    tuning: &Tuning,
    plan: &EnterprisePlan,
) -> Result<EnterpriseOutcome, DemoError> {
    let life = Life {
        world,
        tuning,
        rules,
        plan,
        rng: Rng::derive(world.seed, tag::ENTERPRISE_LIFE, plan.index),
        queue: BTreeMap::new(),
        sequence: 0,
        outcome: EnterpriseOutcome::default(),
    };
    life.run(store).await
}
