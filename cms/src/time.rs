//! Time as the CMS sees it: Unix seconds, injected (`--now`) so that every
//! rule can be tested at its edges. The card itself has no clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::DateTime;

use crate::CmsError;

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// Now, from the system clock.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (or a date alone) into Unix seconds;
/// `der`'s calendar refuses what no calendar has (2026-02-30, 25:00).
pub fn parse(text: &str) -> Result<u64, CmsError> {
    let bad = || CmsError::BadTime(text.to_string());
    let (date, clock) = text.split_once('T').unwrap_or((text, "00:00:00Z"));
    let clock = clock.strip_suffix('Z').ok_or_else(bad)?;
    let numbers = |part: &str, sep: char| -> Option<Vec<u16>> {
        part.split(sep).map(|p| p.parse().ok()).collect()
    };
    let (Some(&[y, m, d]), Some(&[h, mi, s])) = (
        numbers(date, '-').as_deref(),
        numbers(clock, ':').as_deref(),
    ) else {
        return Err(bad());
    };
    let narrow = |n: u16| u8::try_from(n).map_err(|_| bad());
    let at = DateTime::new(
        y,
        narrow(m)?,
        narrow(d)?,
        narrow(h)?,
        narrow(mi)?,
        narrow(s)?,
    )
    .map_err(|_| bad())?;
    Ok(at.unix_duration().as_secs())
}

/// The calendar time of Unix seconds; times past what X.509 can say
/// (9999-12-31T23:59:59Z, which RFC 5280 uses for "no expiry") are that.
fn calendar(t: u64) -> DateTime {
    DateTime::from_unix_duration(Duration::from_secs(t)).unwrap_or(DateTime::INFINITY)
}

/// Formats Unix seconds as `YYYY-MM-DD`.
pub fn date(t: u64) -> String {
    let at = calendar(t);
    format!("{:04}-{:02}-{:02}", at.year(), at.month(), at.day())
}

/// Formats Unix seconds as `YYYYMMDD` (the CHUID expiry form).
pub fn compact_date(t: u64) -> String {
    let at = calendar(t);
    format!("{:04}{:02}{:02}", at.year(), at.month(), at.day())
}

/// Formats Unix seconds as `YYYYMMMDD` (`2028DEC04`): the expiry date
/// the Printed Information carries, as printed on the card.
pub fn printed_date(t: u64) -> String {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let at = calendar(t);
    let month = MONTHS
        .get(usize::from(at.month()).saturating_sub(1))
        .copied()
        .unwrap_or("DEC");
    format!("{:04}{month}{:02}", at.year(), at.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_edges() {
        assert_eq!(parse("1970-01-01").unwrap(), 0);
        assert_eq!(parse("2026-11-25T12:30:05Z").unwrap(), 1_795_609_805);
        assert_eq!(date(parse("2028-02-29").unwrap()), "2028-02-29");
        assert_eq!(printed_date(parse("2028-12-04").unwrap()), "2028DEC04");
        assert_eq!(printed_date(parse("2027-01-31").unwrap()), "2027JAN31");
        assert_eq!(
            compact_date(parse("2099-12-31T23:59:59Z").unwrap()),
            "20991231"
        );
        assert_eq!(date(u64::MAX), "9999-12-31");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-11-25T25:00:00Z",
            "yesterday",
            "2026-11-25T10:00:00",
        ] {
            assert!(
                matches!(parse(bad), Err(CmsError::BadTime(t)) if t == bad),
                "{bad}"
            );
        }
    }
}
