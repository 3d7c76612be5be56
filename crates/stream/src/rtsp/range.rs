//! The `Range` header in Normal Play Time (RFC 2326 §3.6, §12.29): `npt=4-`, `npt=0.5-10`,
//! `npt=00:01:02.5-`, `npt=now-`.
//!
//! Written by hand rather than through `rtsp-types`' `NptRange` because we need plain
//! `Duration`s with a bound on the numbers (a client must not make us compute with 1e300
//! seconds), and the grammar is a dozen lines.

use std::fmt;
use std::time::Duration;

/// Longest position we accept: a day beyond any real movie, and far from overflow.
const MAX_NPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A requested play range; `start: None` means "from where we are" (`now` or no start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NptRange {
    pub start: Option<Duration>,
    pub end: Option<Duration>,
}

/// Why a Range header was not understood (answered 457 Invalid Range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("only npt ranges are served, got `{0}`")]
    NotNpt(String),
    #[error("`{0}` is not an npt time")]
    BadTime(String),
    #[error("range ends before it starts")]
    Backwards,
}

impl NptRange {
    /// Parses a header value such as `npt=4.000-`; a `;time=` suffix is ignored.
    pub fn parse(value: &str) -> Result<NptRange, RangeError> {
        let value = value.split(';').next().unwrap_or_default().trim();
        let Some(spec) = value
            .strip_prefix("npt=")
            .or_else(|| value.strip_prefix("npt ="))
        else {
            return Err(RangeError::NotNpt(value.chars().take(40).collect()));
        };
        let (start, end) = spec
            .split_once('-')
            .ok_or_else(|| RangeError::BadTime(spec.chars().take(40).collect()))?;
        let start = match start.trim() {
            "" | "now" => None,
            text => Some(parse_npt_time(text)?),
        };
        let end = match end.trim() {
            "" => None,
            text => Some(parse_npt_time(text)?),
        };
        if let (Some(start), Some(end)) = (start, end) {
            if end < start {
                return Err(RangeError::Backwards);
            }
        }
        Ok(NptRange { start, end })
    }
}

impl fmt::Display for NptRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.start.unwrap_or_default();
        write!(f, "npt={:.3}-", start.as_secs_f64())?;
        if let Some(end) = self.end {
            write!(f, "{:.3}", end.as_secs_f64())?;
        }
        Ok(())
    }
}

/// `npt-sec = 1*DIGIT [ "." *DIGIT ]` or `npt-hhmmss = npt-hh ":" npt-mm ":" npt-ss [ "." *DIGIT ]`.
fn parse_npt_time(text: &str) -> Result<Duration, RangeError> {
    let bad = || RangeError::BadTime(text.chars().take(40).collect());
    let parts: Vec<&str> = text.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [seconds] => (0u64, 0u64, *seconds),
        [hours, minutes, seconds] => {
            let minutes: u64 = minutes.parse().map_err(|_| bad())?;
            if minutes > 59 {
                return Err(bad());
            }
            (hours.parse().map_err(|_| bad())?, minutes, *seconds)
        }
        _ => return Err(bad()),
    };
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if whole.is_empty() || whole.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    // Nanoseconds from at most nine fraction digits, padded on the right.
    let digits: String = fraction.chars().take(9).collect();
    let nanos: u32 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().map_err(|_| bad())?
    };
    let total_secs = hours
        .checked_mul(3600)
        .and_then(|h| h.checked_add(minutes * 60))
        .and_then(|s| s.checked_add(whole))
        .ok_or_else(bad)?;
    let duration = Duration::new(total_secs, nanos);
    if duration > MAX_NPT {
        return Err(bad());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(s))
    }

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(
            NptRange::parse("npt=0.000-"),
            Ok(NptRange {
                start: secs(0.0),
                end: None
            })
        );
        assert_eq!(
            NptRange::parse("npt=4-"),
            Ok(NptRange {
                start: secs(4.0),
                end: None
            })
        );
        assert_eq!(
            NptRange::parse("npt=4.5-10.25"),
            Ok(NptRange {
                start: secs(4.5),
                end: secs(10.25)
            })
        );
        assert_eq!(
            NptRange::parse("npt=now-"),
            Ok(NptRange {
                start: None,
                end: None
            })
        );
        assert_eq!(
            NptRange::parse("npt=00:01:02.5-"),
            Ok(NptRange {
                start: secs(62.5),
                end: None
            })
        );
        assert_eq!(
            NptRange::parse("npt=-5"),
            Ok(NptRange {
                start: None,
                end: secs(5.0)
            })
        );
        assert_eq!(
            NptRange::parse("npt=1-;time=19970123T143720Z"),
            Ok(NptRange {
                start: secs(1.0),
                end: None
            })
        );
    }

    #[test]
    fn refuses_what_is_not_npt() {
        assert!(matches!(
            NptRange::parse("smpte=0:10:20-"),
            Err(RangeError::NotNpt(_))
        ));
        assert!(matches!(
            NptRange::parse("clock=19961108T143720.25Z-"),
            Err(RangeError::NotNpt(_))
        ));
        assert!(matches!(
            NptRange::parse("npt=abc-"),
            Err(RangeError::BadTime(_))
        ));
        assert!(matches!(
            NptRange::parse("npt=1e300-"),
            Err(RangeError::BadTime(_))
        ));
        assert!(matches!(
            NptRange::parse("npt=99999999999999999999-"),
            Err(RangeError::BadTime(_))
        ));
        assert!(matches!(
            NptRange::parse("npt=0:99:00-"),
            Err(RangeError::BadTime(_))
        ));
        assert_eq!(NptRange::parse("npt=10-5"), Err(RangeError::Backwards));
        assert!(NptRange::parse("npt=5").is_err());
    }

    #[test]
    fn formats_with_millisecond_precision() {
        assert_eq!(
            NptRange {
                start: secs(4.0),
                end: None
            }
            .to_string(),
            "npt=4.000-"
        );
        assert_eq!(
            NptRange {
                start: secs(0.0),
                end: secs(10.5)
            }
            .to_string(),
            "npt=0.000-10.500"
        );
    }
}
