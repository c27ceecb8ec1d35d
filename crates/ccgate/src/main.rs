fn main() -> std::process::ExitCode {
    ccgate::cli::main()
}
