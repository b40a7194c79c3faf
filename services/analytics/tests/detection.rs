//! The spike test's measured detection rate, delay and false-alarm rate on generated daily
//! counts: Poisson days whose mean follows the regime calendar (working days, weekends,
//! statutory holidays and 调休 make-up days), with injected spikes (the day's mean doubled
//! for three days). The figures are printed and reported in the README; the bounds below
//! are what the method must keep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::NaiveDate;
use redress_analytics::detect::{RULES_V1, Rules, day_type, spike};
use redress_regime::Regime;
use support::Rng;

fn poisson(rng: &mut Rng, mean: f64) -> f64 {
    let limit = (-mean).exp();
    let (mut k, mut p) = (0.0, 1.0);
    loop {
        p *= (rng.below(1 << 30) as f64 + 0.5) / (1u64 << 30) as f64;
        if p <= limit {
            return k;
        }
        k += 1.0;
    }
}

#[test]
fn spikes_are_found_and_false_alarms_are_rare() {
    let rules = Rules::parse(RULES_V1).unwrap();
    let calendar = Regime::by_name("cn-nfra")
        .unwrap()
        .default_calendar()
        .unwrap();
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let days: Vec<NaiveDate> = first.iter_days().take(720).collect();
    let mut rng = Rng::new(2026);
    let (mut spikes, mut found, mut delay_sum) = (0, 0, 0usize);
    let (mut quiet_days, mut false_alarms) = (0, 0);
    let (mut early_spikes, mut early_found) = (0, 0);
    for series in 0..40 {
        let level = [6.0, 12.0, 25.0, 50.0][series % 4];
        let base: Vec<f64> = days
            .iter()
            .map(|d| match day_type(&calendar, *d) {
                7 => level * 0.4,
                8 => level * 0.25,
                9 => level * 0.8,
                wd => level * (1.0 + 0.05 * f64::from(wd)),
            })
            .collect();
        let starts: Vec<usize> = (0..6)
            .map(|i| 20 + i * 110 + rng.below(60) as usize)
            .collect();
        let in_spike = |t: usize| starts.iter().any(|s| t >= *s && t < s + 3);
        let near_spike = |t: usize| starts.iter().any(|s| t >= *s && t < s + 10);
        let counts: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(t, m)| poisson(&mut rng, if in_spike(t) { m * 2.0 } else { *m }))
            .collect();
        let alarms: Vec<bool> = (0..days.len())
            .map(|t| spike(&rules.spike, &calendar, &counts[..=t], days[t]).is_some())
            .collect();
        for s in &starts {
            spikes += 1;
            if *s <= rules.spike.seasonal_min_days {
                early_spikes += 1;
            }
            if let Some(d) = (0..3).find(|d| alarms[s + d]) {
                found += 1;
                delay_sum += d;
                if *s <= rules.spike.seasonal_min_days {
                    early_found += 1;
                }
            }
        }
        for (t, alarm) in alarms.iter().enumerate().skip(10) {
            if !near_spike(t) {
                quiet_days += 1;
                false_alarms += usize::from(*alarm);
            }
        }
    }
    let detection = found as f64 / spikes as f64;
    let delay = delay_sum as f64 / found.max(1) as f64;
    let false_rate = false_alarms as f64 / quiet_days as f64;
    eprintln!(
        "spikes {spikes}, detected {found} ({detection:.3}; EARS period {early_found}/{early_spikes}), \
         mean delay {delay:.2} days, false alarms {false_alarms} on {quiet_days} quiet days ({false_rate:.4}/day)"
    );
    assert!(detection >= 0.70, "detection rate {detection}");
    assert!(delay <= 1.0, "mean delay {delay}");
    assert!(false_rate <= 0.015, "false-alarm rate {false_rate}");
}
