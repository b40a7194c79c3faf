//! Confidence that means something: everything fitted on out-of-fold predictions inside the
//! training data.
//!
//! * per-class bias offsets (for macro-F1) and one softmax temperature (log loss) — the raw
//!   confidence;
//! * a monotone map from the raw confidence to the probability that the predicted label is
//!   right ([`Calibration`]: isotonic regression or Platt scaling), so a confidence of 0.9 is
//!   right about 90 % of the time;
//! * the operating curve (precision and coverage above every threshold) and the threshold
//!   that reached the target precision, stored in the artifact so the review threshold can be
//!   a target precision rather than a raw score;
//! * reliability (expected calibration error and reliability bins) for reports.

use serde::{Deserialize, Serialize};

use super::options::{AUTO_ISOTONIC_MIN, CalibrationMethod};

/// Fewest predictions above a threshold for the hindsight figure of a report (below, one
/// error moves precision by more than 5 %).
pub const MIN_SUPPORT: u32 = 20;

/// Most points kept of an operating curve in an artifact (thinned evenly by coverage).
const MAX_CURVE_POINTS: usize = 256;

/// Knots of a Platt curve stored for interpolation (on a logit grid, so dense near 0 and 1).
const PLATT_KNOTS: usize = 101;

pub(crate) fn softmax(margins: &[f32], temperature: f32) -> Vec<f32> {
    let max = margins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = margins
        .iter()
        .map(|m| ((m - max) * temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        exps.iter().map(|e| e / sum).collect()
    } else {
        vec![1.0 / margins.len().max(1) as f32; margins.len()]
    }
}

/// Index of the largest `margin + offset` (the first on ties).
pub(crate) fn argmax_with(margins: &[f32], offsets: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (c, (v, o)) in margins.iter().zip(offsets).enumerate() {
        if v + o > best_v {
            best_v = v + o;
            best = c;
        }
    }
    best
}

pub(crate) fn macro_f1_of(scored: &[(Vec<f32>, usize)], offsets: &[f32], k: usize) -> f64 {
    let mut tp = vec![0usize; k];
    let mut pred = vec![0usize; k];
    let mut truth = vec![0usize; k];
    for (m, y) in scored {
        let best = argmax_with(m, offsets);
        pred[best] += 1;
        truth[*y] += 1;
        tp[*y] += usize::from(best == *y);
    }
    let mut sum = 0f64;
    let mut classes = 0usize;
    for c in 0..k {
        if truth[c] == 0 {
            continue;
        }
        classes += 1;
        let p = if pred[c] > 0 {
            tp[c] as f64 / pred[c] as f64
        } else {
            0.0
        };
        let r = tp[c] as f64 / truth[c] as f64;
        if p + r > 0.0 {
            sum += 2.0 * p * r / (p + r);
        }
    }
    if classes == 0 {
        0.0
    } else {
        sum / classes as f64
    }
}

/// Per-class margin offsets maximising macro-F1 on out-of-fold margins (coordinate ascent over
/// a small grid; a change must gain at least 0.0005 to be taken, so noise does not move them).
pub(crate) fn fit_offsets(scored: &[(Vec<f32>, usize)], k: usize) -> Vec<f32> {
    let mut offsets = vec![0f32; k];
    let mut best = macro_f1_of(scored, &offsets, k);
    for _round in 0..3 {
        let mut changed = false;
        for c in 0..k {
            let current = offsets[c];
            let mut best_here = (best, current);
            for step in -12i32..=12 {
                let cand = step as f32 * 0.05;
                offsets[c] = cand;
                let f = macro_f1_of(scored, &offsets, k);
                if f > best_here.0 + 0.0005 {
                    best_here = (f, cand);
                }
            }
            offsets[c] = best_here.1;
            if best_here.1 != current {
                changed = true;
                best = best_here.0;
            }
        }
        if !changed {
            break;
        }
    }
    offsets
}

/// Pick the temperature minimising log loss over (margins, true class).
pub(crate) fn fit_temperature(scored: &[(Vec<f32>, usize)]) -> f32 {
    if scored.is_empty() {
        return 1.0;
    }
    let mut best = (f64::INFINITY, 1.0f32);
    for step in 0..=80 {
        let t = 10f32.powf(-1.0 + step as f32 * 3.0 / 80.0); // 0.1 .. 100
        let mut loss = 0f64;
        for (m, y) in scored {
            let p = softmax(m, t);
            loss -= f64::from(p.get(*y).copied().unwrap_or(0.0).max(1e-7)).ln();
        }
        if loss < best.0 {
            best = (loss, t);
        }
    }
    best.1
}

/// Predictions with a confidence at or above `threshold`: how many, which share of all, and
/// how many of them were right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Confidence threshold.
    pub threshold: f32,
    /// Share of the predictions above the threshold that were right.
    pub precision: f32,
    /// Share of all predictions above the threshold (the auto-routed share).
    pub coverage: f32,
    /// Number of predictions above the threshold.
    pub count: u32,
}

/// The operating curve of (confidence, right?) pairs: one point per distinct confidence,
/// threshold descending (coverage ascending).
pub fn operating_curve(pairs: &[(f32, bool)]) -> Vec<OperatingPoint> {
    let mut sorted: Vec<(f32, bool)> = pairs
        .iter()
        .map(|&(c, ok)| (if c.is_finite() { c } else { 0.0 }, ok))
        .collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n = sorted.len().max(1) as f32;
    let mut out = Vec::new();
    let mut right = 0u32;
    for (i, &(c, ok)) in sorted.iter().enumerate() {
        right += u32::from(ok);
        // A point closes where the next confidence is lower (ties stay together).
        let closes = sorted.get(i + 1).is_none_or(|next| next.0 < c);
        if closes {
            let count = i as u32 + 1;
            out.push(OperatingPoint {
                threshold: c,
                precision: right as f32 / count as f32,
                coverage: count as f32 / n,
                count,
            });
        }
    }
    out
}

/// The point of largest coverage whose precision reaches `target`, among points with at
/// least `min_support` predictions: the threshold that would have auto-routed the most at
/// that precision (measured, in hindsight, on the data of the curve).
pub fn best_at_precision(
    curve: &[OperatingPoint],
    target: f32,
    min_support: u32,
) -> Option<OperatingPoint> {
    curve
        .iter()
        .filter(|p| p.count >= min_support && p.precision >= target)
        .max_by(|a, b| a.coverage.total_cmp(&b.coverage))
        .copied()
}

/// One-sided z of the confidence a recorded threshold must reach its target precision with
/// (95 %): the held-out predictions a threshold is chosen on are a sample, and the top of an
/// isotonic map is fitted on the same predictions, so the plain precision above a threshold
/// flatters it — most on small histories, where a wrong auto-route is likeliest.
pub const THRESHOLD_Z: f64 = 1.645;

/// Wilson score lower bound of a proportion `p` measured on `n` trials at one-sided `z`.
pub fn wilson_lower(p: f64, n: f64, z: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (centre - margin) / (1.0 + z2 / n)
}

/// The point of largest coverage whose precision reaches `target` with one-sided 95 %
/// confidence ([`THRESHOLD_Z`], Wilson lower bound): the threshold recorded in an artifact.
pub fn confident_at_precision(curve: &[OperatingPoint], target: f32) -> Option<OperatingPoint> {
    curve
        .iter()
        .filter(|p| {
            let n = f64::from(p.count);
            wilson_lower(f64::from(p.precision), n, THRESHOLD_Z) >= f64::from(target)
        })
        .max_by(|a, b| a.coverage.total_cmp(&b.coverage))
        .copied()
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the confidence bin (inclusive).
    pub lower: f32,
    /// Upper edge (exclusive, except the last bin).
    pub upper: f32,
    /// Predictions in the bin.
    pub count: usize,
    /// Their mean confidence.
    pub confidence: f64,
    /// The share of them that were right.
    pub accuracy: f64,
}

/// Reliability of a set of confidences: expected calibration error and the bins it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// Expected calibration error: `Σ (n_b / N) · |accuracy_b − confidence_b|` over equal-width
    /// bins (0 = perfectly calibrated).
    pub ece: f64,
    /// The bins (empty bins included, so every report has the same rows).
    pub bins: Vec<ReliabilityBin>,
    /// Predictions measured.
    pub examples: usize,
}

/// Reliability of (confidence, right?) pairs over `bins` equal-width bins of [0, 1].
pub fn reliability(pairs: &[(f32, bool)], bins: usize) -> Reliability {
    let nb = bins.max(1);
    let mut count = vec![0usize; nb];
    let mut conf = vec![0f64; nb];
    let mut right = vec![0usize; nb];
    for &(c, ok) in pairs {
        let c = if c.is_finite() {
            c.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let b = ((c * nb as f32) as usize).min(nb - 1);
        count[b] += 1;
        conf[b] += f64::from(c);
        right[b] += usize::from(ok);
    }
    let total = pairs.len().max(1) as f64;
    let mut ece = 0f64;
    let bins = (0..nb)
        .map(|b| {
            let n = count[b];
            let (confidence, accuracy) = if n > 0 {
                (conf[b] / n as f64, right[b] as f64 / n as f64)
            } else {
                (0.0, 0.0)
            };
            ece += n as f64 / total * (accuracy - confidence).abs();
            ReliabilityBin {
                lower: b as f32 / nb as f32,
                upper: (b + 1) as f32 / nb as f32,
                count: n,
                confidence,
                accuracy,
            }
        })
        .collect();
    Reliability {
        ece,
        bins,
        examples: pairs.len(),
    }
}

/// A model's calibration, fitted on its out-of-fold predictions and stored in its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// How the map was fitted ([`CalibrationMethod::Isotonic`] or [`CalibrationMethod::Platt`]).
    pub method: CalibrationMethod,
    /// Knots `(raw, calibrated)` of the map, raw ascending: linear between knots, flat
    /// outside them.
    pub knots: Vec<(f32, f32)>,
    /// Operating curve of the calibrated confidence on the out-of-fold predictions,
    /// threshold descending.
    pub curve: Vec<OperatingPoint>,
    /// The target precision asked for at training.
    pub target_precision: f32,
    /// The lowest calibrated confidence at which the out-of-fold predictions reached
    /// `target_precision` with one-sided 95 % confidence; `None` = never.
    pub threshold: Option<f32>,
    /// Out-of-fold predictions it was fitted on.
    pub examples: u32,
    /// Expected calibration error of the raw confidence on them.
    pub ece_raw: f32,
    /// Expected calibration error of the calibrated confidence on them (in-sample for the
    /// map, so optimistic; the held-out report is the figure to trust).
    pub ece: f32,
}

impl Calibration {
    /// Fit on out-of-fold (raw confidence, right?) pairs. `None` when there are none or when
    /// `method` is [`CalibrationMethod::None`].
    pub fn fit(pairs: &[(f32, bool)], method: CalibrationMethod, target: f32) -> Option<Self> {
        let method = match method {
            CalibrationMethod::None => return None,
            CalibrationMethod::Auto if pairs.len() >= AUTO_ISOTONIC_MIN => {
                CalibrationMethod::Isotonic
            }
            CalibrationMethod::Auto => CalibrationMethod::Platt,
            m => m,
        };
        if pairs.is_empty() {
            return None;
        }
        let knots = match method {
            CalibrationMethod::Platt => platt_knots(pairs),
            _ => isotonic_knots(pairs),
        };
        let mut cal = Calibration {
            method,
            knots,
            curve: Vec::new(),
            target_precision: target,
            threshold: None,
            examples: pairs.len() as u32,
            ece_raw: reliability(pairs, 10).ece as f32,
            ece: 0.0,
        };
        let mapped: Vec<(f32, bool)> = pairs.iter().map(|&(r, ok)| (cal.apply(r), ok)).collect();
        cal.ece = reliability(&mapped, 10).ece as f32;
        cal.curve = thin(operating_curve(&mapped));
        cal.threshold = cal.threshold_for(target);
        Some(cal)
    }

    /// The calibrated confidence of a raw confidence.
    pub fn apply(&self, raw: f32) -> f32 {
        if !raw.is_finite() {
            return 0.0;
        }
        let (Some(&first), Some(&last)) = (self.knots.first(), self.knots.last()) else {
            return raw.clamp(0.0, 1.0);
        };
        if raw <= first.0 {
            return first.1.clamp(0.0, 1.0);
        }
        if raw >= last.0 {
            return last.1.clamp(0.0, 1.0);
        }
        let i = self.knots.partition_point(|k| k.0 <= raw);
        let below = i.checked_sub(1).and_then(|b| self.knots.get(b));
        let (Some(&(x0, y0)), Some(&(x1, y1))) = (below, self.knots.get(i)) else {
            return raw.clamp(0.0, 1.0);
        };
        let t = if x1 > x0 { (raw - x0) / (x1 - x0) } else { 1.0 };
        (y0 + t * (y1 - y0)).clamp(0.0, 1.0)
    }

    /// The lowest calibrated confidence at which the out-of-fold predictions reached
    /// `target` precision with one-sided 95 % confidence (largest coverage whose Wilson lower
    /// bound reaches the target); `None` when no threshold did.
    pub fn threshold_for(&self, target: f32) -> Option<f32> {
        self.point_for(target).map(|p| p.threshold)
    }

    /// The out-of-fold operating point of `threshold_for(target)`.
    pub fn point_for(&self, target: f32) -> Option<OperatingPoint> {
        confident_at_precision(&self.curve, target)
    }
}

/// At most [`MAX_CURVE_POINTS`] points, evenly by coverage, always keeping the first and last.
fn thin(curve: Vec<OperatingPoint>) -> Vec<OperatingPoint> {
    if curve.len() <= MAX_CURVE_POINTS {
        return curve;
    }
    let step = curve.len() as f64 / (MAX_CURVE_POINTS - 1) as f64;
    let mut out: Vec<OperatingPoint> = (0..MAX_CURVE_POINTS - 1)
        .filter_map(|i| curve.get((i as f64 * step) as usize).copied())
        .collect();
    if let Some(&last) = curve.last() {
        out.push(last);
    }
    out.dedup_by(|a, b| a.threshold == b.threshold);
    out
}

/// Isotonic regression of "right" on the raw confidence by pool-adjacent-violators; one knot
/// per pooled block, at the block's mean raw confidence.
fn isotonic_knots(pairs: &[(f32, bool)]) -> Vec<(f32, f32)> {
    let mut sorted: Vec<(f32, f32)> = pairs
        .iter()
        .map(|&(r, ok)| (if r.is_finite() { r } else { 0.0 }, f32::from(u8::from(ok))))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Equal raw confidences form one starting block, so no two knots share a raw value.
    let mut ties: Vec<(f32, f64, f64)> = Vec::with_capacity(sorted.len());
    for (r, y) in sorted {
        match ties.last_mut() {
            Some(last) if last.0 == r => {
                last.1 += f64::from(y);
                last.2 += 1.0;
            }
            _ => ties.push((r, f64::from(y), 1.0)),
        }
    }
    // Blocks: (sum of raw, sum of y, count).
    let mut blocks: Vec<(f64, f64, f64)> = Vec::with_capacity(ties.len());
    for (r, sy, n) in ties {
        blocks.push((f64::from(r) * n, sy, n));
        while blocks.len() >= 2 {
            let (Some(&b), Some(&a)) = (blocks.last(), blocks.get(blocks.len() - 2)) else {
                break;
            };
            if a.1 / a.2 < b.1 / b.2 {
                break;
            }
            blocks.pop();
            if let Some(prev) = blocks.last_mut() {
                *prev = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            }
        }
    }
    blocks
        .iter()
        .map(|&(sx, sy, n)| ((sx / n) as f32, (sy / n) as f32))
        .collect()
}

fn logit(p: f32) -> f64 {
    let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Platt scaling: `P(right) = σ(a · logit(raw) + b)`, fitted by Newton's method on Platt's
/// smoothed targets (so a class with no errors does not drive the curve to 1), stored as
/// knots on a logit grid.
fn platt_knots(pairs: &[(f32, bool)]) -> Vec<(f32, f32)> {
    let pos = pairs.iter().filter(|p| p.1).count() as f64;
    let neg = pairs.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let data: Vec<(f64, f64)> = pairs
        .iter()
        .map(|&(r, ok)| (logit(r), if ok { hi } else { lo }))
        .collect();
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        // Gradient and Hessian of the log loss in (a, b), with a small ridge for stability.
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for &(x, t) in &data {
            let p = sigmoid(a * x + b);
            let d = p - t;
            let w = (p * (1.0 - p)).max(1e-12);
            ga += d * x;
            gb += d;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if !(a.is_finite() && b.is_finite()) {
            (a, b) = (1.0, 0.0);
            break;
        }
        if da.abs() + db.abs() < 1e-9 {
            break;
        }
    }
    (0..PLATT_KNOTS)
        .map(|i| {
            // Logit grid from about 1e-6 to 1 − 1e-6.
            let z = -14.0 + 28.0 * i as f64 / (PLATT_KNOTS - 1) as f64;
            let raw = sigmoid(z) as f32;
            (raw, sigmoid(a * z + b) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw confidences whose true reliability is known: a prediction with raw confidence `r`
    /// is right with probability `r²` (over-confident everywhere but at 0 and 1).
    fn overconfident(n: usize, seed: u64) -> Vec<(f32, bool)> {
        let mut rng = super::super::solver::SplitMix(seed);
        (0..n)
            .map(|_| {
                let r = 0.3 + 0.7 * (rng.next() % 10_000) as f32 / 10_000.0;
                let u = (rng.next() % 10_000) as f32 / 10_000.0;
                (r, u < r * r)
            })
            .collect()
    }

    #[test]
    fn isotonic_calibration_recovers_a_known_reliability() {
        let fit = overconfident(20_000, 1);
        let cal = Calibration::fit(&fit, CalibrationMethod::Isotonic, 0.9).expect("fitted");
        // The map approximates r ↦ r².
        for r in [0.5f32, 0.7, 0.9, 0.99] {
            let c = cal.apply(r);
            assert!(
                (c - r * r).abs() < 0.05,
                "raw {r}: calibrated {c}, truth {}",
                r * r
            );
        }
        // Fresh data from the same distribution: calibrated confidence is reliable, raw is not.
        let test = overconfident(20_000, 2);
        let raw = reliability(&test, 10);
        let mapped: Vec<(f32, bool)> = test.iter().map(|&(r, ok)| (cal.apply(r), ok)).collect();
        let calibrated = reliability(&mapped, 10);
        assert!(raw.ece > 0.1, "raw ECE {}", raw.ece);
        assert!(calibrated.ece < 0.02, "calibrated ECE {}", calibrated.ece);
        // The threshold for 90 % precision holds on the fresh data. Predictions above a
        // threshold t have mean r² ≥ 0.9 when t ≈ 0.93 (precision of the top set).
        let t = cal.threshold.expect("0.9 is reachable");
        let above: Vec<&(f32, bool)> = mapped.iter().filter(|p| p.0 >= t).collect();
        let precision = above.iter().filter(|p| p.1).count() as f32 / above.len() as f32;
        assert!(precision >= 0.88, "held-out precision {precision} at {t}");
        assert!(cal.threshold_for(0.5) < cal.threshold_for(0.9));
        // A model right half the time at every confidence never reaches 90 %.
        let coin: Vec<(f32, bool)> = (0..400)
            .map(|i| (0.5 + (i % 50) as f32 / 100.0, (i / 50) % 2 == 0))
            .collect();
        let coin = Calibration::fit(&coin, CalibrationMethod::Isotonic, 0.9).expect("fitted");
        assert_eq!(coin.threshold, None);
    }

    #[test]
    fn platt_calibration_fits_a_logistic_reliability() {
        // Right with probability σ(2·logit(r) − 1): a logistic curve Platt can represent.
        let mut rng = super::super::solver::SplitMix(9);
        let truth = |r: f32| sigmoid(2.0 * logit(r) - 1.0) as f32;
        let data: Vec<(f32, bool)> = (0..5_000)
            .map(|_| {
                let r = 0.05 + 0.9 * (rng.next() % 10_000) as f32 / 10_000.0;
                let u = (rng.next() % 10_000) as f32 / 10_000.0;
                (r, u < truth(r))
            })
            .collect();
        let cal = Calibration::fit(&data, CalibrationMethod::Auto, 0.9).expect("fitted");
        assert_eq!(
            cal.method,
            CalibrationMethod::Isotonic,
            "5,000 ≥ AUTO_ISOTONIC_MIN"
        );
        let small = Calibration::fit(&data[..500], CalibrationMethod::Auto, 0.9).expect("fit");
        assert_eq!(small.method, CalibrationMethod::Platt);
        let platt = Calibration::fit(&data, CalibrationMethod::Platt, 0.9).expect("fitted");
        for r in [0.2f32, 0.5, 0.8, 0.95] {
            assert!(
                (platt.apply(r) - truth(r)).abs() < 0.04,
                "{r}: {}",
                platt.apply(r)
            );
        }
        // Monotone, in range, total.
        let mut last = 0.0;
        for i in 0..=100 {
            let c = platt.apply(i as f32 / 100.0);
            assert!((0.0..=1.0).contains(&c) && c >= last - 1e-6);
            last = c;
        }
        assert_eq!(platt.apply(f32::NAN), 0.0);
    }

    #[test]
    fn recorded_thresholds_need_confidence_not_luck() {
        // 10 of 10 right is not evidence of 90 %; 190 of 200 is.
        assert!(wilson_lower(1.0, 10.0, THRESHOLD_Z) < 0.9);
        assert!(wilson_lower(0.95, 200.0, THRESHOLD_Z) > 0.9);
        assert!((wilson_lower(0.5, 1e9, THRESHOLD_Z) - 0.5).abs() < 1e-3);
        assert_eq!(wilson_lower(1.0, 0.0, THRESHOLD_Z), 0.0);
        let p = |threshold: f32, precision: f32, count: u32| OperatingPoint {
            threshold,
            precision,
            coverage: count as f32 / 1000.0,
            count,
        };
        let curve = [p(0.99, 1.0, 10), p(0.95, 0.95, 200), p(0.9, 0.905, 400)];
        assert_eq!(
            confident_at_precision(&curve, 0.9).map(|x| x.threshold),
            Some(0.95)
        );
        assert_eq!(
            best_at_precision(&curve, 0.9, 20).map(|x| x.threshold),
            Some(0.9)
        );
    }

    #[test]
    fn curve_and_reliability_count_what_they_say() {
        let pairs = [(0.9f32, true), (0.9, false), (0.8, true), (0.5, false)];
        let curve = operating_curve(&pairs);
        assert_eq!(curve.len(), 3, "ties share a point");
        assert_eq!((curve[0].count, curve[0].precision), (2, 0.5));
        assert_eq!((curve[1].count, curve[1].coverage), (3, 0.75));
        assert_eq!(best_at_precision(&curve, 0.6, 1).map(|p| p.count), Some(3));
        assert_eq!(best_at_precision(&curve, 0.7, 1), None);
        let r = reliability(&pairs, 10);
        assert_eq!(r.bins.len(), 10);
        assert_eq!(r.bins[9].count, 2);
        // Bins: 0.5 → |0 − 0.5|·¼, 0.8 → |1 − 0.8|·¼, 0.9 → |0.5 − 0.9|·½.
        assert!((r.ece - (0.125 + 0.05 + 0.2)).abs() < 1e-6, "{}", r.ece);
        assert!(Calibration::fit(&[], CalibrationMethod::Isotonic, 0.9).is_none());
        assert!(Calibration::fit(&pairs, CalibrationMethod::None, 0.9).is_none());
    }
}
