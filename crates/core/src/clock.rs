//! The one clock. `LIFEBOAT_NOW` (RFC 3339) stands in for the current time
//! everywhere lifeboat *judges* time or shows it as the time of an event:
//! maintenance windows, waiver expiry, image end-of-life, catalog validity, the
//! time a tenant was activated, drill and status report times. So a change
//! review can rehearse an apply at its planned time and tests pin the clock.
//!
//! Protocol time is deliberately not pinned: lock lease expiry, request
//! signatures, Retry-After and polling, Resource Graph's indexing lag, journal
//! and audit record times and run ids always use the real clock (a pinned clock
//! must never make a lease look expired or an audit record lie about when it
//! was written). RPO ages come from the SQL server's own clock. This module
//! never sleeps.

use jiff::Timestamp;

/// The variable that pins the clock.
pub const NOW_VAR: &str = "LIFEBOAT_NOW";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{NOW_VAR}={value}: not an RFC 3339 time ({reason})")]
pub struct ClockError {
    pub value: String,
    pub reason: String,
}

/// The current time, or `LIFEBOAT_NOW` when it is set.
pub fn now() -> Result<Timestamp, ClockError> {
    match std::env::var(NOW_VAR) {
        Ok(s) if !s.is_empty() => parse(&s),
        _ => Ok(Timestamp::now()),
    }
}

/// The current time for records and labels, where a malformed `LIFEBOAT_NOW`
/// was already refused by the command that started (falls back to the real time).
pub fn now_or_real() -> Timestamp {
    now().unwrap_or_else(|_| Timestamp::now())
}

/// The current time to the second (`2026-12-06T07:30:12Z`), for what people
/// read in tables, tags and reports.
pub fn stamp() -> String {
    now_or_real()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| now_or_real())
        .to_string()
}

/// Today's date in UTC: waivers are valid through their expiry date.
pub fn today() -> Result<jiff::civil::Date, ClockError> {
    Ok(now()?.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
}

fn parse(s: &str) -> Result<Timestamp, ClockError> {
    s.parse().map_err(|e: jiff::Error| ClockError {
        value: s.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_and_names_the_variable() {
        assert_eq!(
            parse("2026-11-28T21:30:00Z").unwrap().to_string(),
            "2026-11-28T21:30:00Z"
        );
        let e = parse("tomorrow").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("LIFEBOAT_NOW=tomorrow: not an RFC 3339 time")
        );
    }
}

#[cfg(test)]
mod stamp_tests {
    #[test]
    fn stamps_are_whole_seconds() {
        let s = super::stamp();
        assert_eq!(s.len(), "2026-12-06T07:30:12Z".len(), "{s}");
        assert!(s.ends_with('Z') && !s.contains('.'), "{s}");
    }
}
