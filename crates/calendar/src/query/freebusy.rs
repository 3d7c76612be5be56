//! Free-busy computation (RFC 4791 §7.10): busy periods from instances, merged per FBTYPE.

use crate::ical::expand::{format_utc, BusyStatus, TimeRange};
use std::fmt::Write;

/// A busy interval of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPeriod {
    pub start: i64,
    pub end: i64,
    pub status: BusyStatus,
}

/// Clips busy intervals to `range` and merges overlapping ones of the same status.
pub fn merge_busy(
    intervals: impl IntoIterator<Item = BusyPeriod>,
    range: TimeRange,
) -> Vec<BusyPeriod> {
    let mut clipped: Vec<BusyPeriod> = intervals
        .into_iter()
        .filter(|p| {
            p.status != BusyStatus::Free && range.overlaps(p.start, p.end) && p.end > p.start
        })
        .map(|p| BusyPeriod {
            start: range.start.map_or(p.start, |s| p.start.max(s)),
            end: range.end.map_or(p.end, |e| p.end.min(e)),
            status: p.status,
        })
        .collect();
    clipped.sort_by_key(|p| (p.status, p.start, p.end));
    let mut merged: Vec<BusyPeriod> = Vec::with_capacity(clipped.len());
    for period in clipped {
        match merged.last_mut() {
            Some(last) if last.status == period.status && period.start <= last.end => {
                last.end = last.end.max(period.end)
            }
            _ => merged.push(period),
        }
    }
    merged.sort_by_key(|p| (p.start, p.status));
    merged
}

/// A VCALENDAR with one VFREEBUSY (RFC 4791 §7.10 response body).
pub fn write_vfreebusy(periods: &[BusyPeriod], range: TimeRange, dtstamp: i64) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Serval//CalDAV//EN\r\nBEGIN:VFREEBUSY\r\n",
    );
    let _ = write!(out, "DTSTAMP:{}\r\n", format_utc(dtstamp));
    if let Some(start) = range.start {
        let _ = write!(out, "DTSTART:{}\r\n", format_utc(start));
    }
    if let Some(end) = range.end {
        let _ = write!(out, "DTEND:{}\r\n", format_utc(end));
    }
    for period in periods {
        let Some(fbtype) = period.status.fbtype() else {
            continue;
        };
        let _ = write!(
            out,
            "FREEBUSY;FBTYPE={fbtype}:{}/{}\r\n",
            format_utc(period.start),
            format_utc(period.end)
        );
    }
    out.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_busy_merges_and_free_is_dropped() {
        let busy = |start, end| BusyPeriod {
            start,
            end,
            status: BusyStatus::Busy,
        };
        let periods = merge_busy(
            [
                busy(10, 20),
                busy(15, 30),
                busy(40, 50),
                BusyPeriod {
                    start: 0,
                    end: 100,
                    status: BusyStatus::Free,
                },
                busy(90, 120),
            ],
            TimeRange::new(0, 100),
        );
        assert_eq!(periods, vec![busy(10, 30), busy(40, 50), busy(90, 100)]);
    }

    #[test]
    fn tentative_stays_separate() {
        let periods = merge_busy(
            [
                BusyPeriod {
                    start: 0,
                    end: 10,
                    status: BusyStatus::Busy,
                },
                BusyPeriod {
                    start: 5,
                    end: 15,
                    status: BusyStatus::Tentative,
                },
            ],
            TimeRange::default(),
        );
        assert_eq!(periods.len(), 2);
        let text = write_vfreebusy(&periods, TimeRange::new(0, 3600), 0);
        assert!(text.contains("FREEBUSY;FBTYPE=BUSY:19700101T000000Z/19700101T000010Z\r\n"));
        assert!(text.contains("FBTYPE=BUSY-TENTATIVE"));
    }
}
