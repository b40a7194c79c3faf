#![allow(clippy::expect_used, clippy::unwrap_used)] // a test: a failed expectation is a failed test
//! Floors on the shared data sets: accuracy, calibration and auto-routing at a 0.9 target
//! precision. The data directory is `REDRESS_DATA_DIR`, else `../shared/data` from the
//! repository root. Without it a test cannot run: it says so on stderr (`SKIPPED: …`) and
//! passes — except under `CI=true`, where the data is provided, so its absence fails.

use std::io::Write;
use std::path::PathBuf;

use redress_classifier::eval::{self, DEFAULT_SPLIT_SEED, Report};
use redress_classifier::taxonomy::Dimension;
use redress_classifier::{Classifier, ComplaintInput, Model, TrainOptions};

/// The data directory, or `None` after saying why the calling test cannot run.
fn data_dir(test: &str) -> Option<PathBuf> {
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let (dir, from) = match std::env::var_os("REDRESS_DATA_DIR") {
        Some(d) => (PathBuf::from(d), "REDRESS_DATA_DIR"),
        None => (default, "the default ../shared/data"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!(
        "no data directory at {} ({from}); set REDRESS_DATA_DIR to the shared data",
        dir.display()
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} cannot run under CI=true, where the data must be present: {why}"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of a passing
    // test, and a skip must be seen.
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    None
}

/// Train on the deterministic 80 %, report on the 20 % at a 0.9 target precision.
fn held_out(
    dir: &std::path::Path,
    file: &str,
    text: &str,
    label: &str,
    options: TrainOptions,
) -> Report {
    let examples = eval::load_examples(dir.join(file), text, label).expect("load examples");
    let (train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    let model = Model::train(&train, &options, |_| {}).expect("train");
    let report = eval::evaluate_at(&model, &test, 0.9);
    let routing = report.routing.as_ref().expect("routing");
    println!(
        "{file}: accuracy {:.4} macro-F1 {:.4} ECE {:.4}; auto-routed {:.3} at precision {:?}",
        report.accuracy,
        report.macro_f1,
        report.reliability.as_ref().map_or(f64::NAN, |r| r.ece),
        routing.share,
        routing.precision
    );
    report
}

#[test]
fn english_cfpb_product_group() {
    let Some(dir) = data_dir("english_cfpb_product_group") else {
        return;
    };
    let r = held_out(
        &dir,
        "cfpb_complaints.csv",
        "narrative",
        "product_group",
        TrainOptions::english(),
    );
    assert!(r.macro_f1 >= 0.80, "macro-F1 {:.4} below 0.80", r.macro_f1);
    // Calibrated: ECE 0.009 measured (raw softmax 0.053).
    let ece = r.reliability.as_ref().map_or(1.0, |x| x.ece);
    assert!(ece <= 0.02, "ECE {ece:.4}");
    // The artifact's threshold for 0.9 holds on unseen data (74.4 % at 0.906 measured).
    let routing = r.routing.as_ref().expect("routing");
    assert!(routing.share >= 0.70, "auto-routed {:.3}", routing.share);
    assert!(routing.precision.is_some_and(|p| p >= 0.89), "{routing:?}");
}

#[test]
fn chinese_category_bootstrapped_model() {
    let Some(dir) = data_dir("chinese_category_bootstrapped_model") else {
        return;
    };
    // Evaluation only: this data set has no licence, the model is never shipped.
    let options = TrainOptions {
        label_scheme: "cn_category".into(),
        ..TrainOptions::chinese()
    };
    let r = held_out(&dir, "cn_complaints.csv", "text", "category", options);
    assert!(r.macro_f1 >= 0.655, "macro-F1 {:.4}", r.macro_f1);
    // 46.5 % auto-routed at 0.9005 measured.
    let routing = r.routing.as_ref().expect("routing");
    assert!(routing.share >= 0.40, "auto-routed {:.3}", routing.share);
    assert!(routing.precision.is_some_and(|p| p >= 0.88), "{routing:?}");
}

#[test]
fn chinese_cause_lexicon_cold_start() {
    let Some(dir) = data_dir("chinese_cause_lexicon_cold_start") else {
        return;
    };
    let examples = eval::load_examples(dir.join("cn_complaints.csv"), "text", "category")
        .expect("load examples");
    let (_, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    let c = Classifier::rules_only().expect("classifier");
    let t = c.taxonomy();
    // A cause counts as the 黑猫 label the taxonomy maps onto it, anything else as 其他类.
    let label_of = |code: &str| {
        [
            "催收行为类",
            "合同条款类",
            "定价收费类",
            "客户服务类",
            "营销宣传类",
        ]
        .into_iter()
        .find(|l| t.map("cn_category", l).and_then(|m| m.cause.as_deref()) == Some(code))
        .unwrap_or("其他类")
    };
    let (mut decided, mut decided_right) = (0usize, 0usize);
    let mut pairs = Vec::new();
    for e in &test {
        let input = ComplaintInput {
            text: e.text.clone(),
            channel: "web".into(),
            ..ComplaintInput::default()
        };
        let r = c.classify_at_precision(&input, 0.9);
        let right = label_of(&r.cause.code) == e.label;
        if r.cause.passes() {
            decided += 1;
            decided_right += usize::from(right);
        }
        pairs.push((e.label.clone(), label_of(&r.cause.code).to_string()));
    }
    let report = eval::report_from_pairs(&pairs);
    let precision = decided_right as f64 / decided.max(1) as f64;
    println!(
        "lexicon: macro-F1 {:.4}; causes decided at ≥ 0.9 (declared) {decided}/{} at precision {precision:.3}",
        report.macro_f1,
        test.len()
    );
    // Measured 0.484 macro-F1 (rules-v1 alone: 38.7 % accuracy), 24.1 % decided at 0.707.
    // The declared 0.93 of decisive evidence is NOT reached against these labels (see the
    // README): the floors guard against regressions, not a promise.
    assert!(report.macro_f1 >= 0.46, "macro-F1 {:.4}", report.macro_f1);
    assert!(
        decided as f64 / test.len() as f64 >= 0.2,
        "decided {decided}"
    );
    assert!(precision >= 0.68, "precision {precision:.3}");
}

#[test]
fn english_cause_from_cfpb_issue() {
    let Some(dir) = data_dir("english_cause_from_cfpb_issue") else {
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
    let examples = eval::map_labels(&examples, &taxonomy, "cfpb_issue", Dimension::Cause);
    let (train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    let model = Model::train(&train, &TrainOptions::english_cause(), |_| {}).expect("train");
    let report = eval::evaluate_at(&model, &test, 0.9);
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
    // It never reached 0.9 with confidence on its held-out folds, so it routes nothing by
    // itself rather than routing at 0.77 (what a raw 0.7 threshold did).
    let routing = report.routing.as_ref().expect("routing");
    assert!(
        routing.auto_routed == 0 || routing.precision.is_some_and(|p| p >= 0.85),
        "{routing:?}"
    );
}
