//! Automatic dependency scan of a staged package tree: the `so:`, `so-ver:`, `cmd:` and
//! `pc:` names a package provides and depends on, as melange's SCA (`pkg/sca/sca.go`,
//! with the self-provided filter of `pkg/build/package.go`) generates them.
//!
//! What is scanned, per file of the tree (walked in byte order of names):
//! - ELF files (magic checked first, then read whole): `PT_INTERP`, `DT_NEEDED` and
//!   `DT_SONAME`. Files built for another machine than the target are skipped and reported.
//! - symlinks whose path contains `.so`: the library they point at, looked up by base name
//!   in the library directories of this package and its relatives (a `-dev` package's
//!   `libz.so -> libz.so.1.3.1` depends on the runtime package's `so:libz.so.1`).
//! - executables directly in `bin`, `sbin`, `usr/bin`, `usr/sbin`: `cmd:` provides.
//! - shebangs of files under `usr/bin`, `usr/local/bin`, `usr/local/sbin`: `cmd:` depends.
//! - `*.pc` files: `pc:` provides, and depends from `Requires`, `Requires.private` and
//!   `Requires.internal`.
//!
//! Not covered (melange has them): Go build-info FIPS depends, Python/Ruby/Perl module
//! depends, `-doc` depends on man-db/texinfo, kernel module depends.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use apk::{Arch, Constraint, Dependency, Version};

/// melange's `package.options`: what the scan may add to a package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScaOptions {
    /// `no-provides`: drop every generated provide (`so:`, `so-ver:`, `cmd:`, `pc:`).
    pub no_provides: bool,
    /// `no-depends`: drop every generated depend.
    pub no_depends: bool,
    /// `no-commands`: drop `cmd:` names from both provides and depends.
    pub no_commands: bool,
    /// `no-versioned-shlib-deps`: never add `so-ver:NAME>=VERSION` (nor `pc:NAME>=VERSION`)
    /// depends, even when a [`ProvidedVersions`] source is given.
    pub no_versioned_shlib_deps: bool,
}

/// What the scan found, each list sorted by its text and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sca {
    /// `so:libz.so.1=1`, `so-ver:libz.so.1=1.3.1-r0`, `cmd:foo=1.2.3-r0`, `pc:zlib=1.3.1-r0`.
    pub provides: Vec<Dependency>,
    /// `so:libc.so.6`, `so-ver:libz.so.1>=1.3.1-r0`, `cmd:bash`, `pc:zlib`; never one the
    /// package vendors or (unless `no_provides` emptied the provides, as in melange)
    /// provides itself.
    pub depends: Vec<Dependency>,
    /// Libraries and `.pc` files shipped outside the standard directories (melange writes
    /// them as `# vendored = ...` comments in `.PKGINFO`); they satisfy the package's own
    /// depends but are not provided to others.
    pub vendored: Vec<Dependency>,
    /// ELF files that were not scanned (another machine, or unparsable), by path.
    pub skipped: Vec<SkippedElf>,
    /// Things worth telling the user that did not stop the scan (bad shebang, library
    /// without SONAME, unreadable `.pc` file).
    pub warnings: Vec<String>,
}

/// An ELF file the scan could not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedElf {
    /// Path relative to the staged tree, `/`-separated (`usr/bin/foo`).
    pub path: String,
    pub reason: SkipReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Built for another machine (or byte order) than the target architecture.
    ForeignMachine { e_machine: u16, little_endian: bool },
    /// Starts with the ELF magic but does not parse.
    Malformed(String),
}

impl fmt::Display for SkippedElf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            SkipReason::ForeignMachine {
                e_machine,
                little_endian,
            } => write!(
                f,
                "{}: ELF for machine {e_machine} ({}-endian), not the target architecture; \
                 its libraries were not scanned",
                self.path,
                if *little_endian { "little" } else { "big" }
            ),
            SkipReason::Malformed(why) => {
                write!(f, "{}: unparsable ELF, not scanned: {why}", self.path)
            }
        }
    }
}

/// Versions of names provided by the packages installed in the build environment, for
/// melange's versioned depends: `so-ver:libz.so.1>=1.3.1-r0` pins a binary to at least the
/// library package it was linked against.
pub trait ProvidedVersions {
    /// The minimum version to require of `name` (`so-ver:libz.so.1` or `pc:zlib`): the
    /// version of the installed package that provides `name` with a valid version (or of
    /// the package being built, if one of its packages provides it). `None` when nothing
    /// installed provides it with a version (then only the unversioned depend is added).
    fn provided_version(&self, name: &str) -> Option<Version>;
}

/// A scan failure: the staged tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScaError {
    #[error("scanning {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ScaError + '_ {
    move |source| ScaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Scans the staged tree `root` of one package of version `version` (`1.2.3-r0`) built for
/// `arch`. See [`Scan`] to add sibling packages and versioned depends.
pub fn analyze(
    root: &Path,
    arch: Arch,
    version: &Version,
    opts: &ScaOptions,
) -> Result<Sca, ScaError> {
    Scan::new(root, arch, version).options(*opts).run()
}

/// A configured scan of one package's staged tree.
pub struct Scan<'a> {
    root: &'a Path,
    arch: Arch,
    version: &'a Version,
    options: ScaOptions,
    relatives: Vec<&'a Path>,
    versions: Option<&'a dyn ProvidedVersions>,
}

impl<'a> Scan<'a> {
    pub fn new(root: &'a Path, arch: Arch, version: &'a Version) -> Self {
        Self {
            root,
            arch,
            version,
            options: ScaOptions::default(),
            relatives: Vec::new(),
            versions: None,
        }
    }

    pub fn options(mut self, options: ScaOptions) -> Self {
        self.options = options;
        self
    }

    /// Staged trees of the other packages of the same build (origin and subpackages), in
    /// recipe order: their `etc/ld.so.conf.d/*.conf` add library directories, and `.so`
    /// symlinks of this package are followed into them. `root` itself is always searched
    /// first and may be listed again harmlessly.
    pub fn relatives(mut self, relatives: &[&'a Path]) -> Self {
        self.relatives = relatives.to_vec();
        self
    }

    /// Source of versions for `so-ver:NAME>=V` and `pc:NAME>=V` depends. Without one (as
    /// `melange scan`, which has no package resolver) only unversioned depends are made.
    pub fn versions(mut self, versions: &'a dyn ProvidedVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    pub fn run(&self) -> Result<Sca, ScaError> {
        let mut trees = vec![self.root];
        trees.extend(self.relatives.iter().copied().filter(|p| *p != self.root));

        let mut lib_dirs: Vec<String> = LIB_DIRS.iter().map(|d| (*d).to_owned()).collect();
        for tree in &trees {
            lib_dirs.extend(ld_so_conf_dirs(tree)?);
        }

        let mut out = Collected::default();
        for entry in walk(self.root)? {
            self.scan_entry(&entry, &trees, &lib_dirs, &mut out)?;
        }
        Ok(out.finish(&self.options))
    }

    fn scan_entry(
        &self,
        entry: &Entry,
        trees: &[&Path],
        lib_dirs: &[String],
        out: &mut Collected,
    ) -> Result<(), ScaError> {
        let rel = entry.rel.as_str();
        let abs = self.root.join(rel);
        match entry.kind {
            Kind::Dir => {}
            Kind::Symlink => {
                if rel.contains(".so") {
                    self.symlinked_library(rel, &abs, trees, lib_dirs, out)?;
                }
                // melange opens a symlink like the file it names (inside the tree here).
                if let Some(target) = resolve_in_root(self.root, rel) {
                    if is_regular(&self.root.join(&target)) {
                        let bytes = read_if_elf(&self.root.join(&target))?;
                        if let Some(bytes) = bytes {
                            self.scan_elf(rel, &bytes, lib_dirs, out, false);
                        }
                    }
                }
            }
            Kind::File { mode } => {
                let head = read_head(&abs, SHEBANG_BUF)?;
                if head.starts_with(ELF_MAGIC) {
                    let bytes = fs::read(&abs).map_err(io_err(&abs))?;
                    self.scan_elf(rel, &bytes, lib_dirs, out, true);
                }
                // melange: all of r-x for user, group and other, directly in a bin dir.
                if mode & 0o555 == 0o555 && in_dir(rel, BIN_DIRS) {
                    out.provide(format!("cmd:{}={}", base_name(rel), self.version));
                }
                if rel.ends_with(".pc") {
                    self.pkg_config(rel, &abs, out)?;
                }
                if SHEBANG_PREFIXES.iter().any(|p| rel.starts_with(p)) {
                    match shebang(&head) {
                        Ok(Some(cmd)) => out.depend(format!("cmd:{}", base_name(&cmd))),
                        Ok(None) => {}
                        Err(why) => out.warn(format!("{rel}: reading the shebang: {why}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// `rel` is a symlink whose path mentions `.so`: find the library its target names in
    /// the library directories of this package and its relatives, and depend on its
    /// SONAME (melange `processSymlinkSo`).
    fn symlinked_library(
        &self,
        rel: &str,
        abs: &Path,
        trees: &[&Path],
        lib_dirs: &[String],
        out: &mut Collected,
    ) -> Result<(), ScaError> {
        let Ok(target) = fs::read_link(abs) else {
            return Ok(());
        };
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        for tree in trees {
            for dir in lib_dirs {
                let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
                let Some(found) = resolve_in_root(tree, &candidate) else {
                    continue;
                };
                let path = tree.join(found);
                if !is_regular(&path) {
                    continue;
                }
                let Some(bytes) = read_if_elf(&path)? else {
                    return Ok(());
                };
                let Ok(elf) = ElfInfo::parse(&bytes) else {
                    return Ok(());
                };
                if !elf.is_for(self.arch) {
                    return Ok(());
                }
                if elf.sonames.is_empty() {
                    out.warn(format!("{rel}: library lacks a SONAME"));
                }
                for soname in &elf.sonames {
                    self.depend_on_library(soname, out);
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn scan_elf(
        &self,
        rel: &str,
        bytes: &[u8],
        lib_dirs: &[String],
        out: &mut Collected,
        report: bool,
    ) {
        let elf = match ElfInfo::parse(bytes) {
            Ok(elf) => elf,
            Err(why) => {
                if report {
                    out.skip(rel, SkipReason::Malformed(why));
                }
                return;
            }
        };
        if !elf.is_for(self.arch) {
            if report {
                out.skip(
                    rel,
                    SkipReason::ForeignMachine {
                        e_machine: elf.machine,
                        little_endian: elf.little_endian,
                    },
                );
            }
            return;
        }

        if let Some(interp) = &elf.interpreter {
            // musl's interpreter is a symlink to libc itself: depend on the real name.
            let name = format!("so:{}", base_name(interp)).replace("so:ld-musl", "so:libc.musl");
            out.depend(name);
        }
        for lib in &elf.needed {
            // Libraries without a version (`libfoo.so`) are not real runtime names.
            if lib.contains(".so.") && !is_host_provided(lib) {
                self.depend_on_library(lib, out);
            }
        }

        // Executables (with an interpreter) may carry a SONAME (jlink); shared objects may
        // have an interpreter (libc, libcap): melange trusts the file name for those.
        let base = base_name(rel);
        if elf.interpreter.is_none() || base.contains(".so.") || base.ends_with(".so") {
            // melange warns for every file without one; static executables are normal.
            if elf.sonames.is_empty() && base.contains(".so") {
                out.warn(format!("{rel}: library lacks a SONAME"));
            }
            for soname in &elf.sonames {
                if is_host_provided(soname) {
                    continue;
                }
                let names = [
                    format!("so:{soname}={}", soname_version(soname)),
                    format!("so-ver:{soname}={}", self.version),
                ];
                for name in names {
                    if in_dir(rel, lib_dirs) {
                        out.provide(name);
                    } else {
                        out.vendor(name);
                    }
                }
            }
        }
    }

    fn depend_on_library(&self, soname: &str, out: &mut Collected) {
        out.depend(format!("so:{soname}"));
        if let Some(v) = self.versioned(&format!("so-ver:{soname}")) {
            out.depend(format!("so-ver:{soname}>={v}"));
        }
    }

    fn versioned(&self, name: &str) -> Option<Version> {
        if self.options.no_versioned_shlib_deps {
            return None;
        }
        self.versions?.provided_version(name)
    }

    fn pkg_config(&self, rel: &str, abs: &Path, out: &mut Collected) -> Result<(), ScaError> {
        let bytes = fs::read(abs).map_err(io_err(abs))?;
        let text = String::from_utf8_lossy(&bytes);
        let pc = match PkgConfig::parse(&text) {
            Ok(pc) => pc,
            Err(why) => {
                out.warn(format!("{rel}: unreadable pkg-config file: {why}"));
                return Ok(());
            }
        };
        let name = base_name(rel).trim_end_matches(".pc");
        let provided = format!("pc:{name}={}", self.version);
        if !in_dir(rel, PC_DIRS) {
            out.vendor(provided);
            return Ok(());
        }
        out.provide(provided);
        for req in &pc.requires {
            out.depend(format!("pc:{req}"));
            if let Some(v) = self.versioned(&format!("pc:{req}")) {
                out.depend(format!("pc:{req}>={v}"));
            }
        }
        Ok(())
    }
}

/// Removes from `depends` what `provides` (the package's own provides or vendored names)
/// already satisfies, as melange `removeSelfProvidedDeps`: an unversioned depend on a
/// provided name, a `so-ver:` depend on a provided `so-ver:` name whatever its version, or
/// any depend the provided version satisfies. Use it again after merging the recipe's
/// declared provides.
pub fn remove_self_provided(depends: &mut Vec<Dependency>, provides: &[Dependency]) {
    let provided: BTreeMap<&str, Option<&Version>> = provides
        .iter()
        .map(|p| (p.name.as_str(), p.constraint.version()))
        .collect();
    depends.retain(|d| {
        let Some(version) = provided.get(d.name.as_str()) else {
            return true;
        };
        let satisfied = matches!(d.constraint, Constraint::Any)
            || d.name.starts_with("so-ver:")
            || version.is_some_and(|v| d.constraint.matches(v));
        d.conflict || !satisfied
    });
}

/// Library directories of the standard layout (melange `LibDirs`), matched exactly:
/// `usr/lib/x86_64-linux-gnu/libfoo.so.1` is vendored, not provided.
const LIB_DIRS: &[&str] = &["lib", "usr/lib", "lib64", "usr/lib64"];
/// Directories whose executables are commands (melange `BinDirs`).
const BIN_DIRS: &[&str] = &["bin", "sbin", "usr/bin", "usr/sbin"];
/// Directories whose `.pc` files are provided rather than vendored.
const PC_DIRS: &[&str] = &[
    "usr/local/lib/pkgconfig",
    "usr/local/share/pkgconfig",
    "usr/lib/pkgconfig",
    "usr/lib64/pkgconfig",
    "usr/share/pkgconfig",
];
/// Trees whose scripts' interpreters become `cmd:` depends (any depth, as melange).
const SHEBANG_PREFIXES: &[&str] = &["usr/bin/", "usr/local/bin/", "usr/local/sbin/"];
/// Interpreters never depended on: `python3`, `sh`, `awk` are symlinks nothing provides as
/// `cmd:`, and `luajit` has several incompatible providers (melange `getShbang`).
const SHEBANG_IGNORED: &[&str] = &["python3", "python", "sh", "awk", "luajit"];
/// melange reads this much of a file to find its shebang; longer first lines are cut.
const SHEBANG_BUF: usize = 80;
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Libraries the host's GPU driver injects at run time: never depended on nor provided.
fn is_host_provided(lib: &str) -> bool {
    const HOST_LIBS: &[&str] = &[
        "libEGL_nvidia.so.1",
        "libGLESv1_CM_nvidia.so.1",
        "libGLESv2_nvidia.so.1",
        "libGLX_nvidia.so.1",
        "libcuda.so.1",
        "libcudadebugger.so.1",
        "libnvcuvid.so.1",
        "libnvidia-allocator.so.1",
        "libnvidia-cfg.so.1",
        "libnvidia-eglcore.so.1",
        "libnvidia-encode.so.1",
        "libnvidia-fbc.so.1",
        "libnvidia-glcore.so.1",
        "libnvidia-glsi.so.1",
        "libnvidia-glvkspirv.so.1",
        "libnvidia-gpucomp.so.1",
        "libnvidia-ml.so.1",
        "libnvidia-ngx.so.1",
        "libnvidia-nvvm.so.1",
        "libnvidia-opencl.so.1",
        "libnvidia-opticalflow.so.1",
        "libnvidia-pkcs11-openssl3.so.1",
        "libnvidia-pkcs11.so.1",
        "libnvidia-ptxjitcompiler.so.1",
        "libnvidia-rtcore.so.1",
        "libnvidia-tls.so.1",
        "libnvoptix.so.1",
    ];
    HOST_LIBS.contains(&lib)
}

/// The version of a `so:` provide, from the SONAME: what follows `.so.` up to any further
/// `.so.`, if only digits and dots (`libz.so.1` -> `1`), else `0` (melange `sonameLibver`;
/// abuild takes the file name's suffix instead, melange does not).
pub fn soname_version(soname: &str) -> String {
    let mut parts = soname.split(".so.");
    parts.next();
    match parts.next() {
        // Checked against apk's validator too: `libfoo.so.` would give an empty version.
        Some(v)
            if v.chars().all(|c| c == '.' || c.is_ascii_digit()) && apk::version::is_valid(v) =>
        {
            v.to_owned()
        }
        _ => "0".to_owned(),
    }
}

/// Whether `path`'s parent directory is exactly one of `dirs` (melange `isInDir`).
fn in_dir<S: AsRef<str>>(path: &str, dirs: &[S]) -> bool {
    let parent = path.rsplit_once('/').map_or(".", |(dir, _)| dir);
    dirs.iter()
        .any(|d| d.as_ref().trim_end_matches('/') == parent)
}

fn base_name(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.rsplit_once('/').map_or(path, |(_, base)| base)
}

/// The command a script's first line runs, from its first [`SHEBANG_BUF`] bytes, as
/// melange `getShbang`: `#!/usr/bin/env foo` and `#!/usr/bin/env -S foo args` give `foo`,
/// `#!/bin/dash` gives `/bin/dash`; ignored interpreters and non-scripts give `None`.
fn shebang(head: &[u8]) -> Result<Option<String>, String> {
    let head = &head[..head.len().min(SHEBANG_BUF)];
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let rest = String::from_utf8_lossy(rest);
    let line = rest.split('\n').next().unwrap_or_default();
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let Some(&first) = tokens.first() else {
        return Ok(None);
    };
    let bin = if first == "/usr/bin/env" {
        match tokens.as_slice() {
            [_] => return Err("a shebang of only /usr/bin/env".to_owned()),
            [_, cmd] => *cmd,
            [_, "-S", cmd, ..] if !cmd.starts_with('-') => *cmd,
            _ => {
                return Err(format!(
                    "/usr/bin/env with several arguments ({}): cannot tell the command",
                    tokens.join(" ")
                ))
            }
        }
    } else {
        first
    };
    if SHEBANG_IGNORED.contains(&base_name(bin)) {
        return Ok(None);
    }
    Ok(Some(bin.to_owned()))
}

/// What the scan needs of an ELF file.
struct ElfInfo {
    machine: u16,
    little_endian: bool,
    interpreter: Option<String>,
    needed: Vec<String>,
    sonames: Vec<String>,
}

impl ElfInfo {
    /// Reads the header, program headers and dynamic section only (not symbols or
    /// relocations): faster, and tolerant of stripped section headers.
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        use goblin::container::Ctx;
        use goblin::elf::dynamic::{Dynamic, DT_NEEDED, DT_SONAME};
        use goblin::elf::program_header::{ProgramHeader, PT_INTERP};
        use goblin::elf::Elf;
        use goblin::strtab::Strtab;

        let header = Elf::parse_header(bytes).map_err(|e| e.to_string())?;
        let container = header.container().map_err(|e| e.to_string())?;
        let endian = header.endianness().map_err(|e| e.to_string())?;
        let ctx = Ctx::new(container, endian);
        let phdrs =
            ProgramHeader::parse(bytes, header.e_phoff as usize, header.e_phnum as usize, ctx)
                .map_err(|e| e.to_string())?;

        let interpreter = phdrs
            .iter()
            .find(|ph| ph.p_type == PT_INTERP)
            .and_then(|ph| {
                let start = usize::try_from(ph.p_offset).ok()?;
                let end = start.checked_add(usize::try_from(ph.p_filesz).ok()?)?;
                let raw = bytes.get(start..end)?;
                let text = String::from_utf8_lossy(raw);
                let text = text.trim_matches('\0');
                (!text.is_empty()).then(|| text.to_owned())
            });

        let mut needed = Vec::new();
        let mut sonames = Vec::new();
        if let Some(dynamic) = Dynamic::parse(bytes, &phdrs, ctx).map_err(|e| e.to_string())? {
            let strtab = Strtab::parse(bytes, dynamic.info.strtab, dynamic.info.strsz, 0)
                .map_err(|e| e.to_string())?;
            for d in &dynamic.dyns {
                let list = match d.d_tag {
                    DT_NEEDED => &mut needed,
                    DT_SONAME => &mut sonames,
                    _ => continue,
                };
                if let Some(s) = usize::try_from(d.d_val).ok().and_then(|o| strtab.get_at(o)) {
                    list.push(s.to_owned());
                }
            }
        }
        Ok(Self {
            machine: header.e_machine,
            little_endian: endian.is_little(),
            interpreter,
            needed,
            sonames,
        })
    }

    /// Whether the file runs on `arch`: the machine and the byte order must both match
    /// (ppc64le shares `EM_PPC64` with big-endian ppc64).
    fn is_for(&self, arch: Arch) -> bool {
        let little = !matches!(arch, Arch::S390x);
        self.machine == arch.elf_machine() && self.little_endian == little
    }
}

/// The parts of a `.pc` file the scan uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct PkgConfig {
    /// Module names of `Requires`, `Requires.private` and `Requires.internal`, in order,
    /// without version constraints.
    requires: Vec<String>,
}

impl PkgConfig {
    fn parse(text: &str) -> Result<Self, String> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut requires = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key_len = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(line.len());
            let (key, rest) = line.split_at(key_len);
            let rest = rest.trim_start();
            if key.is_empty() {
                return Err(format!("line {}: expected a key: {raw:?}", n + 1));
            }
            if let Some(value) = rest.strip_prefix('=') {
                let value = expand(value.trim(), &vars);
                vars.insert(key.to_owned(), value);
            } else if let Some(value) = rest.strip_prefix(':') {
                // Keywords are case-sensitive here, as go-pkgconfig (and pkgconf) read them.
                if matches!(key, "Requires" | "Requires.private" | "Requires.internal") {
                    requires.extend(module_names(&expand(value.trim(), &vars)));
                }
            } else {
                return Err(format!(
                    "line {}: expected `{key}=` or `{key}:`: {raw:?}",
                    n + 1
                ));
            }
        }
        Ok(Self { requires })
    }
}

/// `${name}` replaced by earlier variables (unknown ones are left as written).
fn expand(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if vars.contains_key(&after[..end]) => {
                out.push_str(&vars[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Module names of a `Requires:` list such as `glib-2.0 >= 2.50, zlib libffi`: names are
/// separated by commas or blanks, and a comparison operator takes the next word as its
/// version.
fn module_names(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut tokens = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .peekable();
    while let Some(token) = tokens.next() {
        if matches!(token, "<" | "<=" | "=" | "!=" | ">=" | ">") {
            tokens.next();
            continue;
        }
        // `name>=1.0` written without blanks.
        let name = match token.find(['<', '>', '=', '!']) {
            Some(at) => {
                if at + 1 == token.len() || token[at..].chars().all(|c| "<>=!".contains(c)) {
                    tokens.next();
                }
                &token[..at]
            }
            None => token,
        };
        if !name.is_empty() {
            names.push(name.to_owned());
        }
    }
    names
}

/// Accumulates names as text (melange sorts and compacts strings) and turns them into
/// atoms at the end.
#[derive(Default)]
struct Collected {
    provides: BTreeSet<String>,
    depends: BTreeSet<String>,
    vendored: BTreeSet<String>,
    skipped: Vec<SkippedElf>,
    warnings: Vec<String>,
}

impl Collected {
    fn provide(&mut self, name: String) {
        self.provides.insert(name);
    }
    fn depend(&mut self, name: String) {
        self.depends.insert(name);
    }
    fn vendor(&mut self, name: String) {
        self.vendored.insert(name);
    }
    fn skip(&mut self, path: &str, reason: SkipReason) {
        self.skipped.push(SkippedElf {
            path: path.to_owned(),
            reason,
        });
    }
    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn finish(mut self, opts: &ScaOptions) -> Sca {
        if opts.no_commands {
            self.provides.retain(|n| !n.starts_with("cmd:"));
            self.depends.retain(|n| !n.starts_with("cmd:"));
        }
        if opts.no_depends {
            self.depends.clear();
        }
        if opts.no_provides {
            self.provides.clear();
        }
        let mut warnings = self.warnings;
        let mut atoms = |names: BTreeSet<String>| -> Vec<Dependency> {
            names
                .into_iter()
                .filter_map(|n| match n.parse::<Dependency>() {
                    Ok(d) => Some(d),
                    Err(e) => {
                        warnings.push(format!("dropped generated name {n:?}: {e}"));
                        None
                    }
                })
                .collect()
        };
        let provides = atoms(self.provides);
        let vendored = atoms(self.vendored);
        let mut depends = atoms(self.depends);
        // melange: generated depends a vendored library satisfies go first, then those
        // the package's (final) provides satisfy: with `no-provides`, none of the latter.
        remove_self_provided(&mut depends, &vendored);
        remove_self_provided(&mut depends, &provides);
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        self.skipped.dedup();
        Sca {
            provides,
            depends,
            vendored,
            skipped: self.skipped,
            warnings,
        }
    }
}

enum Kind {
    Dir,
    Symlink,
    File { mode: u32 },
}

struct Entry {
    /// `/`-separated path relative to the root.
    rel: String,
    kind: Kind,
}

/// Every entry under `root` (not `root` itself), depth first, names in byte order, never
/// following symlinks.
fn walk(root: &Path) -> Result<Vec<Entry>, ScaError> {
    let mut out = Vec::new();
    walk_into(root, "", &mut out)?;
    Ok(out)
}

fn walk_into(dir: &Path, prefix: &str, out: &mut Vec<Entry>) -> Result<(), ScaError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            out.push(Entry {
                rel: rel.clone(),
                kind: Kind::Dir,
            });
            walk_into(&path, &format!("{rel}/"), out)?;
        } else if ft.is_symlink() {
            out.push(Entry {
                rel,
                kind: Kind::Symlink,
            });
        } else if ft.is_file() {
            out.push(Entry {
                rel,
                kind: Kind::File {
                    mode: meta.permissions().mode(),
                },
            });
        }
    }
    Ok(())
}

/// Library directories named by `etc/ld.so.conf.d/**/*.conf` of a staged tree: lines
/// that are absolute paths (melange `getLdSoConfDLibPaths`).
fn ld_so_conf_dirs(tree: &Path) -> Result<Vec<String>, ScaError> {
    let conf_dir = tree.join("etc/ld.so.conf.d");
    if !fs::symlink_metadata(&conf_dir).is_ok_and(|m| m.is_dir()) {
        return Ok(Vec::new());
    }
    let mut dirs = Vec::new();
    for entry in walk(&conf_dir)? {
        if !(matches!(entry.kind, Kind::File { .. }) && entry.rel.ends_with(".conf")) {
            continue;
        }
        let path = conf_dir.join(&entry.rel);
        let text = fs::read(&path).map_err(io_err(&path))?;
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(dir) = line.trim_end().strip_prefix('/') {
                dirs.push(dir.trim_end_matches('/').to_owned());
            }
        }
    }
    Ok(dirs)
}

/// Resolves `rel` inside `root` as if `root` were `/`: absolute link targets start again
/// at `root`, and `..` stops there, so nothing outside the tree is ever reached. Returns
/// the final path relative to `root`, if it exists and is not a dangling or looping link.
fn resolve_in_root(root: &Path, rel: &str) -> Option<PathBuf> {
    const MAX_LINKS: usize = 40;
    let mut pending: VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut current: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(component) = pending.pop_front() {
        match component.as_str() {
            "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => current.push(component),
        }
        let path = root.join(current.join("/"));
        let meta = fs::symlink_metadata(&path).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = fs::read_link(&path).ok()?;
            let target = target.to_str()?;
            current.pop();
            if target.starts_with('/') {
                current.clear();
            }
            for c in target.split('/').rev().filter(|c| !c.is_empty()) {
                pending.push_front(c.to_owned());
            }
        }
    }
    Some(current.iter().collect())
}

fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Up to `len` bytes from the start of `path`.
fn read_head(path: &Path, len: usize) -> Result<Vec<u8>, ScaError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut head = Vec::with_capacity(len);
    file.take(len as u64)
        .read_to_end(&mut head)
        .map_err(io_err(path))?;
    Ok(head)
}

/// The whole file, if it starts with the ELF magic.
fn read_if_elf(path: &Path) -> Result<Option<Vec<u8>>, ScaError> {
    if !read_head(path, ELF_MAGIC.len())?.starts_with(ELF_MAGIC) {
        return Ok(None);
    }
    fs::read(path).map(Some).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn names(deps: &[Dependency]) -> Vec<String> {
        deps.iter().map(Dependency::to_string).collect()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn gcc(dir: &Path, args: &[&str]) {
        let status = Command::new("gcc")
            .args(args)
            .current_dir(dir)
            .status()
            .expect("gcc runs");
        assert!(status.success(), "gcc {args:?} failed");
    }

    /// ELF files built once per test with the host's gcc (x86_64 glibc).
    struct Binaries {
        _dir: tempfile::TempDir,
        /// `libfoo.so.1.2.3`, SONAME `libfoo.so.1`.
        libfoo: PathBuf,
        /// `foo`, an executable linked against libfoo.
        foo: PathBuf,
        /// `libvend.so.2.0`, SONAME `libvend.so.2`.
        libvend: PathBuf,
    }

    fn binaries() -> Binaries {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("foo.c"), "int foo(void) { return 42; }\n").unwrap();
        fs::write(d.join("vend.c"), "int vend(void) { return 7; }\n").unwrap();
        fs::write(
            d.join("main.c"),
            "int foo(void);\nint main(void) { return foo() == 42 ? 0 : 1; }\n",
        )
        .unwrap();
        gcc(
            d,
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libfoo.so.1",
                "-o",
                "libfoo.so.1.2.3",
                "foo.c",
            ],
        );
        gcc(
            d,
            &[
                "-shared",
                "-fPIC",
                "-Wl,-soname,libvend.so.2",
                "-o",
                "libvend.so.2.0",
                "vend.c",
            ],
        );
        symlink("libfoo.so.1.2.3", d.join("libfoo.so")).unwrap();
        gcc(d, &["-o", "foo", "main.c", "-L.", "-lfoo"]);
        Binaries {
            libfoo: d.join("libfoo.so.1.2.3"),
            foo: d.join("foo"),
            libvend: d.join("libvend.so.2.0"),
            _dir: dir,
        }
    }

    fn copy(from: &Path, to: &Path, mode: u32) {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The staged tree of a typical library package.
    fn staged(bins: &Binaries) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        copy(&bins.libfoo, &r.join("usr/lib/libfoo.so.1.2.3"), 0o755);
        symlink("libfoo.so.1.2.3", r.join("usr/lib/libfoo.so.1")).unwrap();
        copy(&bins.foo, &r.join("usr/bin/foo"), 0o755);
        // Vendored: a library outside the library directories.
        copy(&bins.libvend, &r.join("opt/foo/lib/libvend.so.2.0"), 0o644);
        write(
            &r.join("usr/bin/hello"),
            "#!/usr/bin/env python3.12\nprint('hi')\n",
            0o755,
        );
        // python3 is ignored as a shebang interpreter, as in melange.
        write(
            &r.join("usr/bin/py"),
            "#!/usr/bin/env python3\nprint('hi')\n",
            0o755,
        );
        write(&r.join("usr/bin/runs-bash"), "#!/bin/bash\necho\n", 0o755);
        // Not executable by everyone: no cmd: provide.
        write(&r.join("usr/bin/private"), "#!/bin/sh\n", 0o700);
        // Not directly in a bin directory: no cmd: provide.
        write(&r.join("usr/bin/sub/tool"), "#!/bin/sh\n", 0o755);
        write(
            &r.join("usr/lib/pkgconfig/foo.pc"),
            "prefix=/usr\nlibdir=${prefix}/lib\n\nName: foo\nDescription: Foo\n\
             Version: 1.2.3\nRequires: zlib >= 1.2, libbar\nRequires.private: libbaz>=2\n\
             Libs: -L${libdir} -lfoo\n",
            0o644,
        );
        root
    }

    const VERSION: &str = "1.2.3-r0";

    fn scan(root: &Path, arch: Arch, opts: ScaOptions) -> Sca {
        analyze(root, arch, &v(VERSION), &opts).unwrap()
    }

    fn expected_provides() -> Vec<&'static str> {
        vec![
            "cmd:foo=1.2.3-r0",
            "cmd:hello=1.2.3-r0",
            "cmd:py=1.2.3-r0",
            "cmd:runs-bash=1.2.3-r0",
            "pc:foo=1.2.3-r0",
            "so-ver:libfoo.so.1=1.2.3-r0",
            "so:libfoo.so.1=1",
        ]
    }

    #[test]
    fn scans_libraries_commands_scripts_and_pkg_config() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = scan(root.path(), Arch::X86_64, ScaOptions::default());

        assert_eq!(names(&sca.provides), expected_provides());
        assert_eq!(
            names(&sca.vendored),
            ["so-ver:libvend.so.2=1.2.3-r0", "so:libvend.so.2=2"]
        );
        let depends = names(&sca.depends);
        for want in [
            "cmd:bash",
            "cmd:python3.12",
            "pc:libbar",
            "pc:libbaz",
            "pc:zlib",
            "so:libc.so.6",
            "so:ld-linux-x86-64.so.2",
        ] {
            assert!(depends.contains(&want.to_owned()), "{want} in {depends:?}");
        }
        // Self-provided, ignored interpreters, versions of pkg-config requirements.
        for unwanted in ["so:libfoo.so.1", "cmd:python3", "cmd:sh", "pc:foo"] {
            assert!(
                !depends.contains(&unwanted.to_owned()),
                "{unwanted} in {depends:?}"
            );
        }
        assert!(depends
            .iter()
            .all(|d| !d.contains(">=") && !d.contains("so-ver:")));
        assert!(sca.skipped.is_empty(), "{:?}", sca.skipped);
        let mut sorted = depends.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(depends, sorted);
    }

    #[test]
    fn scan_is_deterministic() {
        let bins = binaries();
        let root = staged(&bins);
        let a = scan(root.path(), Arch::X86_64, ScaOptions::default());
        let b = scan(root.path(), Arch::X86_64, ScaOptions::default());
        assert_eq!(a, b);
    }

    #[test]
    fn no_provides_drops_all_provides_and_keeps_self_depends_as_melange() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = scan(
            root.path(),
            Arch::X86_64,
            ScaOptions {
                no_provides: true,
                ..ScaOptions::default()
            },
        );
        assert!(sca.provides.is_empty());
        // melange filters depends against the final (here empty) provides.
        let depends = names(&sca.depends);
        assert!(depends.contains(&"so:libfoo.so.1".to_owned()));
        assert!(depends.contains(&"so:libc.so.6".to_owned()));
        // Vendored names are still recorded.
        assert_eq!(sca.vendored.len(), 2);
    }

    #[test]
    fn no_depends_drops_all_depends() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = scan(
            root.path(),
            Arch::X86_64,
            ScaOptions {
                no_depends: true,
                ..ScaOptions::default()
            },
        );
        assert!(sca.depends.is_empty());
        assert_eq!(names(&sca.provides), expected_provides());
    }

    #[test]
    fn no_commands_drops_cmd_names_both_ways() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = scan(
            root.path(),
            Arch::X86_64,
            ScaOptions {
                no_commands: true,
                ..ScaOptions::default()
            },
        );
        assert_eq!(
            names(&sca.provides),
            [
                "pc:foo=1.2.3-r0",
                "so-ver:libfoo.so.1=1.2.3-r0",
                "so:libfoo.so.1=1"
            ]
        );
        assert!(sca.depends.iter().all(|d| !d.name.starts_with("cmd:")));
        assert!(names(&sca.depends).contains(&"so:libc.so.6".to_owned()));
    }

    /// Answers as a build environment where glibc 2.41-r0 and zlib-dev are installed.
    struct Installed;

    impl ProvidedVersions for Installed {
        fn provided_version(&self, name: &str) -> Option<Version> {
            match name {
                "so-ver:libc.so.6" => Some(v("2.41-r0")),
                "pc:zlib" => Some(v("1.3.1-r6")),
                // The package's own library: the version being built.
                "so-ver:libfoo.so.1" => Some(v(VERSION)),
                _ => None,
            }
        }
    }

    #[test]
    fn versioned_depends_come_from_the_build_environment() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = Scan::new(root.path(), Arch::X86_64, &v(VERSION))
            .versions(&Installed)
            .run()
            .unwrap();
        let depends = names(&sca.depends);
        assert!(depends.contains(&"so-ver:libc.so.6>=2.41-r0".to_owned()));
        assert!(depends.contains(&"so:libc.so.6".to_owned()));
        assert!(depends.contains(&"pc:zlib>=1.3.1-r6".to_owned()));
        assert!(depends.contains(&"pc:zlib".to_owned()));
        // Self-provided, whatever the version asked.
        assert!(!depends.iter().any(|d| d.contains("libfoo")), "{depends:?}");
    }

    #[test]
    fn no_versioned_shlib_deps_keeps_depends_unversioned() {
        let bins = binaries();
        let root = staged(&bins);
        let opts = ScaOptions {
            no_versioned_shlib_deps: true,
            ..ScaOptions::default()
        };
        let with_option = Scan::new(root.path(), Arch::X86_64, &v(VERSION))
            .options(opts)
            .versions(&Installed)
            .run()
            .unwrap();
        let without_source = scan(root.path(), Arch::X86_64, ScaOptions::default());
        assert_eq!(with_option.depends, without_source.depends);
        // so-ver: provides are still made: others may version-depend on this package.
        assert!(names(&with_option.provides).contains(&"so-ver:libfoo.so.1=1.2.3-r0".to_owned()));
    }

    #[test]
    fn elf_for_another_machine_is_skipped_and_reported() {
        let bins = binaries();
        let root = staged(&bins);
        let sca = scan(root.path(), Arch::Aarch64, ScaOptions::default());
        let skipped: Vec<&str> = sca.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "opt/foo/lib/libvend.so.2.0",
                "usr/bin/foo",
                "usr/lib/libfoo.so.1.2.3"
            ]
        );
        assert!(sca.skipped.iter().all(|s| matches!(
            s.reason,
            SkipReason::ForeignMachine {
                e_machine: 62,
                little_endian: true
            }
        )));
        assert!(sca.skipped[1].to_string().contains("usr/bin/foo"));
        assert!(sca.provides.iter().all(|p| !p.name.starts_with("so")));
        assert!(sca.depends.iter().all(|d| !d.name.starts_with("so:")));
        assert!(sca.vendored.is_empty());
        // Scripts and pkg-config data do not depend on the machine.
        assert!(names(&sca.provides).contains(&"cmd:hello=1.2.3-r0".to_owned()));
        assert!(names(&sca.depends).contains(&"cmd:python3.12".to_owned()));
    }

    #[test]
    fn ld_so_conf_d_makes_a_directory_a_library_directory() {
        let bins = binaries();
        let root = staged(&bins);
        write(
            &root.path().join("etc/ld.so.conf.d/foo.conf"),
            "# comment\n/opt/foo/lib\n",
            0o644,
        );
        let sca = scan(root.path(), Arch::X86_64, ScaOptions::default());
        let provides = names(&sca.provides);
        assert!(provides.contains(&"so:libvend.so.2=2".to_owned()));
        assert!(sca.vendored.is_empty());
    }

    #[test]
    fn dev_symlink_depends_on_the_library_in_a_sibling_package() {
        let bins = binaries();
        let main = staged(&bins);
        let dev = tempfile::tempdir().unwrap();
        fs::create_dir_all(dev.path().join("usr/lib")).unwrap();
        symlink("libfoo.so.1.2.3", dev.path().join("usr/lib/libfoo.so")).unwrap();
        let sca = Scan::new(dev.path(), Arch::X86_64, &v(VERSION))
            .relatives(&[main.path(), dev.path()])
            .run()
            .unwrap();
        assert_eq!(names(&sca.depends), ["so:libfoo.so.1"]);
        assert!(sca.provides.is_empty());

        // Without its relatives the link leads nowhere.
        let alone = scan(dev.path(), Arch::X86_64, ScaOptions::default());
        assert!(alone.depends.is_empty());
    }

    #[test]
    fn rejects_symlink_escape_through_parent() {
        let bins = binaries();
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        copy(&bins.libvend, &outer.path().join("libvend.so.2.0"), 0o755);
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        // Both resolve to <root>/libvend.so.2.0, which does not exist.
        symlink(
            "../../../libvend.so.2.0",
            root.join("usr/lib/libescape.so.2"),
        )
        .unwrap();
        symlink(
            outer.path().join("libvend.so.2.0"),
            root.join("usr/lib/libabs.so.2"),
        )
        .unwrap();
        let sca = scan(&root, Arch::X86_64, ScaOptions::default());
        assert_eq!(sca, Sca::default());
        assert_eq!(resolve_in_root(&root, "usr/lib/libescape.so.2"), None);
    }

    /// A minimal ELF: header and one `PT_INTERP` program header naming `interp`.
    fn tiny_elf(class64: bool, little: bool, machine: u16, interp: &str) -> Vec<u8> {
        let mut b = Vec::new();
        let put = |b: &mut Vec<u8>, v: u64, n: usize| {
            let bytes = v.to_le_bytes();
            let mut field = bytes[..n].to_vec();
            if !little {
                field.reverse();
            }
            b.extend_from_slice(&field);
        };
        let word = if class64 { 8 } else { 4 };
        let (ehsize, phentsize) = if class64 { (64, 56) } else { (52, 32) };
        b.extend_from_slice(b"\x7fELF");
        b.extend_from_slice(&[if class64 { 2 } else { 1 }, if little { 1 } else { 2 }, 1]);
        b.resize(16, 0);
        put(&mut b, 2, 2); // e_type: ET_EXEC
        put(&mut b, u64::from(machine), 2);
        put(&mut b, 1, 4); // e_version
        put(&mut b, 0, word); // e_entry
        put(&mut b, ehsize, word); // e_phoff
        put(&mut b, 0, word); // e_shoff
        put(&mut b, 0, 4); // e_flags
        put(&mut b, ehsize, 2);
        put(&mut b, phentsize, 2);
        put(&mut b, 1, 2); // e_phnum
        put(&mut b, 0, 2); // e_shentsize
        put(&mut b, 0, 2); // e_shnum
        put(&mut b, 0, 2); // e_shstrndx
        let offset = ehsize + phentsize;
        let size = interp.len() as u64 + 1;
        put(&mut b, 3, 4); // p_type: PT_INTERP
        if class64 {
            put(&mut b, 4, 4); // p_flags
        }
        for v in [offset, 0, 0, size, size] {
            put(&mut b, v, word); // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz
        }
        if !class64 {
            put(&mut b, 4, 4); // p_flags
        }
        put(&mut b, 1, word); // p_align
        b.extend_from_slice(interp.as_bytes());
        b.push(0);
        b
    }

    #[test]
    fn reads_both_widths_and_byte_orders() {
        for (arch, class64, little, interp, want) in [
            (
                Arch::Armv7,
                false,
                true,
                "/lib/ld-musl-armhf.so.1",
                "so:libc.musl-armhf.so.1",
            ),
            (Arch::S390x, true, false, "/lib/ld64.so.1", "so:ld64.so.1"),
            (Arch::Ppc64le, true, true, "/lib/ld64.so.2", "so:ld64.so.2"),
        ] {
            let bytes = tiny_elf(class64, little, arch.elf_machine(), interp);
            let elf = ElfInfo::parse(&bytes).unwrap();
            assert!(elf.is_for(arch), "{arch}");
            assert_eq!(elf.interpreter.as_deref(), Some(interp));

            let root = tempfile::tempdir().unwrap();
            let path = root.path().join("usr/bin/tool");
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            let sca = scan(root.path(), arch, ScaOptions::default());
            assert_eq!(names(&sca.depends), [want], "{arch}");
            assert_eq!(names(&sca.provides), ["cmd:tool=1.2.3-r0"]);
        }
        // Big-endian ppc64 shares the machine number with ppc64le but is not it.
        let be = ElfInfo::parse(&tiny_elf(true, false, 21, "/lib/ld64.so.1")).unwrap();
        assert!(!be.is_for(Arch::Ppc64le));
    }

    #[test]
    fn soname_versions_as_melange() {
        for (soname, want) in [
            ("libz.so.1", "1"),
            ("libfoo.so.1.2", "1.2"),
            ("libaws-c-s3.so.0unstable", "0"),
            ("libfoo.so", "0"),
            ("ld-linux-x86-64.so.2", "2"),
            // apk tolerates odd runs of dots, so melange's text stands.
            ("libfoo.so.1..2", "1..2"),
            ("libfoo.so.", "0"),
        ] {
            assert_eq!(soname_version(soname), want, "{soname}");
        }
    }

    #[test]
    fn shebangs_as_melange() {
        for (content, want) in [
            ("#!/usr/bin/env bash\n", Ok(Some("bash"))),
            (
                "#!/usr/bin/env python3.12\nwith open...\n",
                Ok(Some("python3.12")),
            ),
            ("#!/bin/sh\necho hi world\n", Ok(None)),
            ("#!/bin/dash\necho hi world\n", Ok(Some("/bin/dash"))),
            ("#!/usr/bin/env -S bash -x\necho\n", Ok(Some("bash"))),
            ("#!/usr/bin/env bash -x\necho\n", Err(())),
            ("#!/usr/bin/env\n", Err(())),
            ("cs101 assignment", Ok(None)),
            ("#!/usr/bin/perl", Ok(Some("/usr/bin/perl"))),
            ("#!/usr/bin/luajit\n", Ok(None)),
            ("#!   \n", Ok(None)),
            ("#!\n", Ok(None)),
            ("", Ok(None)),
        ] {
            let got = shebang(content.as_bytes()).map_err(|_| ());
            assert_eq!(got, want.map(|o| o.map(str::to_owned)), "{content:?}");
        }
    }

    #[test]
    fn pkg_config_requires() {
        let pc = PkgConfig::parse(
            "prefix=/usr\nmods=libx\n# Requires: nope\nName: a\nVersion: 1\n\
             Requires: glib-2.0 >= 2.50, zlib ${mods}\nRequires.private: libffi>=3 , b = 1\n\
             Requires.internal: c\nrequires: not-a-keyword\n",
        )
        .unwrap();
        assert_eq!(
            pc.requires,
            ["glib-2.0", "zlib", "libx", "libffi", "b", "c"]
        );
        assert!(PkgConfig::parse("what is this\n").is_err());
    }

    #[test]
    fn remove_self_provided_as_melange() {
        let deps = |s: &str| apk::dependency::parse_list(s).unwrap();
        let mut depends =
            deps("so:liba.so.1 so-ver:liba.so.1>=9 so:libd.so.4 pc:x>=2 pc:y>=2 cmd:z");
        remove_self_provided(
            &mut depends,
            &deps("so:liba.so.1=1 so-ver:liba.so.1=1.0-r0 pc:x=3 pc:y=1 cmd:z=1"),
        );
        assert_eq!(names(&depends), ["so:libd.so.4", "pc:y>=2"]);
    }
}
