//! Classification's settings.

use std::path::PathBuf;

use clap::{Args, Parser};
use redress_runtime::RuntimeConfig;

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
}

#[derive(Debug, Clone, Args)]
pub struct ClassificationConfig {
    /// Below this confidence a complaint waits in the review queue for a specialist.
    #[arg(
        long,
        env = "REDRESS_CLASSIFICATION_REVIEW_THRESHOLD",
        default_value_t = 0.7
    )]
    pub review_threshold: f32,

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
        Self {
            review_threshold: 0.7,
            zh_model: None,
            en_model: None,
        }
    }
}
