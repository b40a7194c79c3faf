//! Training: vocabulary, tf-idf rows, out-of-fold calibration, the final fit.
//!
//! Out-of-fold margins from `calibration_folds`-fold cross-validation on the training data
//! give (1) per-class offsets added to the biases, chosen to maximise macro-F1 (they undo
//! the pull of big classes), (2) the softmax temperature, (3) with two views and no fixed mix,
//! the view mix, (4) with complement NB, its weight, and (5) the confidence map and the
//! operating curve ([`Calibration`]). The same out-of-fold predictions are returned in
//! [`TrainingOutcome`] for reports (`bootstrap`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::calibration::{
    Calibration, argmax_with, fit_offsets, fit_temperature, macro_f1_of, softmax,
};
use super::options::{Progress, Stage, TrainOptions};
use super::solver::{fit_cnb, fit_ovr, margins};
use super::{
    Example, FORMAT_VERSION, FeaturizedSet, Model, ModelHeader, PreHashed, Row, block_weights,
    stable_hash, tf_idf,
};
use crate::error::{Error, Result};

/// Fewest training examples for out-of-fold calibration (five folds of at least eight).
pub const MIN_CALIBRATION_EXAMPLES: usize = 40;

/// One out-of-fold prediction: a training example scored by a model fitted without its fold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OofPrediction {
    /// Index of the example in the training data.
    pub example: usize,
    /// Index of its true label in [`OutOfFold::labels`].
    pub truth: usize,
    /// Index of the predicted label.
    pub predicted: usize,
    /// Softmax probability of the predicted label (before the confidence map).
    pub raw_confidence: f32,
    /// The same after the confidence map (equal to `raw_confidence` without calibration).
    pub confidence: f32,
}

/// The out-of-fold predictions made while calibrating: held-out evidence about the model
/// without a separate test set.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfFold {
    /// Labels, in class order.
    pub labels: Vec<String>,
    /// One prediction per training example, in fold order.
    pub predictions: Vec<OofPrediction>,
}

/// A trained model and, when it was calibrated, its out-of-fold predictions.
#[derive(Debug, Clone)]
pub struct TrainingOutcome {
    /// The model (fitted on every example).
    pub model: Model,
    /// `None` when calibration was off or there were fewer than
    /// [`MIN_CALIBRATION_EXAMPLES`] examples.
    pub out_of_fold: Option<OutOfFold>,
}

/// Sequence of tf-idf block vectors for a document's sorted counts.
fn vectorize(
    counts: &[Vec<(u32, f32)>; 2],
    lookup: impl Fn(u32) -> Option<u32>,
    idf: &[f32],
    block_weights: [f32; 2],
) -> Row {
    let mut row: Row = Vec::with_capacity(counts[0].len() + counts[1].len());
    for (b, block) in counts.iter().enumerate() {
        let start = row.len();
        row.extend(block.iter().filter_map(|&(h, c)| lookup(h).map(|j| (j, c))));
        tf_idf(&mut row[start..], idf, block_weights[b]);
    }
    row
}

/// Sorted distinct label names and each example's class index.
fn class_labels(set: &FeaturizedSet) -> Result<(Vec<String>, Vec<usize>)> {
    let mut names: Vec<String> = set.labels.clone();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        return Err(Error::Training(format!(
            "need at least two distinct labels, found {}",
            names.len()
        )));
    }
    let idx: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let labels = set
        .labels
        .iter()
        .map(|l| idx.get(l.as_str()).copied().unwrap_or(0))
        .collect();
    Ok((names, labels))
}

/// Vocabulary: document frequency per hash, pruned by `min_df` and `max_features`; returns
/// (sorted hashes, their document frequencies).
fn vocabulary(set: &FeaturizedSet, options: &TrainOptions) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut df: HashMap<u32, u32, PreHashed> = HashMap::with_hasher(PreHashed);
    for doc in &set.counts {
        for block in doc {
            for &(h, _) in block {
                *df.entry(h).or_insert(0) += 1;
            }
        }
    }
    let mut vocab: Vec<(u32, u32)> = df
        .into_iter()
        .filter(|&(_, d)| d >= options.min_df.max(1))
        .collect();
    if vocab.len() > options.max_features.max(1) {
        vocab.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        vocab.truncate(options.max_features.max(1));
    }
    vocab.sort_unstable_by_key(|&(h, _)| h);
    if vocab.is_empty() {
        return Err(Error::Training(
            "no feature occurs in min_df training documents; lower min_df or add data".into(),
        ));
    }
    Ok(vocab.into_iter().unzip())
}

fn header(set: &FeaturizedSet, options: &TrainOptions, labels: Vec<String>) -> ModelHeader {
    ModelHeader {
        format_version: FORMAT_VERSION,
        model_version: options.model_version.clone(),
        label_scheme: options.label_scheme.clone(),
        labels,
        training_digest: set.digest.clone(),
        training_examples: set.len() as u64,
        created_at: options.created_at.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        }),
        trainer: format!("redress-classifier {}", env!("CARGO_PKG_VERSION")),
        options: options.clone(),
    }
}

/// The fitting problem: tf-idf rows, class indices, and where each row's word block ends.
struct Problem<'a> {
    options: &'a TrainOptions,
    labels: Vec<usize>,
    k: usize,
    dim: usize,
    rows: Vec<Row>,
    word_lens: Vec<usize>,
    /// Word-only and character-only views (`separate_views`, when rows have both blocks).
    two_views: bool,
}

impl<'a> Problem<'a> {
    /// The tf-idf rows of the set under `model`'s vocabulary, and where each word block ends.
    fn new(
        set: &FeaturizedSet,
        model: &Model,
        options: &'a TrainOptions,
        labels: Vec<usize>,
        k: usize,
    ) -> Problem<'a> {
        let bw = block_weights(&options.features);
        let rows: Vec<Row> = set
            .counts
            .iter()
            .map(|c| vectorize(c, |h| model.index.get(&h).copied(), &model.idf, bw))
            .collect();
        let word_lens: Vec<usize> = set
            .counts
            .iter()
            .zip(&rows)
            .map(|(c, r)| {
                let known = c[0].iter().filter(|(h, _)| model.index.contains_key(h));
                known.count().min(r.len())
            })
            .collect();
        let two_views = options.separate_views
            && rows
                .iter()
                .zip(&word_lens)
                .any(|(r, &w)| w > 0 && w < r.len());
        Problem {
            options,
            labels,
            k,
            dim: model.hashes.len(),
            rows,
            word_lens,
            two_views,
        }
    }

    /// One view over both blocks, or the word view and the character view.
    fn views(&self) -> Vec<Vec<&[(u32, f32)]>> {
        let rows = &self.rows;
        if self.two_views {
            vec![
                rows.iter()
                    .zip(&self.word_lens)
                    .map(|(r, &w)| &r[..w])
                    .collect(),
                rows.iter()
                    .zip(&self.word_lens)
                    .map(|(r, &w)| &r[w..])
                    .collect(),
            ]
        } else {
            vec![rows.iter().map(|r| r.as_slice()).collect()]
        }
    }

    fn use_cnb(&self) -> bool {
        self.options.cnb_mix.is_finite() && self.options.cnb_mix != 0.0
    }

    fn fixed_mix(&self) -> Option<f32> {
        let m = self.options.view_mix;
        (m.is_finite() && m > 0.0 && m < 1.0).then_some(m)
    }
}

/// Out-of-fold margins per view (and of the complement NB model), in fold order.
struct OofMargins {
    views: Vec<Vec<(Vec<f32>, usize)>>,
    cnb: Vec<Vec<f32>>,
    /// The example behind each entry.
    order: Vec<usize>,
}

fn out_of_fold_margins(p: &Problem<'_>, progress: &mut dyn FnMut(Progress)) -> OofMargins {
    let (n, k, options) = (p.rows.len(), p.k, p.options);
    let folds = options.calibration_folds.clamp(2, 10);
    let ones = vec![1.0f32; k];
    let fold_of: Vec<usize> = (0..n)
        .map(|i| (stable_hash(&i.to_string(), options.seed ^ 0xCA1B) % folds as u64) as usize)
        .collect();
    let views = p.views();
    let mut out = OofMargins {
        views: vec![Vec::with_capacity(n); views.len()],
        cnb: Vec::new(),
        order: Vec::with_capacity(n),
    };
    for f in 0..folds {
        let held: Vec<usize> = (0..n).filter(|&i| fold_of[i] == f).collect();
        let fit: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
        let fit_labels: Vec<usize> = fit.iter().map(|&i| p.labels[i]).collect();
        for (view, scored) in views.iter().zip(out.views.iter_mut()) {
            let fit_rows: Vec<&[(u32, f32)]> = fit.iter().map(|&i| view[i]).collect();
            let mut quiet = |_: Progress| {};
            let (w, b) = fit_ovr(
                &fit_rows,
                &fit_labels,
                k,
                p.dim,
                options,
                Stage::Calibrating,
                &mut quiet,
            );
            for &i in &held {
                scored.push((margins(view[i], &w, &ones, &b), p.labels[i]));
            }
        }
        if p.use_cnb() {
            let fit_rows: Vec<&[(u32, f32)]> = fit.iter().map(|&i| p.rows[i].as_slice()).collect();
            let (w, b) = fit_cnb(&fit_rows, &fit_labels, k, p.dim, options.cnb_alpha);
            for &i in &held {
                out.cnb.push(margins(&p.rows[i], &w, &ones, &b));
            }
        }
        out.order.extend(&held);
        progress(Progress {
            stage: Stage::Calibrating,
            done: f as u64 + 1,
            total: folds as u64,
        });
    }
    out
}

/// Everything calibration chose.
struct Tuned {
    offsets: Vec<f32>,
    temperature: f32,
    mix: f32,
    cnb_lambda: f32,
    cnb_scale: f32,
    calibration: Option<Calibration>,
    out_of_fold: Option<OutOfFold>,
}

/// The margins of the two views mixed (`mix · word + (1 − mix) · char`), or the one view's.
fn combine(views: &[Vec<(Vec<f32>, usize)>], mix: f32) -> Vec<(Vec<f32>, usize)> {
    match views {
        [a, b] => a
            .iter()
            .zip(b)
            .map(|((ma, y), (mb, _))| {
                (
                    ma.iter()
                        .zip(mb)
                        .map(|(x, z)| mix * x + (1.0 - mix) * z)
                        .collect(),
                    *y,
                )
            })
            .collect(),
        _ => views.first().cloned().unwrap_or_default(),
    }
}

/// Macro-F1 of out-of-fold margins after (optionally) fitting class offsets on them.
fn f1_after_offsets(scored: &[(Vec<f32>, usize)], k: usize, tune_offsets: bool) -> f64 {
    let off = if tune_offsets {
        fit_offsets(scored, k)
    } else {
        vec![0.0; k]
    };
    macro_f1_of(scored, &off, k)
}

/// The view mix with the best out-of-fold macro-F1 (0.2 … 0.8).
fn choose_mix(p: &Problem<'_>, oof: &OofMargins) -> f32 {
    let mut best = (f64::NEG_INFINITY, 0.5f32);
    for step in 2..=8 {
        let m = step as f32 / 10.0;
        let f1 = f1_after_offsets(&combine(&oof.views, m), p.k, p.options.tune_offsets);
        if f1 > best.0 + 1e-9 {
            best = (f1, m);
        }
    }
    best.1
}

/// Root-mean-square deviation of each margin from its row's mean.
fn spread<'a>(ms: impl Iterator<Item = &'a Vec<f32>>) -> f64 {
    let (mut s2, mut cnt) = (0f64, 0f64);
    for m in ms {
        let mean = m.iter().sum::<f32>() / m.len().max(1) as f32;
        for x in m {
            let d = f64::from(x - mean);
            s2 += d * d;
            cnt += 1.0;
        }
    }
    (s2 / cnt.max(1.0)).sqrt()
}

/// Interpolate the complement NB margins into the SVM's: returns (scored, λ, scale).
fn mix_cnb(
    p: &Problem<'_>,
    scored: Vec<(Vec<f32>, usize)>,
    cnb: &[Vec<f32>],
) -> (Vec<(Vec<f32>, usize)>, f32, f32) {
    let s_svm = spread(scored.iter().map(|(m, _)| m));
    let s_cnb = spread(cnb.iter());
    let scale = if s_cnb > 0.0 {
        (s_svm / s_cnb) as f32
    } else {
        0.0
    };
    let with = |lambda: f32| -> Vec<(Vec<f32>, usize)> {
        scored
            .iter()
            .zip(cnb)
            .map(|((m, y), c)| {
                let mixed = m.iter().zip(c).map(|(a, b)| a + lambda * scale * b);
                (mixed.collect(), *y)
            })
            .collect()
    };
    let lambda = if p.options.cnb_mix > 0.0 {
        p.options.cnb_mix
    } else {
        let mut best = (f64::NEG_INFINITY, 0f32);
        for lambda in [0.0f32, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5] {
            let f1 = f1_after_offsets(&with(lambda), p.k, p.options.tune_offsets);
            if f1 > best.0 + 1e-9 {
                best = (f1, lambda);
            }
        }
        best.1
    };
    (with(lambda), lambda, scale)
}

/// Fit offsets, temperature, mix, CNB weight and the confidence map on out-of-fold margins.
fn tune(p: &Problem<'_>, labels: &[String], progress: &mut dyn FnMut(Progress)) -> Tuned {
    let mut tuned = Tuned {
        offsets: vec![0f32; p.k],
        temperature: 1.0,
        mix: p.fixed_mix().unwrap_or(0.5),
        cnb_lambda: 0.0,
        cnb_scale: 0.0,
        calibration: None,
        out_of_fold: None,
    };
    if !(p.options.calibrate && p.rows.len() >= MIN_CALIBRATION_EXAMPLES) {
        return tuned;
    }
    let oof = out_of_fold_margins(p, progress);
    if p.two_views && p.fixed_mix().is_none() {
        tuned.mix = choose_mix(p, &oof);
    }
    let mut scored = combine(&oof.views, tuned.mix);
    if p.use_cnb() && oof.cnb.len() == scored.len() {
        (scored, tuned.cnb_lambda, tuned.cnb_scale) = mix_cnb(p, scored, &oof.cnb);
    }
    if p.options.tune_offsets {
        tuned.offsets = fit_offsets(&scored, p.k);
        for (m, _) in &mut scored {
            for (x, o) in m.iter_mut().zip(&tuned.offsets) {
                *x += o;
            }
        }
    }
    tuned.temperature = fit_temperature(&scored);
    let mut predictions: Vec<OofPrediction> = scored
        .iter()
        .zip(&oof.order)
        .map(|((m, y), &example)| {
            let predicted = argmax_with(m, &vec![0.0; m.len()]);
            let raw = softmax(m, tuned.temperature)
                .get(predicted)
                .copied()
                .unwrap_or(0.0);
            OofPrediction {
                example,
                truth: *y,
                predicted,
                raw_confidence: raw,
                confidence: raw,
            }
        })
        .collect();
    let pairs: Vec<(f32, bool)> = predictions
        .iter()
        .map(|o| (o.raw_confidence, o.truth == o.predicted))
        .collect();
    tuned.calibration = Calibration::fit(&pairs, p.options.calibration, p.options.target_precision);
    if let Some(cal) = &tuned.calibration {
        for o in &mut predictions {
            o.confidence = cal.apply(o.raw_confidence);
        }
    }
    tuned.out_of_fold = Some(OutOfFold {
        labels: labels.to_vec(),
        predictions,
    });
    tuned
}

/// The final weights and biases on every example, with the chosen mix and CNB weight.
fn fit_final(
    p: &Problem<'_>,
    t: &Tuned,
    progress: &mut dyn FnMut(Progress),
) -> (Vec<f32>, Vec<f32>) {
    let (k, dim) = (p.k, p.dim);
    let mut w = vec![0f32; dim * k];
    let mut b = vec![0f32; k];
    let views = p.views();
    let nv = views.len();
    for (v, view) in views.iter().enumerate() {
        let share = match (nv, v) {
            (2, 0) => t.mix,
            (2, _) => 1.0 - t.mix,
            _ => 1.0,
        };
        let (wv, bv) = fit_ovr(view, &p.labels, k, dim, p.options, Stage::Fitting, progress);
        for (x, y) in w.iter_mut().zip(&wv) {
            *x += share * y;
        }
        for (x, y) in b.iter_mut().zip(&bv) {
            *x += share * y;
        }
    }
    let factor = t.cnb_lambda * t.cnb_scale;
    if p.use_cnb() && factor != 0.0 {
        let all_rows: Vec<&[(u32, f32)]> = p.rows.iter().map(|r| r.as_slice()).collect();
        let (wc, _) = fit_cnb(&all_rows, &p.labels, k, dim, p.options.cnb_alpha);
        for (x, y) in w.iter_mut().zip(&wc) {
            *x += factor * y;
        }
    }
    (w, b)
}

impl Model {
    /// Train a model. `progress` is called as work advances (for a progress bar).
    pub fn train(
        examples: &[Example],
        options: &TrainOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<Model> {
        let set = FeaturizedSet::new(examples, &options.features, &mut progress);
        Model::train_featurized(&set, options, &mut progress)
    }

    /// Train a model and keep its out-of-fold predictions (for a report without a test set).
    pub fn train_with_outcome(
        examples: &[Example],
        options: &TrainOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<TrainingOutcome> {
        let set = FeaturizedSet::new(examples, &options.features, &mut progress);
        Model::train_featurized_outcome(&set, options, &mut progress)
    }

    /// Train from pre-featurised examples (saves tokenising again when trying several options).
    pub fn train_featurized(
        set: &FeaturizedSet,
        options: &TrainOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Model> {
        Ok(Model::train_featurized_outcome(set, options, progress)?.model)
    }

    /// [`Model::train_featurized`], keeping the out-of-fold predictions.
    pub fn train_featurized_outcome(
        set: &FeaturizedSet,
        options: &TrainOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<TrainingOutcome> {
        if set.features != options.features {
            return Err(Error::Training(
                "the featurised set was built with another feature configuration".into(),
            ));
        }
        if set.is_empty() {
            return Err(Error::Training("no training examples".into()));
        }
        if !(options.c.is_finite() && options.c > 0.0) {
            return Err(Error::Training(format!(
                "C must be a positive number, got {}",
                options.c
            )));
        }
        let (names, labels) = class_labels(set)?;
        let k = names.len();
        let (hashes, dfs) = vocabulary(set, options)?;
        let mut model = Model::assemble(
            header(set, options, names.clone()),
            set.len() as u32,
            hashes,
            dfs,
            (Vec::new(), vec![1.0; k]),
            vec![0.0; k],
            1.0,
        );
        let problem = Problem::new(set, &model, options, labels, k);
        let tuned = tune(&problem, &names, progress);
        let (w, b) = fit_final(&problem, &tuned, progress);
        if problem.two_views {
            model.header.options.view_mix = tuned.mix;
        }
        if problem.use_cnb() {
            model.header.options.cnb_mix = tuned.cnb_lambda;
        }
        (model.weights, model.scales) = super::artifact::quantize(&w, k);
        model.bias = b.iter().zip(&tuned.offsets).map(|(b, o)| b + o).collect();
        model.temperature = tuned.temperature;
        model.calibration = tuned.calibration;
        progress(Progress {
            stage: Stage::Done,
            done: 1,
            total: 1,
        });
        Ok(TrainingOutcome {
            model,
            out_of_fold: tuned.out_of_fold,
        })
    }
}
