//! `redress notification preview`: renders any notice template with sample data, offline
//! (the same templates and sample the service's Preview RPC uses).

use anyhow::Context;
use redress_notification::templates::{self, Templates, sample_facts, sms_length};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Render a template: `redress notification preview decision --channel sms --language en`.
    Preview {
        /// receipt, assigned, extended, clock_paused, input_requested, decision, review_outcome,
        /// satisfaction_survey, satisfaction_reminder, withdrawal_confirmed.
        kind: String,
        /// email or sms.
        #[arg(long, default_value = "email")]
        channel: String,
        /// zh-CN or en.
        #[arg(long, default_value = "zh-CN")]
        language: String,
        /// The 【signature】 an SMS begins with.
        #[arg(long, env = "REDRESS_SMS_SIGNATURE", default_value = "Redress")]
        signature: String,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let Command::Preview {
        kind,
        channel,
        language,
        signature,
    } = command;
    if !templates::LANGUAGES.contains(&language.as_str()) {
        anyhow::bail!("--language `{language}`: zh-CN or en");
    }
    let templates = Templates::shipped(&signature).context("loading the templates")?;
    let rendered = templates.render(&kind, &channel, &language, &sample_facts())?;
    println!("# {} v{}", rendered.template_id, rendered.version);
    if let Some(subject) = &rendered.subject {
        println!("Subject: {subject}\n");
    }
    println!("{}", rendered.body.trim_end());
    if channel == "sms" {
        let length = sms_length(&rendered.body);
        println!(
            "# {} units, {} segment(s), {}",
            length.units,
            length.segments,
            length.encoding.name()
        );
    }
    println!("# sha256 {}", rendered.sha256);
    Ok(())
}
