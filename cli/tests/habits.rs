//! The CLI as a new user meets it, on the real binary: help without arguments, `version`,
//! shell completion that a real shell loads, flags checked like the fields they stand for,
//! stdin named as such, one rule stated for a bad name.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tracedapp(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracedapp"))
        .args(args)
        .env_remove("JAEGER_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> String {
    testkit::repo_root()
        .join("manifests/examples/shop.yaml")
        .display()
        .to_string()
}

#[test]
fn bare_tracedapp_prints_help_and_succeeds() {
    let out = tracedapp(&[], None);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("Usage: tracedapp"), "{help}");
    assert!(help.contains("EXAMPLES:"), "{help}");
    let sub = tracedapp(&["help", "render"], None);
    assert_eq!(sub.status.code(), Some(0));
    assert!(text(&sub.stdout).contains("Usage: tracedapp render"));
}

#[test]
fn version_names_the_build_and_the_api() {
    let out = tracedapp(&["version"], None);
    assert_eq!(out.status.code(), Some(0));
    let v = text(&out.stdout);
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines[0], format!("tracedapp {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("commit "), "{v}");
    assert_eq!(lines[2], "API tracedapp.dev/v1alpha1");
}

/// bash loads the script and completes a subcommand from it.
#[test]
fn bash_completion_loads_and_completes() {
    let out = tracedapp(&["completion", "bash"], None);
    assert_eq!(out.status.code(), Some(0));
    let dir = testkit::TempDir::new("completion");
    let script = dir.path().join("tracedapp.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(tracedapp ren); COMP_CWORD=1; COMP_LINE='tracedapp ren'; \
         COMP_POINT=${{#COMP_LINE}}; _tracedapp tracedapp ren tracedapp; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let bash = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    assert_eq!(text(&bash.stdout).trim(), "render");
}

#[test]
fn flags_are_checked_like_the_fields_they_stand_for() {
    let f = example();
    for (args, message) in [
        (
            vec![
                "ecs",
                "register",
                "-f",
                &f,
                "--dry-run",
                "--region",
                "not a region!",
            ],
            "error: invalid value 'not a region!' for '--region <REGION>': not an AWS region; give one like eu-west-1",
        ),
        (
            vec!["render", "k8s", "-f", &f, "--operator-namespace", "Bad NS!"],
            "error: invalid value 'Bad NS!' for '--operator-namespace <OPERATOR_NAMESPACE>': not a namespace name; use lowercase letters, digits and '-' (at most 63), like tracedapp-system",
        ),
        (
            vec!["render", "k8s", "-f", &f, "--collector-image", "Bad Image"],
            "error: invalid value 'Bad Image' for '--collector-image <COLLECTOR_IMAGE>': must be an image reference like ghcr.io/acme/shop:1.4.2 (lowercase repository; a tag of letters, digits, '_', '.', '-'; a digest like @sha256: and 64 hex digits), got \"Bad Image\"",
        ),
        (
            vec!["trace", "--service", "shop", "--jaeger", "localhost:16686"],
            "error: invalid value 'localhost:16686' for '--jaeger <JAEGER>': not a URL; add http://, like http://localhost:16686",
        ),
        (
            vec!["render", "k8s", "-f", &f, "--out-dir", "x"],
            "tracedapp: --out-dir is for `render lambda` (the other targets print one document)",
        ),
    ] {
        let out = tracedapp(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().next(), Some(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing rendered for {args:?}");
    }
}

#[test]
fn stdin_is_named_and_a_bad_name_gets_the_one_rule_that_applies() {
    let spec = "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: shop.v2}\n\
                spec:\n  app: {image: \"i:1\"}\n  exporters: {jaeger: {endpoint: \"j:4317\"}}\n";
    let out = tracedapp(&["render", "k8s", "-f", "-"], Some(spec));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "tracedapp: <stdin>: invalid TracedApp:\n  metadata.name: must be a DNS label, since it \
         names the app's Deployment and Service: lowercase letters, digits and '-', starting and \
         ending with a letter or digit, at most 63 characters; got \"shop.v2\"\n"
    );
}

/// What a target ignores, changes or takes from elsewhere is said on stderr, with the field.
#[test]
fn nothing_is_changed_or_dropped_without_a_word() {
    let spec = "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: shop}\n\
                spec:\n  app:\n    image: \"i:1\"\n    healthPath: /ready\n    env: [{name: GREETING, value: \"$(USER)\"}]\n  \
                exporters: {xray: {region: eu-west-1}}\n  aws: {iamRoleArn: \"arn:aws:iam::123456789012:role/shop\"}\n";
    let k8s = tracedapp(&["render", "k8s", "-f", "-"], Some(spec));
    assert_eq!(k8s.status.code(), Some(0), "{}", text(&k8s.stderr));
    assert!(
        text(&k8s.stderr).contains(
            "note: spec.app.env[0].value: `$(` is kept as text (written `$$(`, which Kubernetes \
             does not expand); TracedApp values never refer to other variables\n"
        ),
        "{}",
        text(&k8s.stderr)
    );
    // One verdict: what ECS would refuse (no execution role for Fargate) is refused by
    // `render ecs` as by `ecs register`.
    for args in [
        &["render", "ecs", "-f", "-"][..],
        &["ecs", "register", "-f", "-", "--dry-run"][..],
    ] {
        let refused = tracedapp(args, Some(spec));
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert!(
            text(&refused.stderr).contains(
                "tracedapp: <stdin>: ECS would refuse this task definition:\n  executionRoleArn: \
                 required on FARGATE"
            ),
            "{args:?}: {}",
            text(&refused.stderr)
        );
        assert!(refused.stdout.is_empty());
    }
    let spec =
        &format!("{spec}  ecs: {{executionRoleArn: \"arn:aws:iam::123456789012:role/exec\"}}\n");
    let ecs = tracedapp(&["ecs", "register", "-f", "-", "--dry-run"], Some(spec));
    assert_eq!(ecs.status.code(), Some(0), "{}", text(&ecs.stderr));
    let stderr = text(&ecs.stderr);
    for line in [
        "warning: spec.app.healthPath (/ready) is not used on ECS: the app container gets no \
         health check (its image may have no HTTP client); with spec.ecs.service.loadBalancer, \
         give the target group that health check path",
        "note: region us-east-1 (from spec.ecs.region, whose default it is); \
         spec.exporters.xray.region is eu-west-1: the collector exports there while the task \
         runs in us-east-1 (set spec.ecs.region or --region if that is not meant)",
        "dry run: would register family \"shop\" in us-east-1 if it differs from its latest revision",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "missing {line:?} in:\n{stderr}"
        );
    }
    let flagged = tracedapp(
        &[
            "ecs",
            "register",
            "-f",
            "-",
            "--dry-run",
            "--region",
            "eu-west-1",
        ],
        Some(spec),
    );
    assert!(
        text(&flagged.stderr)
            .lines()
            .any(|l| l == "note: region eu-west-1 (from --region)"),
        "{}",
        text(&flagged.stderr)
    );
}

fn app_doc(name: &str, namespace: Option<&str>) -> String {
    let ns = namespace.map_or(String::new(), |n| format!(", namespace: {n}"));
    format!(
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {{name: {name}{ns}}}\n\
         spec:\n  app: {{image: \"i:1\"}}\n  exporters: {{jaeger: {{endpoint: \"j:4317\"}}}}\n"
    )
}

fn deployments(yaml: &str) -> Vec<String> {
    yaml.split("\n---\n")
        .filter(|d| d.contains("kind: Deployment"))
        .map(|d| {
            d.lines()
                .find_map(|l| l.strip_prefix("  name: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// kubectl's `-f`: several documents in one file, `-f` repeated, a directory; `-n` for
/// TracedApps that name no namespace.
#[test]
fn several_tracedapps_as_kubectl_takes_them() {
    let dir = testkit::TempDir::new("habits-many");
    let stream = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: other}}\n---\n{}",
        app_doc("shop", None),
        app_doc("cart", None)
    );
    let out = tracedapp(&["render", "k8s", "-f", "-", "-n", "demo"], Some(&stream));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert_eq!(deployments(&yaml), ["shop", "cart"]);
    assert!(yaml.contains("namespace: demo"));

    let json = tracedapp(
        &["render", "k8s", "-f", "-", "-n", "demo", "-o", "json"],
        Some(&stream),
    );
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "Deployment")
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["shop", "cart"]);

    // A directory (a non-TracedApp manifest and a text file in it are left alone), and -f
    // repeated.
    let apps = dir.path().join("apps");
    std::fs::create_dir(&apps).unwrap();
    std::fs::write(apps.join("b-shop.yaml"), app_doc("shop", Some("demo"))).unwrap();
    std::fs::write(apps.join("a-cart.yml"), app_doc("cart", Some("demo"))).unwrap();
    std::fs::write(
        apps.join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
    )
    .unwrap();
    std::fs::write(apps.join("notes.txt"), "not yaml").unwrap();
    let from_dir = tracedapp(&["render", "k8s", "-f", apps.to_str().unwrap()], None);
    assert_eq!(
        from_dir.status.code(),
        Some(0),
        "{}",
        text(&from_dir.stderr)
    );
    assert_eq!(deployments(&text(&from_dir.stdout)), ["cart", "shop"]);
    let repeated = tracedapp(
        &[
            "render",
            "k8s",
            "-f",
            apps.join("b-shop.yaml").to_str().unwrap(),
            "-f",
            apps.join("a-cart.yml").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(deployments(&text(&repeated.stdout)), ["shop", "cart"]);

    // Refused, exit 2, with the reason.
    for (args, input, message) in [
        (
            vec!["render", "k8s", "-f", "-", "-n", "prod"],
            app_doc("shop", Some("demo")),
            "tracedapp: TracedApp shop names namespace demo, not prod (-n): remove one of them\n",
        ),
        (
            vec!["render", "k8s", "-f", "-"],
            format!("{}---\n{}", app_doc("shop", None), app_doc("shop", None)),
            "tracedapp: two TracedApps are named shop: names are unique per namespace\n",
        ),
        (
            vec!["render", "lambda", "-f", "-"],
            stream.clone(),
            "tracedapp: render lambda takes one TracedApp (a function's two files); got 2\n",
        ),
    ] {
        let out = tracedapp(&args, Some(&input));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stderr), message, "{args:?}");
    }
}
