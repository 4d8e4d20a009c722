//! The AWS Fargate task size table: which memory sizes go with which CPU size.
//!
//! One table feeds both the CRD's CEL rule and the Rust check, so they cannot disagree.

use kube::core::Rule;

/// `(task cpu units, lowest memory MiB, highest memory MiB, step MiB)`.
pub const SIZES: &[(u32, u32, u32, u32)] = &[
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// Whether `cpu`/`memory` (as written in the spec) is a valid Fargate task size.
pub fn is_valid(cpu: &str, memory: &str) -> bool {
    let (Ok(cpu), Ok(memory)) = (cpu.parse::<u32>(), memory.parse::<u32>()) else {
        return false;
    };
    SIZES.iter().any(|&(c, lo, hi, step)| {
        c == cpu && (lo..=hi).contains(&memory) && (memory - lo) % step == 0
    })
}

/// What memory goes with `cpu`, or which cpu values exist, for an error message.
pub fn expected(cpu: &str) -> String {
    match SIZES.iter().find(|(c, ..)| c.to_string() == cpu) {
        Some((c, lo, hi, step)) => {
            format!("with cpu {c}, Fargate memory must be {lo} to {hi} MiB in steps of {step}")
        }
        None => format!(
            "Fargate cpu must be one of {}",
            SIZES
                .iter()
                .map(|(c, ..)| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The CEL rule on `spec.ecs` that allows only Fargate task sizes when the launch type is FARGATE.
pub fn cel_rule() -> Rule {
    let sizes = SIZES
        .iter()
        .map(|(c, lo, hi, step)| {
            format!(
                "(self.cpu == '{c}' && int(self.memory) >= {lo} && int(self.memory) <= {hi} && (int(self.memory) - {lo}) % {step} == 0)"
            )
        })
        .collect::<Vec<_>>()
        .join(" || ");
    Rule::new(format!("self.launchType != 'FARGATE' || {sizes}")).message(
        "cpu/memory is not a Fargate task size (256: 512-2048 MiB, 512: 1024-4096, 1024: 2048-8192, 2048: 4096-16384, 4096: 8192-30720, 8192: 16384-61440 by 4096, 16384: 32768-122880 by 8192)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sizes() {
        assert!(is_valid("256", "512"));
        assert!(is_valid("256", "2048"));
        assert!(!is_valid("256", "4096"));
        assert!(is_valid("4096", "30720"));
        assert!(!is_valid("8192", "20000"));
        assert!(is_valid("8192", "20480"));
        assert!(!is_valid("300", "512"));
        assert!(!is_valid("256", "lots"));
    }
}
