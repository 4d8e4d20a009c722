//! The README names files and folders of this repository; each must exist (a doc that names a
//! path that moved misleads the reader who goes to look).

use testkit::repo_root;

/// Top-level folders whose paths the README names.
const ROOTS: &[&str] = &[
    "api/",
    "cli/",
    "ecs/",
    "k8s/",
    "operator/",
    "service/",
    "testkit/",
    "traceview/",
    "xtask/",
    "tools/",
    "bench/",
    "charts/",
    "manifests/",
    "testdata/",
    ".ci/",
];

#[test]
fn every_path_the_readme_names_exists() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for (i, chunk) in readme.split('`').enumerate() {
        // Odd chunks are inside backticks.
        if i % 2 == 0 || chunk.contains(char::is_whitespace) || chunk.contains(['*', '<', '{', '$'])
        {
            continue;
        }
        let path = chunk.trim_end_matches([':', ',', '.']);
        if !ROOTS.iter().any(|r| path.starts_with(r)) {
            continue;
        }
        checked += 1;
        if !repo_root().join(path).exists() {
            missing.push(path.to_owned());
        }
    }
    missing.sort();
    missing.dedup();
    assert!(checked > 30, "the README names paths ({checked} found)");
    assert!(
        missing.is_empty(),
        "the README names paths that do not exist: {missing:#?}"
    );
}
