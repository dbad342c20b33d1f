fn main() -> std::process::ExitCode {
    cni::run(&bridge::Bridge)
}
