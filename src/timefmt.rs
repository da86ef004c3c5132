//! The two human time formats of the config and registry files: durations (`15m`, `1h`,
//! `1y`) and instants (RFC 3339, or a plain `YYYY-MM-DD` meaning midnight UTC).

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

/// Parses `15m`, `1h 30m`, `90s`, `1y` (humantime syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 15m, 1h or 30d"))
}

/// The inverse of [`parse_duration`], in the largest exact units (`15m`, `1h 30m`).
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Parses an RFC 3339 timestamp (`2027-06-30T00:00:00Z`) or a date (`2027-06-30`, midnight UTC).
pub fn parse_instant(text: &str) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC));
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!("{text:?} is not a date; write RFC 3339 (2027-06-30T00:00:00Z) or 2027-06-30")
        })
}

/// Formats an instant as RFC 3339 in UTC, the form the registry files use.
pub fn format_instant(instant: OffsetDateTime) -> String {
    instant
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(instant)
        .format(&Rfc3339)
        .unwrap_or_else(|_| instant.to_string())
}

/// An expiry given on the command line: `never`, a date, or a duration from now (`1y`).
///
/// Whole years (`1y`, `2 years`) are calendar years: the same date and time that many years on
/// (29 February becomes the 28th in a year without one), not humantime's 365.25 days, which
/// would put a secret made at noon to expire at six in the evening.
pub fn parse_expiry(text: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, String> {
    if text.trim().eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    if let Ok(instant) = parse_instant(text) {
        return Ok(Some(instant));
    }
    if let Some(years) = whole_years(text) {
        return years_later(now, years).map(Some);
    }
    let duration = parse_duration(text).map_err(|_| {
        format!("{text:?} is neither `never`, a date (2027-06-30) nor a duration (1y)")
    })?;
    Ok(Some(now + duration))
}

/// How long a new secret lives when nobody says (the seeds' portals default to a year).
pub const DEFAULT_SECRET_EXPIRY: &str = "1y";

/// `n` of `<n>y`, `<n>year` or `<n> years`.
fn whole_years(text: &str) -> Option<i32> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let unit = text[digits..].trim();
    let years = matches!(unit, "y" | "year" | "years");
    if digits == 0 || !years {
        return None;
    }
    text[..digits].parse().ok()
}

/// The same instant `years` calendar years after `now` (29 February, in a year without one,
/// the 28th).
fn years_later(now: OffsetDateTime, years: i32) -> Result<OffsetDateTime, String> {
    let later = |year| {
        now.replace_year(year)
            .or_else(|_| now.replace_day(28).and_then(|d| d.replace_year(year)))
            .ok()
    };
    now.year()
        .checked_add(years)
        .and_then(later)
        .ok_or_else(|| format!("{years} years from now is past the year 9999"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn whole_years_are_calendar_years() {
        let now = datetime!(2026-11-24 13:23:09 UTC);
        let later = |text| parse_expiry(text, now).unwrap().unwrap();
        assert_eq!(later("1y"), datetime!(2027-11-24 13:23:09 UTC));
        assert_eq!(later("2 years"), datetime!(2028-11-24 13:23:09 UTC));
        assert_eq!(later("30d"), datetime!(2026-12-24 13:23:09 UTC));
        let leap = datetime!(2028-02-29 08:00 UTC);
        assert_eq!(
            parse_expiry("1y", leap).unwrap(),
            Some(datetime!(2029-02-28 08:00 UTC))
        );
        assert_eq!(
            parse_expiry("4y", leap).unwrap(),
            Some(datetime!(2032-02-29 08:00 UTC))
        );
        assert!(parse_expiry("9000y", now).is_err());
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert!(parse_duration("fifteen")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn instants_accept_rfc3339_and_dates() {
        let t = parse_instant("2027-06-30T02:00:00+02:00").unwrap();
        assert_eq!(t, datetime!(2027-06-30 00:00 UTC));
        assert_eq!(
            parse_instant("2027-06-30").unwrap(),
            datetime!(2027-06-30 00:00 UTC)
        );
        assert_eq!(format_instant(t), "2027-06-30T00:00:00Z");
        assert!(parse_instant("30/06/2027").is_err());
    }

    #[test]
    fn expiry_accepts_never_dates_and_relative() {
        let now = datetime!(2026-11-23 00:00 UTC);
        assert_eq!(parse_expiry("never", now).unwrap(), None);
        assert_eq!(
            parse_expiry("2027-01-01", now).unwrap(),
            Some(datetime!(2027-01-01 00:00 UTC))
        );
        assert_eq!(
            parse_expiry("30d", now).unwrap(),
            Some(datetime!(2026-12-23 00:00 UTC))
        );
        assert!(parse_expiry("soon", now).is_err());
    }
}
