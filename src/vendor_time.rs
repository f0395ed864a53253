//! Vendor local date-times → UTC. Wolkvox sends local times without an offset; the operation's zone
//! is configured. DST: an ambiguous local time (the repeated hour) takes the earlier instant; a
//! non-existent one (the skipped hour) is read as the same wall-clock reading after the jump.

use chrono::{Duration, LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

const FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y%m%d%H%M%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
];

/// Parse a local date-time in any of the formats Wolkvox is known to use.
pub fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
}

/// Local wall-clock time in `tz` → UTC epoch milliseconds.
pub fn local_to_utc_millis(local: NaiveDateTime, tz: Tz) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(earliest, _) => earliest.timestamp_millis(),
        LocalResult::None => {
            // In a DST gap: interpret with the offset in force just before the gap, which lands
            // after the jump (e.g. 02:30 in a 02:00→03:00 gap becomes 03:30 local).
            let before = local - Duration::hours(3);
            let offset = match tz.from_local_datetime(&before) {
                LocalResult::Single(t) => *t.offset(),
                LocalResult::Ambiguous(t, _) => *t.offset(),
                LocalResult::None => return local.and_utc().timestamp_millis(),
            };
            use chrono::Offset;
            (local - offset.fix()).and_utc().timestamp_millis()
        }
    }
}

/// `raw` (vendor text) → UTC ms, or `None` when empty or in no known format.
pub fn vendor_local_to_utc(raw: &str, tz: Tz) -> Option<i64> {
    parse_local(raw).map(|l| local_to_utc_millis(l, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn bogota_has_no_dst() {
        let tz: Tz = "America/Bogota".parse().unwrap();
        assert_eq!(
            vendor_local_to_utc("2026-11-21 10:15:00", tz),
            Some(ms("2026-11-21T15:15:00Z"))
        );
        assert_eq!(
            vendor_local_to_utc("20261121101500", tz),
            Some(ms("2026-11-21T15:15:00Z"))
        );
    }

    #[test]
    fn empty_and_garbage_are_none() {
        let tz: Tz = "UTC".parse().unwrap();
        assert_eq!(vendor_local_to_utc("", tz), None);
        assert_eq!(vendor_local_to_utc("yesterday", tz), None);
    }

    #[test]
    fn dst_overlap_takes_the_earlier_instant() {
        // New York, 2026-11-01 01:30 happens twice (EDT then EST).
        let tz: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            vendor_local_to_utc("2026-11-01 01:30:00", tz),
            Some(ms("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn dst_gap_is_read_after_the_jump() {
        // New York, 2026-03-08 02:30 does not exist; read with EST (-5) → 07:30Z (= 03:30 EDT).
        let tz: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            vendor_local_to_utc("2026-03-08 02:30:00", tz),
            Some(ms("2026-03-08T07:30:00Z"))
        );
        // And no two distinct gap minutes collapse onto one instant.
        assert_ne!(
            vendor_local_to_utc("2026-03-08 02:10:00", tz),
            vendor_local_to_utc("2026-03-08 02:20:00", tz)
        );
    }
}
