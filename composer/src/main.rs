//! The `compose` command line: parse arguments, call the library, report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use composer::image::{self, ComposeOptions, ImageFile};

#[derive(Parser)]
#[command(
    name = "compose",
    version,
    about = "Compose OCI images from apk packages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// An apko-format image file.
    image: PathBuf,
    /// Architectures (apk or OCI names, comma-separated, or `all`); default: the file's.
    #[arg(long)]
    arch: Option<String>,
    /// Accept indexes that no key in `contents.keyring` signed.
    #[arg(long)]
    allow_untrusted: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Compose the image into an OCI layout and print the image index digest.
    Build {
        #[command(flatten)]
        common: Common,
        /// The OCI layout directory to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// The tag the image index gets in the layout's index.json.
        #[arg(long, default_value = "latest")]
        tag: String,
    },
    /// Print the packages the image would contain, one `name version` per line, per
    /// architecture, without downloading them.
    ShowPackages {
        #[command(flatten)]
        common: Common,
    },
}

impl Common {
    fn options(&self) -> anyhow::Result<ComposeOptions> {
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(|_| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?),
            _ => None,
        };
        Ok(ComposeOptions {
            archs: match &self.arch {
                Some(list) => apk::Arch::parse_list(list)?,
                None => Vec::new(),
            },
            allow_untrusted: self.allow_untrusted,
            source_date_epoch: epoch,
        })
    }
}

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compose: error: {}", apk::error::display_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build { common, out, tag } => {
            let image = ImageFile::load(&common.image)?;
            let written = image::compose(&image, &out, &tag, &common.options()?)?;
            println!("{}", out.display());
            println!("{}", written.index.digest);
        }
        Command::ShowPackages { common } => {
            let opts = common.options()?;
            let image = ImageFile::load(&common.image)?;
            let fetcher = composer::repo::Fetcher::new(&image.base);
            let keyring = composer::repo::load_keyring(&fetcher, &image.config.contents.keyring)?;
            let archs = image.archs(&opts.archs)?;
            for solved in image::solve_all(&image, &archs, &keyring, &opts)? {
                if archs.len() > 1 {
                    println!("# {}", solved.arch);
                }
                let mut lines: Vec<String> = solved
                    .packages
                    .iter()
                    .map(|(_, e)| format!("{} {}", e.info.name, e.info.version))
                    .collect();
                lines.sort();
                for line in lines {
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}
