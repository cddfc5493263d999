//! Wall-clock dates without a time-zone library: seconds since the Unix
//! epoch as a UTC calendar date and time, for log lines and reports that
//! say when something happened (the event log's start line, bench reports).

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
}

impl UtcTime {
    /// The UTC time `unix_secs` seconds after 1970-01-01 00:00:00.
    pub fn from_unix_secs(unix_secs: u64) -> Self {
        let days = (unix_secs / 86_400) as i64;
        let s = unix_secs % 86_400;
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: (s / 3600) as u32,
            minute: (s / 60 % 60) as u32,
            second: (s % 60) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = |s| {
            let u = UtcTime::from_unix_secs(s);
            (u.year, u.month, u.day, u.hour, u.minute, u.second)
        };
        assert_eq!(t(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(t(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(t(1_795_262_733), (2026, 11, 21, 12, 5, 33));
    }
}
