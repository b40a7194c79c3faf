//! `redress-notification`: the notification service on its own.

fn main() -> std::process::ExitCode {
    redress_runtime::main(redress_notification::SERVICE, redress_notification::run)
}
