//! Synthetic uptake data for demonstrations, tests and benchmarks: seeded,
//! so the same seed gives the same records. Nothing here is real data.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bundle::{BundleWriter, ExportError, ExportSummary};
use crate::identity::DeviceIdentity;
use crate::record::{
    AcceptedFraction, AgeBand, BolusMl, Category, ChainHash, Eligibility, Minutes, OdsCode, Period,
    RandomId, Record, Software,
};

/// Synthetic records of one device: organisations drawn from `orgs`,
/// months from `first_period` over `months` months.
pub struct SyntheticRecords {
    rng: StdRng,
    device: RandomId,
    orgs: Vec<OdsCode>,
    first_period: Period,
    months: u16,
    software: Software,
}

impl SyntheticRecords {
    /// A seeded generator (the demo organisations when `orgs` is empty).
    pub fn new(
        seed: u64,
        device: RandomId,
        orgs: &[OdsCode],
        first_period: Period,
        months: u16,
    ) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            device,
            orgs: if orgs.is_empty() {
                demo_orgs()
            } else {
                orgs.to_vec()
            },
            first_period,
            months: months.max(1),
            software: Software::this_build(),
        }
    }

    /// The next synthetic record.
    pub fn next_record(&mut self) -> Record {
        let rng = &mut self.rng;
        let org = self.orgs[rng.gen_range(0..self.orgs.len())];
        let period = self
            .first_period
            .plus_months(u32::from(rng.gen_range(0..self.months)));
        let category = Category::ALL[rng.gen_range(0..Category::ALL.len())];
        let eligibility = Eligibility::ALL[rng.gen_range(0..Eligibility::ALL.len())];
        let age_band = AgeBand::from_age_years(rng.gen_range(16..95));
        let boluses = rng.gen_range(0..6u32);
        let bolus_ml: u64 = (0..boluses).map(|_| rng.gen_range(200..=250u64)).sum();
        let beats = rng.gen_range(2000..12000u64);
        let accepted = beats - rng.gen_range(0..beats / 4);
        Record {
            record_id: RandomId::from_random_bytes(rng.r#gen()),
            device: self.device,
            org,
            period,
            category,
            eligibility,
            age_band,
            minutes: Minutes::from_seconds(rng.gen_range(1200..18000)),
            boluses,
            bolus_ml: BolusMl::from_total_ml(bolus_ml),
            accepted_fraction: AcceptedFraction::from_beats(accepted, beats),
            probe_model: rng.gen_range(1..4),
            software: self.software.clone(),
        }
    }
}

impl Iterator for SyntheticRecords {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        Some(self.next_record())
    }
}

/// A set of synthetic bundles for report demonstrations and benchmarks.
#[derive(Debug, Clone)]
pub struct SyntheticBundles {
    /// Each bundle directory (under `<out>/bundles/`).
    pub bundles: Vec<PathBuf>,
    /// `<out>/eligible.csv`: a denominator for every cell.
    pub eligible_csv: PathBuf,
    /// `<out>/register.csv`: every device's public key.
    pub register_csv: PathBuf,
    /// What each bundle's export wrote.
    pub summaries: Vec<ExportSummary>,
}

/// The demo organisations: two trusts and a site of the first.
pub fn demo_orgs() -> Vec<OdsCode> {
    ["RH8", "RH802", "RTH"]
        .iter()
        .filter_map(|c| OdsCode::parse(c).ok())
        .collect()
}

/// Writes `devices` signed bundles of `records_per_device` synthetic
/// records each into `<out>/bundles/device-NN`, with `eligible.csv` and
/// `register.csv` beside them. Device keys are made from the seed and not
/// kept: these bundles are for demonstrations only.
pub fn write_synthetic_bundles(
    out: &Path,
    devices: usize,
    records_per_device: u64,
    seed: u64,
) -> Result<SyntheticBundles, ExportError> {
    let orgs = demo_orgs();
    let first = Period::parse("2025-01").unwrap_or(Period::current_utc());
    let months = 24u16;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut register = String::from("device,public_key\n");
    let mut bundles = Vec::new();
    let mut summaries = Vec::new();
    let exported = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    for d in 0..devices {
        let identity =
            DeviceIdentity::from_secret(RandomId::from_random_bytes(rng.r#gen()), rng.r#gen());
        register.push_str(&identity.register_line());
        register.push('\n');
        let dir = out.join("bundles").join(format!("device-{d:02}"));
        let org = orgs[d % orgs.len()];
        let mut writer = BundleWriter::create(&dir, &identity, org, ChainHash::GENESIS)?;
        let records = SyntheticRecords::new(rng.r#gen(), identity.device, &orgs, first, months);
        for record in records.take(usize::try_from(records_per_device).unwrap_or(usize::MAX)) {
            writer.push(&record)?;
        }
        summaries.push(writer.finish(exported)?);
        bundles.push(dir);
    }
    let eligible_csv = out.join("eligible.csv");
    let mut eligible = std::fs::File::create(&eligible_csv).map_err(io(&eligible_csv))?;
    let mut text = String::from("org,period,category,eligible\n");
    // Cells hold on average devices·records/(3·24·11) monitored records;
    // make uptake land roughly between 30% and 90%.
    let per_cell = (devices as u64 * records_per_device) / (orgs.len() as u64 * 24 * 11);
    for org in &orgs {
        for m in 0..months {
            let period = first.plus_months(u32::from(m));
            for category in Category::ALL {
                let eligible = per_cell * rng.gen_range(11..34) / 10 + rng.gen_range(0..5);
                text.push_str(&format!("{org},{period},{category},{eligible}\n"));
            }
        }
    }
    eligible
        .write_all(text.as_bytes())
        .map_err(io(&eligible_csv))?;
    let register_csv = out.join("register.csv");
    std::fs::write(&register_csv, register).map_err(io(&register_csv))?;
    Ok(SyntheticBundles {
        bundles,
        eligible_csv,
        register_csv,
        summaries,
    })
}
