//! The linear solvers: one-vs-rest squared-hinge (or hinge) SVM by dual coordinate descent,
//! NBSVM scaling, and complement naive Bayes. Pure functions over sparse rows.

use super::options::{Progress, Stage, TrainOptions};

/// Small deterministic generator (SplitMix64) for shuffling.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `init + Σ w[j]·v·s[j]` over a sparse row (`s` = the NB scaling, when there is one).
fn dot(row: &[(u32, f32)], w: &[f32], scale: Option<&[f32]>, init: f32) -> f32 {
    let mut dot = init;
    match scale {
        Some(s) => {
            for &(j, v) in row {
                dot += w[j as usize] * v * s[j as usize];
            }
        }
        None => {
            for &(j, v) in row {
                dot += w[j as usize] * v;
            }
        }
    }
    dot
}

/// `w += d · row` (scaled by `s` when there is an NB scaling).
fn add_row(w: &mut [f32], row: &[(u32, f32)], scale: Option<&[f32]>, d: f32) {
    match scale {
        Some(s) => {
            for &(j, v) in row {
                w[j as usize] += d * v * s[j as usize];
            }
        }
        None => {
            for &(j, v) in row {
                w[j as usize] += d * v;
            }
        }
    }
}

/// One binary problem: rows, their squared norms (after scaling), labels ±1 and per-sample C.
#[derive(Clone, Copy)]
pub(crate) struct Binary<'a> {
    pub(crate) rows: &'a [&'a [(u32, f32)]],
    pub(crate) sq_norms: &'a [f32],
    pub(crate) scale: Option<&'a [f32]>,
    pub(crate) dim: usize,
    pub(crate) y: &'a [f32],
    pub(crate) cost: &'a [f32],
}

/// Train one binary squared-hinge SVM by dual coordinate descent (Hsieh et al. 2008).
/// Returns (weights, bias).
pub(crate) fn train_binary(
    p: &Binary<'_>,
    opts: &TrainOptions,
    rng: &mut SplitMix,
) -> (Vec<f32>, f32) {
    let n = p.rows.len();
    let mut w = vec![0f32; p.dim];
    let mut b = 0f32;
    let mut alpha = vec![0f32; n];
    // Squared hinge (L2 loss): no upper bound, diagonal 1/(2C). Hinge (L1 loss): bound C.
    let l1 = opts.hinge_loss;
    let diag: Vec<f32> = if l1 {
        vec![0.0; n]
    } else {
        p.cost.iter().map(|c| 0.5 / c.max(1e-12)).collect()
    };
    let upper: Vec<f32> = if l1 {
        p.cost.iter().map(|c| c.max(1e-12)).collect()
    } else {
        vec![f32::INFINITY; n]
    };
    let qd: Vec<f32> = (0..n).map(|i| p.sq_norms[i] + 1.0 + diag[i]).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for _epoch in 0..opts.max_epochs.max(1) {
        for i in (1..n).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        let mut max_pg = f32::NEG_INFINITY;
        let mut min_pg = f32::INFINITY;
        for &i in &order {
            let row = p.rows[i];
            let g = p.y[i] * dot(row, &w, p.scale, b) - 1.0 + alpha[i] * diag[i];
            let pg = if alpha[i] == 0.0 {
                g.min(0.0)
            } else if alpha[i] >= upper[i] {
                g.max(0.0)
            } else {
                g
            };
            max_pg = max_pg.max(pg);
            min_pg = min_pg.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).clamp(0.0, upper[i]);
                let d = (alpha[i] - old) * p.y[i];
                if d != 0.0 {
                    add_row(&mut w, row, p.scale, d);
                    b += d;
                }
            }
        }
        if max_pg - min_pg < opts.tolerance {
            break;
        }
    }
    (w, b)
}

/// Per-sample cost: `C × (n / (k · n_class))^power`.
fn sample_costs(labels: &[usize], k: usize, opts: &TrainOptions) -> Vec<f32> {
    let n = labels.len();
    let mut class_n = vec![0usize; k];
    for &l in labels {
        class_n[l] += 1;
    }
    let power = if opts.class_weight_power.is_finite() {
        opts.class_weight_power
    } else {
        0.0
    };
    let class_w: Vec<f32> = class_n
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                ((n as f32) / (k as f32 * c as f32)).powf(power)
            }
        })
        .collect();
    labels
        .iter()
        .map(|&l| opts.c.max(1e-6) * class_w[l])
        .collect()
}

/// Binarised document frequency of every feature per class (for NB log-count ratios).
fn class_df(rows: &[&[(u32, f32)]], labels: &[usize], k: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut df = vec![vec![0f32; dim]; k];
    for (row, &l) in rows.iter().zip(labels) {
        for &(j, v) in row.iter() {
            if v != 0.0 {
                df[l][j as usize] += 1.0;
            }
        }
    }
    df
}

/// Class `c`'s weights and bias against the rest (`plain` has no scaling), NB-scaled when
/// `ratio` is given: the ratio scales the features while fitting and is folded into the
/// returned weights.
fn fit_class(
    plain: &Binary<'_>,
    ratio: Option<&[f32]>,
    opts: &TrainOptions,
    rng: &mut SplitMix,
) -> (Vec<f32>, f32) {
    let Some(r) = ratio else {
        return train_binary(plain, opts, rng);
    };
    let sq: Vec<f32> = plain
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|&(j, v)| {
                    let x = v * r[j as usize];
                    x * x
                })
                .sum()
        })
        .collect();
    let scaled = Binary {
        sq_norms: &sq,
        scale: Some(r),
        ..*plain
    };
    let (mut w, b) = train_binary(&scaled, opts, rng);
    let beta = if opts.nb_beta.is_finite() {
        opts.nb_beta.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let mean_abs = w.iter().map(|x| x.abs()).sum::<f32>() / plain.dim.max(1) as f32;
    for (wf, rf) in w.iter_mut().zip(r) {
        *wf = ((1.0 - beta) * mean_abs + beta * *wf) * rf;
    }
    (w, b)
}

/// Fit OvR weights; returns feature-major weights and biases.
pub(crate) fn fit_ovr(
    rows: &[&[(u32, f32)]],
    labels: &[usize],
    k: usize,
    dim: usize,
    opts: &TrainOptions,
    stage: Stage,
    progress: &mut dyn FnMut(Progress),
) -> (Vec<f32>, Vec<f32>) {
    let cost = sample_costs(labels, k, opts);
    let sq_norms: Vec<f32> = rows
        .iter()
        .map(|r| r.iter().map(|e| e.1 * e.1).sum())
        .collect();
    let nb = opts.nb_alpha.is_finite() && opts.nb_alpha > 0.0;
    let df = if nb {
        class_df(rows, labels, k, dim)
    } else {
        Vec::new()
    };
    let mut weights = vec![0f32; dim * k];
    let mut bias = vec![0f32; k];
    progress(Progress {
        stage,
        done: 0,
        total: k as u64,
    });
    for c in 0..k {
        let y: Vec<f32> = labels
            .iter()
            .map(|&l| if l == c { 1.0 } else { -1.0 })
            .collect();
        let mut rng = SplitMix(opts.seed ^ (c as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let ratio = nb.then(|| nb_ratio(&df, c, opts.nb_alpha, opts.nb_clip));
        let plain = Binary {
            rows,
            sq_norms: &sq_norms,
            scale: None,
            dim,
            y: &y,
            cost: &cost,
        };
        let (w, b) = fit_class(&plain, ratio.as_deref(), opts, &mut rng);
        for (f, wf) in w.iter().enumerate() {
            weights[f * k + c] = *wf;
        }
        bias[c] = b;
        progress(Progress {
            stage,
            done: c as u64 + 1,
            total: k as u64,
        });
    }
    (weights, bias)
}

/// Complement naive Bayes over tf-idf rows: `w[f·k + c] = −ln θ̃_cf`, centred over classes
/// (the centring does not change the argmax), with zero biases (priors are left to the
/// calibration offsets).
pub(crate) fn fit_cnb(
    rows: &[&[(u32, f32)]],
    labels: &[usize],
    k: usize,
    dim: usize,
    alpha: f32,
) -> (Vec<f32>, Vec<f32>) {
    let alpha = if alpha.is_finite() && alpha > 0.0 {
        alpha
    } else {
        0.1
    };
    let mut sums = vec![0f64; dim * k];
    for (row, &l) in rows.iter().zip(labels) {
        for &(j, v) in row.iter() {
            if let Some(s) = sums.get_mut(j as usize * k + l) {
                *s += f64::from(v);
            }
        }
    }
    let mut class_total = vec![0f64; k];
    for (i, s) in sums.iter().enumerate() {
        class_total[i % k] += s;
    }
    let all: f64 = class_total.iter().sum();
    let a = f64::from(alpha);
    let mut w = vec![0f32; dim * k];
    let mut out = vec![0f64; k];
    for f in 0..dim {
        let fs = &sums[f * k..f * k + k];
        let ft: f64 = fs.iter().sum();
        let mut mean = 0f64;
        for c in 0..k {
            let comp = ft - fs[c];
            let comp_total = all - class_total[c];
            let theta = (a + comp) / (a * dim as f64 + comp_total);
            out[c] = -theta.ln();
            mean += out[c];
        }
        mean /= k as f64;
        for c in 0..k {
            w[f * k + c] = (out[c] - mean) as f32;
        }
    }
    (w, vec![0.0; k])
}

/// Naive-Bayes log-count ratio of every feature for class `c` against the rest, from
/// per-class binarised document frequencies, smoothed by `alpha`, optionally clipped.
fn nb_ratio(class_df: &[Vec<f32>], c: usize, alpha: f32, clip: f32) -> Vec<f32> {
    let dim = class_df.first().map_or(0, Vec::len);
    let mut p = vec![alpha; dim];
    let mut q = vec![alpha; dim];
    for (l, df) in class_df.iter().enumerate() {
        let target = if l == c { &mut p } else { &mut q };
        for (t, d) in target.iter_mut().zip(df) {
            *t += d;
        }
    }
    let ps: f32 = p.iter().sum();
    let qs: f32 = q.iter().sum();
    let clip = if clip.is_finite() && clip > 0.0 {
        clip
    } else {
        f32::INFINITY
    };
    p.iter()
        .zip(&q)
        .map(|(a, b)| ((a / ps) / (b / qs)).ln().clamp(-clip, clip))
        .collect()
}

/// Per-class margins of a row: `bias + scale × (row · weights)`, for the quantised weights of
/// a model or (with unit scales) the float weights of training.
pub(crate) fn margins<W: Copy + Into<f32>>(
    row: &[(u32, f32)],
    weights: &[W],
    scales: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let k = bias.len();
    let mut s = vec![0.0f32; k];
    for &(j, v) in row {
        let base = j as usize * k;
        if let Some(ws) = weights.get(base..base + k) {
            for (sc, &w) in s.iter_mut().zip(ws) {
                *sc += v * w.into();
            }
        }
    }
    for ((m, scale), b) in s.iter_mut().zip(scales).zip(bias) {
        *m = *m * scale + b;
    }
    s
}
