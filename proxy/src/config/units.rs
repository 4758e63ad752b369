//! Value types of `routes.yaml` that carry a unit or a range: [`Percent`],
//! [`ByteSize`] and durations. Each type can only be built through its parser,
//! so a value that exists has already been checked.

use std::fmt;
use std::time::Duration;

/// A share of traffic, `0..=100`, decimals allowed (`0.5` is one request in 200).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    pub const ZERO: Percent = Percent(0.0);
    pub const HUNDRED: Percent = Percent(100.0);

    /// Accepts finite numbers from 0 to 100 inclusive.
    pub fn new(value: f64) -> Result<Percent, String> {
        if !value.is_finite() {
            return Err(format!("{value} is not a number"));
        }
        if value < 0.0 {
            return Err(format!("{value} is below 0"));
        }
        if value > 100.0 {
            return Err(format!("{value} is over 100"));
        }
        Ok(Percent(value))
    }

    /// Parses what an operator types on a command line: `10`, `12.5`, `10%`.
    pub fn parse(text: &str) -> Result<Percent, String> {
        let trimmed = text.trim().trim_end_matches('%').trim();
        let value: f64 = trimmed.parse().map_err(|_| {
            format!("{text:?} is not a percentage (expected a number from 0 to 100)")
        })?;
        Percent::new(value)
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// The share as a threshold on a 64-bit hash: a key whose hash is below it
    /// is selected. Monotone in the percentage, which is what makes raising a
    /// canary only ever move keys from legacy to new.
    pub fn hash_threshold(self) -> u64 {
        if self.0 >= 100.0 {
            u64::MAX
        } else {
            // 2^64 * p / 100, computed in f64; the rounding error (below 1e-16
            // of the range) is far under the resolution anyone configures.
            ((self.0 / 100.0) * 18_446_744_073_709_551_616.0) as u64
        }
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Integers print without a fraction so YAML written back stays tidy.
        if self.0.fract() == 0.0 {
            write!(f, "{}", self.0 as u64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A size in bytes parsed from `1MiB`, `512KiB`, `64KB` or a plain byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(u64);

impl ByteSize {
    pub const fn bytes(n: u64) -> ByteSize {
        ByteSize(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size (expected e.g. 1MiB, 512KiB, 4096)"))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
                ));
            }
        };
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 / 2.0 {
            return Err(format!("{text:?} is too large"));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n % size == 0 {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `5m`, `1h`. A bare number is refused: at 3 a.m.
/// nobody should have to guess whether `30` meant seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a duration (expected e.g. 500ms, 2s, 5m)"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (expected e.g. 500ms, 2s, 5m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        "" => return Err(format!("{text} needs a unit (e.g. {text}s or {text}ms)")),
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s, m, h or d)"
            ));
        }
    };
    if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86_400.0 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way `parse_duration` reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_range() {
        assert!(Percent::new(0.0).is_ok());
        assert!(Percent::new(100.0).is_ok());
        assert_eq!(Percent::new(130.0).unwrap_err(), "130 is over 100");
        assert_eq!(Percent::new(-1.0).unwrap_err(), "-1 is below 0");
        assert!(Percent::new(f64::NAN).is_err());
        assert_eq!(Percent::parse("12.5%").unwrap().get(), 12.5);
        assert!(Percent::parse("ten").is_err());
    }

    #[test]
    fn percent_threshold_is_monotone_and_bounded() {
        assert_eq!(Percent::ZERO.hash_threshold(), 0);
        assert_eq!(Percent::HUNDRED.hash_threshold(), u64::MAX);
        let mut last = 0;
        for i in 0..=10_000 {
            let t = Percent::new(i as f64 / 100.0).unwrap().hash_threshold();
            assert!(t >= last);
            last = t;
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("1MiB").unwrap().get(), 1 << 20);
        assert_eq!(ByteSize::parse("512KiB").unwrap().get(), 512 << 10);
        assert_eq!(ByteSize::parse("64KB").unwrap().get(), 64_000);
        assert_eq!(ByteSize::parse("4096").unwrap().get(), 4096);
        assert_eq!(ByteSize::parse("1.5MiB").unwrap().get(), 3 << 19);
        assert!(ByteSize::parse("1 parsec").is_err());
        assert!(ByteSize::parse("MiB").is_err());
        assert_eq!(ByteSize::bytes(1 << 20).to_string(), "1MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
    }
}
