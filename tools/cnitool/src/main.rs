fn main() {
    cni::embed_marker!();
    std::process::exit(cnitool::cli::main());
}
