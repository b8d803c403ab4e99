//! Dependency resolution: which packages to install for a world, picked the way apk-tools
//! 2.14 `src/solver.c` picks them where it succeeds, computed by the `resolvo` CDCL solver
//! (which backtracks where apk's deductive solver gives up).
//!
//! # Semantics (apk-tools rules followed)
//!
//! - A dependency on `N` is met by a package named `N` or by a package that provides `N`.
//!   A versioned provide (`so:libz.so.1=1.3`) behaves like a package of that name and
//!   version; an unversioned provide (`cmd:foo`, `ifupdown-any`) meets only unversioned
//!   dependencies. A `><Q1…` dependency is met only by the package with that checksum.
//! - "Virtual packages without provider_priority cannot be autoselected, unless there is
//!   only one provider" (`select_package`): an unversioned provide meets a dependency only
//!   if its package has a non-zero `provider_priority`, or it is the only provider of the
//!   name, or the package's own name is in the world. (apk also accepts it when anything
//!   else requires the package by name; that is a property of the solution, not of the
//!   package, and is not modelled: such worlds fail here with a hint to name the provider.)
//! - Names are exclusive (`assign_name`): one package per name, and a name claimed by one
//!   installed package (its own name or a versioned provide) cannot be claimed by another.
//!   Only unversioned provides of one name may coexist (`linux-firmware-any`).
//! - `!N` forbids every package claiming `N`; `!N<2` only those whose claim on `N` has a
//!   matching version (an unversioned provide never matches a versioned conflict). A
//!   package's conflicts never apply to the package itself.
//! - `@tag`: a package from a repository tagged `@T` is masked unless a world entry
//!   `name@T` reaches it, directly or through dependencies (apk's pinning is inherited by
//!   dependencies, `inherit_pinning_and_flags`). Masked packages stay visible in errors.
//! - `install_if`: a package whose `install_if` atoms all hold in the solution is
//!   installed (unless another version of its name already is). Install-if packages with a
//!   conflict atom in `install_if` are ignored. Masked packages are never triggered.
//! - Preferences, as `compare_providers`: unmasked, then from an untagged repository (or
//!   from the tag the world asked for), then the highest version of the requested name
//!   (provided version for provides), then the highest `provider_priority`, then the
//!   provider named like the dependency, then name order; within one name, the highest
//!   version, then the earliest repository.
//!
//! # Model (how this maps onto resolvo)
//!
//! resolvo assumes every candidate belongs to exactly one name and that one candidate per
//! name is chosen. So each *real package name* is one resolvo name whose candidates are
//! that name's packages. Provided names never get candidates of their own: a dependency on
//! `so:libfoo.so.1` is a resolvo requirement on the *union* of version sets over the real
//! names that provide it, ordered by preference. Name exclusivity across real names
//! (a versioned provide shared by `vim` and `gvim`) is a resolvo `constrains` from each
//! claimer onto the others; `!N` conflicts are `constrains` too (constrain without
//! requiring). Masked packages are resolvo "excluded" candidates, with the tag as reason.
//!
//! `install_if` is iterated to a fixpoint rather than encoded: after a solve, the best
//! package of every name whose `install_if` atoms all hold in the solution (and that is
//! not installed) becomes a resolvo *soft requirement*, and the world is solved again until
//! nothing new triggers. resolvo adds a soft requirement only where it fits the solution
//! already found, which is apk's behaviour: a triggered package that is disqualified (it
//! conflicts, or a dependency cannot be met) is silently left out. (resolvo's conditional
//! requirements do not fit: a condition on a version set holds whenever no *other*
//! candidate of its name is chosen, so also when the name is not installed at all.)
//!
//! Failures are rendered from resolvo's conflict graph in apk terms, one line per problem:
//! `no provider of so:libfoo.so.1, needed by bar-1.0-r0, required by world`,
//! `a-1-r0 conflicts with b-2-r0 (!b): …`, `only one package named b can be installed: …`,
//! `foo-2-r0 is masked: only in repositories tagged @edge, …; request foo@edge to allow it`.
//!
//! Before solving, a closure from the world over dependencies (and `install_if`) selects
//! the packages that could possibly be installed and computes tag pinning; only those are
//! shown to resolvo.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use resolvo::conflict::{ConflictCause, ConflictEdge, ConflictGraph, ConflictNode};
use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, DenseIndex, Dependencies,
    DependencyProvider, HintDependenciesAvailable, Interner, KnownDependencies, NameId, Problem,
    Requirement, SolvableId, Solver, SolverCache, StringId, UnsolvableOrCancelled, VersionSetId,
    VersionSetUnionId,
};

use crate::checksum::Checksum;
use crate::dependency::{Constraint, Dependency};
use crate::index::{self, IndexEntry};
use crate::version::Version;

/// One repository's packages, with the tag it is pinned under (`@edge http://…` in
/// `/etc/apk/repositories`), if any.
#[derive(Clone, Debug, Default)]
pub struct Repository {
    /// `Some("edge")` for a repository listed as `@edge …`: its packages are only
    /// eligible for world entries `name@edge` and their dependencies.
    pub tag: Option<String>,
    pub packages: Vec<IndexEntry>,
}

impl Repository {
    pub fn new(packages: Vec<IndexEntry>) -> Self {
        Repository {
            tag: None,
            packages,
        }
    }

    pub fn tagged(tag: impl Into<String>, packages: Vec<IndexEntry>) -> Self {
        Repository {
            tag: Some(tag.into()),
            packages,
        }
    }
}

/// The packages to install: `(repository index, package)`, in display order (name, then
/// version), one package per name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution<'a> {
    pub packages: Vec<(usize, &'a IndexEntry)>,
}

impl<'a> Solution<'a> {
    /// The chosen package named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&'a IndexEntry> {
        self.packages
            .iter()
            .map(|&(_, e)| e)
            .find(|e| e.info.name == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The packages with dependencies before dependents (and `install_if` triggers before
    /// the packages they trigger). Ready packages go by name; a dependency cycle is broken
    /// at the package with the fewest pending dependencies, then by name.
    pub fn install_order(&self) -> Vec<(usize, &'a IndexEntry)> {
        let pkgs = &self.packages;
        let claims = ClaimIndex::of(pkgs.iter().map(|&(_, e)| e));
        let meets = |dep: &Dependency, c: &Claim| {
            claim_matches(dep, c.version, c.real, &pkgs[c.pkg as usize].1.checksum)
        };
        // before[i]: packages that must come before package i.
        let mut before: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); pkgs.len()];
        for (i, (_, e)) in pkgs.iter().enumerate() {
            for dep in e.info.depends.iter().chain(&e.info.install_if) {
                if dep.conflict {
                    continue;
                }
                for claim in claims.get(&dep.name) {
                    let j = claim.pkg as usize;
                    if j != i && meets(dep, claim) {
                        before[i].insert(j);
                    }
                }
            }
        }
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); pkgs.len()];
        for (i, b) in before.iter().enumerate() {
            for &j in b {
                after[j].push(i);
            }
        }
        let key = |i: usize| (pkgs[i].1.info.name.as_str(), i);
        let mut pending: Vec<usize> = before.iter().map(BTreeSet::len).collect();
        let mut ready: BTreeSet<(&str, usize)> = (0..pkgs.len())
            .filter(|&i| pending[i] == 0)
            .map(key)
            .collect();
        let mut done = vec![false; pkgs.len()];
        let mut order = Vec::with_capacity(pkgs.len());
        while order.len() < pkgs.len() {
            let next = match ready.pop_first() {
                Some((_, i)) => i,
                // A cycle: force the package closest to ready.
                None => (0..pkgs.len())
                    .filter(|&i| !done[i])
                    .min_by_key(|&i| (pending[i], key(i)))
                    .expect("some package is not placed yet"),
            };
            if done[next] {
                continue;
            }
            done[next] = true;
            order.push(pkgs[next]);
            for &k in &after[next] {
                pending[k] -= 1;
                if pending[k] == 0 && !done[k] {
                    ready.insert(key(k));
                }
            }
        }
        order
    }
}

/// Why no selection exists: one line per problem, in apk terms, e.g.
/// `no provider of so:libfoo.so.1, needed by bar-1.0-r0, required by world`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SolveError {
    pub problems: Vec<String>,
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unable to select packages:")?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SolveError {}

/// Select the packages to install for `world` from `repos`, considering only packages of
/// architecture `arch` or `noarch`. Deterministic: the same input gives the same output,
/// whatever the order of `world`.
pub fn solve<'a>(
    repos: &'a [Repository],
    world: &[Dependency],
    arch: &str,
) -> Result<Solution<'a>, SolveError> {
    Resolver::new(repos, arch).solve(world)
}

/// Repositories indexed once for several solves (`solve` builds one each time).
pub struct Resolver<'a> {
    pkgs: Vec<Pkg<'a>>,
    tags: Vec<&'a str>,
    /// Every claim on a name: a package's own name, or one of its provides.
    claims: ClaimIndex<'a>,
    /// Packages with a non-empty `install_if`.
    install_if: Vec<u32>,
    /// The `install_if` packages with an atom on a name a package claims, for the
    /// packages that have any.
    triggers: FastMap<u32, Vec<u32>>,
}

/// The claims on every name, grouped by name in one flat list (compressed rows), in
/// package order within a name: one allocation instead of one per name, since a
/// solve indexes the whole repository and looks at few of its names.
struct ClaimIndex<'a> {
    /// Name -> row.
    rows: FastMap<&'a str, u32>,
    /// Row -> start in `claims`; one extra entry closes the last row.
    starts: Vec<u32>,
    claims: Vec<Claim<'a>>,
}

impl<'a> ClaimIndex<'a> {
    /// The claims of `entries`, numbered in their order.
    fn of(entries: impl ExactSizeIterator<Item = &'a IndexEntry>) -> Self {
        let mut named = Vec::with_capacity(entries.len() * 4);
        for (i, e) in entries.enumerate() {
            let (pkg, info) = (i as u32, &e.info);
            let own = Claim {
                pkg,
                version: Some(&info.version),
                real: true,
            };
            named.push((info.name.as_str(), own));
            for d in &info.provides {
                let provided = Claim {
                    pkg,
                    version: d.constraint.version(),
                    real: false,
                };
                named.push((d.name.as_str(), provided));
            }
        }
        Self::new(named)
    }

    /// `named`: every `(name, claim)`, in package order.
    fn new(named: Vec<(&'a str, Claim<'a>)>) -> Self {
        let mut rows: FastMap<&'a str, u32> = FastMap::default();
        rows.reserve(named.len());
        let mut row_of = Vec::with_capacity(named.len());
        let mut counts: Vec<u32> = Vec::new();
        for &(name, _) in &named {
            let next = counts.len() as u32;
            let row = *rows.entry(name).or_insert(next);
            if row == next {
                counts.push(0);
            }
            counts[row as usize] += 1;
            row_of.push(row);
        }
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        for c in &counts {
            starts.push(total);
            total += c;
        }
        starts.push(total);
        // Counting sort, stable: package order within each row.
        let mut fill: Vec<u32> = starts[..counts.len()].to_vec();
        let mut claims = vec![Claim::NONE; named.len()];
        for (&(_, claim), &row) in named.iter().zip(&row_of) {
            claims[fill[row as usize] as usize] = claim;
            fill[row as usize] += 1;
        }
        ClaimIndex {
            rows,
            starts,
            claims,
        }
    }

    fn get(&self, name: &str) -> &[Claim<'a>] {
        match self.rows.get(name) {
            Some(&row) => {
                let row = row as usize;
                &self.claims[self.starts[row] as usize..self.starts[row + 1] as usize]
            }
            None => &[],
        }
    }
}

#[derive(Clone, Copy)]
struct Pkg<'a> {
    repo: usize,
    /// Index into `Resolver::tags`.
    tag: Option<usize>,
    entry: &'a IndexEntry,
}

/// A package's claim on a name.
#[derive(Clone, Copy)]
struct Claim<'a> {
    pkg: u32,
    /// `None` for an unversioned provide.
    version: Option<&'a Version>,
    /// The package's own name (not a provide).
    real: bool,
}

impl Claim<'_> {
    /// A filler for slots about to be written.
    const NONE: Self = Claim {
        pkg: u32::MAX,
        version: None,
        real: false,
    };
}

/// Whether a claim on `dep.name` at `version` is what `dep` names, as
/// `apk_dep_is_provided` (ignoring `dep.conflict`).
fn claim_matches(
    dep: &Dependency,
    version: Option<&Version>,
    real: bool,
    checksum: &Checksum,
) -> bool {
    match (&dep.constraint, version) {
        (Constraint::Any, _) => true,
        (c @ Constraint::Checksum(_), _) => real && c.matches_checksum(&checksum.to_string()),
        (c, Some(v)) => c.matches(v),
        // apk: a versioned atom never matches an unversioned provide.
        (_, None) => false,
    }
}

fn tag_bit(tag: usize) -> u64 {
    // More than 64 tags would share bits: only ever more permissive, never wrong.
    1u64 << (tag % 64)
}

impl<'a> Resolver<'a> {
    pub fn new(repos: &'a [Repository], arch: &str) -> Self {
        let mut tags: Vec<&'a str> = Vec::new();
        let mut pkgs = Vec::with_capacity(repos.iter().map(|r| r.packages.len()).sum());
        for (repo, r) in repos.iter().enumerate() {
            let tag = r
                .tag
                .as_deref()
                .map(|t| match tags.iter().position(|&x| x == t) {
                    Some(i) => i,
                    None => {
                        tags.push(t);
                        tags.len() - 1
                    }
                });
            for entry in &r.packages {
                if entry.info.arch == arch || entry.info.arch == "noarch" {
                    pkgs.push(Pkg { repo, tag, entry });
                }
            }
        }
        let claims = ClaimIndex::of(pkgs.iter().map(|p| p.entry));
        let install_if: Vec<u32> = (0..pkgs.len() as u32)
            .filter(|&p| !pkgs[p as usize].entry.info.install_if.is_empty())
            .collect();
        let mut triggers: FastMap<u32, Vec<u32>> = FastMap::default();
        for &x in &install_if {
            for dep in &pkgs[x as usize].entry.info.install_if {
                for c in claims.get(&dep.name) {
                    let list = triggers.entry(c.pkg).or_default();
                    if list.last() != Some(&x) {
                        list.push(x);
                    }
                }
            }
        }
        Resolver {
            pkgs,
            tags,
            claims,
            install_if,
            triggers,
        }
    }

    /// See [`solve`].
    pub fn solve(&self, world: &[Dependency]) -> Result<Solution<'a>, SolveError> {
        let mut world: Vec<&Dependency> = world.iter().collect();
        world.sort_by_cached_key(|d| (d.name.clone(), d.to_string()));
        world.dedup();
        let model = Model::build(self, &world);
        let requirements = model.root_requirements.clone();
        let constraints = model.root_constraints.clone();
        let mut solver = Solver::new(model);
        // install_if to a fixpoint: solve, then ask again with every newly triggered
        // package as a soft requirement. resolvo adds soft requirements only where they fit
        // the solution found so far, as apk never triggers a package it disqualified.
        let mut soft: Vec<SolvableId> = Vec::new();
        let mut tried: FastSet<NameId> = FastSet::default();
        loop {
            let problem = Problem::new()
                .requirements(requirements.clone())
                .constraints(constraints.clone())
                .soft_requirements(soft.clone());
            let result = solver.solve(problem);
            if let Ok(ids) = &result {
                let triggered = solver.provider().triggered(ids, &mut tried);
                if !triggered.is_empty() {
                    soft.extend(triggered);
                    continue;
                }
            }
            return self.outcome(&solver, result);
        }
    }

    fn outcome(
        &self,
        solver: &Solver<Model<'_>>,
        result: Result<Vec<SolvableId>, UnsolvableOrCancelled>,
    ) -> Result<Solution<'a>, SolveError> {
        match result {
            Ok(ids) => {
                let model = solver.provider();
                let mut packages: Vec<(usize, &'a IndexEntry)> = ids
                    .into_iter()
                    .map(|s| {
                        let pkg = self.pkgs[model.solvable_pkg[s.to_index()] as usize];
                        (pkg.repo, pkg.entry)
                    })
                    .collect();
                packages.sort_by(|(_, a), (_, b)| index::display_order(&a.info, &b.info));
                Ok(Solution { packages })
            }
            Err(UnsolvableOrCancelled::Unsolvable(conflict)) => {
                let graph = conflict.graph(solver);
                let model = solver.provider();
                let mut problems = model.explain(&graph);
                if problems.is_empty() {
                    problems.push(conflict.display_user_friendly(solver).to_string());
                }
                Err(SolveError { problems })
            }
            Err(UnsolvableOrCancelled::Cancelled(_)) => Err(SolveError {
                problems: vec!["solving was cancelled".to_owned()],
            }),
        }
    }

    fn entry(&self, pkg: u32) -> &'a IndexEntry {
        self.pkgs[pkg as usize].entry
    }

    fn claims_of(&self, name: &str) -> &[Claim<'a>] {
        self.claims.get(name)
    }

    /// The claims of package `pkg` on `name`.
    fn pkg_claims<'s>(&'s self, pkg: u32, name: &'s str) -> impl Iterator<Item = Claim<'a>> + 's {
        let info = &self.entry(pkg).info;
        let own = (info.name == name).then_some(Claim {
            pkg,
            version: Some(&info.version),
            real: true,
        });
        let provided = info
            .provides
            .iter()
            .filter(move |d| d.name == name)
            .map(move |d| Claim {
                pkg,
                version: d.constraint.version(),
                real: false,
            });
        own.into_iter().chain(provided)
    }

    fn matches(&self, claim: &Claim, dep: &Dependency) -> bool {
        claim_matches(
            dep,
            claim.version,
            claim.real,
            &self.entry(claim.pkg).checksum,
        )
    }

    /// apk's rule for unversioned provides ("virtual packages without provider_priority
    /// cannot be autoselected, unless there is only one provider").
    fn virtual_ok(&self, claim: &Claim, name: &str, world_names: &FastSet<&str>) -> bool {
        let info = &self.entry(claim.pkg).info;
        claim.version.is_some()
            || info.provider_priority.unwrap_or(0) > 0
            || self.claims_of(name).len() == 1
            || world_names.contains(info.name.as_str())
    }

    /// Whether `claim` meets the (non-conflict) dependency `dep`, virtual-provider rule
    /// included. (`install_if` atoms hold by [`Resolver::matches`] alone: they look at
    /// what is installed, not at what may be selected.)
    fn meets(&self, claim: &Claim, dep: &Dependency, world_names: &FastSet<&str>) -> bool {
        self.matches(claim, dep) && self.virtual_ok(claim, &dep.name, world_names)
    }

    fn pkg_meets(&self, pkg: u32, dep: &Dependency, world_names: &FastSet<&str>) -> bool {
        self.pkg_claims(pkg, &dep.name)
            .any(|c| self.meets(&c, dep, world_names))
    }

    /// Whether the conflict atom `dep` (`!name…`) forbids package `pkg`.
    fn pkg_forbidden(&self, pkg: u32, dep: &Dependency) -> bool {
        self.pkg_claims(pkg, &dep.name)
            .any(|c| self.matches(&c, dep))
    }

    /// The claims of packages of other names that exclude package `pkg` (`assign_name`):
    /// `(other package, name, whether this package's claim is versioned)`, sorted.
    fn rivals(&self, pkg: u32) -> Vec<(u32, &'a str, bool)> {
        let info = &self.entry(pkg).info;
        let names = std::iter::once(info.name.as_str())
            .chain(info.provides.iter().map(|d| d.name.as_str()));
        let mut out = Vec::new();
        for name in names {
            let list = self.claims.get(name);
            if list.len() < 2 || list.iter().all(|c| c.version.is_none()) {
                continue;
            }
            for a in list.iter().filter(|c| c.pkg == pkg) {
                for b in list {
                    let different = info.name != self.entry(b.pkg).info.name;
                    if different && (a.version.is_some() || b.version.is_some()) {
                        out.push((b.pkg, name, a.version.is_some()));
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn label(&self, pkg: u32) -> String {
        self.entry(pkg).info.file_stem()
    }

    /// Which packages could be installed at all (reachable from the world through
    /// dependencies and `install_if`), and the tags each may come from (`bits`).
    fn closure(&self, world: &[&Dependency], world_names: &FastSet<&str>) -> (Vec<bool>, Vec<u64>) {
        let n = self.pkgs.len();
        let mut reachable = vec![false; n];
        let mut bits = vec![0u64; n];
        let mut queue: Vec<u32> = Vec::new();
        // Marks `p` reachable with tags `b`; queues it again when that adds anything.
        fn reach(
            p: u32,
            b: u64,
            reachable: &mut [bool],
            bits: &mut [u64],
            queue: &mut Vec<u32>,
        ) -> bool {
            let i = p as usize;
            if !reachable[i] || bits[i] | b != bits[i] {
                reachable[i] = true;
                bits[i] |= b;
                queue.push(p);
                true
            } else {
                false
            }
        }
        for dep in world.iter().filter(|d| !d.conflict) {
            let b = dep
                .tag
                .as_deref()
                .and_then(|t| self.tags.iter().position(|&x| x == t))
                .map_or(0, tag_bit);
            for c in self.claims_of(&dep.name) {
                if self.meets(c, dep, world_names) {
                    reach(c.pkg, b, &mut reachable, &mut bits, &mut queue);
                }
            }
        }
        let tag_ok =
            |p: usize, bits: &[u64]| self.pkgs[p].tag.is_none_or(|t| bits[p] & tag_bit(t) != 0);
        // install_if packages to look at again: one of their atoms may hold now.
        let mut recheck: Vec<u32> = Vec::new();
        let mut queued = vec![false; n];
        loop {
            while let Some(p) = queue.pop() {
                if !tag_ok(p as usize, &bits) {
                    continue;
                }
                let b = bits[p as usize];
                for dep in self.entry(p).info.depends.iter().filter(|d| !d.conflict) {
                    for c in self.claims_of(&dep.name) {
                        if self.meets(c, dep, world_names) {
                            reach(c.pkg, b, &mut reachable, &mut bits, &mut queue);
                        }
                    }
                }
                for &x in self.triggers.get(&p).into_iter().flatten() {
                    if !std::mem::replace(&mut queued[x as usize], true) {
                        recheck.push(x);
                    }
                }
            }
            if recheck.is_empty() {
                break;
            }
            // install_if: triggered when every atom can hold; pinning inherited from the
            // packages meeting the atoms.
            recheck.sort_unstable();
            'pkgs: for x in std::mem::take(&mut recheck) {
                queued[x as usize] = false;
                let mut b = 0;
                for dep in &self.entry(x).info.install_if {
                    if dep.conflict {
                        continue 'pkgs;
                    }
                    let mut any = false;
                    for c in self.claims_of(&dep.name) {
                        let i = c.pkg as usize;
                        if reachable[i] && tag_ok(i, &bits) && self.matches(c, dep) {
                            any = true;
                            b |= bits[i];
                        }
                    }
                    if !any {
                        continue 'pkgs;
                    }
                }
                reach(x, b, &mut reachable, &mut bits, &mut queue);
            }
        }
        (reachable, bits)
    }
}

// ---------------------------------------------------------------------------------------
// Hashing.

/// FxHash (as in rustc): much faster than SipHash on the short strings and integers keyed
/// here; the data is local, so hash flooding is no concern.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ rest.len() as u64);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i.into());
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// A dependency atom compared and hashed by its text (the name, tag, operator and operand
/// as written), which is much cheaper than hashing `Version`s by apk's ordering.
#[derive(Clone, Copy)]
struct Atom<'m>(&'m Dependency);

impl Atom<'_> {
    fn key(&self) -> (&str, Option<&str>, bool, &'static str, &str) {
        let d = self.0;
        let operand = match &d.constraint {
            Constraint::Checksum(c) => c.as_str(),
            c => c.version().map_or("", Version::as_str),
        };
        (
            &d.name,
            d.tag.as_deref(),
            d.conflict,
            d.constraint.op(),
            operand,
        )
    }
}

impl PartialEq for Atom<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Atom<'_> {}

impl Hash for Atom<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl std::ops::Deref for Atom<'_> {
    type Target = Dependency;

    fn deref(&self) -> &Dependency {
        self.0
    }
}

impl fmt::Display for Atom<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// ---------------------------------------------------------------------------------------
// The resolvo model of one solve.

struct NameData {
    label: String,
    candidates: Vec<SolvableId>,
    excluded: Vec<(SolvableId, StringId)>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum VsKind<'m> {
    /// Packages meeting the dependency (virtual-provider rule applied).
    Provides(Atom<'m>),
    /// Packages not forbidden by the conflict atom.
    NotForbidden(Atom<'m>),
    /// Packages without a claim on the name that conflicts with a claim of the given
    /// kind (`true`: versioned or own name).
    NoClaim(&'m str, bool),
}

struct Model<'m> {
    r: &'m Resolver<'m>,
    world_names: FastSet<&'m str>,
    /// Solvable index -> package index.
    solvable_pkg: Vec<u32>,
    solvable_name: Vec<NameId>,
    /// Package index -> solvable index, for reachable packages.
    pkg_solvable: Vec<Option<u32>>,
    tag_ok: Vec<bool>,
    names: Vec<NameData>,
    name_index: FastMap<&'m str, NameId>,
    version_sets: Vec<(NameId, VsKind<'m>)>,
    vs_index: FastMap<(NameId, VsKind<'m>), VersionSetId>,
    unions: Vec<Vec<VersionSetId>>,
    strings: Vec<String>,
    deps: Vec<KnownDependencies>,
    requirement_cache: FastMap<Atom<'m>, Requirement>,
    root_requirements: Vec<ConditionalRequirement>,
    root_constraints: Vec<VersionSetId>,
}

fn sid(i: u32) -> SolvableId {
    SolvableId::from_index(i as usize)
}

impl<'m> Model<'m> {
    fn build(r: &'m Resolver<'m>, world: &[&'m Dependency]) -> Self {
        let world_names: FastSet<&str> = world
            .iter()
            .filter(|d| !d.conflict)
            .map(|d| d.name.as_str())
            .collect();
        let (reachable, bits) = r.closure(world, &world_names);
        let tag_ok: Vec<bool> = (0..r.pkgs.len())
            .map(|p| r.pkgs[p].tag.is_none_or(|t| bits[p] & tag_bit(t) != 0))
            .collect();
        // apk prefers packages from untagged repositories, except for a world entry
        // `name@tag`, which prefers that tag's packages (`pinning_preferred`).
        let mut tag_pref: Vec<bool> = r.pkgs.iter().map(|p| p.tag.is_none()).collect();
        for dep in world.iter().filter(|d| !d.conflict && d.tag.is_some()) {
            let tag = r.tags.iter().position(|&t| Some(t) == dep.tag.as_deref());
            for c in r.claims_of(&dep.name) {
                if r.meets(c, dep, &world_names) {
                    tag_pref[c.pkg as usize] = r.pkgs[c.pkg as usize].tag == tag;
                }
            }
        }

        let mut model = Model {
            r,
            world_names,
            solvable_pkg: Vec::new(),
            solvable_name: Vec::new(),
            pkg_solvable: vec![None; r.pkgs.len()],
            tag_ok,
            names: Vec::new(),
            name_index: FastMap::default(),
            version_sets: Vec::new(),
            vs_index: FastMap::default(),
            unions: Vec::new(),
            strings: Vec::new(),
            deps: Vec::new(),
            requirement_cache: FastMap::default(),
            root_requirements: Vec::new(),
            root_constraints: Vec::new(),
        };

        // One resolvo name per real package name; candidates best first, so that the
        // solvable index is the rank (`sort_candidates` sorts by index).
        let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for p in (0..r.pkgs.len()).filter(|&p| reachable[p]) {
            by_name
                .entry(r.pkgs[p].entry.info.name.as_str())
                .or_default()
                .push(p as u32);
        }
        let mut reasons: FastMap<String, StringId> = FastMap::default();
        for (name, mut pkgs) in by_name {
            pkgs.sort_by_key(|&p| {
                let i = p as usize;
                (
                    Reverse(model.tag_ok[i]),
                    Reverse(tag_pref[i]),
                    Reverse(&r.pkgs[i].entry.info.version),
                    r.pkgs[i].repo,
                    p,
                )
            });
            let name_id = model.add_name(name.to_owned());
            model.name_index.insert(name, name_id);
            for p in pkgs {
                let s = model.solvable_pkg.len() as u32;
                model.solvable_pkg.push(p);
                model.solvable_name.push(name_id);
                model.pkg_solvable[p as usize] = Some(s);
                model.names[name_id.to_index()].candidates.push(sid(s));
                if !model.tag_ok[p as usize] {
                    let tag = r.pkgs[p as usize].tag.map_or("", |t| r.tags[t]);
                    let reason = format!("masked in @{tag}");
                    let id = *reasons.entry(reason.clone()).or_insert_with(|| {
                        model.strings.push(reason);
                        StringId((model.strings.len() - 1) as u32)
                    });
                    model.names[name_id.to_index()].excluded.push((sid(s), id));
                }
            }
        }

        // Dependencies of every candidate.
        for s in 0..model.solvable_pkg.len() as u32 {
            let p = model.solvable_pkg[s as usize];
            let known = if model.tag_ok[p as usize] {
                model.package_dependencies(p, s)
            } else {
                // Masked: excluded, its dependencies do not matter.
                KnownDependencies::default()
            };
            model.deps.push(known);
        }

        for &dep in world {
            if dep.conflict {
                let cons = model.conflict_constraints(dep, None);
                model.root_constraints.extend(cons);
            } else {
                let req = model.requirement(dep);
                model.root_requirements.push(req.into());
            }
        }
        model
    }

    /// The best package of each name whose `install_if` holds in the solution `ids` and
    /// that is not installed yet (each name is offered once: `tried`).
    fn triggered(&self, ids: &[SolvableId], tried: &mut FastSet<NameId>) -> Vec<SolvableId> {
        let r = self.r;
        let chosen: FastSet<u32> = ids
            .iter()
            .map(|s| self.solvable_pkg[s.to_index()])
            .collect();
        let installed: FastSet<NameId> = ids
            .iter()
            .map(|s| self.solvable_name[s.to_index()])
            .collect();
        let holds = |dep: &Dependency| {
            r.claims_of(&dep.name)
                .iter()
                .any(|c| chosen.contains(&c.pkg) && r.matches(c, dep))
        };
        let mut out: Vec<SolvableId> = Vec::new();
        for &p in &r.install_if {
            let Some(s) = self.pkg_solvable[p as usize] else {
                continue;
            };
            let name = self.solvable_name[s as usize];
            let list = &r.entry(p).info.install_if;
            if !self.tag_ok[p as usize]
                || installed.contains(&name)
                || tried.contains(&name)
                || list.iter().any(|d| d.conflict)
                || !list.iter().all(holds)
            {
                continue;
            }
            // Candidates are numbered best first: keep the lowest per name.
            match out
                .iter_mut()
                .find(|o| self.solvable_name[o.to_index()] == name)
            {
                Some(o) if o.to_index() > s as usize => *o = sid(s),
                Some(_) => {}
                None => out.push(sid(s)),
            }
        }
        out.sort_unstable_by_key(|s| s.to_index());
        tried.extend(out.iter().map(|s| self.solvable_name[s.to_index()]));
        out
    }

    fn add_name(&mut self, label: String) -> NameId {
        self.names.push(NameData {
            label,
            candidates: Vec::new(),
            excluded: Vec::new(),
        });
        NameId::from_index(self.names.len() - 1)
    }

    fn intern_vs(&mut self, name: NameId, kind: VsKind<'m>) -> VersionSetId {
        if let Some(&id) = self.vs_index.get(&(name, kind.clone())) {
            return id;
        }
        let id = self.new_vs(name, kind.clone());
        self.vs_index.insert((name, kind), id);
        id
    }

    /// A version set known to be new: no lookup.
    fn new_vs(&mut self, name: NameId, kind: VsKind<'m>) -> VersionSetId {
        self.version_sets.push((name, kind));
        VersionSetId((self.version_sets.len() - 1) as u32)
    }

    /// A requirement on version sets that no other requirement has (see
    /// [`Model::requirement`]): no lookup.
    fn new_requirement(&mut self, sets: Vec<VersionSetId>) -> Requirement {
        if let [single] = sets[..] {
            return Requirement::Single(single);
        }
        self.unions.push(sets);
        Requirement::Union(VersionSetUnionId((self.unions.len() - 1) as u32))
    }

    /// The resolvo name for `name`: the real package name, or a name without candidates.
    fn name_for(&mut self, name: &'m str) -> NameId {
        if let Some(&id) = self.name_index.get(name) {
            return id;
        }
        let id = self.add_name(name.to_owned());
        self.name_index.insert(name, id);
        id
    }

    fn pkg_of(&self, s: u32) -> u32 {
        self.solvable_pkg[s as usize]
    }

    /// A dependency as a union of version sets over the real names that meet it, best
    /// provider first (`compare_providers`). Computed once per atom (by its text), so
    /// its version sets and union are new: they are added without lookups.
    fn requirement(&mut self, dep: &'m Dependency) -> Requirement {
        if let Some(&req) = self.requirement_cache.get(&Atom(dep)) {
            return req;
        }
        type Key<'k> = (bool, bool, Option<&'k Version>, u64, bool, Reverse<&'k str>);
        // Few names provide one name: a list beats a map.
        let mut best: Vec<(Key<'m>, NameId)> = Vec::new();
        let r = self.r;
        for c in r.claims_of(&dep.name) {
            let Some(s) = self.pkg_solvable[c.pkg as usize] else {
                continue;
            };
            if !r.meets(c, dep, &self.world_names) {
                continue;
            }
            let i = c.pkg as usize;
            let info = &r.pkgs[i].entry.info;
            let key = (
                self.tag_ok[i],
                r.pkgs[i].tag.is_none(),
                c.version,
                info.provider_priority.unwrap_or(0),
                info.name == dep.name,
                Reverse(info.name.as_str()),
            );
            let name = self.solvable_name[s as usize];
            match best.iter_mut().find(|(_, n)| *n == name) {
                Some((k, _)) if key > *k => *k = key,
                Some(_) => {}
                None => best.push((key, name)),
            }
        }
        let mut names = best;
        names.sort_by(|a, b| b.cmp(a));
        let sets: Vec<VersionSetId> = if names.is_empty() {
            let name = self.name_for(&dep.name);
            vec![self.new_vs(name, VsKind::Provides(Atom(dep)))]
        } else {
            names
                .into_iter()
                .map(|(_, n)| self.new_vs(n, VsKind::Provides(Atom(dep))))
                .collect()
        };
        let req = self.new_requirement(sets);
        self.requirement_cache.insert(Atom(dep), req);
        req
    }

    /// `constrains` for a conflict atom: every other real name with a package it forbids
    /// must not be installed in such a version.
    fn conflict_constraints(
        &mut self,
        dep: &'m Dependency,
        own: Option<NameId>,
    ) -> Vec<VersionSetId> {
        let r = self.r;
        let names: BTreeSet<NameId> = r
            .claims_of(&dep.name)
            .iter()
            .filter(|c| r.matches(c, dep))
            .filter_map(|c| self.pkg_solvable[c.pkg as usize])
            .map(|s| self.solvable_name[s as usize])
            .filter(|&n| Some(n) != own)
            .collect();
        names
            .into_iter()
            .map(|n| self.intern_vs(n, VsKind::NotForbidden(Atom(dep))))
            .collect()
    }

    fn package_dependencies(&mut self, p: u32, s: u32) -> KnownDependencies {
        let r = self.r;
        let info = &r.pkgs[p as usize].entry.info;
        let own = self.solvable_name[s as usize];
        let mut known = KnownDependencies::default();
        let mut constrains = Vec::new();
        for dep in &info.depends {
            if dep.conflict {
                constrains.extend(self.conflict_constraints(dep, Some(own)));
            } else {
                let req = self.requirement(dep);
                known.requirements.push(req.into());
            }
        }
        // Name exclusivity (`assign_name`): only unversioned provides may share a name.
        for (other, name, versioned) in r.rivals(p) {
            if let Some(o) = self.pkg_solvable[other as usize] {
                let other_name = self.solvable_name[o as usize];
                constrains.push(self.intern_vs(other_name, VsKind::NoClaim(name, versioned)));
            }
        }
        constrains.sort_unstable();
        constrains.dedup();
        known.constrains = constrains;
        known
    }

    fn contains(&self, vs: VersionSetId, s: SolvableId) -> bool {
        let s = s.to_index() as u32;
        let r = self.r;
        match &self.version_sets[vs.0 as usize].1 {
            VsKind::Provides(dep) => r.pkg_meets(self.pkg_of(s), dep, &self.world_names),
            VsKind::NotForbidden(dep) => !r.pkg_forbidden(self.pkg_of(s), dep),
            VsKind::NoClaim(name, versioned) => !r
                .pkg_claims(self.pkg_of(s), name)
                .any(|c| *versioned || c.version.is_some()),
        }
    }

    fn solvable_label(&self, s: u32) -> String {
        self.r.label(self.pkg_of(s))
    }
}

impl Interner for Model<'_> {
    type NameId = NameId;
    type SolvableId = SolvableId;

    fn display_solvable(&self, solvable: SolvableId) -> impl fmt::Display + '_ {
        self.solvable_label(solvable.to_index() as u32)
    }

    fn display_name(&self, name: NameId) -> impl fmt::Display + '_ {
        self.names[name.to_index()].label.clone()
    }

    fn display_version_set(&self, version_set: VersionSetId) -> impl fmt::Display + '_ {
        let (name, kind) = &self.version_sets[version_set.0 as usize];
        let label = &self.names[name.to_index()].label;
        match kind {
            VsKind::Provides(dep) if dep.name == *label => dep.constraint.to_string(),
            VsKind::Provides(dep) => format!("providing {dep}"),
            VsKind::NotForbidden(dep) => format!("not matching {dep}"),
            VsKind::NoClaim(n, _) => format!("not providing {n}"),
        }
    }

    fn display_string(&self, string_id: StringId) -> impl fmt::Display + '_ {
        self.strings[string_id.0 as usize].clone()
    }

    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.version_sets[version_set.0 as usize].0
    }

    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        self.solvable_name[solvable.to_index()]
    }

    fn version_sets_in_union(
        &self,
        version_set_union: VersionSetUnionId,
    ) -> impl Iterator<Item = VersionSetId> {
        self.unions[version_set_union.0 as usize].iter().copied()
    }

    fn resolve_condition(&self, _condition: ConditionId) -> Condition {
        unreachable!("the model has no conditional requirements")
    }
}

impl DependencyProvider for Model<'_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        candidates
            .iter()
            .copied()
            .filter(|&s| self.contains(version_set, s) != inverse)
            .collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates<SolvableId>> {
        let data = &self.names[name.to_index()];
        Some(Candidates {
            candidates: data.candidates.clone(),
            excluded: data.excluded.clone(),
            hint_dependencies_available: HintDependenciesAvailable::All,
            ..Candidates::default()
        })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        // Candidates were numbered best first.
        solvables.sort_unstable_by_key(|s| s.to_index());
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        Dependencies::Known(self.deps[solvable.to_index()].clone())
    }
}

// ---------------------------------------------------------------------------------------
// Explaining a conflict in apk terms.

/// What a requirement edge of the conflict graph stands for.
enum Need<'m> {
    Dep(&'m Dependency),
    Other,
}

struct Explainer<'e, 'm> {
    model: &'e Model<'m>,
    nodes: Vec<ConflictNode>,
    root: usize,
    /// For nodes reached from the root by requirements: the requirer and requirement on a
    /// shortest path.
    parent: Vec<Option<(usize, Requirement)>>,
}

impl<'m> Model<'m> {
    fn need(&self, req: Requirement) -> Need<'m> {
        let vs = match req {
            Requirement::Single(vs) => vs,
            Requirement::Union(u) => self.unions[u.0 as usize][0],
        };
        match self.version_sets[vs.0 as usize].1 {
            VsKind::Provides(dep) => Need::Dep(dep.0),
            _ => Need::Other,
        }
    }

    /// Why nothing provides `dep`: what exists under that name and why it does not count.
    fn no_provider_hint(&self, dep: &Dependency) -> String {
        let r = self.r;
        let claims = r.claims_of(&dep.name);
        if claims.is_empty() {
            return String::new();
        }
        let virtuals: Vec<String> = claims
            .iter()
            .filter(|c| r.matches(c, dep) && !r.virtual_ok(c, &dep.name, &self.world_names))
            .map(|c| r.label(c.pkg))
            .collect();
        if !virtuals.is_empty() {
            return format!(
                " ({} is provided without version by {}, and none has a provider_priority: \
                 add one of them to world)",
                dep.name,
                virtuals.join(", ")
            );
        }
        let mut seen = BTreeSet::new();
        let available: Vec<String> = claims
            .iter()
            .filter_map(|c| {
                let text = match (c.real, c.version) {
                    (true, _) => r.label(c.pkg),
                    (false, Some(v)) => format!("{} provides {}={v}", r.label(c.pkg), dep.name),
                    (false, None) => format!("{} provides {}", r.label(c.pkg), dep.name),
                };
                seen.insert(text.clone()).then_some(text)
            })
            .collect();
        let more = available.len().saturating_sub(6);
        let mut list = available.into_iter().take(6).collect::<Vec<_>>().join(", ");
        if more > 0 {
            list += &format!(" and {more} more");
        }
        format!(" (available: {list})")
    }

    fn explain(&self, graph: &ConflictGraph<SolvableId>) -> Vec<String> {
        let g = &graph.graph;
        let nodes: Vec<ConflictNode> = g.raw_nodes().iter().map(|n| n.weight).collect();
        let edges: Vec<(usize, usize, ConflictEdge)> = g
            .raw_edges()
            .iter()
            .map(|e| (e.source().index(), e.target().index(), e.weight))
            .collect();
        let root = graph.root_node.index();
        let mut ex = Explainer {
            model: self,
            nodes,
            root,
            parent: Vec::new(),
        };
        ex.compute_parents(&edges);

        let mut problems = BTreeSet::new();
        // Nodes linked by "only one package per name", to report per group.
        let mut same_name: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for &(u, v, edge) in &edges {
            match (edge, ex.nodes[v]) {
                (ConflictEdge::Requires(req), ConflictNode::UnresolvedDependency) => {
                    let text = match self.need(req) {
                        Need::Dep(dep) => format!("{dep}{}", self.no_provider_hint(dep)),
                        _ => req.display(self).to_string(),
                    };
                    let who = if u == root {
                        "required by world".to_owned()
                    } else {
                        format!("needed by {}, {}", ex.describe(u), ex.why(u))
                    };
                    problems.insert(format!("no provider of {text}, {who}"));
                }
                (ConflictEdge::Conflict(ConflictCause::Excluded), ConflictNode::Excluded(_)) => {
                    problems.insert(ex.masked(u));
                }
                (
                    ConflictEdge::Conflict(ConflictCause::Constrains(vs)),
                    ConflictNode::Solvable(_),
                ) => {
                    problems.insert(ex.constrained(u, v, vs));
                }
                (ConflictEdge::Conflict(ConflictCause::ForbidMultipleInstances), _) => {
                    let name = ex.model.solvable_name[ex.solvable(u).unwrap_or(0) as usize];
                    let label = self.names[name.to_index()].label.clone();
                    same_name.entry(label.clone()).or_default().extend([u, v]);
                }
                _ => {}
            }
        }
        for (name, group) in same_name {
            let mut group: Vec<usize> = group.into_iter().collect();
            group.sort_by_cached_key(|&n| ex.label(n));
            let labels: Vec<String> = group.iter().map(|&n| ex.label(n)).collect();
            let reasons: Vec<String> = group
                .iter()
                .filter(|&&n| ex.parent[n].is_some())
                .map(|&n| format!("{} is {}", ex.describe(n), ex.why(n)))
                .collect();
            let mut line = format!(
                "only one package named {name} can be installed: {}",
                labels.join(", ")
            );
            if !reasons.is_empty() {
                line += &format!("; {}", reasons.join("; "));
            }
            problems.insert(line);
        }
        problems.into_iter().collect()
    }
}

impl Explainer<'_, '_> {
    /// Shortest requirement paths from the root; among equally short ones, the requirer
    /// with the smallest label, so the explanation does not depend on edge order.
    fn compute_parents(&mut self, edges: &[(usize, usize, ConflictEdge)]) {
        let n = self.nodes.len();
        let mut depth = vec![usize::MAX; n];
        depth[self.root] = 0;
        let mut frontier = vec![self.root];
        let mut d = 0;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &(u, v, edge) in edges {
                if let ConflictEdge::Requires(_) = edge {
                    if depth[u] == d
                        && depth[v] == usize::MAX
                        && matches!(self.nodes[v], ConflictNode::Solvable(_))
                    {
                        depth[v] = d + 1;
                        next.push(v);
                    }
                }
            }
            frontier = next;
            d += 1;
        }
        let mut parent: Vec<Option<(usize, Requirement, String)>> = vec![None; n];
        for &(u, v, edge) in edges {
            let ConflictEdge::Requires(req) = edge else {
                continue;
            };
            if depth[v] == usize::MAX || depth[v] == 0 || depth[u] + 1 != depth[v] {
                continue;
            }
            let key = format!("{}\u{0}{}", self.label(u), req.display(self.model));
            if parent[v].as_ref().is_none_or(|(_, _, k)| key < *k) {
                parent[v] = Some((u, req, key));
            }
        }
        self.parent = parent
            .into_iter()
            .map(|p| p.map(|(u, req, _)| (u, req)))
            .collect();
    }

    fn solvable(&self, n: usize) -> Option<u32> {
        match self.nodes[n] {
            ConflictNode::Solvable(s) => Some(s.to_index() as u32),
            _ => None,
        }
    }

    fn label(&self, n: usize) -> String {
        match self.nodes[n] {
            ConflictNode::Root => "world".to_owned(),
            ConflictNode::Solvable(s) => self.model.solvable_label(s.to_index() as u32),
            ConflictNode::UnresolvedDependency => "(unresolved)".to_owned(),
            ConflictNode::Excluded(_) => "(excluded)".to_owned(),
        }
    }

    /// `b-1.0-r0 (for b<2)`: the package and, when it is not just its name, the atom it
    /// was chosen for.
    fn describe(&self, n: usize) -> String {
        let label = self.label(n);
        let Some((_, req)) = self.parent[n] else {
            return label;
        };
        let name = self
            .solvable(n)
            .map(|s| self.model.pkg_of(s))
            .map(|p| self.model.r.entry(p).info.name.as_str());
        match self.model.need(req) {
            Need::Dep(dep) if Some(dep.to_string().as_str()) != name => {
                format!("{label} (for {dep})")
            }
            _ => label,
        }
    }

    /// `needed by a-2.0-r0, required by world`.
    fn why(&self, n: usize) -> String {
        let mut parts = Vec::new();
        let mut cur = n;
        while let Some((p, _)) = self.parent[cur] {
            if p == self.root {
                parts.push("required by world".to_owned());
                break;
            }
            parts.push(format!("needed by {}", self.describe(p)));
            cur = p;
        }
        if parts.is_empty() {
            parts.push("considered".to_owned());
        }
        parts.join(", ")
    }

    /// The world atom at the top of `n`'s chain, if the chain starts at the world.
    fn world_atom(&self, n: usize) -> Option<&Dependency> {
        let mut cur = n;
        while let Some((p, req)) = self.parent[cur] {
            if p == self.root {
                return match self.model.need(req) {
                    Need::Dep(dep) => Some(dep),
                    _ => None,
                };
            }
            cur = p;
        }
        None
    }

    fn masked(&self, n: usize) -> String {
        let model = self.model;
        let tag = self
            .solvable(n)
            .map(|s| model.pkg_of(s))
            .and_then(|p| model.r.pkgs[p as usize].tag)
            .map_or("", |t| model.r.tags[t]);
        let mut line = format!(
            "{} is masked: only in repositories tagged @{tag}, {}",
            self.describe(n),
            self.why(n)
        );
        if let Some(atom) = self.world_atom(n) {
            line += &format!("; request {}@{tag} to allow it", atom.name);
        }
        line
    }

    fn constrained(&self, u: usize, v: usize, vs: VersionSetId) -> String {
        let model = self.model;
        let (a, b) = (self.label(u), self.label(v));
        let reasons = |nodes: &[usize]| {
            nodes
                .iter()
                .filter(|&&n| n != self.root && self.parent[n].is_some())
                .map(|&n| format!("{} is {}", self.describe(n), self.why(n)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let head = match &model.version_sets[vs.0 as usize].1 {
            VsKind::NotForbidden(dep) if u == self.root => {
                format!("world forbids {b} ({dep})")
            }
            VsKind::NotForbidden(dep) => format!("{a} conflicts with {b} ({dep})"),
            VsKind::NoClaim(name, _) => format!("{a} and {b} both provide {name}"),
            _ => format!("{a} conflicts with {b}"),
        };
        let why = reasons(&[u, v]);
        if why.is_empty() {
            head
        } else {
            format!("{head}: {why}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dependency;
    use crate::pkginfo::PackageInfo;

    fn pkg(name: &str, version: &str, depends: &str, provides: &str) -> IndexEntry {
        let mut info = PackageInfo::new(name, version.parse().unwrap(), "x86_64");
        info.depends = dependency::parse_list(depends).unwrap();
        info.provides = dependency::parse_list(provides).unwrap();
        IndexEntry {
            checksum: Checksum::sha1_of(format!("{name}-{version}").as_bytes()),
            size: 0,
            info,
        }
    }

    fn names(s: &[(usize, &IndexEntry)]) -> Vec<String> {
        s.iter().map(|(_, e)| e.info.file_stem()).collect()
    }

    #[test]
    fn install_order_puts_dependencies_first_and_breaks_cycles() {
        let repo = Repository::new(vec![
            pkg("app", "1", "liba cmd:tool", ""),
            pkg("liba", "1", "so:libc.so", ""),
            pkg("tools", "1", "", "cmd:tool=1"),
            pkg("libc", "1", "", "so:libc.so=1"),
            pkg("x", "1", "y", ""),
            pkg("y", "1", "x libc", ""),
        ]);
        let repos = [repo];
        let world = dependency::parse_list("app x").unwrap();
        let solution = solve(&repos, &world, "x86_64").unwrap();
        assert_eq!(
            names(&solution.packages),
            ["app-1", "liba-1", "libc-1", "tools-1", "x-1", "y-1"]
        );
        // x and y need each other: the one with fewer pending dependencies goes first.
        assert_eq!(
            names(&solution.install_order()),
            ["libc-1", "liba-1", "tools-1", "app-1", "x-1", "y-1"]
        );
    }

    #[test]
    fn world_order_does_not_matter() {
        let repo = Repository::new(vec![
            pkg("a", "1", "so:x", ""),
            pkg("p1", "1", "", "so:x=1"),
            pkg("p2", "1", "", "so:x=1"),
            pkg("b", "1", "", ""),
        ]);
        let repos = [repo];
        let one = solve(&repos, &dependency::parse_list("a b").unwrap(), "x86_64").unwrap();
        let two = solve(&repos, &dependency::parse_list("b a").unwrap(), "x86_64").unwrap();
        assert_eq!(one, two);
        // Equal provided versions, no priorities: name order (p1).
        assert_eq!(names(&one.packages), ["a-1", "b-1", "p1-1"]);
    }

    #[test]
    fn other_architectures_are_ignored() {
        let mut arm = pkg("a", "2", "", "");
        arm.info.arch = "aarch64".into();
        let mut any = pkg("b", "1", "", "");
        any.info.arch = "noarch".into();
        let repos = [Repository::new(vec![pkg("a", "1", "b", ""), arm, any])];
        let s = solve(&repos, &[Dependency::new("a")], "x86_64").unwrap();
        assert_eq!(names(&s.packages), ["a-1", "b-1"]);
    }
}
