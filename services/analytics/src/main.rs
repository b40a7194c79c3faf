//! `redress-analytics`: the analytics service, or `redress-analytics rebuild --from <time>`.

fn main() -> std::process::ExitCode {
    redress_runtime::main(redress_analytics::SERVICE, redress_analytics::run)
}
