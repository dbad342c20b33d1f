fn main() -> std::process::ExitCode {
    overlayd::main()
}
