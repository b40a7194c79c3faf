//! `redress classification train | bootstrap | eval | export-examples`: models a deployment
//! trains from its own labelled history, measured on data they never saw, with confidence
//! calibrated so a review threshold can be a target precision; `retrain | models | rollback`:
//! the running service's learning from specialists (its gRPC API, role admin).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use redress_classifier::{
    DEFAULT_TARGET_PRECISION, Model, Progress, TrainOptions,
    bootstrap::bootstrap,
    classify::{EMBEDDED_CAUSE_MODEL, EMBEDDED_MODEL},
    eval::{self, DEFAULT_SPLIT_SEED},
    model::Stage,
    tokenize::{Language, detect_language},
};
use redress_proto::{
    classification::v1::{
        ListModelsRequest, ModelRecord, RetrainRequest, RollbackRequest, ShadowMetrics,
        classification_service_client::ClassificationServiceClient,
    },
    common::v1::PageRequest,
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
        /// The precision whose confidence threshold the artifact records (measured on
        /// held-out folds of the training data).
        #[arg(long, default_value_t = DEFAULT_TARGET_PRECISION, value_parser = precision)]
        target_precision: f32,
    },
    /// Train a model from an old system's export (or the specialists' overrides) and report
    /// what it would have done: per-class figures, calibration, the threshold for the target
    /// precision and how many complaints it would have auto-routed — every figure from
    /// predictions by a model that had not seen the complaint (cross-validation).
    Bootstrap {
        #[command(flatten)]
        data: Data,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
        /// Version recorded in the artifact.
        #[arg(long, default_value = "history-v1")]
        model_version: String,
        /// The label scheme the labels belong to (a `[[map]]` scheme of the taxonomy, e.g.
        /// cn_category; `taxonomy_cause` / `taxonomy_category` for taxonomy codes).
        #[arg(long, default_value = "labels")]
        label_scheme: String,
        /// Auto-routed decisions should be right this often.
        #[arg(long, default_value_t = DEFAULT_TARGET_PRECISION, value_parser = precision)]
        target_precision: f32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure a model on a labelled CSV: accuracy, macro-F1, per-class report, confusion,
    /// reliability (expected calibration error, reliability bins) and auto-routing at a target
    /// precision.
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
        /// Report auto-routing at this precision (the model's recorded threshold for it).
        #[arg(long, default_value_t = DEFAULT_TARGET_PRECISION, value_parser = precision)]
        target_precision: f32,
    },
    /// Write specialists' overrides as CSV (text,category,cause,language) for `train`
    /// (runs `redress-classification export-examples` with this environment).
    ExportExamples {
        #[arg(long)]
        out: PathBuf,
    },
    /// Complaints waiting for a specialist, oldest first.
    Review(crate::review::ListArgs),
    /// A specialist's override of a complaint's classification (kept as a labelled example).
    Reclassify(crate::review::ReclassifyArgs),
    /// Train a candidate model now from the base data and the overrides, compare it in shadow
    /// with the active model on the most recent overrides, promote it only if better (role
    /// admin; the service also does this on its schedule).
    Retrain(RetrainArgs),
    /// Models learnt from specialists, newest first, with the comparison that decided each.
    Models(ModelsArgs),
    /// Make the model the active one replaced active again, or `--to` an earlier active one;
    /// every replica switches without a restart (role admin).
    Rollback(RollbackArgs),
}

#[derive(clap::Args)]
pub struct RetrainArgs {
    #[command(flatten)]
    target: crate::grpc::Target,
    /// One slot (zh-cause, zh-category, en-cause, en-category); default: the service's
    /// configured slots.
    #[arg(long, default_value = "")]
    slot: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    target: crate::grpc::Target,
    /// Only this slot.
    #[arg(long, default_value = "")]
    slot: String,
    #[arg(long, default_value_t = 20)]
    page_size: u32,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    target: crate::grpc::Target,
    /// The slot, e.g. zh-cause.
    #[arg(long, default_value = "zh-cause")]
    slot: String,
    /// A version that was active once (`models` lists them); default: the one the active
    /// model replaced.
    #[arg(long, default_value = "")]
    to: String,
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

/// A precision in (0, 1].
fn precision(s: &str) -> Result<f32, String> {
    let p: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("a precision is in (0, 1], got {p}"))
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
            target_precision,
        } => {
            let scheme = Scheme {
                model_version,
                label_scheme,
                target_precision,
            };
            train(&data, &out, scheme, holdout).await
        }
        Command::Bootstrap {
            data,
            out,
            model_version,
            label_scheme,
            target_precision,
            json,
        } => {
            let scheme = Scheme {
                model_version,
                label_scheme,
                target_precision,
            };
            bootstrap_history(&data, &out, scheme, json).await
        }
        Command::Eval {
            data,
            model,
            holdout,
            json,
            target_precision,
        } => evaluate(&data, &model, holdout, json, target_precision),
        Command::ExportExamples { out } => crate::tools::run_service_command(
            "redress-classification",
            &["export-examples", "--out", &out.to_string_lossy()],
        ),
        Command::Review(args) => crate::review::list(args).await,
        Command::Reclassify(args) => crate::review::reclassify(args).await,
        Command::Retrain(args) => retrain(args).await,
        Command::Models(args) => list_models(args).await,
        Command::Rollback(args) => rollback(args).await,
    }
}

async fn models_client(
    target: &crate::grpc::Target,
) -> anyhow::Result<ClassificationServiceClient<tonic::transport::Channel>> {
    let addr = crate::grpc::default_addr("REDRESS_CLASSIFICATION_ADDR", "http://127.0.0.1:50052");
    Ok(ClassificationServiceClient::new(
        target.channel(&addr).await?,
    ))
}

async fn retrain(args: RetrainArgs) -> anyhow::Result<()> {
    let mut client = models_client(&args.target).await?;
    let request = args.target.request(RetrainRequest { slot: args.slot })?;
    let done = client
        .retrain(request)
        .await
        .map_err(crate::grpc::failure)?
        .into_inner();
    if args.json {
        return crate::grpc::print_json(&done);
    }
    for m in &done.models {
        print_model(m);
    }
    for note in &done.notes {
        println!("no candidate: {note}");
    }
    Ok(())
}

async fn list_models(args: ModelsArgs) -> anyhow::Result<()> {
    let mut client = models_client(&args.target).await?;
    let request = args.target.request(ListModelsRequest {
        slot: args.slot,
        page: Some(PageRequest {
            page_size: args.page_size,
            page_token: String::new(),
        }),
    })?;
    let list = client
        .list_models(request)
        .await
        .map_err(crate::grpc::failure)?
        .into_inner();
    if args.json {
        return crate::grpc::print_json(&list);
    }
    for m in &list.models {
        print_model(m);
    }
    Ok(())
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let mut client = models_client(&args.target).await?;
    let request = args.target.request(RollbackRequest {
        slot: args.slot,
        to_version: args.to,
    })?;
    let done = client
        .rollback(request)
        .await
        .map_err(crate::grpc::failure)?
        .into_inner();
    let active = if done.active_version.is_empty() {
        "the configured model".to_owned()
    } else {
        done.active_version
    };
    println!(
        "{}: {} rolled back; {active} is active on every replica",
        done.slot, done.rolled_back_version
    );
    Ok(())
}

fn print_model(m: &ModelRecord) {
    let figures = |s: &Option<ShadowMetrics>| {
        s.as_ref().map_or("-".to_owned(), |s| {
            format!(
                "{}: accuracy {:.3}, auto-routed {} ({} right, precision {})",
                s.model_version,
                s.accuracy,
                s.auto_routed,
                s.auto_routed_correct,
                s.auto_routed_precision
                    .map_or("-".to_owned(), |p| format!("{p:.3}"))
            )
        })
    };
    println!(
        "{}  {}  {}  {}  trained on {}, judged on {} ({})",
        m.version, m.slot, m.status, m.decision, m.training_examples, m.shadow_examples, m.trigger
    );
    println!("  candidate {}", figures(&m.candidate));
    println!("  current   {}", figures(&m.current));
    println!("  {}", m.reason);
}

/// What a trained model records about itself.
struct Scheme {
    model_version: String,
    label_scheme: String,
    target_precision: f32,
}

impl Scheme {
    /// The library's defaults for the examples, with this version, scheme and target.
    fn options(self, examples: &[redress_classifier::Example]) -> TrainOptions {
        let mut options = options_for(examples, &self.label_scheme);
        options.model_version = self.model_version;
        options.label_scheme = self.label_scheme;
        options.target_precision = self.target_precision;
        options
    }
}

async fn train(data: &Data, out: &Path, scheme: Scheme, holdout: bool) -> anyhow::Result<()> {
    let examples = data.load()?;
    let (train, test) = if holdout {
        eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED)
    } else {
        (examples, Vec::new())
    };
    let target_precision = scheme.target_precision;
    let options = scheme.options(&train);
    let started = Instant::now();
    let model = tokio::task::spawn_blocking(move || {
        let bar = progress_bar();
        let model = Model::train(&train, &options, |p| show(&bar, p));
        bar.finish_and_clear();
        model
    })
    .await??;
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    if !test.is_empty() {
        println!(
            "{}",
            eval::evaluate_at(&model, &test, target_precision).to_table()
        );
    }
    Ok(())
}

async fn bootstrap_history(
    data: &Data,
    out: &Path,
    scheme: Scheme,
    json: bool,
) -> anyhow::Result<()> {
    let examples = data.load()?;
    let options = scheme.options(&examples);
    let started = Instant::now();
    let (model, report) = tokio::task::spawn_blocking(move || {
        let bar = progress_bar();
        let trained = bootstrap(&examples, &options, |p| show(&bar, p));
        bar.finish_and_clear();
        trained
    })
    .await??;
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
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

fn evaluate(
    data: &Data,
    model: &Path,
    holdout: bool,
    json: bool,
    target_precision: f32,
) -> anyhow::Result<()> {
    let examples = data.load()?;
    let examples = if holdout {
        eval::split(&examples, 0.2, DEFAULT_SPLIT_SEED).1
    } else {
        examples
    };
    let model = load_model(model)?;
    warn_of_unknown_labels(&model, &examples);
    if model.calibration().is_none() {
        eprintln!(
            "note: {} has no stored calibration (an artifact from before format 4): its confidence is the softmax's and the target precision itself is its threshold",
            model.header().model_version
        );
    }
    let report = eval::evaluate_at(&model, &examples, target_precision);
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

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn show(bar: &ProgressBar, p: Progress) {
    bar.set_length(p.total);
    bar.set_position(p.done);
    bar.set_message(match p.stage {
        Stage::Featurizing => "featurizing",
        Stage::Calibrating => "calibrating",
        Stage::Fitting => "fitting",
        Stage::Done => "done",
    });
}
