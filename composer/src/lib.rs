//! compose: solve apk dependencies and compose OCI images from apko-style configurations.
//!
//! The image pipeline (configuration, solver, layer, OCI layout) lands with the
//! compose-build issue; this crate holds its place in the workspace.
