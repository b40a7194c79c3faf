fn main() -> std::process::ExitCode {
    redress_runtime::main(redress_example_tally::SERVICE, redress_example_tally::run)
}
