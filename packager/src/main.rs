//! The `pkgr` command line: parse arguments, call the library, report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use packager::repo;

#[derive(Parser)]
#[command(
    name = "pkgr",
    version,
    about = "Build signed apk packages and repository indexes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an RSA signing key: PATH (private, PKCS#1 PEM, 0600) and PATH.pub.
    Keygen {
        #[arg(long, default_value_t = apk::key::DEFAULT_KEY_BITS)]
        key_size: usize,
        #[arg(default_value = "pkgr.rsa")]
        path: PathBuf,
    },
    /// Write a repository index (APKINDEX.tar.gz) for the given packages.
    Index {
        /// Private key to sign the index with; its public key is known as KEY.pub.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// Text of the index's DESCRIPTION.
        #[arg(long)]
        description: Option<String>,
        #[arg(short, long, default_value = "APKINDEX.tar.gz")]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        digest: Digest,
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
    /// Sign an index in place, replacing any signature it had.
    SignIndex {
        #[arg(long)]
        signing_key: PathBuf,
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        digest: Digest,
        index: PathBuf,
    },
    /// Verify packages (*.apk) and indexes against the public keys in a directory.
    Verify {
        #[arg(long)]
        keys_dir: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The digest under the RSA signature: sha256 (`.SIGN.RSA256.`, the default) or sha1
/// (`.SIGN.RSA.`, for apk-tools older than 2.12).
#[derive(Clone, Copy, ValueEnum)]
enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl From<Digest> for apk::SignatureAlgorithm {
    fn from(d: Digest) -> Self {
        match d {
            Digest::Sha1 => Self::Sha1,
            Digest::Sha256 => Self::Sha256,
            Digest::Sha512 => Self::Sha512,
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pkgr: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let epoch = packager::source_date_epoch()?;
    match cli.command {
        Command::Keygen { key_size, path } => {
            let public = repo::keygen(&path, key_size)
                .with_context(|| format!("generating {}", path.display()))?;
            println!("{}", path.display());
            println!("{}", public.display());
        }
        Command::Index {
            signing_key,
            description,
            output,
            digest,
            packages,
        } => {
            repo::index(&repo::IndexOptions {
                packages: &packages,
                output: &output,
                signing_key: signing_key.as_deref(),
                description,
                algorithm: digest.into(),
                mtime: epoch,
            })?;
            println!("{}", output.display());
        }
        Command::SignIndex {
            signing_key,
            digest,
            index,
        } => {
            repo::sign_index(&index, &signing_key, digest.into(), epoch)?;
            println!("{}", index.display());
        }
        Command::Verify { keys_dir, files } => {
            let mut failed = false;
            for v in repo::verify(&keys_dir, &files)? {
                match v.result {
                    Ok(key) => println!("{}: OK (signed by {key})", v.path.display()),
                    Err(e) => {
                        failed = true;
                        println!("{}: FAILED: {e}", v.path.display());
                    }
                }
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
