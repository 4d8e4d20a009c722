//! The README names files and folders of this repository, and `tracedapp` commands; each path
//! must exist and each command must be one the CLI has (a doc that names what moved misleads
//! the reader who goes to look).

use testkit::repo_root;

/// Top-level folders whose paths the README names.
const ROOTS: &[&str] = &[
    "api/",
    "cli/",
    "ecs/",
    "k8s/",
    "lambda/",
    "telemetry/",
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

/// Every `tracedapp <command> [<subcommand>]` the README shows in a shell block answers
/// `--help` (the command exists, with that name).
#[test]
fn every_command_the_readme_shows_exists() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut in_block = false;
    let mut commands = std::collections::BTreeSet::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh" && !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        for part in line.split(['|', ';', '(', '&']) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let Some(at) = words.iter().position(|w| *w == "tracedapp") else {
                continue;
            };
            // The command and, when the next word is a subcommand (not a flag, value or
            // file), that too.
            let rest: Vec<&str> = words[at + 1..]
                .iter()
                .take_while(|w| {
                    !w.starts_with('-') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .take(2)
                .copied()
                .collect();
            if !rest.is_empty() {
                commands.insert(rest.join(" "));
            }
        }
    }
    assert!(
        commands.len() > 10,
        "the README shows commands: {commands:?}"
    );
    let mut failed = Vec::new();
    for command in &commands {
        let mut args: Vec<&str> = command.split(' ').collect();
        // `render k8s`: the second word is a value, not a subcommand; --help still answers.
        args.push("--help");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracedapp"))
            .args(&args)
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(format!(
                "tracedapp {command}: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
