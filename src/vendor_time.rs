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

/// `s` without leading and trailing whitespace, exactly as [`str::trim`] gives it. Vendor values
/// nearly always start and end with a visible ASCII character, and then nothing is decoded:
/// `str::trim` decodes a character at each end to ask Unicode whether it is whitespace, which was
/// ≈ 5 % of a report row's conversion.
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Parse a local date-time in any of the formats Wolkvox is known to use.
pub fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    let t = trim(raw);
    if t.is_empty() {
        return None;
    }
    parse_common(t).or_else(|| {
        FORMATS
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    })
}

/// `YYYY-MM-DD HH:MM:SS` (or with `T`), by far the most common form, without interpreting a format
/// string: a 60,000-interaction snapshot carries 60,000 of them.
fn parse_common(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?.and_hms_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )
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

/// A vendor duration → milliseconds. Accepts plain seconds (`"95"`, `"95.5"`) and clock forms
/// `HH:MM:SS`, `HH:MM:SS.fffffff` and .NET's `d.HH:MM:SS[.fffffff]` (Comm100). `None` when empty or
/// in no known form.
pub fn parse_duration_ms(raw: &str) -> Option<i64> {
    let t = trim(raw);
    if t.is_empty() {
        return None;
    }
    if let Some(ms) = hh_mm_ss(t) {
        return Some(ms);
    }
    clock_or_seconds(t)
}

/// `HH:MM:SS`, the form of Wolkvox's report durations, read directly: what [`clock_or_seconds`]
/// gives for it, without splitting the text and parsing each part.
fn hh_mm_ss(t: &str) -> Option<i64> {
    let b: &[u8; 8] = t.as_bytes().try_into().ok()?;
    if b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i64> {
        (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
            .then(|| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0'))
    };
    let (h, m, s) = (two(0)?, two(3)?, two(6)?);
    (m < 60 && s < 60).then_some(((h * 60 + m) * 60 + s) * 1000) // at most 99:59:59
}

/// Every duration form but the direct `HH:MM:SS`, `t` trimmed and not empty.
fn clock_or_seconds(t: &str) -> Option<i64> {
    if !t.contains(':') {
        // Whole seconds (the common case) without the float parser.
        if let Ok(secs) = t.parse::<i64>() {
            return (secs >= 0).then(|| secs.checked_mul(1000)).flatten();
        }
        let ms = (t.parse::<f64>().ok()? * 1000.0).round();
        // `as` would saturate a huge vendor number: none is a duration.
        return (ms.is_finite() && ms >= 0.0 && ms < i64::MAX as f64).then_some(ms as i64);
    }
    let mut parts = t.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (days, hours) = match h.split_once('.') {
        Some((d, h)) => (d.parse::<i64>().ok()?, h.parse::<i64>().ok()?),
        None => (0, h.parse::<i64>().ok()?),
    };
    let minutes: i64 = m.parse().ok()?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let seconds: i64 = whole.parse().ok()?;
    if days < 0 || hours < 0 || !(0..60).contains(&minutes) || !(0..60).contains(&seconds) {
        return None;
    }
    let millis = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let padded = format!("{frac:0<3}");
        padded[..3].parse::<i64>().ok()?
    };
    // Vendor numbers: a day count that overflows is no duration, never a panic.
    days.checked_mul(24)?
        .checked_add(hours)?
        .checked_mul(60)?
        .checked_add(minutes)?
        .checked_mul(60)?
        .checked_add(seconds)?
        .checked_mul(1000)?
        .checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_hh_mm_ss_reader_agrees_with_the_general_one() {
        let mut read = 0;
        for t in [
            "00:00:00",
            "99:59:59",
            "00:60:00",
            "00:00:60",
            "1:02:03",
            "01:02:3",
            "0a:00:00",
            "00:00:0x",
            "00-00-00",
            "+1:00:00",
            "00:+1:00",
            "12:34:56",
            "23:59:59.5",
            "１2:00:00",
        ] {
            if let Some(ms) = hh_mm_ss(t) {
                read += 1;
                assert_eq!(Some(ms), clock_or_seconds(t), "{t}");
            }
        }
        for n in (0..100 * 3600).step_by(7) {
            let t = format!("{:02}:{:02}:{:02}", n / 3600, n / 60 % 60, n % 60);
            assert_eq!(hh_mm_ss(&t), Some(n as i64 * 1000), "{t}");
            assert_eq!(clock_or_seconds(&t), Some(n as i64 * 1000), "{t}");
        }
        assert_eq!(read, 3, "00:00:00, 99:59:59 and 12:34:56 are read directly");
    }

    #[test]
    fn trim_is_str_trim() {
        let spaces = [
            " ",
            "\t",
            "\n",
            "\r",
            "\u{a0}",
            "\u{85}",
            "\u{2003}",
            "\u{3000}",
            "\u{1680}",
            " \u{a0}\t",
        ];
        let cores = [
            "", "a", "ab c", "é", "ü😀", "x\u{a0}y", "\u{200b}", "!", "~", "\u{7f}", "\u{0}",
        ];
        for core in cores {
            for before in std::iter::once("").chain(spaces) {
                for after in std::iter::once("").chain(spaces) {
                    let s = format!("{before}{core}{after}");
                    assert_eq!(trim(&s), s.trim(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn durations_in_every_vendor_form() {
        assert_eq!(
            parse_duration_ms("06:53:57.0500000"),
            Some(((6 * 60 + 53) * 60 + 57) * 1000 + 50)
        );
        assert_eq!(
            parse_duration_ms("00:20:38.2649999"),
            Some((20 * 60 + 38) * 1000 + 264)
        );
        assert_eq!(parse_duration_ms("00:00:00"), Some(0));
        assert_eq!(parse_duration_ms("1.02:00:00"), Some(26 * 3_600_000));
        assert_eq!(parse_duration_ms("95"), Some(95_000));
        assert_eq!(parse_duration_ms("1.5"), Some(1_500));
        assert_eq!(
            parse_duration_ms("125:00:01"),
            Some((125 * 3600 + 1) * 1000),
            "hours past a day in HH form"
        );
        for bad in [
            "",
            "  ",
            "abc",
            "1:2",
            "00:61:00",
            "-5",
            "00:00:0x",
            "00:00:00.5a",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }

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
    fn the_fast_path_agrees_with_the_format_parser() {
        for t in [
            "2026-11-21 10:15:00",
            "2026-11-21T23:59:59",
            "2024-02-29 00:00:00",
            "2026-02-29 00:00:00",
            "2026-11-21 24:00:00",
            "2026-11-21 10:60:00",
            "2026-1a-21 10:15:00",
            "2026-11-21 10:15:0",
            "+026-11-21 10:15:00",
        ] {
            let slow = FORMATS[..2]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok());
            // The fast path may decline (then the formats decide); it never disagrees.
            assert!(parse_common(t).is_none_or(|f| Some(f) == slow), "{t}");
            assert_eq!(parse_local(t), slow, "{t}");
        }
        assert!(parse_common("2026-11-21 10:15:00").is_some());
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

    #[test]
    fn vendor_numbers_that_overflow_are_no_duration_not_a_panic() {
        assert_eq!(parse_duration_ms("99999999999999999.23:00:00"), None);
        assert_eq!(parse_duration_ms("9223372036854775807"), None);
        assert_eq!(parse_duration_ms("1.5e300"), None);
        assert_eq!(parse_duration_ms("1.5"), Some(1_500));
    }
}
