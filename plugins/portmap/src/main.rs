fn main() -> std::process::ExitCode {
    cni::run(&portmap::Portmap)
}
