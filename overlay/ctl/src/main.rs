//! `overlayctl`: exit status 0 done, 1 failed (reason on stderr), 2 bad
//! command line (clap's).

fn main() -> std::process::ExitCode {
    cni::embed_marker!();
    overlayctl::main()
}
