//! Accuracy floors on the shared data sets. Skips (with a message) only when the data
//! directory is missing: `REDRESS_DATA_DIR`, else `../shared/data` from the repository root.

use std::path::PathBuf;

use redress_classifier::eval::{self, DEFAULT_SPLIT_SEED};
use redress_classifier::{Model, TrainOptions};

fn data_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("REDRESS_DATA_DIR").map(PathBuf::from),
        // services/classifier → repo root → ../shared/data
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

fn check(file: &str, text: &str, label: &str, options: TrainOptions, floor: f64) {
    let Some(dir) = data_dir() else {
        println!(
            "SKIPPED: no data directory (set REDRESS_DATA_DIR or provide ../shared/data); {file} not evaluated"
        );
        return;
    };
    let examples = eval::load_examples(dir.join(file), text, label).expect("load examples");
    let (train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    let model = Model::train(&train, &options, |_| {}).expect("train");
    let report = eval::evaluate(&model, &test);
    println!(
        "{file}: accuracy {:.4} macro-F1 {:.4}",
        report.accuracy, report.macro_f1
    );
    assert!(
        report.macro_f1 >= floor,
        "{file}: macro-F1 {:.4} below floor {floor}",
        report.macro_f1
    );
}

#[test]
fn english_cfpb_product_group() {
    check(
        "cfpb_complaints.csv",
        "narrative",
        "product_group",
        TrainOptions::english(),
        0.80,
    );
}

#[test]
fn chinese_category() {
    check(
        "cn_complaints.csv",
        "text",
        "category",
        TrainOptions::chinese(),
        0.655,
    );
}

#[test]
fn english_cause_from_cfpb_issue() {
    let Some(dir) = data_dir() else {
        println!("SKIPPED: no data directory; cause model not evaluated");
        return;
    };
    let mut examples =
        eval::load_examples(dir.join("cfpb_complaints.csv"), "narrative", "issue").expect("load");
    let mut seen: std::collections::HashSet<String> =
        examples.iter().map(|e| e.text.clone()).collect();
    let payday =
        eval::load_examples(dir.join("cfpb_payday_loans.csv"), "narrative", "issue").expect("load");
    examples.extend(payday.into_iter().filter(|e| seen.insert(e.text.clone())));
    let taxonomy = redress_classifier::Taxonomy::embedded().expect("taxonomy");
    let examples = eval::map_labels(
        &examples,
        &taxonomy,
        "cfpb_issue",
        redress_classifier::taxonomy::Dimension::Cause,
    );
    let (train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    let model = Model::train(&train, &TrainOptions::english_cause(), |_| {}).expect("train");
    let report = eval::evaluate(&model, &test);
    println!(
        "cause: accuracy {:.4} macro-F1 {:.4}",
        report.accuracy, report.macro_f1
    );
    assert!(
        report.accuracy >= 0.57,
        "cause accuracy {:.4}",
        report.accuracy
    );
    assert!(
        report.macro_f1 >= 0.38,
        "cause macro-F1 {:.4}",
        report.macro_f1
    );
}
