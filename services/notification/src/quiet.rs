//! Quiet hours: no SMS or call between (by default) 21:00 and 08:00 the consumer's local
//! time, unless waiting would miss the notice's legal period — then it is sent and flagged.

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use redress_proto::events::v1::NoticeChannel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl std::str::FromStr for QuietHours {
    type Err = String;

    /// `21:00-08:00`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("`{text}`: write it as HH:MM-HH:MM"))?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|e| format!("`{t}`: {e}"))
        };
        Ok(Self {
            start: time(start)?,
            end: time(end)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Inside quiet hours, but waiting would miss the period: send and flag it.
    SendFlagged,
    Wait(DateTime<Utc>),
}

/// Only what rings a phone keeps quiet hours.
pub fn applies(channel: NoticeChannel) -> bool {
    matches!(channel, NoticeChannel::Sms | NoticeChannel::Phone)
}

pub fn check(
    quiet: &QuietHours,
    tz: Tz,
    now: DateTime<Utc>,
    due_by: Option<DateTime<Utc>>,
) -> Verdict {
    let local = now.with_timezone(&tz);
    let time = local.time();
    let inside = if quiet.start <= quiet.end {
        time >= quiet.start && time < quiet.end
    } else {
        time >= quiet.start || time < quiet.end
    };
    if !inside {
        return Verdict::Send;
    }
    let date = local.date_naive();
    let end_date = if time >= quiet.end && quiet.start > quiet.end {
        date.checked_add_days(Days::new(1)).unwrap_or(date)
    } else {
        date
    };
    let until = tz
        .from_local_datetime(&end_date.and_time(quiet.end))
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc));
    match due_by {
        Some(due) if due < until => Verdict::SendFlagged,
        _ => Verdict::Wait(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // Beijing is UTC+8: 2026-12-03 h:m local.
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 12, 3, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn quiet_from_nine_at_night_to_eight_in_the_morning() {
        let q: QuietHours = "21:00-08:00".parse().unwrap();
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(check(&q, tz, at(20, 59), None), Verdict::Send);
        assert_eq!(check(&q, tz, at(8, 0), None), Verdict::Send);
        let next_morning = at(8, 0) + chrono::Duration::days(1);
        assert_eq!(check(&q, tz, at(21, 0), None), Verdict::Wait(next_morning));
        assert_eq!(check(&q, tz, at(7, 59), None), Verdict::Wait(at(8, 0)));
        // The period ends before the morning: send now, flagged.
        assert_eq!(
            check(&q, tz, at(23, 0), Some(at(23, 59))),
            Verdict::SendFlagged
        );
        assert_eq!(
            check(&q, tz, at(23, 0), Some(next_morning)),
            Verdict::Wait(next_morning)
        );
        assert!("21-8".parse::<QuietHours>().is_err());
    }
}
