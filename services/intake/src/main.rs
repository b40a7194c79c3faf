//! `redress-intake`: the intake service on its own (`rotate-key` re-seals personal data).

fn main() -> std::process::ExitCode {
    redress_runtime::main(redress_intake::SERVICE, redress_intake::main)
}
