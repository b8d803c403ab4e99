//! The `compose` command line.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "compose",
    version,
    about = "Compose OCI images from apk packages"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
