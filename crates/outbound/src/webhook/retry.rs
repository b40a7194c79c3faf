//! When to try again, and when to give up on an endpoint: data in `data/webhook-retry.json`
//! (svix's schedule, cited there).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Deserialize;

const DATA: &str = include_str!("../../data/webhook-retry.json");

#[derive(Deserialize)]
struct File {
    delays_seconds: Vec<u64>,
    disable_after_failing_seconds: u64,
    retry_after_cap_seconds: u64,
    jitter_fraction: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Wait before attempt n+2 after attempt n+1 failed (the first attempt is immediate).
    pub delays: Vec<Duration>,
    pub disable_after: Duration,
    pub retry_after_cap: Duration,
    pub jitter_fraction: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("data/webhook-retry.json is not a retry policy: {0}")]
pub struct PolicyError(#[from] serde_json::Error);

impl RetryPolicy {
    /// The shipped policy (svix's schedule, disable after a day).
    pub fn standard() -> Result<Self, PolicyError> {
        let file: File = serde_json::from_str(DATA)?;
        Ok(RetryPolicy {
            delays: file
                .delays_seconds
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            disable_after: Duration::from_secs(file.disable_after_failing_seconds),
            retry_after_cap: Duration::from_secs(file.retry_after_cap_seconds),
            jitter_fraction: file.jitter_fraction,
        })
    }

    /// How long to wait after the `failed_attempts`-th failed attempt of one message, or
    /// `None` when the schedule is exhausted. A receiver's `Retry-After` lengthens the wait
    /// (never shortens it), capped. `unit` in [0, 1) is the jitter's random draw: the wait
    /// is scaled by 1 ± `jitter_fraction`.
    pub fn next_delay(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        let scheduled = *self.delays.get(index)?;
        let spread = self.jitter_fraction * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered = scheduled.mul_f64((1.0 + spread).max(0.0));
        let asked = retry_after
            .map(|d| d.min(self.retry_after_cap))
            .unwrap_or_default();
        Some(jittered.max(asked))
    }

    /// Whether an endpoint that has failed every attempt since `failing_since` (and not
    /// succeeded since) is disabled now. `410 Gone` disables at once, without this.
    pub fn should_disable(&self, failing_since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match failing_since {
            Some(since) => (now - since)
                .to_std()
                .is_ok_and(|failing| failing >= self.disable_after),
            None => false,
        }
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_svix_s() {
        let p = RetryPolicy::standard().unwrap();
        let mid: Vec<u64> = (1..=7)
            .map(|n| p.next_delay(n, None, 0.5).unwrap().as_secs())
            .collect();
        assert_eq!(mid, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(p.next_delay(8, None, 0.5), None);
        assert_eq!(p.next_delay(0, None, 0.5), None);
        // Jitter stays within ±10 %.
        assert_eq!(
            p.next_delay(2, None, 0.0).unwrap(),
            Duration::from_secs(270)
        );
        assert_eq!(
            p.next_delay(2, None, 1.0).unwrap(),
            Duration::from_secs(330)
        );
    }

    #[test]
    fn retry_after_lengthens_but_is_capped() {
        let p = RetryPolicy::standard().unwrap();
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(60)), 0.5)
                .unwrap()
                .as_secs(),
            60
        );
        assert_eq!(
            p.next_delay(2, Some(Duration::from_secs(1)), 0.5)
                .unwrap()
                .as_secs(),
            300
        );
        let huge = Some(Duration::from_secs(7 * 86400));
        assert_eq!(p.next_delay(1, huge, 0.5).unwrap().as_secs(), 36000);
    }

    #[test]
    fn disables_after_a_day_of_failures() {
        let p = RetryPolicy::standard().unwrap();
        let now = Utc::now();
        assert!(!p.should_disable(None, now));
        assert!(!p.should_disable(Some(now - chrono::Duration::hours(23)), now));
        assert!(p.should_disable(Some(now - chrono::Duration::hours(24)), now));
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
