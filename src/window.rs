//! Report windows in the operation's **local wall-clock time** (Wolkvox takes and returns local
//! times without an offset). Planning in local time means no hour is skipped or pulled twice across
//! DST changes: the repeated autumn hour is one local range (the vendor cannot tell its two halves
//! apart either) and the missing spring hour is a local range that simply has no rows.

use chrono::{Duration, NaiveDateTime};

/// `[start, end)` in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

pub const VENDOR_FORMAT: &str = "%Y%m%d%H%M%S";

impl Window {
    pub fn span(&self) -> Duration {
        self.end - self.start
    }

    /// `date_ini` (inclusive, to the second).
    pub fn date_ini(&self) -> String {
        self.start.format(VENDOR_FORMAT).to_string()
    }

    /// `date_end`: the last second inside the window (the vendor's range is inclusive).
    pub fn date_end(&self) -> String {
        (self.end - Duration::seconds(1))
            .format(VENDOR_FORMAT)
            .to_string()
    }

    /// Two halves on a whole second.
    pub fn split(&self) -> (Window, Window) {
        let half = Duration::seconds((self.span().num_seconds() / 2).max(1));
        let mid = self.start + half;
        (
            Window {
                start: self.start,
                end: mid,
            },
            Window {
                start: mid,
                end: self.end,
            },
        )
    }
}

/// Cover `[from, to)` with consecutive windows of at most `max_span` (whole seconds).
pub fn plan(from: NaiveDateTime, to: NaiveDateTime, max_span: Duration) -> Vec<Window> {
    let step = if max_span < Duration::seconds(1) {
        Duration::seconds(1)
    } else {
        max_span
    };
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + step).min(to);
        out.push(Window { start, end });
        start = end;
    }
    out
}

/// A local time to the whole second.
pub fn trunc_seconds(t: NaiveDateTime) -> NaiveDateTime {
    t - Duration::nanoseconds(t.and_utc().timestamp_subsec_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn windows_cover_the_range_without_gap_or_overlap_and_respect_31_days() {
        let w = plan(
            t("2026-01-01 00:00:00"),
            t("2026-03-15 12:00:00"),
            Duration::days(31),
        );
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|x| x.span() <= Duration::days(31)));
        assert_eq!(w[0].start, t("2026-01-01 00:00:00"));
        assert_eq!(w.last().unwrap().end, t("2026-03-15 12:00:00"));
        assert!(w.windows(2).all(|p| p[0].end == p[1].start));
        assert!(plan(
            t("2026-01-02 00:00:00"),
            t("2026-01-01 00:00:00"),
            Duration::days(1)
        )
        .is_empty());
    }

    #[test]
    fn vendor_dates_are_inclusive_seconds() {
        let w = Window {
            start: t("2026-11-01 00:00:00"),
            end: t("2026-11-02 00:00:00"),
        };
        assert_eq!(
            (w.date_ini(), w.date_end()),
            ("20261101000000".to_string(), "20261101235959".to_string())
        );
    }

    #[test]
    fn splitting_halves_on_whole_seconds() {
        let w = Window {
            start: t("2026-11-01 00:00:00"),
            end: t("2026-11-01 00:00:03"),
        };
        let (a, b) = w.split();
        assert_eq!(
            (a.start, a.end, b.start, b.end),
            (
                w.start,
                t("2026-11-01 00:00:01"),
                t("2026-11-01 00:00:01"),
                w.end
            )
        );
        let (a, b) = Window {
            start: t("2026-11-01 00:00:00"),
            end: t("2026-11-01 12:00:00"),
        }
        .split();
        assert_eq!(
            (a.span(), b.span()),
            (Duration::hours(6), Duration::hours(6))
        );
    }

    #[test]
    fn dst_days_are_pulled_once_in_local_time() {
        // New York: 2026-03-08 has no 02:xx, 2026-11-01 has 01:xx twice. Hourly local windows cover
        // each local hour exactly once: 24 labels on both days, none repeated.
        for day in ["2026-03-08", "2026-11-01"] {
            let from = t(&format!("{day} 00:00:00"));
            let w = plan(from, from + Duration::days(1), Duration::hours(1));
            assert_eq!(w.len(), 24);
            let mut labels: Vec<String> = w.iter().map(|x| x.date_ini()).collect();
            labels.dedup();
            assert_eq!(labels.len(), 24, "{day}");
        }
    }
}
