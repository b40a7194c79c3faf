//! `redress-case-coordination`: the case-coordination service on its own.

fn main() -> std::process::ExitCode {
    redress_runtime::main(
        redress_case_coordination::SERVICE,
        redress_case_coordination::run,
    )
}
