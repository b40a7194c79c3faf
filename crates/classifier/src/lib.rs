//! # redress-classifier
//!
//! Judges what a complaint is about and how serious it is — a pure library (no I/O beyond
//! reading files you name, no async, no network) used by the classification service and the
//! `redress` CLI.
//!
//! The pipeline, one module per idea:
//!
//! ```text
//!  product field ──▶ catalogue   (platform products + synonyms → category, department)
//!  text ──▶ tokenize (normalise, detect language by script, jieba / Latin words)
//!        ├─▶ features + model   (hashed TF-IDF n-grams → linear SVM → softmax → calibrated
//!        │                       probability; the artifact records the threshold of a target
//!        │                       precision)
//!        ├─▶ rules              (keyword evidence per category / cause; `certain` rules win)
//!        ├─▶ lexicon            (Chinese causes from domain knowledge, tiers, citations)
//!        │     └─ negation      (没有/并未/不是… and quotation marks scope a phrase out)
//!        └─▶ severity           (regulator, media/legal, vulnerable, amount, group, fraud, leak)
//!                 │
//!  taxonomy ──────┴─▶ classify  (structure decides the category, text the cause; JR/T 0169
//!                                B/C codes, confidence, reasons, per-label thresholds,
//!                                needs_review)
//!  eval:      labelled CSV → deterministic split → Report (accuracy, macro-F1, confusion,
//!             reliability, auto-routing at a target precision)
//!  bootstrap: a model from the deployment's history, reported on out-of-fold predictions
//!  shadow:    candidate vs current on specialists' overrides → promote or keep; rollback
//! ```
//!
//! ```
//! use redress_classifier::{Classifier, ComplaintInput, DEFAULT_REVIEW_THRESHOLD};
//! let classifier = Classifier::embedded()?; // taxonomy, rules, severity, English CFPB model
//! let c = classifier.classify(
//!     &ComplaintInput {
//!         text: "A debt collector keeps calling my job about a debt that is not mine.".into(),
//!         channel: "web".into(),
//!         ..ComplaintInput::default()
//!     },
//!     DEFAULT_REVIEW_THRESHOLD,
//! );
//! assert_eq!(c.category.code, "B09"); // 债务催收 / Debt collection
//! # Ok::<(), redress_classifier::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootstrap;
pub mod catalogue;
pub mod classify;
pub mod error;
pub mod eval;
pub mod features;
pub mod lexicon;
pub mod model;
pub mod negation;
pub mod rules;
pub mod severity;
pub mod shadow;
pub mod taxonomy;
pub mod tokenize;

pub use catalogue::Catalogue;
pub use classify::{
    Classification, Classifier, ComplaintInput, DEFAULT_REVIEW_THRESHOLD, Decider, Label, Review,
};
pub use error::{Error, Result};
pub use eval::{Report, evaluate, load_examples, split};
pub use lexicon::Lexicon;
pub use model::{
    Calibration, CalibrationMethod, DEFAULT_TARGET_PRECISION, Example, Featurized, Model,
    Prediction, Progress, TrainOptions,
};
pub use negation::Negation;
pub use rules::Reason;
pub use severity::{Amount, Severity, VulnerableFlags};
pub use shadow::{Comparison, Deployment, ShadowOptions, ShadowScore, Verdict, compare, decide};
pub use taxonomy::Taxonomy;
pub use tokenize::Language;
