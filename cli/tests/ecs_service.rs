//! `tracedapp ecs deploy | diff | rollback | status` against moto, the real ECS emulator (with
//! its EC2 holding the VPC, subnet and security group, which moto checks): create, the same
//! spec again, update, diff, rollback, status. moto never moves a deployment after
//! `UpdateService`, so updates and rollbacks run with `--no-wait` here; how waiting ends is
//! proven against the scripted endpoint (`ecs_deploy.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{text, tracedapp_aws};
use testkit::moto::Moto;

const REGION: &str = "eu-west-1";

fn write_app(dir: &Path, image: &str, subnet: &str, group: &str, replicas: u32) -> PathBuf {
    let path = dir.join("app.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: shop}}
spec:
  app: {{image: "{image}", replicas: {replicas}}}
  exporters:
    jaeger: {{endpoint: "jaeger:4317", tls: {{insecure: true}}}}
  ecs:
    region: {REGION}
    executionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
    service:
      cluster: shop-cluster
      network:
        subnets: [{subnet}]
        securityGroups: [{group}]
"#
        ),
    )
    .unwrap();
    path
}

fn tracedapp(moto: &Moto, args: &[&str]) -> Output {
    tracedapp_aws(args)
        .args(["--endpoint-url", &moto.url])
        // IAM, EC2, CloudWatch Logs and ECR (verify, status) at moto too.
        .env("AWS_ENDPOINT_URL", &moto.url)
        .output()
        .unwrap()
}

/// moto with a cluster and a network.
fn moto() -> (Moto, String, String) {
    let moto = Moto::start_with_env(&[("MOTO_ECS_SERVICE_RUNNING", "10")]);
    moto.call(
        REGION,
        "ecs",
        "/",
        Some("AmazonEC2ContainerServiceV20141113.CreateCluster"),
        &serde_json::json!({"clusterName": "shop-cluster"}),
    );
    let (subnet, group) = moto.network(REGION);
    (moto, subnet, group)
}

#[test]
fn deploy_creates_then_changes_nothing_then_updates_and_diff_says_what() {
    let (moto, subnet, group) = moto();
    let dir = testkit::TempDir::new("ecs-service");
    let file = write_app(dir.path(), "ghcr.io/acme/shop:1.0", &subnet, &group, 2);
    let f = file.to_str().unwrap();

    // Nothing there yet: diff shows everything, exit 1.
    let (code, out, err) = text(&tracedapp(&moto, &["ecs", "diff", "-f", f]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("+++ service shop (spec)") && out.contains(&subnet),
        "{out}"
    );

    // Create: moto's first deployment is complete at once; deploy waits for it and says so.
    let (code, out, err) = text(&tracedapp(
        &moto,
        &["ecs", "deploy", "-f", f, "--interval", "100ms"],
    ));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("creating service shop in cluster shop-cluster"),
        "{err}"
    );
    assert!(out.contains("deployed: service shop runs shop:1"), "{out}");

    // The same spec: nothing registered, nothing updated; diff agrees.
    let (code, out, err) = text(&tracedapp(&moto, &["ecs", "deploy", "-f", f]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("shop:1 (unchanged)") && out.contains("unchanged: service shop"),
        "{out}"
    );
    let (code, out, err) = text(&tracedapp(&moto, &["ecs", "diff", "-f", f]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.is_empty() && err.contains("no differences"),
        "{out}{err}"
    );

    // A new image and a third task: diff names both, deploy registers and updates.
    write_app(dir.path(), "ghcr.io/acme/shop:2.0", &subnet, &group, 3);
    let (code, out, _) = text(&tracedapp(&moto, &["ecs", "diff", "-f", f]));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("-      \"image\": \"ghcr.io/acme/shop:1.0\""),
        "{out}"
    );
    assert!(
        out.contains("+      \"image\": \"ghcr.io/acme/shop:2.0\""),
        "{out}"
    );
    assert!(
        out.contains("-  \"desiredCount\": 2") && out.contains("+  \"desiredCount\": 3"),
        "{out}"
    );
    let (code, out, err) = text(&tracedapp(&moto, &["ecs", "deploy", "-f", f, "--no-wait"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("task definition shop:2 (new revision)"),
        "{out}"
    );
    assert!(
        err.contains("updating service shop in cluster shop-cluster (it runs shop:1)"),
        "{err}"
    );
    assert!(out.contains("not waiting (--no-wait)"), "{out}");

    // status: what runs, the deployments.
    let (code, out, err) = text(&tracedapp(&moto, &["ecs", "status", "-f", f]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("service shop in cluster shop-cluster: runs shop:2, desired 3"),
        "{out}"
    );
    assert!(out.contains("deployments:"), "{out}");

    // Rollback: back to shop:1, nothing deregistered.
    let (code, out, err) = text(&tracedapp(
        &moto,
        &["ecs", "rollback", "-f", f, "--no-wait"],
    ));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("rolling service shop back from shop:2 to shop:1"),
        "{err}"
    );
    let (_, out, _) = text(&tracedapp(&moto, &["ecs", "status", "-f", f]));
    assert!(out.contains("runs shop:1"), "{out}");
    let revisions = moto.call(
        REGION,
        "ecs",
        "/",
        Some("AmazonEC2ContainerServiceV20141113.ListTaskDefinitions"),
        &serde_json::json!({"familyPrefix": "shop", "status": "ACTIVE"}),
    );
    assert_eq!(
        revisions["taskDefinitionArns"].as_array().map(Vec::len),
        Some(2),
        "both revisions stay ACTIVE: {revisions}"
    );

    // Rolling back to a revision that is not there is bad input, said with what is.
    let (code, _, err) = text(&tracedapp(
        &moto,
        &["ecs", "rollback", "-f", f, "--to", "7"],
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("shop:7 is not an ACTIVE revision (ACTIVE: 2, 1)"),
        "{err}"
    );
}

#[test]
fn deploy_without_a_service_section_says_what_to_add() {
    let (moto, _, _) = moto();
    let dir = testkit::TempDir::new("ecs-no-service");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "apiVersion: tracedapp.dev/v1alpha1\nkind: TracedApp\nmetadata: {name: shop}\nspec:\n  \
         app: {image: app:1}\n  exporters: {jaeger: {endpoint: 'j:4317'}}\n  ecs:\n    \
         executionRoleArn: arn:aws:iam::123456789012:role/x\n",
    )
    .unwrap();
    let (code, _, err) = text(&tracedapp(
        &moto,
        &["ecs", "deploy", "-f", file.to_str().unwrap()],
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("spec.ecs.service is not set") && err.contains("subnets:"),
        "{err}"
    );
}

/// A role in moto's IAM trusting `service`; its ARN.
fn role(moto: &Moto, name: &str, service: &str) -> String {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })
    .to_string();
    moto.query(
        REGION,
        "iam",
        "2010-05-08",
        "CreateRole",
        &[("RoleName", name), ("AssumeRolePolicyDocument", &policy)],
    );
    format!("arn:aws:iam::123456789012:role/{name}")
}

fn verify_app(
    dir: &Path,
    exec_role: &str,
    task_role: &str,
    subnet: &str,
    group: &str,
    image: &str,
) -> PathBuf {
    let path = dir.join("verify.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: tracedapp.dev/v1alpha1
kind: TracedApp
metadata: {{name: shop}}
spec:
  app: {{image: "{image}"}}
  exporters:
    jaeger: {{endpoint: "jaeger:4317", tls: {{insecure: true}}}}
  ecs:
    region: {REGION}
    executionRoleArn: {exec_role}
    taskRoleArn: {task_role}
    service:
      cluster: shop-cluster
      network:
        subnets: [{subnet}]
        securityGroups: [{group}]
"#
        ),
    )
    .unwrap();
    path
}

/// verify against moto: a good account passes (exit 0); then each thing ECS would fail on —
/// a missing cluster, a role that does not exist, a role that trusts EC2 instead of ECS tasks,
/// a security group in another VPC, an ECR tag not pushed — is one line naming its field,
/// exit 4.
#[test]
fn verify_names_each_problem_by_its_field() {
    let (moto, subnet, group) = moto();
    let (_, other_group) = moto.network_in(REGION, "10.30");
    let exec = role(&moto, "ecsTaskExecutionRole", "ecs-tasks.amazonaws.com");
    let task = role(&moto, "shop-task", "ecs-tasks.amazonaws.com");
    let ec2_role = role(&moto, "an-ec2-role", "ec2.amazonaws.com");
    moto.call(
        REGION,
        "ecr",
        "/",
        Some("AmazonEC2ContainerRegistry_V20150921.CreateRepository"),
        &serde_json::json!({"repositoryName": "shop"}),
    );
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "sha256:4bf92f3577b34da6a3ce929d0e0e4736ab3c0d1b4b7bf0a4de7d2e0e0e0e0e0e"}, "layers": []});
    moto.call(
        REGION,
        "ecr",
        "/",
        Some("AmazonEC2ContainerRegistry_V20150921.PutImage"),
        &serde_json::json!({"repositoryName": "shop", "imageManifest": manifest.to_string(), "imageTag": "1.0"}),
    );
    let image = |tag: &str| format!("123456789012.dkr.ecr.{REGION}.amazonaws.com/shop:{tag}");
    let dir = testkit::TempDir::new("ecs-verify");

    let good = verify_app(dir.path(), &exec, &task, &subnet, &group, &image("1.0"));
    let (code, out, err) = text(&tracedapp(
        &moto,
        &["ecs", "verify", "-f", good.to_str().unwrap()],
    ));
    assert_eq!(code, Some(0), "{out}{err}");
    for needle in [
        "ok       cluster shop-cluster is ACTIVE",
        "ok       role ecsTaskExecutionRole trusts ecs-tasks.amazonaws.com",
        "ok       role shop-task trusts ecs-tasks.amazonaws.com",
        "ok       subnets and security groups are in vpc-",
        "ok       image shop:1.0 is in ECR",
        "note     log group /ecs/shop does not exist yet",
    ] {
        assert!(out.contains(needle), "{needle:?} in:\n{out}");
    }

    let bad = verify_app(
        dir.path(),
        "arn:aws:iam::123456789012:role/no-such-role",
        &ec2_role,
        &subnet,
        &other_group,
        &image("2.0"),
    );
    std::fs::write(
        &bad,
        std::fs::read_to_string(&bad)
            .unwrap()
            .replace("shop-cluster", "no-such-cluster"),
    )
    .unwrap();
    let (code, out, err) = text(&tracedapp(
        &moto,
        &["ecs", "verify", "-f", bad.to_str().unwrap()],
    ));
    assert_eq!(code, Some(4), "{out}{err}");
    for needle in [
        "problem  spec.ecs.service.cluster: cluster no-such-cluster is MISSING",
        "problem  spec.ecs.executionRoleArn: role no-such-role does not exist",
        "problem  spec.ecs.taskRoleArn: role an-ec2-role does not let ECS tasks assume it",
        "(it names: ec2.amazonaws.com)",
        "problem  spec.ecs.service.network: subnets and security groups must be in one VPC",
        "problem  spec.app.image: 2.0 is not in ECR repository shop",
    ] {
        assert!(out.contains(needle), "{needle:?} in:\n{out}");
    }
    assert!(err.contains("5 problem(s)"), "{err}");
}
