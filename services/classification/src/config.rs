//! Classification's settings.

use std::path::PathBuf;

use clap::{Args, Parser};
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
