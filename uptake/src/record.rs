//! The uptake case record: the only thing this crate ever stores about a case.
//!
//! This file is written for auditors and information-governance leads. A
//! [`Record`] has exactly the 13 fields of `shared/spec/uptake-bundle.md`
//! ("Record fields (nothing else, ever)"), and each field has a type that
//! can only hold a value from the spec's vocabulary:
//!
//! | field | type | what it can hold |
//! |---|---|---|
//! | `record_id` | [`RandomId`] | a random UUID v4 |
//! | `device` | [`RandomId`] | the installation's random UUID v4 pseudonym |
//! | `org` | [`OdsCode`] | 3 or 5 upper-case letters/digits |
//! | `period` | [`Period`] | year and month only (`YYYY-MM`) |
//! | `category` | [`Category`] | one of 11 surgical categories |
//! | `eligibility` | [`Eligibility`] | NICE MTG3 class |
//! | `age_band` | [`AgeBand`] | one of 9 bands, never an age |
//! | `minutes` | [`Minutes`] | a multiple of 15 |
//! | `boluses` | `u32` | a count |
//! | `bolus_ml` | [`BolusMl`] | a multiple of 50 |
//! | `accepted_fraction` | [`AcceptedFraction`] | 0.0 … 1.0 in tenths |
//! | `probe_model` | `u8` | 0–255 |
//! | `software` | [`Software`] | ≤ 40 printable ASCII characters |
//!
//! There is no field for a name, an NHS or hospital number, a date of birth,
//! an exact date or time, or free text, and none can be added without
//! changing this file and the spec.

use std::fmt;

use sha2::{Digest, Sha256};

/// Why a field value was refused: which field, and what was expected.
///
/// The offending value itself is never echoed, because a value refused from
/// a foreign bundle might be an identifier that must not be copied onward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {expected}")]
pub struct FieldError {
    /// The spec's column name.
    pub field: &'static str,
    /// What a valid value looks like.
    pub expected: &'static str,
}

fn field_error(field: &'static str, expected: &'static str) -> FieldError {
    FieldError { field, expected }
}

/// The 13 column names, in the spec's table order.
pub const FIELD_NAMES: [&str; 13] = [
    "record_id",
    "device",
    "org",
    "period",
    "category",
    "eligibility",
    "age_band",
    "minutes",
    "boluses",
    "bolus_ml",
    "accepted_fraction",
    "probe_model",
    "software",
];

/// A random UUID v4 in canonical lower-case hyphenated form; used for
/// `record_id` and for the `device` pseudonym (never a hardware serial).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RandomId(uuid::Uuid);

impl RandomId {
    /// A fresh random v4 UUID (from the operating system's random source).
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Makes an id from 16 random bytes, setting the v4 version and variant
    /// bits (for seeded synthetic data).
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// Parses the canonical text: 36 characters, lower-case hex, hyphens at
    /// 8-4-4-4-12, version 4, RFC 4122 variant.
    pub fn parse(text: &str, field: &'static str) -> Result<Self, FieldError> {
        const EXPECTED: &str = "a UUID v4 in lower-case hex with hyphens";
        let b = text.as_bytes();
        if b.len() != 36 {
            return Err(field_error(field, EXPECTED));
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            };
            if !ok {
                return Err(field_error(field, EXPECTED));
            }
        }
        let uuid = uuid::Uuid::try_parse(text).map_err(|_| field_error(field, EXPECTED))?;
        if uuid.get_version_num() != 4 || uuid.get_variant() != uuid::Variant::RFC4122 {
            return Err(field_error(field, EXPECTED));
        }
        Ok(Self(uuid))
    }
}

impl fmt::Display for RandomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// An NHS ODS organisation code: 3 characters for a trust (`RH8`), 5 for a
/// site (`RH802`); upper-case letters and digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode {
    bytes: [u8; 5],
    len: u8,
}

impl OdsCode {
    /// Parses and validates an ODS code.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let b = text.as_bytes();
        let valid_chars = b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !(b.len() == 3 || b.len() == 5) || !valid_chars {
            return Err(field_error(
                "org",
                "an ODS code of 3 or 5 upper-case letters or digits",
            ));
        }
        let mut bytes = [0u8; 5];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            bytes,
            len: b.len() as u8,
        })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters and digits are ever stored (checked in `parse`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The month monitoring started (`YYYY-MM`): never a day or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    year: u16,
    month: u8,
}

impl Period {
    /// A period from a year (1000–9999, so it prints as four digits) and a
    /// month (1–12).
    pub fn new(year: u16, month: u8) -> Result<Self, FieldError> {
        if !(1000..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(field_error("period", "YYYY-MM with month 01-12"));
        }
        Ok(Self { year, month })
    }

    /// The current month in UTC.
    pub fn current_utc() -> Self {
        Self::of_date_time(time::OffsetDateTime::now_utc())
    }

    /// The current month in UK civil time: the month a hospital's own
    /// systems date the case by (see [`Period::uk_civil`]).
    pub fn current_uk() -> Self {
        Self::uk_civil(time::OffsetDateTime::now_utc())
    }

    /// The month of an instant in UK civil time: GMT, or BST (UTC + 1)
    /// from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
    /// Sunday of October (the Summer Time Order 2002, the rule since 1981).
    /// A case begun at 00:30 BST on 1 August is August's, as the trust's
    /// theatre system and its count of eligible cases have it, not July's
    /// as UTC would make it.
    pub fn uk_civil(at: time::OffsetDateTime) -> Self {
        use time::{Date, Duration, Month, UtcOffset};
        let utc = at.to_offset(UtcOffset::UTC);
        let last_sunday_0100 = |month: Month| -> Option<time::OffsetDateTime> {
            let last = Date::from_calendar_date(utc.year(), month, 31).ok()?;
            let sunday = last - Duration::days(last.weekday().number_days_from_sunday().into());
            Some(sunday.with_hms(1, 0, 0).ok()?.assume_utc())
        };
        let summer = match (
            last_sunday_0100(Month::March),
            last_sunday_0100(Month::October),
        ) {
            (Some(from), Some(to)) => utc >= from && utc < to,
            _ => false,
        };
        let local = if summer {
            utc.checked_add(Duration::HOUR).unwrap_or(utc)
        } else {
            utc
        };
        Self::of_date_time(local)
    }

    /// The month of a date-time as its own offset shows it.
    fn of_date_time(at: time::OffsetDateTime) -> Self {
        // `time` years are within ±9999; clamp anything odd into range.
        let year = u16::try_from(at.year()).unwrap_or(1000).clamp(1000, 9999);
        Self {
            year,
            month: u8::from(at.month()),
        }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = || field_error("period", "YYYY-MM with month 01-12");
        let b = text.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(err());
        }
        if !b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) {
            return Err(err());
        }
        let year = text[..4].parse::<u16>().map_err(|_| err())?;
        let month = text[5..].parse::<u8>().map_err(|_| err())?;
        Self::new(year, month)
    }

    /// The period `months` months later (stays at 9999-12 at the end of
    /// the calendar the format can write).
    pub fn plus_months(self, months: u32) -> Self {
        let index = (u32::from(self.year) * 12 + u32::from(self.month) - 1)
            .saturating_add(months)
            .min(9999 * 12 + 11);
        Self {
            year: (index / 12) as u16,
            month: (index % 12 + 1) as u8,
        }
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1–12.
    pub fn month(&self) -> u8 {
        self.month
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Declares a closed vocabulary: an enum whose text forms are exactly the
/// spec's words, with `as_str`, `parse` and `ALL`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $field:literal, $expected:literal,
     { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the spec's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The spec's word for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses the spec's word (exact, case-sensitive).
            pub fn parse(text: &str) -> Result<Self, FieldError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(field_error($field, $expected)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// The surgical category: a coarse class, never procedure text.
    Category, "category", "one of the spec's surgical categories", {
        /// Colorectal surgery.
        Colorectal => "colorectal",
        /// Upper gastro-intestinal surgery.
        UpperGi => "upper_gi",
        /// Hepatobiliary surgery.
        Hepatobiliary => "hepatobiliary",
        /// Urology.
        Urology => "urology",
        /// Gynaecological oncology.
        GynaeOncology => "gynae_oncology",
        /// Orthopaedic surgery (other than hip fracture).
        Orthopaedic => "orthopaedic",
        /// Hip fracture surgery.
        HipFracture => "hip_fracture",
        /// Vascular surgery.
        Vascular => "vascular",
        /// Emergency laparotomy.
        EmergencyLaparotomy => "emergency_laparotomy",
        /// Any other category.
        Other => "other",
        /// The clinician did not record a category.
        NotRecorded => "not_recorded",
    }
);

vocabulary!(
    /// NICE MTG3 eligibility: major surgery, high-risk patient, or neither.
    Eligibility, "eligibility", "one of major, high_risk, neither, not_recorded", {
        /// Major surgery.
        Major => "major",
        /// A high-risk patient.
        HighRisk => "high_risk",
        /// Neither.
        Neither => "neither",
        /// Not recorded.
        NotRecorded => "not_recorded",
    }
);

vocabulary!(
    /// A ten-year age band (the exact age is never stored).
    AgeBand, "age_band", "one of the spec's age bands", {
        /// 0 to 17 years.
        Under18 => "0-17",
        /// 18 to 29 years.
        From18To29 => "18-29",
        /// 30 to 39 years.
        From30To39 => "30-39",
        /// 40 to 49 years.
        From40To49 => "40-49",
        /// 50 to 59 years.
        From50To59 => "50-59",
        /// 60 to 69 years.
        From60To69 => "60-69",
        /// 70 to 79 years.
        From70To79 => "70-79",
        /// 80 years or more.
        From80 => "80+",
        /// Age not recorded.
        NotRecorded => "not_recorded",
    }
);

impl AgeBand {
    /// The band holding an age in completed years.
    pub fn from_age_years(age_years: u32) -> Self {
        match age_years {
            0..=17 => Self::Under18,
            18..=29 => Self::From18To29,
            30..=39 => Self::From30To39,
            40..=49 => Self::From40To49,
            50..=59 => Self::From50To59,
            60..=69 => Self::From60To69,
            70..=79 => Self::From70To79,
            _ => Self::From80,
        }
    }
}

/// Parses an integer written without sign, padding or leading zeros.
fn parse_plain_u32(
    text: &str,
    field: &'static str,
    expected: &'static str,
) -> Result<u32, FieldError> {
    let b = text.as_bytes();
    let canonical =
        !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0');
    if !canonical {
        return Err(field_error(field, expected));
    }
    text.parse::<u32>()
        .map_err(|_| field_error(field, expected))
}

/// Rounds `value` to the nearest multiple of `step`, halves up.
fn round_to_nearest(value: u64, step: u64) -> u64 {
    (value + step / 2) / step * step
}

/// Monitoring time in minutes, always a multiple of 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Minutes(u32);

impl Minutes {
    /// Monitoring time from exact seconds, rounded to the nearest 15 minutes
    /// (7 min 30 s and more rounds up).
    pub fn from_seconds(seconds: u64) -> Self {
        // 15 minutes = 900 s; saturate rather than wrap on absurd input.
        let rounded_s = round_to_nearest(seconds.min(u64::from(u32::MAX)), 900);
        Self(u32::try_from(rounded_s / 60).unwrap_or(u32::MAX / 60 / 15 * 15))
    }

    /// Parses a canonical multiple of 15.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        const EXPECTED: &str = "an integer multiple of 15 without leading zeros";
        let m = parse_plain_u32(text, "minutes", EXPECTED)?;
        if m % 15 != 0 {
            return Err(field_error("minutes", EXPECTED));
        }
        Ok(Self(m))
    }

    /// The value in minutes.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Total bolus volume in ml, always a multiple of 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BolusMl(u32);

impl BolusMl {
    /// The total volume rounded to the nearest 50 ml (25 ml rounds up).
    pub fn from_total_ml(total_ml: u64) -> Self {
        let rounded = round_to_nearest(total_ml.min(u64::from(u32::MAX - 50)), 50);
        Self(u32::try_from(rounded).unwrap_or(0))
    }

    /// Parses a canonical multiple of 50.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        const EXPECTED: &str = "an integer multiple of 50 without leading zeros";
        let ml = parse_plain_u32(text, "bolus_ml", EXPECTED)?;
        if ml % 50 != 0 {
            return Err(field_error("bolus_ml", EXPECTED));
        }
        Ok(Self(ml))
    }

    /// The value in ml.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Fraction of beats accepted, in tenths (0.0 … 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcceptedFraction(u8);

impl AcceptedFraction {
    /// `accepted / total` to one decimal, halves up; 0.0 when no beats were
    /// seen; accepted beyond total counts as all.
    pub fn from_beats(accepted: u64, total: u64) -> Self {
        if total == 0 {
            return Self(0);
        }
        let accepted = accepted.min(total) as u128;
        let total = total as u128;
        // round(10·a/t) with halves up = floor((20a + t) / 2t).
        let tenths = (20 * accepted + total) / (2 * total);
        Self(u8::try_from(tenths).unwrap_or(10).min(10))
    }

    /// Parses `D.D` between `0.0` and `1.0`.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let err = || field_error("accepted_fraction", "one decimal between 0.0 and 1.0");
        match text.as_bytes() {
            [b'0', b'.', d] if d.is_ascii_digit() => Ok(Self(d - b'0')),
            [b'1', b'.', b'0'] => Ok(Self(10)),
            _ => Err(err()),
        }
    }

    /// The value in tenths, 0–10.
    pub fn tenths(self) -> u8 {
        self.0
    }
}

impl fmt::Display for AcceptedFraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// The monitor's name and version: 1–40 printable ASCII characters without
/// `,` `"` or `|`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Software(String);

impl Software {
    /// Parses and validates.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= 40
            && text
                .bytes()
                .all(|c| (0x20..=0x7e).contains(&c) && !matches!(c, b',' | b'"' | b'|'));
        if !ok {
            return Err(field_error(
                "software",
                "1-40 printable ASCII characters without , \" or |",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// Parses a value this installation is to write into a record: the
    /// spec's form, and also plainly a name and a version (`odm 0.3.1`): a
    /// word of at most 20 characters, one space, and a version of two to
    /// four dot-separated numbers with at most a 20-character `-`/`+`
    /// suffix; no run of five or more digits anywhere (an NHS or hospital
    /// number, an unseparated date), and nothing the identifier scanner
    /// flags. A reader takes any spec-valid value (another monitor's); a
    /// writer does not publish free text in the one field the spec leaves
    /// open (an open case's row edited in the database, or a caller of the
    /// library). A word can still be a surname: the form keeps numbers
    /// out, not every name.
    pub fn parse_for_writing(text: &str) -> Result<Self, FieldError> {
        let software = Self::parse(text)?;
        let refused = || {
            field_error(
                "software",
                "a software name and version, as `odm 0.3.1`, and nothing else",
            )
        };
        let (name, version) = text.split_once(' ').ok_or_else(refused)?;
        let name_ok = (1..=20).contains(&name.len())
            && name.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        let (numbers, suffix) = match version.find(['-', '+']) {
            Some(i) => version.split_at(i),
            None => (version, ""),
        };
        let parts: Vec<&str> = numbers.split('.').collect();
        let numbers_ok = (2..=4).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
        let suffix_ok = suffix.len() <= 21
            && suffix
                .bytes()
                .skip(1)
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+'));
        let longest_digits = text
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        if !(name_ok && numbers_ok && suffix_ok)
            || longest_digits >= 5
            || !crate::scan::scan_for_identifiers(text.as_bytes()).is_empty()
        {
            return Err(refused());
        }
        Ok(software)
    }

    /// This build: `odm` and the crate version.
    pub fn this_build() -> Self {
        Self(format!("odm {}", env!("CARGO_PKG_VERSION")))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One anonymised case: exactly the spec's 13 fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Random id of this record.
    pub record_id: RandomId,
    /// The installation's pseudonym.
    pub device: RandomId,
    /// Organisation (trust or site) where the case was monitored.
    pub org: OdsCode,
    /// Month monitoring started.
    pub period: Period,
    /// Surgical category.
    pub category: Category,
    /// NICE MTG3 eligibility.
    pub eligibility: Eligibility,
    /// Age band.
    pub age_band: AgeBand,
    /// Monitoring time, nearest 15 minutes.
    pub minutes: Minutes,
    /// Number of fluid boluses marked.
    pub boluses: u32,
    /// Total bolus volume, nearest 50 ml.
    pub bolus_ml: BolusMl,
    /// Fraction of beats accepted.
    pub accepted_fraction: AcceptedFraction,
    /// PROBE_INFO `probe_model`.
    pub probe_model: u8,
    /// Monitor name and version.
    pub software: Software,
}

impl Record {
    /// Appends the 13 canonical values joined by `sep` (this text, with `|`,
    /// is what the hash chain hashes; with `,` it is the CSV line).
    pub fn write_fields(&self, sep: char, out: &mut String) {
        use fmt::Write;
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "{id}{s}{dev}{s}{org}{s}{per}{s}{cat}{s}{eli}{s}{age}{s}{min}{s}{bol}{s}{ml}{s}{acc}{s}{pm}{s}{sw}",
            s = sep,
            id = self.record_id,
            dev = self.device,
            org = self.org,
            per = self.period,
            cat = self.category,
            eli = self.eligibility,
            age = self.age_band,
            min = self.minutes.get(),
            bol = self.boluses,
            ml = self.bolus_ml.get(),
            acc = self.accepted_fraction,
            pm = self.probe_model,
            sw = self.software.as_str(),
        );
    }

    /// Parses the 13 values (in table order) strictly: each must be in its
    /// vocabulary and written canonically, so that re-writing it gives back
    /// the same text and so the same hash.
    pub fn from_fields(fields: &[&str; 13]) -> Result<Self, FieldError> {
        let [id, dev, org, per, cat, eli, age, min, bol, ml, acc, pm, sw] = *fields;
        Ok(Self {
            record_id: RandomId::parse(id, "record_id")?,
            device: RandomId::parse(dev, "device")?,
            org: OdsCode::parse(org)?,
            period: Period::parse(per)?,
            category: Category::parse(cat)?,
            eligibility: Eligibility::parse(eli)?,
            age_band: AgeBand::parse(age)?,
            minutes: Minutes::parse(min)?,
            boluses: parse_plain_u32(bol, "boluses", "an integer without leading zeros")?,
            bolus_ml: BolusMl::parse(ml)?,
            accepted_fraction: AcceptedFraction::parse(acc)?,
            probe_model: u8::try_from(parse_plain_u32(
                pm,
                "probe_model",
                "an integer 0-255 without leading zeros",
            )?)
            .map_err(|_| field_error("probe_model", "an integer 0-255 without leading zeros"))?,
            software: Software::parse(sw)?,
        })
    }

    /// This record's chain hash after `prev` (spec "Hash chain").
    pub fn chain_hash(&self, prev: &ChainHash) -> ChainHash {
        let mut text = String::with_capacity(320);
        self.write_fields('|', &mut text);
        chain_hash_of_fields(prev, &text)
    }
}

/// `sha256(prev_hash + "|" + fields_joined_by_pipe)` (spec "Hash chain").
pub fn chain_hash_of_fields(prev: &ChainHash, fields_joined_by_pipe: &str) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(prev.to_hex().as_bytes());
    hasher.update(b"|");
    hasher.update(fields_joined_by_pipe.as_bytes());
    ChainHash(hasher.finalize().into())
}

/// A SHA-256 chain hash; written as 64 lower-case hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of a device's first record: 64 `0` characters.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex_from_bytes(&self.0)
    }

    /// Parses exactly 64 lower-case hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        bytes_from_hex::<32>(text).map(Self)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lower-case hex of bytes.
pub fn hex_from_bytes(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Parses exactly `2·N` lower-case hex characters (upper case is refused:
/// the spec writes hashes, keys and signatures in lower case).
pub fn bytes_from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = text.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This build's own name and version is always writable: a version
    /// the writer's form refused would stop the monitor counting cases.
    #[test]
    fn this_build_is_writable() {
        let this = Software::this_build();
        assert_eq!(
            Software::parse_for_writing(this.as_str()).map(|s| s.0),
            Ok(this.0)
        );
    }

    /// The writer's form: a name and a version, nothing that could carry
    /// a number or date of a patient; a reader takes them all.
    #[test]
    fn software_is_written_only_as_a_name_and_version() {
        for ok in [
            "odm 0.3.1",
            "odm 1.2",
            "odm-monitor 1.2.0-rc.1+build5",
            "x_y 10.20.30.40",
            "abcdefghijklmnopqrst 1.0",
            "odm 1.0-abcdefghijklmnopqrst",
        ] {
            assert!(Software::parse_for_writing(ok).is_ok(), "{ok}");
        }
        for refused in [
            "odm",
            "odm 1",
            "Jane Smith 1.0",
            "odm 9434765919a",
            "odm 14031957",
            "odm 1.0.14031957",
            "odm 1.0.0-9434765919a",
            "odm 1.0.0-14.03.1957",
            "odm 1.0.0-SW1A 1AA",
            "odm 1.0 extra",
            "MRN K123456",
            "9odm 1.0",
            "abcdefghijklmnopqrstu 1.0",
            "od.m 1.0",
            "odm 1.0-rc:1",
            "odm 1.0-abcdefghijklmnopqrstu",
        ] {
            assert!(Software::parse_for_writing(refused).is_err(), "{refused}");
            assert!(Software::parse(refused).is_ok(), "a reader takes {refused}");
        }
    }

    #[test]
    fn a_case_is_dated_by_the_uk_civil_month() {
        use time::macros::datetime;
        let month = |at| Period::uk_civil(at).to_string();
        // Summer: 23:30 UTC on the last day is already the next month.
        assert_eq!(month(datetime!(2026-07-31 23:30 UTC)), "2026-08");
        assert_eq!(month(datetime!(2026-07-31 22:59 UTC)), "2026-07");
        // Winter: GMT is UTC.
        assert_eq!(month(datetime!(2026-01-31 23:30 UTC)), "2026-01");
        assert_eq!(month(datetime!(2026-02-01 00:00 UTC)), "2026-02");
        // 2024-03-31 was the last Sunday of March: BST from 01:00 UTC.
        assert_eq!(month(datetime!(2024-03-31 00:30 UTC)), "2024-03");
        assert_eq!(month(datetime!(2024-03-31 23:30 UTC)), "2024-04");
        // 2027-03-28 is the last Sunday of March; 2026-10-25 of October.
        assert_eq!(month(datetime!(2027-03-31 23:30 UTC)), "2027-04");
        assert_eq!(month(datetime!(2026-09-30 23:00 UTC)), "2026-10");
        assert_eq!(month(datetime!(2026-10-31 23:30 UTC)), "2026-10");
        // The offset an instant is written in does not matter.
        assert_eq!(month(datetime!(2026-08-01 01:30 +02:00)), "2026-08");
    }

    #[test]
    fn periods_count_months_across_years_and_stop_at_9999_12() {
        let p = Period::new(2025, 11).unwrap();
        assert_eq!((p.year(), p.month()), (2025, 11));
        let later = |m| p.plus_months(m).to_string();
        assert_eq!(later(0), "2025-11");
        assert_eq!(later(1), "2025-12");
        assert_eq!(later(2), "2026-01");
        assert_eq!(later(14), "2027-01");
        assert_eq!(later(25), "2027-12");
        assert_eq!(later(26), "2028-01");
        let last = Period::new(9999, 12).unwrap();
        assert_eq!(last.plus_months(1), last);
        assert_eq!(Period::new(9998, 6).unwrap().plus_months(u32::MAX), last);
        let first = Period::new(1000, 1).unwrap();
        assert_eq!((first.year(), first.month()), (1000, 1));
    }

    fn example() -> Record {
        Record {
            record_id: RandomId::parse("3f2c9a4e-8b1d-4c7a-9e5f-0a1b2c3d4e5f", "record_id")
                .unwrap(),
            device: RandomId::parse("9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f", "device").unwrap(),
            org: OdsCode::parse("RH802").unwrap(),
            period: Period::parse("2026-03").unwrap(),
            category: Category::Colorectal,
            eligibility: Eligibility::Major,
            age_band: AgeBand::From60To69,
            minutes: Minutes::parse("135").unwrap(),
            boluses: 3,
            bolus_ml: BolusMl::parse("750").unwrap(),
            accepted_fraction: AcceptedFraction::parse("0.9").unwrap(),
            probe_model: 2,
            software: Software::parse("odm 0.3.1").unwrap(),
        }
    }

    #[test]
    fn hash_of_known_record_matches_hand_computed_sha256() {
        // The input string below was hashed independently with coreutils:
        // printf '%s' '0000…0000|3f2c…|…|odm 0.3.1' | sha256sum
        let r = example();
        let mut line = String::new();
        r.write_fields('|', &mut line);
        assert_eq!(
            line,
            "3f2c9a4e-8b1d-4c7a-9e5f-0a1b2c3d4e5f|9d8e7f60-5a4b-4c3d-8e2f-1a0b9c8d7e6f|RH802|2026-03|colorectal|major|60-69|135|3|750|0.9|2|odm 0.3.1"
        );
        assert_eq!(
            r.chain_hash(&ChainHash::GENESIS).to_hex(),
            GOLDEN_FIRST_HASH
        );
    }

    const GOLDEN_FIRST_HASH: &str =
        "e8c0c07a8b5d1918b2255f82f55fae9da1e45b643e1e5b3628172331e9cf3807";

    #[test]
    fn csv_text_round_trips_through_parse() {
        let r = example();
        let mut line = String::new();
        r.write_fields(',', &mut line);
        let parts: Vec<&str> = line.split(',').collect();
        let arr: [&str; 13] = parts.try_into().unwrap();
        assert_eq!(Record::from_fields(&arr).unwrap(), r);
    }

    #[test]
    fn age_in_years_maps_to_the_spec_bands() {
        let cases = [
            (0, "0-17"),
            (17, "0-17"),
            (18, "18-29"),
            (29, "18-29"),
            (30, "30-39"),
            (49, "40-49"),
            (50, "50-59"),
            (69, "60-69"),
            (79, "70-79"),
            (80, "80+"),
            (104, "80+"),
        ];
        for (age, band) in cases {
            assert_eq!(AgeBand::from_age_years(age).as_str(), band, "age {age}");
        }
    }

    #[test]
    fn minutes_round_to_nearest_quarter_hour() {
        let cases = [
            (0, 0),
            (449, 0),
            (450, 15),
            (1349, 15),
            (1350, 30),
            (7200, 120),
            (8099, 135),
        ];
        for (s, m) in cases {
            assert_eq!(Minutes::from_seconds(s).get(), m, "{s} s");
        }
    }

    #[test]
    fn bolus_volume_rounds_to_nearest_50_ml() {
        let cases = [
            (0, 0),
            (24, 0),
            (25, 50),
            (250, 250),
            (270, 250),
            (275, 300),
            (740, 750),
        ];
        for (ml, r) in cases {
            assert_eq!(BolusMl::from_total_ml(ml).get(), r, "{ml} ml");
        }
        // Any total the field holds is kept; absurd ones saturate, still a
        // multiple of 50, never wrapping below a smaller total's value.
        assert_eq!(BolusMl::from_total_ml(4_000_000_000).get(), 4_000_000_000);
        let top = BolusMl::from_total_ml(u64::MAX).get();
        assert_eq!(top % 50, 0);
        assert!(top >= 4_000_000_000, "{top}");
        let top = Minutes::from_seconds(u64::MAX).get();
        assert_eq!(top % 15, 0);
        assert!(top >= Minutes::from_seconds(4_000_000_000).get(), "{top}");
    }

    #[test]
    fn accepted_fraction_rounds_halves_up_to_one_decimal() {
        assert_eq!(AcceptedFraction::from_beats(0, 0).to_string(), "0.0");
        assert_eq!(AcceptedFraction::from_beats(1, 20).to_string(), "0.1"); // 0.05 ↑
        assert_eq!(AcceptedFraction::from_beats(1, 21).to_string(), "0.0");
        assert_eq!(AcceptedFraction::from_beats(19, 20).to_string(), "1.0"); // 0.95 ↑
        assert_eq!(AcceptedFraction::from_beats(2, 3).to_string(), "0.7");
        assert_eq!(AcceptedFraction::from_beats(5, 3).to_string(), "1.0");
        assert_eq!(AcceptedFraction::from_beats(2, 3).tenths(), 7);
        assert_eq!(AcceptedFraction::from_beats(0, 3).tenths(), 0);
        for d in 0..=9u8 {
            let text = format!("0.{d}");
            assert_eq!(AcceptedFraction::parse(&text).unwrap().tenths(), d);
        }
        assert_eq!(AcceptedFraction::parse("1.0").unwrap().tenths(), 10);
    }

    #[test]
    fn non_canonical_values_are_refused() {
        assert!(Minutes::parse("030").is_err());
        assert!(Minutes::parse("20").is_err());
        assert!(Minutes::parse("+15").is_err());
        assert!(BolusMl::parse("75").is_err());
        assert!(AcceptedFraction::parse("1.1").is_err());
        assert!(AcceptedFraction::parse(".5").is_err());
        assert!(AcceptedFraction::parse("0.a").is_err());
        assert!(AcceptedFraction::parse("0./").is_err());
        assert!(AcceptedFraction::parse("0.50").is_err());
        assert!(OdsCode::parse("rh8").is_err());
        assert!(OdsCode::parse("RH80").is_err());
        assert!(Period::parse("2026-13").is_err());
        assert!(Period::parse("2026-3").is_err());
        assert!(Period::parse("2026-03-01").is_err());
        assert!(Category::parse("Colorectal").is_err());
        assert!(AgeBand::parse("64").is_err());
        assert!(Software::parse("odm, 1").is_err());
        assert!(Software::parse(&"x".repeat(41)).is_err());
        assert!(Software::parse("odm|1").is_err());
        assert!(Software::parse("odm\t1").is_err());
        // Upper-case hex, a v1 UUID, and braces are not the canonical v4 form.
        assert!(RandomId::parse("3F2C9A4E-8B1D-4C7A-9E5F-0A1B2C3D4E5F", "record_id").is_err());
        assert!(RandomId::parse("3f2c9a4e-8b1d-1c7a-9e5f-0a1b2c3d4e5f", "record_id").is_err());
        assert!(RandomId::parse("{3f2c9a4e-8b1d-4c7a-9e5f-0a1b2c3d4e5f}", "record_id").is_err());
        let id = RandomId::new_random();
        assert_eq!(RandomId::parse(&id.to_string(), "record_id").unwrap(), id);
    }
}
