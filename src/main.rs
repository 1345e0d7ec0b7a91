//! The `berth` binary: all logic lives in the library; this is only the process edge.

fn main() -> std::process::ExitCode {
    berth::cli::run()
}
