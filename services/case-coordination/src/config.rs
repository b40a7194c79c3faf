//! Case-coordination's settings: the runtime's, plus the regime, the routing rules and the
//! handler roster, and how often deadline timers are checked.

use std::path::PathBuf;

use clap::{Args, Parser};
use redress_runtime::{RuntimeConfig, ServiceConfig};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "redress-case-coordination",
    about = "Redress case coordination: routes, works and decides every complaint within its deadline"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
    #[command(flatten)]
    pub cases: CasesConfig,
}

impl ServiceConfig for Config {
    fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }
}

#[derive(Debug, Clone, Args)]
pub struct CasesConfig {
    /// The regulatory regime deadlines follow (cn-nfra, us-cfpb, uk-fca), see crates/regime.
    #[arg(long, env = "REDRESS_REGIME", default_value = "cn-nfra")]
    pub regime: String,

    /// A routing rules file; the shipped rules/routing-v1.toml when not set.
    #[arg(long, env = "REDRESS_CASES_ROUTING")]
    pub routing: Option<PathBuf>,

    /// A handler roster file; the shipped rules/roster-v1.toml when not set.
    #[arg(long, env = "REDRESS_CASES_ROSTER")]
    pub roster: Option<PathBuf>,

    /// How often each replica looks for deadline timers that are due.
    #[arg(long, env = "REDRESS_CASES_TIMER_POLL", default_value = "1s",
          value_parser = redress_runtime::config::parse_duration)]
    pub timer_poll: std::time::Duration,
}

impl Default for CasesConfig {
    fn default() -> Self {
        redress_runtime::config::defaults_of()
    }
}
