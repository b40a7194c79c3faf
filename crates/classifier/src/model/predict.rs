//! Prediction: featurise once, look the features up, margins, softmax, calibrated confidence,
//! and an explanation naming the features that pushed most.

use std::cell::RefCell;

use super::calibration::softmax;
use super::solver::margins;
use super::{Contribution, Featurized, Model, Prediction, Row, block_weights, tf_idf};
use crate::features::{self, Block};
use crate::tokenize;

impl Model {
    /// Normalise and count a text's features once. The result serves this model and every
    /// other model whose feature configuration it covers (see [`Model::predict_featurized`]).
    pub fn featurize(&self, text: &str) -> Featurized {
        let normalized = tokenize::normalize(text);
        let hashes = features::hashes(&normalized, &self.header.options.features);
        Featurized {
            normalized,
            config: self.header.options.features.clone(),
            hashes,
        }
    }

    /// The document's feature row and, for each of its leading word features, the position of
    /// its first occurrence in the word block (to name it). Repeats are counted in a dense per-thread table indexed by feature (no sort, no second
    /// hash map): prediction spends most of its time here.
    fn row(&self, blocks: &[Vec<(u32, u32)>; 2]) -> (Row, Vec<u32>) {
        thread_local! {
            /// Per feature index: 1 + its position in the row being built; all zero between
            /// calls.
            static SLOTS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        let weights = block_weights(&self.header.options.features);
        SLOTS.with_borrow_mut(|slots| {
            if slots.len() < self.hashes.len() {
                slots.resize(self.hashes.len(), 0);
            }
            let mut row: Row = Vec::with_capacity(blocks[0].len() + blocks[1].len());
            let mut origins = Vec::new();
            for (b, block) in blocks.iter().enumerate() {
                let start = row.len();
                for (at, &(h, n)) in block.iter().enumerate() {
                    let Some(&j) = self.index.get(&h) else {
                        continue;
                    };
                    let Some(slot) = slots.get_mut(j as usize) else {
                        continue;
                    };
                    match (*slot as usize)
                        .checked_sub(1)
                        .and_then(|at| row.get_mut(at))
                    {
                        Some(entry) => entry.1 += n as f32,
                        None => {
                            row.push((j, n as f32));
                            *slot = row.len() as u32;
                            if b == Block::Word as usize {
                                origins.push(at as u32);
                            }
                        }
                    }
                }
                tf_idf(&mut row[start..], &self.idf, weights[b]);
            }
            for &(j, _) in &row {
                if let Some(slot) = slots.get_mut(j as usize) {
                    *slot = 0;
                }
            }
            (row, origins)
        })
    }

    /// Classify a text, explaining the decision with up to 5 features.
    pub fn predict(&self, text: &str) -> Prediction {
        self.predict_explained(text, 5)
    }

    /// Classify a text, explaining the decision with up to `explain` features (0 = none, fastest).
    pub fn predict_explained(&self, text: &str, explain: usize) -> Prediction {
        self.predict_featurized(&self.featurize(text), explain)
    }

    /// Classify a text featurised by this or another model ([`Model::featurize`]): two models
    /// over the same text (category and cause) then tokenise and hash it once. Falls back to
    /// featurising again when `featurized` was built for features this model does not use.
    pub fn predict_featurized(&self, featurized: &Featurized, explain: usize) -> Prediction {
        let own;
        let featurized = if featurized.config.covers(&self.header.options.features) {
            featurized
        } else {
            own = self.featurize(&featurized.normalized);
            &own
        };
        let (row, origins) = self.row(&featurized.hashes.blocks);
        let m = margins(&row, &self.weights, &self.scales, &self.bias);
        let p = softmax(&m, self.temperature);
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let best = order.first().copied().unwrap_or(0);
        let top_features = if explain > 0 {
            self.explain(featurized, &row, &origins, best, explain)
        } else {
            Vec::new()
        };
        let raw_confidence = p.get(best).copied().unwrap_or(0.0);
        Prediction {
            label: self.header.labels.get(best).cloned().unwrap_or_default(),
            confidence: self
                .calibration
                .as_ref()
                .map_or(raw_confidence, |c| c.apply(raw_confidence)),
            raw_confidence,
            scores: order
                .iter()
                .map(|&i| (self.header.labels.get(i).cloned().unwrap_or_default(), p[i]))
                .collect(),
            top_features,
        }
    }

    /// The `explain` features that pushed most towards class `best`. Word features are
    /// preferred (readable, and named from the spans kept while featurising); every feature
    /// is searched only when no word feature helped.
    fn explain(
        &self,
        featurized: &Featurized,
        row: &[(u32, f32)],
        origins: &[u32],
        best: usize,
        explain: usize,
    ) -> Vec<Contribution> {
        let k = self.bias.len();
        let scale = self.scales.get(best).copied().unwrap_or(0.0);
        let weight = |j: u32| {
            let q = self
                .weights
                .get(j as usize * k + best)
                .copied()
                .unwrap_or(0);
            f32::from(q) * scale
        };
        let pushes = |r: &[(u32, f32)]| -> Vec<(usize, f32)> {
            r.iter()
                .enumerate()
                .map(|(e, &(j, v))| (e, v * weight(j)))
                .filter(|&(_, c)| c > 0.0)
                .collect()
        };
        let mut contrib = pushes(&row[..origins.len()]);
        let words_only = !contrib.is_empty();
        if !words_only {
            contrib = pushes(row);
        }
        // Only the largest `explain` are named: select them, then order those few.
        let larger = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if contrib.len() > explain {
            contrib.select_nth_unstable_by(explain, larger);
            contrib.truncate(explain);
        }
        contrib.sort_by(larger);
        let hashes = &featurized.hashes;
        let mut names: Vec<Option<String>> = if words_only {
            let words = hashes.words();
            contrib
                .iter()
                .map(|&(e, _)| {
                    let origin = origins.get(e).copied().unwrap_or(u32::MAX) as usize;
                    hashes.word_spans.get(origin).map(|s| s.render(&words))
                })
                .collect()
        } else {
            vec![None; contrib.len()]
        };
        if !words_only {
            // Rare: name character features by extracting again.
            let wanted: Vec<Option<u32>> = contrib
                .iter()
                .map(|&(e, _)| {
                    row.get(e)
                        .and_then(|&(j, _)| self.hashes.get(j as usize).copied())
                })
                .collect();
            let cfg = &self.header.options.features;
            features::extract(&featurized.normalized, cfg, &mut |_, h, _, render| {
                if let Some(i) = wanted.iter().position(|&w| w == Some(h))
                    && names[i].is_none()
                {
                    names[i] = Some(render());
                }
            });
        }
        names
            .into_iter()
            .zip(&contrib)
            .filter_map(|(name, &(_, weight))| name.map(|feature| Contribution { feature, weight }))
            .collect()
    }
}
