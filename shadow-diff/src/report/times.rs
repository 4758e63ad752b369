//! How a rendered report writes its times: in UTC (the default, the same
//! for every reader of a shared report) or, on request, in the local time
//! of the machine that renders it. Every time says which it is: `UTC`, or
//! the offset from UTC (`+05:30`), so that a pasted report cannot be read
//! in the wrong zone. The JSON form keeps Unix milliseconds either way.

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};

/// The zone a report's times are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Times {
    #[default]
    Utc,
    /// The renderer's local zone (`TZ`, else `/etc/localtime`).
    Local,
}

impl Times {
    pub const ALL: [Times; 2] = [Times::Utc, Times::Local];

    /// The name in a query (`?time=local`) and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Times::Utc => "utc",
            Times::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<Times> {
        Times::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// `2026-12-03 08:00:00 UTC`, or in local time
    /// `2026-12-03 13:30:00 +05:30`.
    pub fn format(self, ms: i64) -> String {
        match self {
            Times::Utc => match Utc.timestamp_millis_opt(ms).single() {
                Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                None => format!("{ms} ms"),
            },
            Times::Local => match Local.timestamp_millis_opt(ms).single() {
                Some(t) => with_offset(t.fixed_offset()),
                None => format!("{ms} ms"),
            },
        }
    }

    /// Like [`Times::format`], to the minute: for chart labels, where the
    /// seconds of an hour's start say nothing.
    pub fn format_minute(self, ms: i64) -> String {
        let full = self.format(ms);
        // `YYYY-MM-DD HH:MM:SS zone`: drop `:SS`.
        match full.get(16..19) {
            Some(s) if s.starts_with(':') => format!("{}{}", &full[..16], &full[19..]),
            _ => full,
        }
    }
}

/// A time with its offset from UTC, as the reader's clock shows it.
pub(crate) fn with_offset(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_say_utc() {
        assert_eq!(Times::Utc.format(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            Times::Utc.format(1_795_321_829_000),
            "2026-11-22 04:30:29 UTC"
        );
        assert_eq!(
            Times::Utc.format_minute(1_795_321_829_000),
            "2026-11-22 04:30 UTC"
        );
        // Before 1970 too (the calendar is proleptic).
        assert_eq!(Times::Utc.format(-1_000), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn local_times_carry_their_offset() {
        let kolkata = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let t = kolkata.timestamp_millis_opt(1_795_321_829_000).unwrap();
        assert_eq!(with_offset(t), "2026-11-22 10:00:29 +05:30");
        let west = FixedOffset::west_opt(8 * 3600).unwrap();
        let t = west.timestamp_millis_opt(0).unwrap();
        assert_eq!(with_offset(t), "1969-12-31 16:00:00 -08:00");
        // Whatever this machine's zone, a local time names its offset, and
        // it is the offset chrono's local zone has at that instant.
        let ms = 1_795_321_829_000;
        let offset = Local.timestamp_millis_opt(ms).unwrap().offset().to_string();
        let local = Times::Local.format(ms);
        assert!(local.ends_with(&offset), "{local} vs {offset}");
        assert!(!local.contains("UTC"), "{local}");
        assert_eq!(
            Times::Local.format_minute(ms),
            format!("{} {offset}", &local[..16])
        );
    }

    #[test]
    fn names_round_trip() {
        for t in Times::ALL {
            assert_eq!(Times::parse(t.as_str()), Some(t));
        }
        assert_eq!(Times::parse("UTC"), None);
        assert_eq!(Times::default(), Times::Utc);
    }
}
