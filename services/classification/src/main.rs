//! `redress-classification`: the classification service on its own (`export-examples` writes
//! the specialists' labelled examples).

fn main() -> std::process::ExitCode {
    redress_runtime::main(
        redress_classification::SERVICE,
        redress_classification::main,
    )
}
