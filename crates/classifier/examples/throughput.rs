//! Classification speed in-process, one thread: `Classifier::embedded()` (both English models,
//! rules, catalogue, lexicon, severity) on the first 1,000 complaints of the shared CFPB and
//! Chinese files, the way `make bench` measures it (no product field), and on the README's
//! Chinese example with its product.
//!
//! ```text
//! cargo run --release --example throughput -- --data-dir DIR [--rounds N]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use redress_classifier::{Classifier, ComplaintInput, DEFAULT_TARGET_PRECISION, eval};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from("../../../shared/data");
    let mut rounds = 10usize;
    let mut only: Option<String> = None;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--data-dir" => dir = PathBuf::from(args.next().ok_or("--data-dir DIR")?),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--rounds N")?
            }
            // --only cfpb|cn|readme: one corpus (for instruction counts under callgrind).
            "--only" => only = Some(args.next().ok_or("--only cfpb|cn|readme")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let started = Instant::now();
    let classifier = Classifier::embedded()?;
    println!(
        "Classifier::embedded() in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let corpora = corpora(&dir, only.as_deref())?;
    for (name, inputs) in corpora {
        // Warm up (the first Chinese text loads jieba's dictionary).
        for i in &inputs {
            classifier.classify_at_precision(i, DEFAULT_TARGET_PRECISION);
        }
        let n = rounds * inputs.len().max(1);
        let started = Instant::now();
        for _ in 0..n / inputs.len().max(1) {
            for i in &inputs {
                std::hint::black_box(classifier.classify_at_precision(i, DEFAULT_TARGET_PRECISION));
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name}: {:.0} complaints/s on one thread",
            n as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

type Corpus = (&'static str, Vec<ComplaintInput>);

/// The corpora to time: the first 1,000 rows of each shared file, the README's example.
fn corpora(dir: &std::path::Path, only: Option<&str>) -> redress_classifier::Result<Vec<Corpus>> {
    let load = |file: &str,
                column: &str,
                label: &str|
     -> redress_classifier::Result<Vec<ComplaintInput>> {
        Ok(eval::load_examples(dir.join(file), column, label)?
            .into_iter()
            .take(1_000)
            .map(|e| ComplaintInput {
                text: e.text,
                channel: "web".into(),
                ..ComplaintInput::default()
            })
            .collect())
    };
    let readme = ComplaintInput {
        title: Some("还款后仍被重复扣款".into()),
        text: "我已于11月10日提前结清借款，但11月20日银行卡又被扣款1,280.00元。联系客服三次均未处理，要求退还重复扣款并出具结清证明。".into(),
        product: Some("消费贷".into()),
        channel: "web".into(),
        ..ComplaintInput::default()
    };
    let wanted = |key: &str| only.is_none_or(|o| o == key);
    let mut out = Vec::new();
    if wanted("cfpb") {
        out.push((
            "1,000 CFPB narratives",
            load("cfpb_complaints.csv", "narrative", "product_group")?,
        ));
    }
    if wanted("cn") {
        out.push((
            "1,000 Chinese complaints",
            load("cn_complaints.csv", "text", "category")?,
        ));
    }
    if wanted("readme") {
        out.push(("the README's Chinese example", vec![readme]));
    }
    Ok(out)
}
