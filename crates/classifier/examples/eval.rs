//! Train on the deterministic 80% of a labelled CSV and report on the other 20%.
//!
//! ```text
//! cargo run --release --example eval -- --data FILE --text-column C --label-column L \
//!     [--model-out PATH [--full]] [--preset en|zh] [--tune] [--model-version V] [--label-scheme S] [--json]
//! ```
//! `--tune` picks options on a validation slice carved from the 80% (never the 20%).

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use redress_classifier::eval::{self, DEFAULT_SPLIT_SEED};
use redress_classifier::model::{Model, Progress, Stage, measure_throughput};
use redress_classifier::tokenize::{Language, detect_language};
use redress_classifier::{Example, TrainOptions};

struct Args {
    data: PathBuf,
    also: Vec<PathBuf>,
    map_labels: Option<(redress_classifier::taxonomy::Dimension, String)>,
    text: String,
    label: String,
    model_out: Option<PathBuf>,
    extra_train: Vec<PathBuf>,
    preset: Option<Language>,
    tune: bool,
    full: bool,
    json: bool,
    model_version: String,
    label_scheme: String,
    validate: bool,
    cv: usize,
    cv_seed: u64,
    overrides: Vec<(String, String)>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        data: PathBuf::new(),
        also: Vec::new(),
        map_labels: None,
        text: String::new(),
        label: String::new(),
        model_out: None,
        extra_train: Vec::new(),
        preset: None,
        tune: false,
        full: false,
        json: false,
        model_version: "eval".into(),
        label_scheme: "labels".into(),
        validate: false,
        cv: 0,
        cv_seed: 0,
        overrides: Vec::new(),
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(val()?),
            "--text-column" => a.text = val()?,
            "--label-column" => a.label = val()?,
            "--extra-train" => a.extra_train.push(PathBuf::from(val()?)),
            "--model-out" => a.model_out = Some(PathBuf::from(val()?)),
            "--preset" => {
                a.preset = Some(Language::from_hint(&val()?).ok_or("--preset is en or zh")?)
            }
            "--model-version" => a.model_version = val()?,
            "--label-scheme" => a.label_scheme = val()?,
            "--tune" => a.tune = true,
            "--full" => a.full = true,
            "--json" => a.json = true,
            "--validate" => a.validate = true,
            // --also FILE: more rows (same columns) joining the data before the split.
            "--also" => a.also.push(PathBuf::from(val()?)),
            // --map-labels cause:cfpb_issue — relabel through the taxonomy before the split.
            "--map-labels" => {
                use redress_classifier::taxonomy::Dimension;
                let v = val()?;
                let (d, scheme) = v.split_once(':').ok_or("--map-labels DIM:SCHEME")?;
                let dim = match d {
                    "cause" => Dimension::Cause,
                    "category" => Dimension::Category,
                    _ => return Err("--map-labels dimension is cause or category".into()),
                };
                a.map_labels = Some((dim, scheme.to_string()));
            }
            "--cv" => a.cv = val()?.parse().map_err(|_| "--cv takes a number")?,
            // --cv-seed N: another fold assignment (repeat CV with several seeds to average noise).
            "--cv-seed" => a.cv_seed = val()?.parse().map_err(|_| "--cv-seed takes a number")?,
            "--set" => {
                let kv = val()?;
                let (k, v) = kv.split_once('=').ok_or("--set takes KEY=VALUE")?;
                a.overrides.push((k.to_string(), v.to_string()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.data.as_os_str().is_empty() || a.text.is_empty() || a.label.is_empty() {
        return Err("usage: eval --data FILE --text-column C --label-column L [--model-out PATH [--full]] [--extra-train FILE]... \
                    [--preset en|zh] [--tune] [--model-version V] [--label-scheme S] [--json]"
            .into());
    }
    Ok(a)
}

fn apply(
    o: &mut redress_classifier::TrainOptions,
    k: &str,
    v: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let f = || v.parse::<f32>();
    let pair = || -> Result<(u8, u8), Box<dyn std::error::Error>> {
        let (a, b) = v.split_once('-').ok_or("range is MIN-MAX")?;
        Ok((a.parse()?, b.parse()?))
    };
    match k {
        "c" => o.c = f()?,
        "cw" => o.class_weight_power = f()?,
        "nb_alpha" => o.nb_alpha = f()?,
        "nb_beta" => o.nb_beta = f()?,
        "nb_clip" => o.nb_clip = f()?,
        "min_df" => o.min_df = v.parse()?,
        "max_features" => o.max_features = v.parse()?,
        "epochs" => o.max_epochs = v.parse()?,
        "offsets" => o.tune_offsets = v.parse()?,
        "words" => o.features.word_ngram_max = v.parse()?,
        "latin" => o.features.latin_char_ngrams = pair()?,
        "cjk" => o.features.cjk_char_ngrams = pair()?,
        "charw" => o.features.char_block_weight = f()?,
        "hmm" => o.features.jieba_hmm = v.parse()?,
        "head" => o.features.head_words = v.parse()?,
        "tol" => o.tolerance = f()?,
        "marks" => o.features.mark_tokens = v.parse()?,
        "views" => o.separate_views = v.parse()?,
        "cnb" => o.cnb_mix = f()?,
        "cnb_alpha" => o.cnb_alpha = f()?,
        "hinge" => o.hinge_loss = v.parse()?,
        "mix" => o.view_mix = f()?,
        other => return Err(format!("unknown option {other}").into()),
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

type Failure = Box<dyn std::error::Error>;

fn run() -> Result<(), Failure> {
    let args = parse()?;
    let (examples, train, test) = data(&args)?;
    let lang = args.preset.unwrap_or_else(|| {
        let sample: String = train.iter().take(200).map(|e| e.text.as_str()).collect();
        detect_language(&sample)
    });
    eprintln!(
        "{} examples: {} train, {} test; language {}",
        examples.len(),
        train.len(),
        test.len(),
        lang.as_str()
    );
    let mut options = eval::default_options(lang, &args.label_scheme);
    options.model_version = args.model_version.clone();
    options.label_scheme = args.label_scheme.clone();
    for (k, v) in &args.overrides {
        apply(&mut options, k, v)?;
    }
    if args.cv >= 2 {
        return cross_validate(&args, &options, &train);
    }
    // --validate: report on a validation slice carved from the 80 % (the 20 % is not touched).
    let (train, test) = if args.validate {
        let (fit, val) = eval::split(&train, 0.15, DEFAULT_SPLIT_SEED ^ 0x7A11);
        eprintln!(
            "validation mode: {} fit, {} validation",
            fit.len(),
            val.len()
        );
        (fit, val)
    } else {
        (train, test)
    };
    if args.tune {
        options = tune(lang, &options, &train)?;
    }
    report(&args, &options, &examples, &train, &test)
}

type Split = (Vec<Example>, Vec<Example>, Vec<Example>);

/// All examples (with `--also` rows, relabelled by `--map-labels`), the 80 % (with
/// `--extra-train` rows) and the 20 %.
fn data(args: &Args) -> Result<Split, Failure> {
    let mut examples = eval::load_examples(&args.data, &args.text, &args.label)?;
    for path in &args.also {
        let mut seen: std::collections::HashSet<String> =
            examples.iter().map(|e| e.text.clone()).collect();
        let more = eval::load_examples(path, &args.text, &args.label)?;
        examples.extend(more.into_iter().filter(|e| seen.insert(e.text.clone())));
    }
    if let Some((dim, scheme)) = &args.map_labels {
        let taxonomy = redress_classifier::Taxonomy::embedded()?;
        let before = examples.len();
        examples = eval::map_labels(&examples, &taxonomy, scheme, *dim);
        eprintln!(
            "mapped labels through `{scheme}`: kept {} of {before}",
            examples.len()
        );
    }
    let (mut train, test) = eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED);
    // Extra training files (same columns) add to the 80% only; the 20% stays untouched. Rows
    // whose text is also in the test part are dropped so nothing leaks.
    let test_texts: std::collections::HashSet<&str> =
        test.iter().map(|e| e.text.as_str()).collect();
    for path in &args.extra_train {
        let extra = eval::load_examples(path, &args.text, &args.label)?;
        let before = train.len();
        train.extend(
            extra
                .into_iter()
                .filter(|e| !test_texts.contains(e.text.as_str())),
        );
        eprintln!(
            "added {} training examples from {}",
            train.len() - before,
            path.display()
        );
    }
    Ok((examples, train, test))
}

/// `--cv N`: N-fold cross-validation inside the 80 % (pooled out-of-fold predictions).
fn cross_validate(args: &Args, options: &TrainOptions, train: &[Example]) -> Result<(), Failure> {
    let fold_of = |e: &Example| {
        (redress_classifier::model::stable_hash(
            &e.text,
            DEFAULT_SPLIT_SEED ^ 0xF01D ^ args.cv_seed,
        ) % args.cv as u64) as usize
    };
    let mut pairs = Vec::new();
    for f in 0..args.cv {
        let fit: Vec<_> = train.iter().filter(|e| fold_of(e) != f).cloned().collect();
        let val: Vec<_> = train.iter().filter(|e| fold_of(e) == f).cloned().collect();
        let model = Model::train(&fit, options, |_| {})?;
        for e in &val {
            pairs.push((e.label.clone(), model.predict_explained(&e.text, 0).label));
        }
    }
    let r = eval::report_from_pairs(&pairs);
    println!(
        "cv{} accuracy {:.4}   macro-F1 {:.4}   examples {}",
        args.cv, r.accuracy, r.macro_f1, r.examples
    );
    Ok(())
}

/// `--tune`: the default grid on a validation slice of the 80 %.
fn tune(
    lang: Language,
    options: &TrainOptions,
    train: &[Example],
) -> Result<TrainOptions, Failure> {
    let grid = eval::default_grid(lang, options);
    let bar = ProgressBar::new(grid.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "tuning {bar:30} {pos}/{len} {msg}",
    )?);
    let (best, trials) = eval::tune(
        train,
        &grid,
        0.15,
        DEFAULT_SPLIT_SEED,
        &mut |done, _, trial| {
            bar.set_position(done as u64);
            if let Some(t) = trial {
                eprintln!(
                    "  macro-F1 {:.4} acc {:.4}  C={} cw={} words≤{} latin-char={:?} cjk-char={:?} charw={}",
                    t.macro_f1,
                    t.accuracy,
                    t.options.c,
                    t.options.class_weight_power,
                    t.options.features.word_ngram_max,
                    t.options.features.latin_char_ngrams,
                    t.options.features.cjk_char_ngrams,
                    t.options.features.char_block_weight
                );
            }
        },
    )?;
    bar.finish_and_clear();
    eprintln!(
        "tried {} settings; chose C={} class-weight-power={}",
        trials.len(),
        best.c,
        best.class_weight_power
    );
    Ok(best)
}

/// Train on `train`, report on `test`, write the model (`--full`: retrained on every row).
fn report(
    args: &Args,
    options: &TrainOptions,
    examples: &[Example],
    train: &[Example],
    test: &[Example],
) -> Result<(), Failure> {
    let bar = ProgressBar::new(1);
    bar.set_style(ProgressStyle::with_template(
        "{msg:12} {bar:30} {pos}/{len} {elapsed}",
    )?);
    let started = Instant::now();
    let model = Model::train(train, options, |p: Progress| {
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
    let report = eval::evaluate(&model, test);
    let texts: Vec<String> = test.iter().map(|e| e.text.clone()).collect();
    let per_sec = measure_throughput(&model, &texts, 1);
    let bytes = model.to_bytes()?;
    let load_started = Instant::now();
    let reloaded = Model::from_bytes(&bytes)?;
    let load_ms = load_started.elapsed().as_secs_f64() * 1000.0;
    drop(reloaded);
    if let Some(path) = &args.model_out {
        // --full: the written model is retrained on every row (the report above stays the 80/20 one).
        if args.full {
            eprintln!(
                "retraining on all {} examples for --model-out",
                examples.len()
            );
            Model::train(examples, options, |_| {})?.save(path)?;
        } else {
            model.save(path)?;
        }
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
