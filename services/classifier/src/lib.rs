//! # redress-classifier
//!
//! Judges what a complaint is about and how serious it is — a pure library (no I/O beyond
//! reading files you name, no async, no network) used by the classification service and the
//! `redress` CLI.
//!
//! The pipeline, one module per idea:
//!
//! ```text
//!  text ──▶ tokenize (normalise, detect language by script, jieba / Latin words)
//!        ├─▶ features + model   (hashed TF-IDF n-grams → linear SVM → calibrated softmax)
//!        ├─▶ rules              (keyword evidence per category / cause; `certain` rules win)
//!        └─▶ severity           (regulator, media/legal, vulnerable, amount, group, fraud, leak)
//!                 │
//!  taxonomy ──────┴─▶ classify  (JR/T 0169-2018 B/C codes + names, confidence, reasons,
//!                                needs_review)
//!  eval: labelled CSV → deterministic split → train → Report (accuracy, macro-F1, confusion)
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

pub mod classify;
pub mod error;
pub mod eval;
pub mod features;
pub mod model;
pub mod rules;
pub mod severity;
pub mod taxonomy;
pub mod tokenize;

pub use classify::{
    Classification, Classifier, ComplaintInput, DEFAULT_REVIEW_THRESHOLD, Decider, Label,
};
pub use error::{Error, Result};
pub use eval::{Report, evaluate, load_examples, split};
pub use model::{Example, Featurized, Model, Prediction, Progress, TrainOptions};
pub use rules::Reason;
pub use severity::{Amount, Severity, VulnerableFlags};
pub use taxonomy::Taxonomy;
pub use tokenize::Language;
