fn main() -> std::process::ExitCode {
    cni::run(&host_local::HostLocal)
}
