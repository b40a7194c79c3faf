#![allow(clippy::expect_used, clippy::unwrap_used)] // a test: a failed expectation is a failed test
//! `redress classification train | bootstrap | eval`, run as the built binary on CSV files: the
//! commands anyone uses to train a model on their labelled history and measure it on data it
//! never saw.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("redress-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch(dir)
    }

    fn csv(&self, name: &str, rows: &[(impl AsRef<str>, impl AsRef<str>)]) -> PathBuf {
        let path = self.0.join(name);
        let mut writer = csv::Writer::from_path(&path).expect("create CSV");
        writer.write_record(["text", "label"]).expect("header");
        for (text, label) in rows {
            writer
                .write_record([text.as_ref(), label.as_ref()])
                .expect("row");
        }
        writer.flush().expect("flush CSV");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn redress(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(args)
        .output()
        .expect("run the redress binary")
}

/// `redress classification eval` on the `text` and `label` columns of `data`.
fn eval(data: &Path, model: &str, extra: &[&str]) -> Output {
    let columns = ["--text-column", "text", "--label-column", "label"];
    let base = [
        "classification",
        "eval",
        "--data",
        path(data),
        "--model",
        model,
    ];
    redress(&[&base[..], &columns, extra].concat())
}

/// `redress classification train` on the `text` and `label` columns of `data`.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let columns = ["--text-column", "text", "--label-column", "label"];
    let base = [
        "classification",
        "train",
        "--data",
        path(data),
        "--out",
        path(out),
    ];
    redress(&[&base[..], &columns, extra].concat())
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Three topics in varied wording, 30 rows each, and a row with no label (skipped).
fn labelled_rows() -> Vec<(String, String)> {
    let topics = [
        (
            "collection",
            [
                "a debt collector calls me every day about a debt",
                "the collection agency threatened my family over the debt",
                "collectors keep calling my work about money i do not owe",
            ],
        ),
        (
            "card",
            [
                "my credit card was charged twice for one purchase",
                "the card issuer added an annual fee i never agreed to",
                "a charge on my credit card statement is not mine",
            ],
        ),
        (
            "mortgage",
            [
                "the mortgage servicer lost my escrow payment",
                "my home loan modification was denied without reason",
                "the servicer started foreclosure while my mortgage payment was pending",
            ],
        ),
    ];
    let mut rows = Vec::new();
    for i in 0..30 {
        for (label, texts) in &topics {
            rows.push((format!("{} (case {i})", texts[i % 3]), label.to_string()));
        }
    }
    rows.push(("a complaint nobody labelled".into(), String::new()));
    rows
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("eval --json prints JSON")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn train_writes_a_model_that_eval_measures_with_a_full_report() {
    let scratch = Scratch::new("train");
    let rows = labelled_rows();
    let data = scratch.csv("labelled.csv", &rows);
    let model = scratch.0.join("model.bin");
    let trained = train(
        &data,
        &model,
        &["--model-version", "cli-test-v1", "--holdout"],
    );
    assert!(
        trained.status.success(),
        "stderr: {}",
        text(&trained.stderr)
    );
    assert!(model.is_file(), "no artifact at {}", model.display());
    // --holdout reports on the 20 % it left out.
    assert!(
        text(&trained.stdout).contains("macro-F1"),
        "{}",
        text(&trained.stdout)
    );

    let all = json(&eval(&data, path(&model), &["--json"]));
    assert_eq!(all["examples"], 90, "the unlabelled row is skipped: {all}");
    assert_eq!(
        all["labels"],
        serde_json::json!(["card", "collection", "mortgage"])
    );
    let accuracy = all["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy > 0.9, "three separable topics: {all}");
    let confusion = all["confusion"].as_array().expect("confusion");
    let counted: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().expect("row").iter())
        .map(|n| n.as_u64().expect("count"))
        .sum();
    assert_eq!(counted, 90);
    assert_eq!(all["per_class"].as_array().map(Vec::len), Some(3));

    let held_out = json(&eval(&data, path(&model), &["--json", "--holdout"]));
    let n = held_out["examples"].as_u64().expect("examples");
    assert!(
        n > 0 && n < 90,
        "--holdout measures only the 20 % split: {n}"
    );

    let table = text(&eval(&data, path(&model), &[]).stdout);
    assert!(
        table.contains("confusion matrix") && table.contains("precision"),
        "{table}"
    );
    // Reliability and routing, in both renderings.
    assert!(
        table.contains("expected calibration error")
            && table.contains("auto-routing at target precision 0.90"),
        "{table}"
    );
    let ece = all["reliability"]["ece"].as_f64().expect("ece");
    assert!((0.0..=1.0).contains(&ece), "{all}");
    assert_eq!(
        all["reliability"]["bins"].as_array().map(Vec::len),
        Some(10)
    );
    assert!(all["reliability_raw"]["ece"].is_number());
    let target = all["routing"]["target_precision"].as_f64().expect("target");
    assert!((target - 0.9).abs() < 1e-6, "{all}");
}

#[test]
fn bootstrap_trains_from_history_and_reports_what_it_would_have_routed() {
    let scratch = Scratch::new("bootstrap");
    let data = scratch.csv("history.csv", &labelled_rows());
    let model = scratch.0.join("history.bin");
    let args = |target: &str| {
        [
            "classification",
            "bootstrap",
            "--data",
            path(&data),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--target-precision",
            target,
            "--model-version",
            "history-v1",
            "--out",
            path(&model),
        ]
        .map(str::to_string)
    };
    let run = |extra: &[&str], target: &str| {
        let mut all: Vec<String> = args(target).to_vec();
        all.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        redress(&refs)
    };
    let report = json(&run(&["--json"], "0.9"));
    assert_eq!(report["examples"], 90, "{report}");
    assert_eq!(report["model_version"], "history-v1");
    let oof = &report["out_of_fold"];
    assert_eq!(
        oof["per_class"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert!(oof["reliability"]["ece"].is_number());
    let threshold = report["threshold"]
        .as_f64()
        .expect("a threshold for 0.9 on separable topics");
    let routed = oof["routing"]["auto_routed"]
        .as_u64()
        .expect("auto-routed count");
    assert!(routed > 45 && routed <= 90, "{report}");
    assert!(
        oof["routing"]["precision"]
            .as_f64()
            .is_some_and(|p| p >= 0.9)
    );
    assert!(model.is_file());

    // The table says the same in words.
    let table = text(&run(&[], "0.9").stdout);
    assert!(
        table.contains("would have auto-routed") && table.contains("expected calibration error"),
        "{table}"
    );

    // The artifact carries the threshold: eval routes with it.
    let measured = json(&eval(&data, path(&model), &["--json"]));
    assert_eq!(measured["routing"]["threshold_source"], "artifact");
    let used = measured["routing"]["threshold"]
        .as_f64()
        .expect("threshold");
    assert!((used - threshold).abs() < 1e-6, "{measured}");

    // A precision outside (0, 1] is refused before any work.
    let refused = run(&[], "1.5");
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("a precision is in (0, 1]"));
}

#[test]
fn the_shipped_model_is_measured_by_name_and_unknown_labels_are_pointed_out() {
    let scratch = Scratch::new("default");
    let data = scratch.csv(
        "cfpb.csv",
        &[
            ("A debt collector keeps calling my job about a medical debt that is not mine and threatened to sue.", "Debt collection"),
            ("My mortgage servicer misapplied my escrow payment and started foreclosure on my home.", "Mortgage"),
            ("My student loan servicer put my loans in forbearance without asking and interest capitalized.", "Student loan"),
            ("Equifax will not remove an inquiry I never authorized from my credit report.", "Credit reporting, credit repair services, or other personal consumer reports"),
            ("The bank charged me an overdraft fee on my checking account.", "Checking"),
        ],
    );
    let measured = eval(&data, "default", &["--json"]);
    let report = json(&measured);
    assert_eq!(report["examples"], 5);
    let correct: u64 = (0..report["labels"].as_array().map_or(0, Vec::len))
        .map(|i| report["confusion"][i][i].as_u64().unwrap_or(0))
        .sum();
    assert!(
        correct >= 3,
        "the shipped model gets at least three of the four it knows: {report}"
    );
    let warning = text(&measured.stderr);
    assert!(
        warning.contains("\"Checking\" (1)") && warning.contains("Debt collection"),
        "names the unknown label and the model's labels: {warning}"
    );
}

#[test]
fn bad_input_is_refused_naming_what_is_wrong() {
    let scratch = Scratch::new("bad");
    let rows = labelled_rows();
    let data = scratch.csv("labelled.csv", &rows);

    let no_column = redress(&[
        "classification",
        "eval",
        "--data",
        path(&data),
        "--text-column",
        "narrative",
        "--label-column",
        "label",
        "--model",
        "default",
    ]);
    assert!(!no_column.status.success());
    let stderr = text(&no_column.stderr);
    assert!(
        stderr.contains("no column `narrative`") && stderr.contains("text, label"),
        "{stderr}"
    );

    let unlabelled = scratch.csv("unlabelled.csv", &[("some text", ""), ("", "label")]);
    let empty = train(&unlabelled, &scratch.0.join("never.bin"), &[]);
    assert!(!empty.status.success());
    assert!(text(&empty.stderr).contains("no row has both a `text` and a `label`"));

    let corrupt = scratch.0.join("corrupt.bin");
    std::fs::write(&corrupt, b"REDRESSM not a model").expect("write");
    let refused = eval(&data, path(&corrupt), &[]);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("corrupt.bin") && stderr.contains("not a Redress model"),
        "{stderr}"
    );
}
