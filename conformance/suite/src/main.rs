fn main() -> std::process::ExitCode {
    cni_conformance::cli::main(std::env::args_os().skip(1).collect())
}
