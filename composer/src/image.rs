//! `compose build`: an apko image file, for each architecture, through verified
//! repositories and the solver into one layer, then into an OCI layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use apk::gzip::DeflateMemo;
use apk::index::IndexEntry;
use apk::sbom::{self, ImagePackage, ImageSbomInput, OperatingSystem};
use apk::solver::{self, Repository};
use apk::tarball::Owner;
use apk::{Arch, Dependency, Keyring};
use imageconfig::ImageConfiguration;
use rayon::prelude::*;

use crate::layer::{self, ApkFiles, Extra, ExtraKind, Tree, Unpacked};
use crate::lock::{self, Lock};
use crate::oci::{self, ArchImage, ImageConfig, WrittenLayout};
use remote::repository::{self as repo, Fetcher, LoadedRepo, RepoSpec};

/// The PATH an image gets unless its `environment` sets one (apko's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How to compose.
#[derive(Clone, Debug, Default)]
pub struct ComposeOptions {
    /// Overrides the file's `archs`; empty keeps them (default: all five).
    pub archs: Vec<Arch>,
    pub allow_untrusted: bool,
    /// `SOURCE_DATE_EPOCH`; by default the newest build time of the chosen packages.
    pub source_date_epoch: Option<u64>,
    /// Solve even when a lock file sits beside the image file.
    pub no_lock: bool,
    /// The download cache, --offline, timeouts and progress for http(s) repositories.
    pub remote: remote::Settings,
}

/// An image file, read, with what its relative paths resolve against.
pub struct ImageFile {
    pub path: PathBuf,
    pub config: ImageConfiguration,
    /// The file's directory: repositories and keys given as relative paths are there.
    pub base: PathBuf,
}

impl ImageFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let config = ImageConfiguration::load(path)?;
        let problems = config.validate();
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
            bail!(
                "{}: the image configuration is not valid:\n{}",
                path.display(),
                list.join("\n")
            );
        }
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(ImageFile {
            path: path.to_path_buf(),
            config,
            base,
        })
    }

    /// The architectures to build: the override, else the file's, else all five.
    pub fn archs(&self, overrides: &[Arch]) -> anyhow::Result<Vec<Arch>> {
        if !overrides.is_empty() {
            return Ok(overrides.to_vec());
        }
        if self.config.archs.is_empty() {
            return Ok(Arch::ALL.to_vec());
        }
        Arch::parse_list(&self.config.archs.join(","))
            .with_context(|| format!("{}: archs", self.path.display()))
    }

    /// `contents.packages` as apk dependencies: the world.
    pub fn world(&self) -> anyhow::Result<Vec<Dependency>> {
        self.config
            .contents
            .packages
            .iter()
            .map(|p| {
                p.parse::<Dependency>()
                    .with_context(|| format!("{}: contents.packages", self.path.display()))
            })
            .collect()
    }

    /// What reads the image's repositories and keys, and its keyring, loaded.
    pub fn open_repositories(&self, opts: &ComposeOptions) -> anyhow::Result<(Fetcher, Keyring)> {
        let fetcher = Fetcher::new(&self.base, &opts.remote)?;
        let keyring = repo::load_keyring(&fetcher, &self.config.contents.keyring)?;
        Ok((fetcher, keyring))
    }

    fn repositories(&self) -> anyhow::Result<Vec<RepoSpec>> {
        let c = &self.config.contents;
        c.repositories
            .iter()
            .chain(&c.build_repositories)
            .map(|r| {
                r.parse::<RepoSpec>().map_err(|e| {
                    anyhow::anyhow!("{}: contents.repositories: {e}", self.path.display())
                })
            })
            .collect()
    }
}

/// One architecture, solved: the chosen packages with their repositories, in install order.
pub struct Solved {
    pub arch: Arch,
    repos: Vec<LoadedRepo>,
    /// (index into `repos`, entry), dependencies first.
    pub packages: Vec<(usize, IndexEntry)>,
}

impl Solved {
    /// The repositories loaded for this architecture, as `packages` index them.
    pub fn repos(&self) -> &[LoadedRepo] {
        &self.repos
    }
}

/// The verified indexes of the image's repositories for `arch`.
fn load_repos(
    image: &ImageFile,
    fetcher: &Fetcher,
    arch: Arch,
    keyring: &Keyring,
    opts: &ComposeOptions,
) -> anyhow::Result<Vec<LoadedRepo>> {
    Ok(image
        .repositories()?
        .iter()
        .map(|spec| fetcher.load_index(spec, arch, keyring, opts.allow_untrusted))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Load the repositories for `arch` and solve the world: what `show-packages` prints.
pub fn solve_arch(
    image: &ImageFile,
    fetcher: &Fetcher,
    arch: Arch,
    keyring: &Keyring,
    opts: &ComposeOptions,
) -> anyhow::Result<Solved> {
    let repos = load_repos(image, fetcher, arch, keyring, opts)?;
    let packages = solve_world(image, arch, &repos, &image.world()?)?;
    Ok(Solved {
        arch,
        repos,
        packages,
    })
}

/// Solve `world` over loaded repositories: the packages in install order.
fn solve_world(
    image: &ImageFile,
    arch: Arch,
    repos: &[LoadedRepo],
    world: &[Dependency],
) -> anyhow::Result<Vec<(usize, IndexEntry)>> {
    let solver_repos: Vec<Repository> = repos
        .iter()
        .map(|r| match &r.spec.tag {
            Some(tag) => Repository::tagged(tag.clone(), r.index.entries.clone()),
            None => Repository::new(r.index.entries.clone()),
        })
        .collect();
    let solution = solver::solve(&solver_repos, world, arch.apk())
        .map_err(|e| anyhow::anyhow!("{}: cannot solve for {arch}: {e}", image.path.display()))?;
    Ok(solution
        .install_order()
        .into_iter()
        .map(|(repo, entry)| (repo, entry.clone()))
        .collect())
}

/// Solve every architecture in parallel, then align their versions: what `build`
/// installs and `show-packages` prints.
pub fn solve_all(
    image: &ImageFile,
    fetcher: &Fetcher,
    archs: &[Arch],
    keyring: &Keyring,
    opts: &ComposeOptions,
) -> anyhow::Result<Vec<Solved>> {
    let mut solved: Vec<Solved> = archs
        .par_iter()
        .map(|&arch| solve_arch(image, fetcher, arch, keyring, opts))
        .collect::<anyhow::Result<_>>()?;
    align_versions(image, &mut solved)?;
    Ok(solved)
}

/// The packages to install for each architecture: exactly those of the lock file beside
/// the image file when there is one (unless `no_lock`), else the solver's. What `build`
/// installs and `show-packages` prints.
pub fn resolve(
    image: &ImageFile,
    fetcher: &Fetcher,
    archs: &[Arch],
    keyring: &Keyring,
    opts: &ComposeOptions,
) -> anyhow::Result<Vec<Solved>> {
    let path = lock::path_for(&image.path);
    if opts.no_lock || !path.exists() {
        return solve_all(image, fetcher, archs, keyring, opts);
    }
    let lock = Lock::read(&path)?;
    lock.check_config(&path, image)?;
    archs
        .par_iter()
        .map(|&arch| {
            let repos = load_repos(image, fetcher, arch, keyring, opts)?;
            let packages = lock.packages_for(&path, arch, &repos)?;
            Ok(Solved {
                arch,
                repos,
                packages,
            })
        })
        .collect()
}

/// Give every architecture the same version of a package wherever one version exists on
/// all of them: a package chosen at different versions is pinned to the newest version
/// every architecture's repositories have, and the arches are solved again with the pins.
/// An architecture whose pinned world does not solve keeps its own solution.
fn align_versions(image: &ImageFile, solved: &mut [Solved]) -> anyhow::Result<()> {
    let mut chosen: BTreeMap<&str, BTreeSet<&apk::Version>> = BTreeMap::new();
    for s in solved.iter() {
        for (_, e) in &s.packages {
            chosen
                .entry(&e.info.name)
                .or_default()
                .insert(&e.info.version);
        }
    }
    let mut pins = Vec::new();
    for (name, _) in chosen.iter().filter(|(_, versions)| versions.len() > 1) {
        let available = |s: &Solved| -> BTreeSet<apk::Version> {
            s.repos
                .iter()
                .flat_map(|r| &r.index.entries)
                .filter(|e| e.info.name == *name)
                .map(|e| e.info.version.clone())
                .collect()
        };
        let mut common = available(&solved[0]);
        for s in &solved[1..] {
            let here = available(s);
            common.retain(|v| here.contains(v));
        }
        if let Some(newest) = common.into_iter().max() {
            pins.push(format!("{name}={newest}").parse::<Dependency>()?);
        }
    }
    if pins.is_empty() {
        return Ok(());
    }
    let mut world = image.world()?;
    world.extend(pins);
    for s in solved.iter_mut() {
        if let Ok(packages) = solve_world(image, s.arch, &s.repos, &world) {
            s.packages = packages;
        }
    }
    Ok(())
}

/// Compose the image at `out` (an OCI layout, replaced atomically) and return its digests.
pub fn compose(
    image: &ImageFile,
    out: &Path,
    tag: &str,
    opts: &ComposeOptions,
) -> anyhow::Result<WrittenLayout> {
    let (fetcher, keyring) = image.open_repositories(opts)?;
    let archs = image.archs(&opts.archs)?;
    // Solve every architecture first: the default timestamp is the newest package of all.
    let solved = resolve(image, &fetcher, &archs, &keyring, opts)?;
    let mtime = opts.source_date_epoch.unwrap_or_else(|| {
        solved
            .iter()
            .flat_map(|s| &s.packages)
            .map(|(_, e)| e.info.build_time)
            .max()
            .unwrap_or(0)
    });
    let apk_files = apk_files(image)?;
    let staging = oci::staging_dir(out);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    // Every architecture's missing packages in one batch, so the downloads run
    // concurrently; each is then read back from the cache when it is installed.
    let wanted: Vec<(&LoadedRepo, &IndexEntry)> = solved
        .iter()
        .flat_map(|s| s.packages.iter().map(|(r, e)| (&s.repos[*r], e)))
        .collect();
    fetcher.prefetch_packages(&wanted)?;
    let trees: Vec<(Tree, OperatingSystem)> = solved
        .par_iter()
        .map(|s| {
            install(image, s, &fetcher, &apk_files)
                .with_context(|| format!("{} for {}", image.path.display(), s.arch))
        })
        .collect::<anyhow::Result<_>>()?;
    let layers = write_layers(&trees, &staging, mtime)?;
    let mut images = Vec::with_capacity(layers.len());
    let mut sboms = Vec::with_capacity(layers.len());
    for ((s, (_, os)), layer) in solved.iter().zip(&trees).zip(layers) {
        sboms.push(sbom_file(image, s, os, tag, mtime));
        images.push(ArchImage {
            arch: s.arch,
            layer,
        });
    }
    let written = oci::write_layout(
        out,
        tag,
        mtime,
        &runtime_config(&image.config),
        images,
        &sboms,
    )?;
    Ok(written)
}

/// `sbom-<apk arch>.spdx.json`, as apko names it: the SPDX 2.3 document of one
/// architecture's installed packages, with the dependencies the solver met between them.
/// The distro namespace of the purls is the image's `os-release` `ID` (apko's rule), else
/// `unknown`.
fn sbom_file(
    image: &ImageFile,
    solved: &Solved,
    os: &OperatingSystem,
    tag: &str,
    created: u64,
) -> (String, Vec<u8>) {
    let packages = ImagePackage::from_entries(solved.packages.iter().map(|(_, e)| e));
    let name = image
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let json = sbom::image_spdx_json(&ImageSbomInput {
        name: &name,
        tag,
        arch: solved.arch,
        created,
        os,
        namespace: &os.id,
        packages: &packages,
    });
    (
        format!("sbom-{}.spdx.json", solved.arch.apk()),
        json.into_bytes(),
    )
}

/// Every architecture's layer, in the order of `trees`. The architectures of one image
/// mostly hold the same files (noarch packages, data, scripts), which deflate to the same
/// chunks: the first layer is written alone, on every core, and the others then take the
/// chunks it shares with them from a memo instead of deflating them again. The bytes are
/// the same as without the memo.
fn write_layers(
    trees: &[(Tree, OperatingSystem)],
    staging: &Path,
    mtime: u64,
) -> anyhow::Result<Vec<layer::Layer>> {
    let Some(((first, _), rest)) = trees.split_first() else {
        return Ok(Vec::new());
    };
    let memo = if rest.is_empty() {
        None
    } else {
        let memo = DeflateMemo::new_in(staging)
            .with_context(|| format!("creating a temporary file in {}", staging.display()))?;
        Some(Arc::new(memo))
    };
    let mut layers = vec![first.write_layer(staging, mtime, memo.as_ref())?];
    let others: Vec<layer::Layer> = rest
        .par_iter()
        .map(|(tree, _)| tree.write_layer(staging, mtime, memo.as_ref()))
        .collect::<Result<_, _>>()?;
    layers.extend(others);
    Ok(layers)
}

/// Install the solved packages (read through `fetcher`, which checks each against its
/// index) and add accounts and `paths`. Returns the tree with the operating system its
/// `os-release` describes.
fn install(
    image: &ImageFile,
    solved: &Solved,
    fetcher: &Fetcher,
    apk_files: &ApkFiles,
) -> anyhow::Result<(Tree, OperatingSystem)> {
    // Each package is fetched, verified and unpacked to a spool file in one step, so
    // that only the packages being unpacked are in memory, not the whole image.
    let unpacked: Vec<Unpacked> = solved
        .packages
        .par_iter()
        .map(|(r, entry)| {
            let repo = &solved.repos[*r];
            let bytes = fetcher.fetch_package(repo, entry)?;
            let name = entry.info.file_stem();
            Ok(Unpacked::read(&bytes, &name, repo.spec.tag.clone())?)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut tree = Tree::install_unpacked(solved.arch, unpacked, apk_files)?;
    for extra in account_extras(&image.config, &tree)? {
        tree.apply(&extra)?;
    }
    for extra in path_extras(image)? {
        tree.apply(&extra)?;
    }
    // `etc/os-release` is often a symlink to `../usr/lib/os-release` (os-release(5)).
    let mut os_release = None;
    for path in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(text) = tree.file(path)? {
            os_release = Some(String::from_utf8_lossy(&text).into_owned());
            break;
        }
    }
    let os = OperatingSystem::from_os_release(os_release.as_deref());
    Ok((tree, os))
}

/// `etc/apk/world`, `repositories` and the keyring, as apko writes them into the image.
fn apk_files(image: &ImageFile) -> anyhow::Result<ApkFiles> {
    let c = &image.config.contents;
    let mut keys = BTreeMap::new();
    for key in &c.keyring {
        let path = image.base.join(key);
        if let Ok(bytes) = std::fs::read(&path) {
            let name = key.rsplit('/').next().unwrap_or(key).to_string();
            keys.insert(name, bytes);
        }
    }
    Ok(ApkFiles {
        world: c.packages.clone(),
        repositories: c
            .repositories
            .iter()
            .chain(&c.runtime_repositories)
            .cloned()
            .collect(),
        keys,
    })
}

/// `accounts`: users and groups merged into `etc/passwd` and `etc/group` (replacing
/// entries of the same name), and each user's home directory.
fn account_extras(config: &ImageConfiguration, tree: &Tree) -> anyhow::Result<Vec<Extra>> {
    let accounts = &config.accounts;
    if accounts.users.is_empty() && accounts.groups.is_empty() {
        return Ok(Vec::new());
    }
    let existing = |path: &str| -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&tree.file(path)?.unwrap_or_default()).into_owned())
    };
    let merge = |text: String, lines: Vec<(String, String)>| {
        let names: BTreeSet<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty() && !names.contains(l.split(':').next().unwrap_or("")))
            .map(str::to_string)
            .collect();
        out.extend(lines.into_iter().map(|(_, l)| l));
        out.join("\n") + "\n"
    };
    let groups = accounts
        .groups
        .iter()
        .map(|g| {
            (
                g.groupname.clone(),
                format!("{}:x:{}:{}", g.groupname, g.gid, g.members.join(",")),
            )
        })
        .collect();
    let mut extras = Vec::new();
    let users = accounts
        .users
        .iter()
        .map(|u| {
            let gid = u.gid.unwrap_or(u.uid);
            let home = u
                .homedir
                .clone()
                .unwrap_or_else(|| format!("/home/{}", u.username));
            let shell = u.shell.clone().unwrap_or_else(|| "/bin/sh".into());
            extras.push(Extra {
                path: home.clone(),
                kind: ExtraKind::Directory { recursive: false },
                mode: Some(0o755),
                owner: Some(Owner {
                    uid: u.uid,
                    gid,
                    uname: String::new(),
                    gname: String::new(),
                }),
            });
            (
                u.username.clone(),
                format!(
                    "{}:x:{}:{gid}:{}:{home}:{shell}",
                    u.username, u.uid, u.username
                ),
            )
        })
        .collect();
    let mut out = vec![
        Extra::file("etc/passwd", merge(existing("etc/passwd")?, users), 0o644),
        Extra::file("etc/group", merge(existing("etc/group")?, groups), 0o644),
    ];
    out.extend(extras);
    Ok(out)
}

/// `paths`: apko's directory, empty-file, symlink, hardlink and permissions mutations.
fn path_extras(image: &ImageFile) -> anyhow::Result<Vec<Extra>> {
    image
        .config
        .paths
        .iter()
        .map(|p| {
            let source = || {
                p.source.clone().with_context(|| {
                    format!("{}: paths: {} needs `source`", image.path.display(), p.path)
                })
            };
            let kind = match p.kind.as_str() {
                "directory" => ExtraKind::Directory {
                    recursive: p.recursive,
                },
                "empty-file" => ExtraKind::File(Vec::new()),
                "symlink" => ExtraKind::Symlink(source()?),
                "hardlink" => ExtraKind::Hardlink(source()?),
                "permissions" => ExtraKind::Permissions {
                    recursive: p.recursive,
                },
                other => bail!(
                    "{}: paths: unknown type {other:?} for {}",
                    image.path.display(),
                    p.path
                ),
            };
            Ok(Extra {
                path: p.path.clone(),
                kind,
                mode: p.permissions,
                owner: Some(Owner {
                    uid: p.uid,
                    gid: p.gid,
                    uname: String::new(),
                    gname: String::new(),
                }),
            })
        })
        .collect()
}

/// The image's runtime configuration from the file.
pub fn runtime_config(config: &ImageConfiguration) -> ImageConfig {
    let e = &config.entrypoint;
    let entrypoint = match (&e.command, &e.shell_fragment) {
        (Some(cmd), _) => cmd.split_whitespace().map(String::from).collect(),
        (None, Some(fragment)) => vec!["/bin/sh".into(), "-c".into(), fragment.clone()],
        (None, None) => Vec::new(),
    };
    let mut env = config.environment.clone();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    ImageConfig {
        entrypoint,
        cmd: config
            .cmd
            .as_deref()
            .map(|c| c.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        env,
        work_dir: config.work_dir.clone(),
        user: config.accounts.run_as.clone(),
        stop_signal: config.stop_signal.clone(),
        volumes: config.volumes.iter().cloned().collect(),
        annotations: config.annotations.clone(),
    }
}
