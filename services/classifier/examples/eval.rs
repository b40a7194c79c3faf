//! Train on the deterministic 80% of a labelled CSV and report on the other 20%.
//!
//! ```text
//! cargo run --release --example eval -- --data FILE --text-column C --label-column L \
//!     [--model-out PATH] [--preset en|zh] [--tune] [--model-version V] [--label-scheme S] [--json]
//! ```
//! `--tune` picks options on a validation slice carved from the 80% (never the 20%).

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use redress_classifier::eval::{self, DEFAULT_SPLIT_SEED};
use redress_classifier::model::{Model, Progress, Stage, measure_throughput};
use redress_classifier::tokenize::{Language, detect_language};

struct Args {
    data: PathBuf,
    text: String,
    label: String,
    model_out: Option<PathBuf>,
    extra_train: Vec<PathBuf>,
    preset: Option<Language>,
    tune: bool,
    json: bool,
    model_version: String,
    label_scheme: String,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        data: PathBuf::new(),
        text: String::new(),
        label: String::new(),
        model_out: None,
        extra_train: Vec::new(),
        preset: None,
        tune: false,
        json: false,
        model_version: "eval".into(),
        label_scheme: "labels".into(),
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(val()?),
            "--text-column" => a.text = val()?,
            "--label-column" => a.label = val()?,
            "--extra-train" => a.extra_train.push(PathBuf::from(val()?)),
            "--model-out" => a.model_out = Some(PathBuf::from(val()?)),
            "--preset" => a.preset = Some(Language::from_hint(&val()?).ok_or("--preset is en or zh")?),
            "--model-version" => a.model_version = val()?,
            "--label-scheme" => a.label_scheme = val()?,
            "--tune" => a.tune = true,
            "--json" => a.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.data.as_os_str().is_empty() || a.text.is_empty() || a.label.is_empty() {
        return Err("usage: eval --data FILE --text-column C --label-column L [--model-out PATH] [--extra-train FILE]... \
                    [--preset en|zh] [--tune] [--model-version V] [--label-scheme S] [--json]"
            .into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let examples = eval::load_examples(&args.data, &args.text, &args.label)?;
    let (mut train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    // Extra training files (same columns) add to the 80% only; the 20% stays untouched. Rows
    // whose text is also in the test part are dropped so nothing leaks.
    let test_texts: std::collections::HashSet<&str> = test.iter().map(|e| e.text.as_str()).collect();
    for path in &args.extra_train {
        let extra = eval::load_examples(path, &args.text, &args.label)?;
        let before = train.len();
        train.extend(extra.into_iter().filter(|e| !test_texts.contains(e.text.as_str())));
        eprintln!("added {} training examples from {}", train.len() - before, path.display());
    }
    let lang = args.preset.unwrap_or_else(|| {
        let sample: String = train.iter().take(200).map(|e| e.text.as_str()).collect();
        detect_language(&sample)
    });
    eprintln!("{} examples: {} train, {} test; language {}", examples.len(), train.len(), test.len(), lang.as_str());
    let mut options = eval::default_options(lang);
    options.model_version = args.model_version.clone();
    options.label_scheme = args.label_scheme.clone();
    if args.tune {
        let grid = eval::default_grid(lang, &options);
        let bar = ProgressBar::new(grid.len() as u64);
        bar.set_style(ProgressStyle::with_template("tuning {bar:30} {pos}/{len} {msg}")?);
        let (best, trials) = eval::tune(&train, &grid, 0.15, DEFAULT_SPLIT_SEED, &mut |done, _, trial| {
            bar.set_position(done as u64);
            if let Some(t) = trial {
                eprintln!("{}", format!(
                    "  macro-F1 {:.4} acc {:.4}  C={} cw={} words≤{} latin-char={:?} cjk-char={:?} charw={}",
                    t.macro_f1,
                    t.accuracy,
                    t.options.c,
                    t.options.class_weight_power,
                    t.options.features.word_ngram_max,
                    t.options.features.latin_char_ngrams,
                    t.options.features.cjk_char_ngrams,
                    t.options.features.char_block_weight
                ));
            }
        })?;
        bar.finish_and_clear();
        eprintln!("tried {} settings; chose C={} class-weight-power={}", trials.len(), best.c, best.class_weight_power);
        options = best;
    }

    let bar = ProgressBar::new(1);
    bar.set_style(ProgressStyle::with_template("{msg:12} {bar:30} {pos}/{len} {elapsed}")?);
    let started = Instant::now();
    let model = Model::train(&train, &options, |p: Progress| {
        let msg = match p.stage {
            Stage::Featurizing => "featurizing",
            Stage::Calibrating => "calibrating",
            Stage::Fitting => "fitting",
            Stage::Done => "done",
        };
        bar.set_message(msg);
        bar.set_length(p.total);
        bar.set_position(p.done);
    })?;
    bar.finish_and_clear();
    let train_secs = started.elapsed().as_secs_f64();

    let report = eval::evaluate(&model, &test);
    let texts: Vec<String> = test.iter().map(|e| e.text.clone()).collect();
    let per_sec = measure_throughput(&model, &texts, 1);
    let bytes = model.to_bytes()?;
    let load_started = Instant::now();
    let reloaded = Model::from_bytes(&bytes)?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1000.0;
    drop(reloaded);
    if let Some(path) = &args.model_out {
        model.save(path)?;
        eprintln!("model written to {}", path.display());
    }
    if args.json {
        println!("{}", report.to_json()?);
    } else {
        println!("{}", report.to_table());
    }
    println!(
        "train {:.1}s on {} examples | features {} | temperature {:.2} | artifact {:.2} MB | load {:.0} ms | {:.0} predictions/s/core",
        train_secs,
        train.len(),
        model.feature_count(),
        model.temperature(),
        bytes.len() as f64 / 1e6,
        load_ms,
        per_sec
    );
    Ok(())
}
