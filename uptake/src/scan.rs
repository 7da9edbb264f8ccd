//! An identifier scanner: finds text that looks like a patient identifier
//! in any file (store, bundle, report). Used by the tests as a guard that
//! nothing identifying ever reaches a file; usable by information
//! governance on any output.
//!
//! Patterns, each standing alone (not inside a longer run of letters or
//! digits):
//! - NHS numbers: 10 digits, or 3-3-4 separated by single spaces or
//!   hyphens, that pass the NHS modulus-11 check digit;
//! - full dates: `YYYY-MM-DD`, also running on into a time as ISO 8601
//!   writes one (`1957-03-14T00:00`); `DD/MM/YYYY`, `DD.MM.YYYY` and
//!   `DD-MM-YYYY` (each also with a one-digit day or month); `14 Mar 1957`
//!   and `14 March 1957` (any case);
//! - UK postcodes: `A9 9AA`, `A99 9AA`, `AA9 9AA`, `AA99 9AA`, `A9A 9AA`,
//!   `AA9A 9AA`: with the space in any case, without it in upper case only
//!   (lower-case hex — hashes, ids, and their fragments inside SQLite's
//!   index pages — forms such shapes by chance).

/// What kind of identifier was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// A valid NHS number.
    NhsNumber,
    /// A full calendar date.
    FullDate,
    /// A UK postcode.
    Postcode,
}

/// One finding: the kind and the byte offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The kind of identifier.
    pub kind: IdentifierKind,
    /// Byte offset in the scanned data.
    pub offset: usize,
}

/// Whether ten digits form a valid NHS number (modulus 11: weights 10 … 2
/// on the first nine digits; check = 11 − sum mod 11, 11 → 0, 10 invalid).
pub fn nhs_number_is_valid(digits: &[u8; 10]) -> bool {
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    u32::from(digits[9]) == check
}

fn is_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(u8::is_ascii_alphanumeric)
}

/// Matches `shape` at the start of `data`: `9` a digit, `A` a letter, `U`
/// an upper-case letter, anything else itself. Returns the matched length.
fn shape_len(data: &[u8], shape: &str) -> Option<usize> {
    let s = shape.as_bytes();
    if data.len() < s.len() {
        return None;
    }
    let ok = s.iter().zip(data).all(|(&p, &c)| match p {
        b'9' => c.is_ascii_digit(),
        b'A' => c.is_ascii_alphabetic(),
        b'U' => c.is_ascii_uppercase(),
        _ => p == c,
    });
    ok.then_some(s.len())
}

fn number(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |n, &d| n * 10 + u32::from(d.wrapping_sub(b'0')))
}

fn plausible_date(day: u32, month: u32, year: u32) -> bool {
    (1..=31).contains(&day) && (1..=12).contains(&month) && (1800..=2199).contains(&year)
}

/// `D[D] Mon[th] YYYY` at the start of `data` (month names in English, any
/// case, abbreviated to three letters or in full): day, month, year and
/// the matched length.
fn named_month_date(data: &[u8]) -> Option<(u32, u32, u32, usize)> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let day_len = data
        .iter()
        .take(3)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=2).contains(&day_len) || data.get(day_len) != Some(&b' ') {
        return None;
    }
    let word_start = day_len + 1;
    let word_len = data[word_start..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let word = data[word_start..word_start + word_len].to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| {
        word_len >= 3 && (word.as_slice() == m.as_bytes() || word.as_slice() == &m.as_bytes()[..3])
    })?;
    let year_start = word_start + word_len + 1;
    if data.get(word_start + word_len) != Some(&b' ') {
        return None;
    }
    let year = data.get(year_start..year_start + 4)?;
    if !year.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let month = u32::try_from(month).ok()? + 1;
    Some((
        number(&data[..day_len]),
        month,
        number(year),
        year_start + 4,
    ))
}

/// Scans bytes (text or binary) for identifier patterns.
pub fn scan_for_identifiers(data: &[u8]) -> Vec<Finding> {
    const NHS_SHAPES: [&str; 3] = ["9999999999", "999 999 9999", "999-999-9999"];
    // Day first, then month, with each separator; one-digit forms too.
    const DATE_SHAPES: [&str; 13] = [
        "9999-99-99",
        "99/99/9999",
        "9/99/9999",
        "99/9/9999",
        "9/9/9999",
        "99.99.9999",
        "9.99.9999",
        "99.9.9999",
        "9.9.9999",
        "99-99-9999",
        "9-99-9999",
        "99-9-9999",
        "9-9-9999",
    ];
    const POSTCODES: [&str; 12] = [
        "A9 9AA", "A99 9AA", "AA9 9AA", "AA99 9AA", "A9A 9AA", "AA9A 9AA", "U99UU", "U999UU",
        "UU99UU", "UU999UU", "U9U9UU", "UU9U9UU",
    ];
    let mut found = Vec::new();
    for start in 0..data.len() {
        if start > 0 && is_alnum(data.get(start - 1)) {
            continue;
        }
        let rest = &data[start..];
        let stands_alone = |len: usize| !is_alnum(rest.get(len));
        for shape in NHS_SHAPES {
            if let Some(len) = shape_len(rest, shape).filter(|&l| stands_alone(l)) {
                let mut digits = [0u8; 10];
                let mut k = 0;
                for &c in &rest[..len] {
                    if c.is_ascii_digit() && k < 10 {
                        digits[k] = c - b'0';
                        k += 1;
                    }
                }
                if k == 10 && nhs_number_is_valid(&digits) {
                    found.push(Finding {
                        kind: IdentifierKind::NhsNumber,
                        offset: start,
                    });
                }
            }
        }
        if let Some((day, month, year)) = named_month_date(rest)
            .filter(|&(.., l)| stands_alone(l))
            .map(|(d, m, y, _)| (d, m, y))
            && plausible_date(day, month, year)
        {
            found.push(Finding {
                kind: IdentifierKind::FullDate,
                offset: start,
            });
        }
        for shape in DATE_SHAPES {
            // An ISO date may run straight on into its time: `…-14T10:30`.
            let iso_time_follows = |len: usize| {
                shape.starts_with("9999")
                    && matches!(rest.get(len), Some(b'T' | b't'))
                    && rest.get(len + 1).is_some_and(u8::is_ascii_digit)
            };
            if let Some(len) =
                shape_len(rest, shape).filter(|&l| stands_alone(l) || iso_time_follows(l))
            {
                let text = &rest[..len];
                let parts: Vec<&[u8]> = text
                    .split(|&c| c == b'-' || c == b'/' || c == b'.')
                    .collect();
                let (day, month, year) = if shape.starts_with("9999") {
                    (number(parts[2]), number(parts[1]), number(parts[0]))
                } else {
                    (number(parts[0]), number(parts[1]), number(parts[2]))
                };
                if plausible_date(day, month, year) {
                    found.push(Finding {
                        kind: IdentifierKind::FullDate,
                        offset: start,
                    });
                }
            }
        }
        for shape in POSTCODES {
            if shape_len(rest, shape).is_some_and(stands_alone) {
                found.push(Finding {
                    kind: IdentifierKind::Postcode,
                    offset: start,
                });
                break;
            }
        }
    }
    found
}

/// The byte range of the `exported_utc` value in an uptake bundle's
/// `manifest.json`: the export's own time stamp, which the spec requires
/// and which is not a patient's date (docs/uptake.md). `None` unless
/// `data` is a JSON object with `"format": "odm-uptake-bundle"` whose
/// `exported_utc` key appears exactly once and holds a string. A scan of a
/// manifest leaves findings inside this range out; nothing else is
/// allowed.
pub fn manifest_export_time(data: &[u8]) -> Option<std::ops::Range<usize>> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    if value.get("format")?.as_str()? != "odm-uptake-bundle" {
        return None;
    }
    let stamp = value.get("exported_utc")?.as_str()?;
    const KEY: &[u8] = b"\"exported_utc\"";
    let mut keys = data
        .windows(KEY.len())
        .enumerate()
        .filter(|(_, w)| *w == KEY);
    let (at, _) = keys.next()?;
    if keys.next().is_some() {
        return None;
    }
    let mut i = at + KEY.len();
    while data
        .get(i)
        .is_some_and(|c| c.is_ascii_whitespace() || *c == b':')
    {
        i += 1;
    }
    if data.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let end = start + data[start..].iter().position(|&c| c == b'"')?;
    // The raw bytes must be the parsed value (no escapes to hide behind).
    (&data[start..end] == stamp.as_bytes()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<IdentifierKind> {
        scan_for_identifiers(text.as_bytes())
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn catches_planted_identifiers() {
        // 943 476 5919 is the NHS Digital documentation example number.
        assert_eq!(kinds("x,9434765919,y"), [IdentifierKind::NhsNumber]);
        assert_eq!(kinds("nhs 943 476 5919."), [IdentifierKind::NhsNumber]);
        assert_eq!(kinds("born 1957-03-14"), [IdentifierKind::FullDate]);
        assert_eq!(kinds("\"14/03/1957\""), [IdentifierKind::FullDate]);
        assert_eq!(kinds("on 4/3/1957"), [IdentifierKind::FullDate]);
        // Found missing by an external audit (2026-12-04).
        assert_eq!(kinds("dob 14.03.1957"), [IdentifierKind::FullDate]);
        assert_eq!(kinds("dob 14-03-1957;"), [IdentifierKind::FullDate]);
        assert_eq!(kinds("dob 4.3.1957"), [IdentifierKind::FullDate]);
        assert_eq!(kinds("born 14 Mar 1957."), [IdentifierKind::FullDate]);
        assert_eq!(kinds("born 3 MARCH 1957"), [IdentifierKind::FullDate]);
        assert_eq!(kinds("NHS 943-476-5919"), [IdentifierKind::NhsNumber]);
        assert_eq!(kinds("dob 1957-03-14T00:00"), [IdentifierKind::FullDate]);
        assert_eq!(
            kinds("\"1957-03-14T00:00:00Z\""),
            [IdentifierKind::FullDate]
        );
        assert!(kinds("1957-03-14Tx").is_empty());
        assert!(kinds("14 Marsh 1957").is_empty());
        // A named-month date's year is four digits, not the start of a
        // longer number (mutation run, stop 42).
        assert!(kinds("14 Mar 19571").is_empty());
        assert!(kinds("31.13.1957").is_empty());
        assert_eq!(kinds("SW1A 1AA"), [IdentifierKind::Postcode]);
        assert_eq!(kinds("at m1 1ae"), [IdentifierKind::Postcode]);
        assert_eq!(kinds("EC1A1BB,"), [IdentifierKind::Postcode]);
    }

    #[test]
    fn ignores_spec_values_and_invalid_numbers() {
        // Check digit wrong, 11 digits, a period, an ODS site code, hex runs.
        assert!(kinds("9434765918").is_empty());
        assert!(kinds("94347659190").is_empty());
        assert!(kinds("RH802,2026-03,colorectal,60-69,odm 0.3.1").is_empty());
        assert!(
            kinds("e8c0c07a8b5d1918b2255f82f55fae9da1e45b643e1e5b3628172331e9cf3807").is_empty()
        );
        assert!(kinds("3f2c9a4e-8b1d-4c7a-9e5f-0a1b2c3d4e5f").is_empty());
        // A hex fragment as SQLite stores it in an index page.
        assert!(kinds("\x12a893bc\x00").is_empty());
    }

    #[test]
    fn only_a_manifests_own_export_time_is_set_aside() {
        let manifest = br#"{"format": "odm-uptake-bundle", "version": 1, "exported_utc": "2026-04-01T09:00:00Z", "org": "RH8"}"#;
        let range = manifest_export_time(manifest).expect("a manifest");
        assert_eq!(&manifest[range.clone()], b"2026-04-01T09:00:00Z");
        let found = scan_for_identifiers(manifest);
        assert_eq!(found.len(), 1);
        assert!(range.contains(&found[0].offset));
        // Not a bundle manifest, a second key, or a value that differs
        // from the raw bytes: nothing is set aside.
        assert!(manifest_export_time(br#"{"exported_utc": "2026-04-01T09:00:00Z"}"#).is_none());
        let twice = br#"{"format": "odm-uptake-bundle", "exported_utc": "2026-04-01T09:00:00Z", "extra": {"exported_utc": "1957-03-14T00:00"}}"#;
        assert!(manifest_export_time(twice).is_none());
        let escaped = br#"{"format": "odm-uptake-bundle", "exported_utc": "1957-03-14\u0054"}"#;
        assert!(manifest_export_time(escaped).is_none());
    }

    #[test]
    fn modulus_11_check_digit_follows_the_nhs_rule() {
        assert!(nhs_number_is_valid(&[9, 4, 3, 4, 7, 6, 5, 9, 1, 9]));
        assert!(!nhs_number_is_valid(&[9, 4, 3, 4, 7, 6, 5, 9, 1, 8]));
        // 401 023 2137: sum 4·10+0·9+1·8+0·7+2·6+3·5+2·4+1·3+3·2 = 92;
        // 92 mod 11 = 4; 11 − 4 = 7.
        assert!(nhs_number_is_valid(&[4, 0, 1, 0, 2, 3, 2, 1, 3, 7]));
    }
}
