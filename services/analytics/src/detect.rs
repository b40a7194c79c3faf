//! Count tests for spikes (pure functions; the rules are data, `data/alert-rules-v1.toml`):
//! EARS C2/C3 while history is short, then a seasonal negative-binomial tail test.

use chrono::{Datelike, NaiveDate};
use redress_regime::Calendar;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Rules {
    pub version: String,
    pub spike: Spike,
    pub on_time: OnTime,
    pub vulnerable_cluster: Cluster,
    pub review_queue: ReviewQueue,
    pub model_drift: Drift,
    pub partner_rate: PartnerRate,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Spike {
    pub dimensions: Vec<String>,
    pub min_count: f64,
    pub ears_lag: usize,
    pub ears_c2: f64,
    pub ears_c3: f64,
    pub seasonal_min_days: usize,
    pub seasonal_weeks: usize,
    pub alpha: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OnTime {
    pub threshold: f64,
    pub min_decided: f64,
    pub window_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    pub min_count: f64,
    pub window_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewQueue {
    pub max_age_hours: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Drift {
    pub window_days: i64,
    pub min_classified: f64,
    pub min_overridden: f64,
    pub alpha: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PartnerRate {
    pub window_days: i64,
    pub baseline_days: i64,
    pub min_count: f64,
    pub alpha: f64,
}

pub const RULES_V1: &str = include_str!("../data/alert-rules-v1.toml");

impl Rules {
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// An alarm: what was seen, what was expected, the bar it crossed and the test.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub observed: f64,
    pub expected: f64,
    pub threshold: f64,
    pub method: &'static str,
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// EARS C2 of day `t` of `counts`; `None` without 7 days of baseline.
fn c2(counts: &[f64], t: usize, lag: usize) -> Option<(f64, f64, f64)> {
    let end = t.checked_sub(lag)?;
    let start = end.checked_sub(7)?;
    let (mean, sd) = mean_sd(&counts[start..end]);
    // A floor on the deviation keeps a flat baseline from alarming on one extra complaint.
    let sd = sd.max(0.5).max(mean.sqrt() * 0.5);
    Some(((counts[t] - mean) / sd, mean, sd))
}

/// A day's type for seasonality: 0–6 a working weekday, 7 a weekend day off, 8 a statutory
/// holiday, 9 a make-up working day (调休).
pub fn day_type(calendar: &Calendar, day: NaiveDate) -> u8 {
    if calendar.is_statutory_holiday(day) {
        8
    } else if calendar.is_makeup_working_day(day) {
        9
    } else if calendar.is_working_day(day) {
        day.weekday().num_days_from_monday() as u8
    } else {
        7
    }
}

/// ln Γ(x) (Lanczos), for the negative-binomial probabilities.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 8] = [
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = 0.999_999_999_999_809_9;
    for (i, g) in G.iter().enumerate() {
        a += g / (x + i as f64 + 1.0);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// P(X >= x) for a negative binomial with this mean and variance (Poisson when the variance
/// does not exceed the mean).
pub fn upper_tail(x: f64, mean: f64, var: f64) -> f64 {
    let k = x.floor().max(0.0) as u64;
    let mean = mean.max(1e-9);
    let mut below = 0.0;
    if var <= mean * 1.000_001 {
        let mut p = (-mean).exp();
        for i in 0..k {
            below += p;
            p *= mean / (i as f64 + 1.0);
        }
    } else {
        let r = mean * mean / (var - mean);
        let p = mean / var; // success probability
        for i in 0..k {
            let i = i as f64;
            below += (ln_gamma(i + r) - ln_gamma(r) - ln_gamma(i + 1.0)
                + r * p.ln()
                + i * (1.0 - p).ln())
            .exp();
        }
    }
    (1.0 - below).max(0.0)
}

/// Tests the last day of `counts` (one per day, oldest first, the last on `last_day`).
pub fn spike(
    rules: &Spike,
    calendar: &Calendar,
    counts: &[f64],
    last_day: NaiveDate,
) -> Option<Signal> {
    let t = counts.len().checked_sub(1)?;
    let x = counts[t];
    if x < rules.min_count {
        return None;
    }
    if counts.len() > rules.seasonal_min_days {
        let kind = day_type(calendar, last_day);
        let same: Vec<f64> = (1..=t)
            .filter(|back| *back <= rules.seasonal_weeks * 7)
            .filter(|back| day_type(calendar, last_day - chrono::Days::new(*back as u64)) == kind)
            .map(|back| counts[t - back])
            .collect();
        if same.len() >= 3 {
            let (mean, sd) = mean_sd(&same);
            let var = (sd * sd).max(mean);
            let p = upper_tail(x, mean, var);
            return (p < rules.alpha).then_some(Signal {
                observed: x,
                expected: mean,
                threshold: rules.alpha,
                method: "negbin-tail",
            });
        }
    }
    let (stat, mean, sd) = c2(counts, t, rules.ears_lag)?;
    if stat > rules.ears_c2 {
        return Some(Signal {
            observed: x,
            expected: mean,
            threshold: mean + rules.ears_c2 * sd,
            method: "ears-c2",
        });
    }
    let c3: f64 = (0..3)
        .filter_map(|i| t.checked_sub(i).and_then(|d| c2(counts, d, rules.ears_lag)))
        .map(|(s, ..)| (s - 1.0).max(0.0))
        .sum();
    (c3 > rules.ears_c3).then_some(Signal {
        observed: x,
        expected: mean,
        threshold: rules.ears_c3,
        method: "ears-c3",
    })
}

/// Model drift of one class: specialists override more often than the classifier's own
/// confidence promises. `deciles[k]` counts the complaints classified with confidence in
/// [k/10, (k+1)/10); a complaint in decile k is expected to be overridden with probability
/// 1 − (k + ½)/10, so the expected overrides are the sum of those (a calibrated model's
/// promise). Alarm when P(X ≥ overridden) < alpha under a Poisson with that mean.
pub fn drift(rule: &Drift, deciles: &[f64], overridden: f64) -> Option<Signal> {
    let classified: f64 = deciles.iter().sum();
    if classified < rule.min_classified || overridden < rule.min_overridden {
        return None;
    }
    let expected: f64 = deciles
        .iter()
        .enumerate()
        .map(|(k, n)| n * (1.0 - (k as f64 + 0.5) / 10.0))
        .sum();
    let p = upper_tail(overridden, expected, expected);
    (p < rule.alpha).then_some(Signal {
        observed: overridden / classified,
        expected: expected / classified,
        threshold: rule.alpha,
        method: "poisson-tail",
    })
}

/// A partner's complaint rate jumped: `recent` complaints against `recent_volume` (account-
/// months of the partner's business in the window) tested against the rate of the baseline
/// before it (`base` complaints, `base_volume` account-months). Alarm when P(X ≥ recent) <
/// alpha under a Poisson with the baseline rate × the recent volume. Rates are per 10,000
/// account-months. Half a complaint is added to the baseline so a partner with none before
/// is not alarmed on the first.
pub fn partner_jump(
    rule: &PartnerRate,
    recent: f64,
    recent_volume: f64,
    base: f64,
    base_volume: f64,
) -> Option<Signal> {
    if recent < rule.min_count || recent_volume <= 0.0 || base_volume <= 0.0 {
        return None;
    }
    let expected = (base + 0.5) / base_volume * recent_volume;
    let p = upper_tail(recent, expected, expected);
    (p < rule.alpha).then_some(Signal {
        observed: recent / recent_volume * 10_000.0,
        expected: expected / recent_volume * 10_000.0,
        threshold: rule.alpha,
        method: "poisson-rate",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_are_probabilities() {
        assert!((upper_tail(0.0, 3.0, 3.0) - 1.0).abs() < 1e-9);
        // P(X >= 1) for Poisson(2) = 1 - e^-2
        assert!((upper_tail(1.0, 2.0, 2.0) - (1.0 - (-2.0f64).exp())).abs() < 1e-9);
        let nb = upper_tail(10.0, 4.0, 8.0);
        let poisson = upper_tail(10.0, 4.0, 4.0);
        assert!(nb > poisson, "overdispersion fattens the tail");
    }

    fn rules() -> Rules {
        Rules::parse(RULES_V1).unwrap_or_else(|e| panic!("shipped rules: {e}"))
    }

    #[test]
    fn drift_alarms_only_when_overrides_exceed_what_confidence_promises() {
        let rule = rules().model_drift;
        // 100 complaints at confidence 0.9–1.0: about 5 overrides expected.
        let mut deciles = [0.0; 10];
        deciles[9] = 100.0;
        assert_eq!(drift(&rule, &deciles, 6.0), None);
        let signal = drift(&rule, &deciles, 25.0).unwrap_or_else(|| panic!("25 of 100"));
        assert!((signal.expected - 0.05).abs() < 1e-9);
        assert!((signal.observed - 0.25).abs() < 1e-9);
        // Low confidence promises many overrides: 40 of 100 at 0.5–0.6 is no drift.
        let mut low = [0.0; 10];
        low[5] = 100.0;
        assert_eq!(drift(&rule, &low, 40.0), None);
        // Too few classified to say.
        let mut few = [0.0; 10];
        few[9] = 10.0;
        assert_eq!(drift(&rule, &few, 9.0), None);
    }

    #[test]
    fn partner_jump_is_a_rate_test_not_a_count_test() {
        let rule = rules().partner_rate;
        // 30 complaints on 60,000 account-months, baseline 90 on 180,000: the same rate.
        assert_eq!(partner_jump(&rule, 30.0, 60_000.0, 90.0, 180_000.0), None);
        // The same count on a third of the volume: the rate tripled.
        let s = partner_jump(&rule, 30.0, 20_000.0, 90.0, 180_000.0)
            .unwrap_or_else(|| panic!("a tripled rate"));
        assert!(s.observed > 2.5 * s.expected);
        // Below the minimum count nothing alarms.
        assert_eq!(partner_jump(&rule, 3.0, 100.0, 0.0, 180_000.0), None);
    }
}
