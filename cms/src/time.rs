//! Time as the CMS sees it: Unix seconds, injected (`--now`) so that every
//! rule can be tested at its edges. The card itself has no clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// Now, from the system clock.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (or a date alone) into Unix seconds.
pub fn parse(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    let (date, clock) = text.split_once('T').unwrap_or((text, "00:00:00Z"));
    let d: Vec<u64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let clock = clock.strip_suffix('Z').ok_or_else(bad)?;
    let c: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (&[y, m, day], &[h, mi, s]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || s > 59
    {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, day) * DAY + h * 3600 + mi * 60 + s)
}

/// Formats Unix seconds as `YYYY-MM-DD`.
pub fn date(t: u64) -> String {
    let (y, m, d) = civil_from_days(t / DAY);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Formats Unix seconds as `YYYYMMDD` (the CHUID expiry form).
pub fn compact_date(t: u64) -> String {
    date(t).replace('-', "")
}

// Howard Hinnant's civil-date algorithms, for the proleptic Gregorian
// calendar from 1970 on.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_edges() {
        assert_eq!(parse("1970-01-01").unwrap(), 0);
        assert_eq!(parse("2026-11-25T12:30:05Z").unwrap(), 1_795_609_805);
        assert_eq!(date(parse("2028-02-29").unwrap()), "2028-02-29");
        assert_eq!(
            compact_date(parse("2099-12-31T23:59:59Z").unwrap()),
            "20991231"
        );
        for bad in [
            "2026-13-01",
            "2026-11-25T25:00:00Z",
            "yesterday",
            "2026-11-25T10:00:00",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
