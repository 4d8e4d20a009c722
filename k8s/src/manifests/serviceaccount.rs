use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use tracedapp_api::TracedApp;

use super::child_meta;
use crate::{labels, naming};

/// Annotation that EKS reads to give the pod an IAM role (IRSA).
pub const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The pods' identity: with `aws.iamRoleArn`, annotated for IRSA so the collector's X-Ray and
/// CloudWatch calls use that role. The API token is not mounted (neither container needs it;
/// the IRSA webhook mounts its own web-identity token).
pub fn service_account(app: &TracedApp) -> ServiceAccount {
    let mut metadata = child_meta(app, naming::workload(app), labels::COMPONENT_IDENTITY);
    if let Some(role) = &app.spec.aws.iam_role_arn {
        metadata.annotations = Some(BTreeMap::from([(IRSA_ANNOTATION.to_owned(), role.clone())]));
    }
    ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
