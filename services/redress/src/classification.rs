//! `redress classification train | eval | export-examples`: models a deployment trains from
//! its own labelled history, measured on data they never saw.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use redress_classifier::{
    Model, Progress, TrainOptions,
    classify::{EMBEDDED_CAUSE_MODEL, EMBEDDED_MODEL},
    eval::{self, DEFAULT_SPLIT_SEED},
    model::Stage,
    tokenize::{Language, detect_language},
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a model on a labelled CSV and write its artifact.
    Train {
        #[command(flatten)]
        data: Data,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
        /// Version recorded in the artifact (shows in every classification it makes).
        #[arg(long, default_value = "custom-v1")]
        model_version: String,
        /// The label scheme the labels belong to (a `[[map]]` scheme of the taxonomy, e.g.
        /// cfpb_product_group, cn_category), so labels map onto taxonomy codes.
        #[arg(long, default_value = "labels")]
        label_scheme: String,
        /// Train on the deterministic 80% only and report on the other 20%.
        #[arg(long)]
        holdout: bool,
    },
    /// Measure a model on a labelled CSV: accuracy, macro-F1, per-class report, confusion.
    Eval {
        #[command(flatten)]
        data: Data,
        /// A model artifact, or `default` / `default-cause` for the English category / cause
        /// model shipped in this build.
        #[arg(long)]
        model: PathBuf,
        /// Evaluate only on the deterministic 20% split (the rows `train --holdout` left out).
        #[arg(long)]
        holdout: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write specialists' overrides as CSV (text,category,cause,language) for `train`.
    ExportExamples {
        #[arg(long)]
        out: PathBuf,
        #[arg(
            long,
            env = "REDRESS_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/redress"
        )]
        database_url: String,
    },
}

#[derive(clap::Args)]
pub struct Data {
    /// A CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    text_column: String,
    #[arg(long)]
    label_column: String,
}

impl Data {
    fn load(&self) -> anyhow::Result<Vec<redress_classifier::Example>> {
        let examples = eval::load_examples(&self.data, &self.text_column, &self.label_column)
            .with_context(|| format!("reading {}", self.data.display()))?;
        if examples.is_empty() {
            anyhow::bail!(
                "{}: no row has both a `{}` and a `{}`",
                self.data.display(),
                self.text_column,
                self.label_column
            );
        }
        Ok(examples)
    }
}

fn load_model(path: &Path) -> anyhow::Result<Model> {
    let shipped = match path.to_str() {
        Some("default") => Some(EMBEDDED_MODEL),
        Some("default-cause") => Some(EMBEDDED_CAUSE_MODEL),
        _ => None,
    };
    match shipped {
        Some(bytes) => Ok(Model::from_bytes(bytes)?),
        None => Model::load(path).with_context(|| format!("loading {}", path.display())),
    }
}

/// Rows whose label the model cannot predict all count as errors; say so, so that a label
/// spelled differently from the training data is not mistaken for a weak model.
fn warn_of_unknown_labels(model: &Model, examples: &[redress_classifier::Example]) {
    let known: BTreeSet<&str> = model.labels().iter().map(String::as_str).collect();
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    for e in examples
        .iter()
        .filter(|e| !known.contains(e.label.as_str()))
    {
        *unknown.entry(e.label.as_str()).or_default() += 1;
    }
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|(l, n)| format!("{l:?} ({n})"))
            .collect();
        eprintln!(
            "warning: {} row(s) carry labels the model does not know, and count as errors: {}; the model's labels are {:?}",
            unknown.values().sum::<usize>(),
            list.join(", "),
            model.labels()
        );
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train {
            data,
            out,
            model_version,
            label_scheme,
            holdout,
        } => {
            let examples = data.load()?;
            let (train, test) = if holdout {
                eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED)
            } else {
                (examples, Vec::new())
            };
            let mut options = options_for(&train, &label_scheme);
            options.model_version = model_version;
            options.label_scheme = label_scheme;
            let started = Instant::now();
            let model = tokio::task::spawn_blocking(move || train_with_progress(&train, &options))
                .await??;
            eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
            model
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            if !test.is_empty() {
                println!("{}", eval::evaluate(&model, &test).to_table());
            }
            Ok(())
        }
        Command::Eval {
            data,
            model,
            holdout,
            json,
        } => {
            let examples = data.load()?;
            let examples = if holdout {
                eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED).1
            } else {
                examples
            };
            let model = load_model(&model)?;
            warn_of_unknown_labels(&model, &examples);
            let report = eval::evaluate(&model, &examples);
            println!(
                "{}",
                if json {
                    report.to_json()?
                } else {
                    report.to_table()
                }
            );
            Ok(())
        }
        Command::ExportExamples { out, database_url } => {
            let db = redress_runtime::Database::connect(
                &database_url,
                redress_classification::SERVICE,
                2,
                &redress_classification::MIGRATIONS,
            )
            .await?;
            let rows = redress_classification::store::examples(db.pool())
                .await
                .context("reading classification.training_examples")?;
            let mut writer = csv::Writer::from_path(&out)?;
            writer.write_record(["text", "category", "cause", "language"])?;
            for (text, category, cause, language) in &rows {
                writer.write_record([text, category, cause, language])?;
            }
            writer.flush()?;
            println!(
                "wrote {} labelled example(s) to {}",
                rows.len(),
                out.display()
            );
            Ok(())
        }
    }
}

/// The library's defaults for the language most training texts are in and the label scheme.
fn options_for(examples: &[redress_classifier::Example], label_scheme: &str) -> TrainOptions {
    let chinese = examples
        .iter()
        .take(500)
        .filter(|e| detect_language(&e.text) == Language::Zh)
        .count();
    let language = if chinese * 2 > examples.len().min(500) {
        Language::Zh
    } else {
        Language::En
    };
    eval::default_options(language, label_scheme)
}

fn train_with_progress(
    examples: &[redress_classifier::Example],
    options: &TrainOptions,
) -> anyhow::Result<Model> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let model = Model::train(examples, options, |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(match p.stage {
            Stage::Featurizing => "featurizing",
            Stage::Calibrating => "calibrating",
            Stage::Fitting => "fitting",
            Stage::Done => "done",
        });
    })?;
    bar.finish_and_clear();
    Ok(model)
}
