//! Classification's settings.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser};
use redress_classifier::{Language, taxonomy::Dimension};
use redress_runtime::{RuntimeConfig, ServiceConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-classification",
    about = "Redress classification: nature and severity of every complaint"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub classification: ClassificationConfig,
    /// Without a command, the service runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

/// Operations on classification's own schema, run by its own binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write the specialists' labelled examples as CSV (text, category, cause, language) for
    /// `redress classification train`, then exit.
    ExportExamples {
        /// Where to write the CSV.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ClassificationConfig {
    /// How often a classification that skips review must be right (0–1): each label's
    /// confidence threshold is the one that reached this precision on held-out data when its
    /// model was trained. Below it a complaint waits in the review queue for a specialist.
    #[arg(long, env = "REDRESS_CLASSIFICATION_TARGET_PRECISION", default_value_t = 0.9,
          value_parser = fraction)]
    pub target_precision: f32,

    /// A Chinese text model trained by `redress classification train` (none ships: the
    /// public training data is English; without one Chinese complaints are classified by rules
    /// and go to review).
    #[arg(long, env = "REDRESS_CLASSIFICATION_ZH_MODEL")]
    pub zh_model: Option<PathBuf>,

    /// An English model to use instead of the shipped CFPB model.
    #[arg(long, env = "REDRESS_CLASSIFICATION_EN_MODEL")]
    pub en_model: Option<PathBuf>,

    #[command(flatten)]
    pub retrain: RetrainConfig,
}

/// Learning from specialists: when and what to retrain, and how a candidate is judged.
#[derive(Debug, Clone, Args)]
pub struct RetrainConfig {
    /// How often a candidate model is trained from the base data and the overrides and run
    /// in shadow (periods aligned on the Unix epoch, so every replica names the same run;
    /// `0` = only on command, `redress classification retrain`).
    #[arg(long = "retrain-interval", env = "REDRESS_CLASSIFICATION_RETRAIN_INTERVAL",
          default_value = "7d", value_parser = redress_runtime::config::parse_duration)]
    pub interval: Duration,

    /// The models retrained, as `language-dimension` slots (zh-cause, zh-category, en-cause,
    /// en-category). Chinese causes by default: the product catalogue decides most Chinese
    /// categories, the text the cause, and no Chinese model ships.
    #[arg(long = "retrain-slots", env = "REDRESS_CLASSIFICATION_RETRAIN_SLOTS",
          value_delimiter = ',', default_value = "zh-cause", value_parser = Slot::parse)]
    pub slots: Vec<Slot>,

    /// Base training data: a CSV in the `export-examples` shape (text, category, cause,
    /// language; taxonomy codes), e.g. an old system's history. Without it, candidates learn
    /// from the overrides alone.
    #[arg(
        long = "retrain-base-data",
        env = "REDRESS_CLASSIFICATION_RETRAIN_BASE_DATA"
    )]
    pub base_data: Option<PathBuf>,

    /// How many of the most recent overrides of a slot's language are kept out of training
    /// and used to compare the candidate with the active model.
    #[arg(
        long = "shadow-examples",
        env = "REDRESS_CLASSIFICATION_SHADOW_EXAMPLES",
        default_value_t = 200
    )]
    pub shadow_examples: usize,

    /// Fewest shadow examples for a verdict (fewer prove nothing: the candidate is kept out).
    #[arg(
        long = "shadow-min-examples",
        env = "REDRESS_CLASSIFICATION_SHADOW_MIN_EXAMPLES",
        default_value_t = 30
    )]
    pub shadow_min_examples: usize,

    /// How often each replica checks the active models, in case a change notification was
    /// missed (a notification normally switches it at once).
    #[arg(long = "model-poll", env = "REDRESS_CLASSIFICATION_MODEL_POLL", default_value = "30s",
          value_parser = redress_runtime::config::parse_duration)]
    pub model_poll: Duration,
}

/// A retrainable model: its language and what it predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub language: Language,
    pub dimension: Dimension,
}

impl Slot {
    pub fn parse(text: &str) -> Result<Slot, String> {
        let (language, dimension) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("`{text}` is not a slot such as zh-cause or en-category"))?;
        let language = match language {
            "zh" => Language::Zh,
            "en" => Language::En,
            other => return Err(format!("`{other}` in `{text}`: the language is zh or en")),
        };
        let dimension = match dimension {
            "cause" => Dimension::Cause,
            "category" => Dimension::Category,
            other => {
                return Err(format!(
                    "`{other}` in `{text}`: the dimension is cause or category"
                ));
            }
        };
        Ok(Slot {
            language,
            dimension,
        })
    }

    pub fn language_code(&self) -> &'static str {
        match self.language {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    pub fn dimension_name(&self) -> &'static str {
        match self.dimension {
            Dimension::Cause => "cause",
            Dimension::Category => "category",
        }
    }

    /// The label scheme of a model trained on taxonomy codes of this dimension.
    pub fn label_scheme(&self) -> &'static str {
        match self.dimension {
            Dimension::Cause => "taxonomy_cause",
            Dimension::Category => "taxonomy_category",
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.language_code(), self.dimension_name())
    }
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}

fn fraction(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a number between 0 and 1")),
    }
}
