fn main() -> std::process::ExitCode {
    cni::run(&loopback::Loopback)
}
