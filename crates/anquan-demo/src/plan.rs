//! Who is in the demo: towns, enterprises with their profiles and habits, agencies and which
//! enterprise contracts with which agency. Every plan is a pure function of the seed and an
//! index, so the enterprise pass and the agency pass agree without sharing memory.

use std::collections::BTreeSet;

use chrono::Duration;

use anquan_domain::enterprise::enterprise_id_for;
use anquan_domain::rules::{EnterpriseProfile, ProfileFlag};
use anquan_domain::{AgencyId, ContractId, EnterpriseId, Instant, Town, UnifiedSocialCreditCode};

use crate::rng::Rng;
use crate::{DemoError, Tuning};

/// Haining's 4 sub-districts and 8 towns with their share of platform enterprises
/// (domain.md §6.3), and a Latin name for user ids.
pub(crate) const TOWNS: [(&str, f64, &str); 12] = [
    ("许村", 14.0, "xucun"),
    ("马桥", 12.0, "maqiao"),
    ("海昌", 11.0, "haichang"),
    ("长安", 10.0, "changan"),
    ("斜桥", 9.0, "xieqiao"),
    ("周王庙", 8.0, "zhouwangmiao"),
    ("盐官", 7.0, "yanguan"),
    ("袁花", 7.0, "yuanhua"),
    ("丁桥", 6.0, "dingqiao"),
    ("硖石", 6.0, "xiashi"),
    ("海洲", 5.0, "haizhou"),
    ("黄湾", 5.0, "huangwan"),
];

/// Haining's industries (domain.md §6.1) with a platform share.
const INDUSTRIES: [(&str, f64); 9] = [
    ("皮革", 14.0),
    ("经编", 14.0),
    ("家纺", 14.0),
    ("磁性材料", 5.0),
    ("化工医药", 8.0),
    ("印刷包装", 10.0),
    ("五金机械", 22.0),
    ("太阳能", 4.0),
    ("服装", 9.0),
];

/// Words for enterprise names.
const NAME_WORDS: [&str; 16] = [
    "宏达", "恒丰", "华美", "天成", "金盛", "永兴", "新宇", "瑞丰", "鑫源", "东方", "卓越", "海达", "锦程", "安泰",
    "联发", "富华",
];

/// Characters allowed in the organisation part of a unified social credit code.
const CODE_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// How an enterprise keeps its file: diligent ones file every due record; lax ones skip some,
/// let certificates lapse and leave hazards unrectified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Habit {
    Diligent,
    Lax,
}

/// A contract with a registered agency.
#[derive(Debug, Clone)]
pub(crate) struct ContractPlan {
    pub(crate) agency: usize,
    pub(crate) contract_id: ContractId,
    pub(crate) signed_at: Instant,
    pub(crate) valid_until: Instant,
    pub(crate) visits: u32,
    pub(crate) fee_yuan: u64,
}

/// One enterprise of the demo.
#[derive(Debug, Clone)]
pub(crate) struct EnterprisePlan {
    pub(crate) index: u64,
    pub(crate) enterprise_id: EnterpriseId,
    pub(crate) credit_code: UnifiedSocialCreditCode,
    pub(crate) name: String,
    pub(crate) town: Town,
    pub(crate) town_latin: String,
    pub(crate) industry: String,
    pub(crate) profile: EnterpriseProfile,
    pub(crate) registered_at: Instant,
    pub(crate) habit: Habit,
    /// A contract with one of the county's registered agencies.
    pub(crate) contract: Option<ContractPlan>,
    /// Service by an agency outside the registry (or an own registered engineer): the
    /// enterprise files R21 records, but no agency stream knows it.
    pub(crate) outside_service: bool,
    /// The enterprise's leaders' training certificates lapse this year and are not renewed.
    pub(crate) certificate_lapses: bool,
    /// Misses the last drill period of the year (diligent) or every drill (lax).
    pub(crate) misses_drill: bool,
}

/// The demo's calendar and size.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) enterprises: u64,
    pub(crate) counties: u64,
    pub(crate) agencies_per_county: usize,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl World {
    /// The county an enterprise belongs to (a province is many Hainings).
    pub(crate) fn county_of(&self, index: u64) -> u64 {
        index % self.counties.max(1)
    }

    /// A county's town name: Haining's names, numbered from the second county on.
    pub(crate) fn town_name(&self, county: u64, town: usize) -> (String, String) {
        let (name, _, latin) = TOWNS[town % TOWNS.len()];
        if county == 0 {
            (name.to_owned(), latin.to_owned())
        } else {
            (format!("{name}{county:03}"), format!("{latin}-{county:03}"))
        }
    }

    /// The global index of a county's agency.
    pub(crate) fn agency_index(&self, county: u64, local: usize) -> usize {
        usize::try_from(county).unwrap_or(0) * self.agencies_per_county + local
    }

    /// The number of agencies.
    pub(crate) fn agency_count(&self) -> usize {
        usize::try_from(self.counties).unwrap_or(1) * self.agencies_per_county
    }
}

/// Tags of the random streams.
pub(crate) mod tag {
    pub(crate) const ENTERPRISE_PLAN: u64 = 1;
    pub(crate) const ENTERPRISE_LIFE: u64 = 2;
    pub(crate) const AGENCY_LIFE: u64 = 3;
    pub(crate) const AGENCY_ID: u64 = 4;
    pub(crate) const PUBLIC_TOKEN: u64 = 5;
}

/// The id of an agency (a UUID chosen by the caller, as the API does; here from the seed).
pub(crate) fn agency_id(world: &World, index: usize) -> AgencyId {
    AgencyId(Rng::derive(world.seed, tag::AGENCY_ID, index as u64).uuid())
}

/// Long-tailed weights of a county's agencies: the top 5 of 38 hold about 40 % of contracts.
pub(crate) fn agency_weights(count: usize, exponent: f64) -> Vec<f64> {
    (0..count)
        .map(|rank| 1.0 / ((rank + 1) as f64).powf(exponent))
        .collect()
}

/// The id of the demo's enterprise `index` (its credit code depends on the index alone).
pub fn enterprise_id(index: u64) -> Option<EnterpriseId> {
    credit_code(index).ok().map(|code| enterprise_id_for(&code))
}

fn credit_code(index: u64) -> Result<UnifiedSocialCreditCode, DemoError> {
    let mut org = [b'0'; 9];
    let mut rest = index;
    for slot in org.iter_mut().rev() {
        *slot = CODE_CHARS[usize::try_from(rest % 31).unwrap_or(0)];
        rest /= 31;
    }
    let first_17 = format!("91330481{}", String::from_utf8_lossy(&org));
    UnifiedSocialCreditCode::with_check_character(&first_17)
        .map_err(|error| DemoError::Plan(format!("credit code {first_17}: {error}")))
}

/// Plans enterprise `index`.
pub(crate) fn enterprise(world: &World, tuning: &Tuning, index: u64) -> Result<EnterprisePlan, DemoError> {
    let mut rng = Rng::derive(world.seed, tag::ENTERPRISE_PLAN, index);
    let county = world.county_of(index);
    let weights: Vec<f64> = TOWNS.iter().map(|(_, share, _)| *share).collect();
    let town_index = rng.weighted(&weights);
    let (town_name, town_latin) = world.town_name(county, town_index);
    let town = Town::parse(&town_name).map_err(|error| DemoError::Plan(error.to_string()))?;
    let mut industry_weights: Vec<f64> = INDUSTRIES.iter().map(|(_, share)| *share).collect();
    // Industry tilt: 马桥 warp knitting, 许村 home textiles, 黄湾 chemicals and solar.
    match TOWNS[town_index].0 {
        "马桥" => industry_weights[1] *= 4.0,
        "许村" => industry_weights[2] *= 4.0,
        "黄湾" => {
            industry_weights[4] *= 4.0;
            industry_weights[7] *= 3.0;
        }
        _ => {}
    }
    let industry = INDUSTRIES[rng.weighted(&industry_weights)].0;
    let chemical = industry == "化工医药";
    let metal = industry == "五金机械" || industry == "磁性材料";

    let mut flags = BTreeSet::new();
    let mut flag = |rng: &mut Rng, p: f64, flag: ProfileFlag| {
        if rng.chance(p) {
            flags.insert(flag);
        }
    };
    flag(
        &mut rng,
        if chemical { 0.8 } else { 0.06 },
        ProfileFlag::HazardousChemicals,
    );
    flag(&mut rng, if metal { 0.12 } else { 0.035 }, ProfileFlag::DustExplosion);
    flag(&mut rng, 0.20, ProfileFlag::ConfinedSpace);
    flag(&mut rng, if metal { 0.25 } else { 0.06 }, ProfileFlag::SprayPainting);
    flag(&mut rng, 0.005, ProfileFlag::AmmoniaRefrigeration);
    flag(&mut rng, if metal { 0.08 } else { 0.0 }, ProfileFlag::MoltenMetal);
    flag(&mut rng, 0.60, ProfileFlag::SpecialEquipment);
    flag(&mut rng, 0.45, ProfileFlag::SpecialOperators);
    flag(&mut rng, 0.35, ProfileFlag::OccupationalHazards);
    flag(&mut rng, 0.25, ProfileFlag::ContractsOrLeases);
    flag(
        &mut rng,
        if chemical { 0.3 } else { 0.0 },
        ProfileFlag::HighRiskIndustry,
    );
    flag(
        &mut rng,
        if chemical || metal { 1.0 } else { 0.0 },
        ProfileFlag::SafetyCostMandatory,
    );
    flag(&mut rng, 0.03, ProfileFlag::CrowdedPlace);

    // Platform membership: every 500万+ enterprise, plus smaller key-supervised ones.
    let over_5m = rng.chance(tuning.revenue_over_5m_share);
    let revenue = if over_5m {
        let low = tuning.revenue_over_5m_10k_yuan as f64;
        (low * (rng.unit() * (200.0f64).ln()).exp()) as u64
    } else {
        u64::try_from(rng.between(50, i64::try_from(tuning.revenue_over_5m_10k_yuan).unwrap_or(500))).unwrap_or(100)
    };
    let key = [
        ProfileFlag::HazardousChemicals,
        ProfileFlag::DustExplosion,
        ProfileFlag::ConfinedSpace,
        ProfileFlag::SprayPainting,
        ProfileFlag::AmmoniaRefrigeration,
        ProfileFlag::MoltenMetal,
    ];
    if !over_5m && !key.iter().any(|f| flags.contains(f)) {
        flags.insert(key[rng.weighted(&[3.0, 2.0, 6.0, 3.0, 0.1, 0.5])]);
    }
    let staff_count = match rng.unit() {
        u if u < 0.032 => rng.between(300, 2500),
        u if u < 0.22 => rng.between(101, 300),
        _ => rng.between(8, 101),
    };
    if revenue >= 20_000 && rng.chance(0.5) || over_5m && rng.chance(0.40) {
        flags.insert(ProfileFlag::AboveDesignatedSize);
    }
    let profile = EnterpriseProfile {
        staff_count: u32::try_from(staff_count).unwrap_or(50),
        annual_revenue_10k_yuan: revenue,
        flags,
    };

    // Most enterprises joined the platform in its first months.
    let onboarding_days = f64::from(tuning.onboarding_days);
    let day = (rng.unit().powf(tuning.onboarding_skew) * onboarding_days) as i64;
    let registered_at = world.start + Duration::days(day) + Duration::minutes(rng.between(8 * 60, 17 * 60) - 8 * 60);

    let habit = if rng.chance(tuning.diligent_share) {
        Habit::Diligent
    } else {
        Habit::Lax
    };
    let diligent = habit == Habit::Diligent;
    let contract_share = if over_5m {
        tuning.contract_share_over_5m
    } else {
        tuning.contract_share_small
    };
    let contract = if rng.chance(contract_share) {
        let local = rng.weighted(&agency_weights(world.agencies_per_county, tuning.agency_skew));
        let signed_at = registered_at + Duration::days(rng.between(3, 60)) + Duration::hours(rng.between(1, 6));
        // A yearly contract renewed until the history ends, as one term of whole years (so a
        // contract signed in the first of several years is still in force at the end).
        let years = (((world.end - signed_at).num_days().max(0) + 364) / 365).clamp(1, 3);
        Some(ContractPlan {
            agency: world.agency_index(county, local),
            contract_id: ContractId(rng.uuid()),
            signed_at,
            valid_until: signed_at + Duration::days(365 * years),
            visits: u32::try_from(rng.between(3, 7)).unwrap_or(3),
            fee_yuan: u64::try_from(rng.between(6, 30)).unwrap_or(10) * 1_000,
        })
    } else {
        None
    };
    let outside_service = contract.is_none() && diligent;
    let certificate_lapses = rng.chance(if diligent {
        tuning.diligent_certificate_lapse
    } else {
        tuning.lax_certificate_lapse
    });
    let misses_drill = rng.chance(if diligent {
        tuning.diligent_drill_miss
    } else {
        tuning.lax_drill_miss
    });
    let credit_code = credit_code(index)?;
    let name = format!(
        "海宁{}{}{}有限公司",
        NAME_WORDS[rng.below(NAME_WORDS.len())],
        NAME_WORDS[rng.below(NAME_WORDS.len())],
        industry
    );
    Ok(EnterprisePlan {
        index,
        enterprise_id: enterprise_id_for(&credit_code),
        credit_code,
        name,
        town,
        town_latin,
        industry: industry.to_owned(),
        profile,
        registered_at,
        habit,
        contract,
        outside_service,
        certificate_lapses,
        misses_drill,
    })
}
