//! Progress reporting: the library says what happens, the binary decides how to show it.

/// Receives progress from builds. Implementations must be thread-safe: arches build in
/// parallel.
pub trait Reporter: Sync {
    /// A pipeline step of `package` for `arch` starts.
    fn step_started(&self, package: &str, arch: &str, step: &str);
    /// A line the step printed (stdout and stderr, merged).
    fn step_output(&self, package: &str, arch: &str, line: &str);
    /// The step ended successfully after `seconds`.
    fn step_finished(&self, package: &str, arch: &str, step: &str, seconds: f64);
    /// Something the user should know that does not stop the build.
    fn warn(&self, message: &str);
}

/// Discards everything: for tests and library users who do not care.
pub struct Silent;

impl Reporter for Silent {
    fn step_started(&self, _: &str, _: &str, _: &str) {}
    fn step_output(&self, _: &str, _: &str, _: &str) {}
    fn step_finished(&self, _: &str, _: &str, _: &str, _: f64) {}
    fn warn(&self, _: &str) {}
}
