//! Maintenance windows: whether a tenant's weekly window is open at an instant, and
//! when it opens next. Windows are local wall-clock times in the tenant's IANA time
//! zone (so they follow daylight saving time); a window lasts `hours` of real time
//! from its start. Pure.

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::model::MaintenanceWindow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// The end of the window that is open now, if one is.
    pub open_until: Option<Timestamp>,
    /// The start of the next window after now.
    pub next_start: Timestamp,
}

fn weekday(day: &str) -> Option<Weekday> {
    Some(match day {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

pub fn state(w: &MaintenanceWindow, now: Timestamp) -> Result<WindowState, String> {
    let tz = TimeZone::get(&w.timezone).map_err(|e| format!("time zone {}: {e}", w.timezone))?;
    let day = weekday(&w.day).ok_or_else(|| format!("`{}` is not a weekday", w.day))?;
    let (h, m) = w
        .start
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i8>().ok()?, m.parse::<i8>().ok()?)))
        .ok_or_else(|| format!("`{}` is not HH:MM", w.start))?;
    let today = now.to_zoned_datetime(tz.clone()).date();
    let length = Span::new().hours(i64::from(w.hours));
    let start_on = |offset: i64| -> Result<Option<Timestamp>, String> {
        let date = today
            .checked_add(Span::new().days(offset))
            .map_err(|e| e.to_string())?;
        if date.weekday() != day {
            return Ok(None);
        }
        // In a DST gap the start moves forward, as clocks do.
        let zoned = date
            .at(h, m, 0, 0)
            .to_zoned_datetime(tz.clone())
            .map_err(|e| e.to_string())?;
        Ok(Some(zoned.timestamp()))
    };
    let mut open_until = None;
    for offset in -7..=0 {
        if let Some(start) = start_on(offset)? {
            let end = start.checked_add(length).map_err(|e| e.to_string())?;
            if start <= now && now < end {
                open_until = Some(end);
            }
        }
    }
    let mut next_start = None;
    for offset in 0..=7 {
        if let Some(start) = start_on(offset)?
            && start > now
        {
            next_start = Some(start);
            break;
        }
    }
    Ok(WindowState {
        open_until,
        next_start: next_start.ok_or("no window in the next week")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(day: &str, start: &str, hours: u32) -> MaintenanceWindow {
        MaintenanceWindow {
            day: day.into(),
            start: start.into(),
            hours,
            timezone: "Europe/Amsterdam".into(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_inside_closed_outside() {
        let sat = w("saturday", "22:00", 6);
        // 2026-11-28 is a Saturday; Amsterdam is UTC+1 in November.
        let s = state(&sat, ts("2026-11-28T21:30:00Z")).unwrap();
        assert_eq!(s.open_until, Some(ts("2026-11-29T03:00:00Z")));
        let s = state(&sat, ts("2026-11-28T20:59:00Z")).unwrap();
        assert_eq!(s.open_until, None);
        assert_eq!(s.next_start, ts("2026-11-28T21:00:00Z"));
        // Past midnight, still inside Saturday's window.
        assert!(
            state(&sat, ts("2026-11-29T02:59:00Z"))
                .unwrap()
                .open_until
                .is_some()
        );
        assert!(
            state(&sat, ts("2026-11-29T03:00:00Z"))
                .unwrap()
                .open_until
                .is_none()
        );
    }

    #[test]
    fn follows_daylight_saving_time() {
        let sat = w("saturday", "22:00", 6);
        // 2027-03-27 is a Saturday; on 2027-03-28 Amsterdam moves to UTC+2, but the
        // window still starts at 22:00 local time on Saturday (UTC+1 then).
        let s = state(&sat, ts("2027-03-27T12:00:00Z")).unwrap();
        assert_eq!(s.next_start, ts("2027-03-27T21:00:00Z"));
        // The week after, in summer time, 22:00 local is 20:00 UTC.
        let s = state(&sat, ts("2027-04-01T12:00:00Z")).unwrap();
        assert_eq!(s.next_start, ts("2027-04-03T20:00:00Z"));
    }
}
