//! The AWS Fargate task sizes: which memory sizes go with which CPU size, as AWS lists them.
//!
//! One table feeds the CRD's CEL rule (and so every check, see [`crate::rules`]) and its
//! message.

use kube::core::{Message, Rule};

/// Task memory (MiB) that goes with a task CPU size (units).
#[derive(Debug, Clone, Copy)]
pub enum Memory {
    /// Exactly these sizes.
    OneOf(&'static [u32]),
    /// From `lo` to `hi` in steps of `step`.
    Range { lo: u32, hi: u32, step: u32 },
}

/// `(task cpu units, memory)`, AWS's table for Linux Fargate tasks.
pub const SIZES: &[(u32, Memory)] = &[
    (256, Memory::OneOf(&[512, 1024, 2048])),
    (
        512,
        Memory::Range {
            lo: 1024,
            hi: 4096,
            step: 1024,
        },
    ),
    (
        1024,
        Memory::Range {
            lo: 2048,
            hi: 8192,
            step: 1024,
        },
    ),
    (
        2048,
        Memory::Range {
            lo: 4096,
            hi: 16384,
            step: 1024,
        },
    ),
    (
        4096,
        Memory::Range {
            lo: 8192,
            hi: 30720,
            step: 1024,
        },
    ),
    (
        8192,
        Memory::Range {
            lo: 16384,
            hi: 61440,
            step: 4096,
        },
    ),
    (
        16384,
        Memory::Range {
            lo: 32768,
            hi: 122880,
            step: 8192,
        },
    ),
];

/// Whether `cpu`/`memory` (as written in the spec) is a Fargate task size.
pub fn is_valid(cpu: &str, memory: &str) -> bool {
    let (Ok(cpu), Ok(memory)) = (cpu.parse::<u32>(), memory.parse::<u32>()) else {
        return false;
    };
    SIZES.iter().any(|&(c, m)| {
        c == cpu
            && match m {
                Memory::OneOf(sizes) => sizes.contains(&memory),
                Memory::Range { lo, hi, step } => {
                    (lo..=hi).contains(&memory) && (memory - lo) % step == 0
                }
            }
    })
}

/// The table in words, e.g. `256: 512, 1024 or 2048 MiB; 512: 1024-4096 by 1024; ...`.
pub fn table() -> String {
    SIZES
        .iter()
        .map(|(c, m)| match m {
            Memory::OneOf(sizes) => {
                let s: Vec<String> = sizes.iter().map(u32::to_string).collect();
                format!("{c}: {} MiB", s.join(", "))
            }
            Memory::Range { lo, hi, step } => format!("{c}: {lo}-{hi} by {step}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CEL rule on `spec.ecs` that allows only Fargate task sizes when the launch type is FARGATE.
pub fn cel_rule() -> Rule {
    let sizes = SIZES
        .iter()
        .map(|(c, m)| match m {
            Memory::OneOf(sizes) => {
                let s: Vec<String> = sizes.iter().map(|m| format!("'{m}'")).collect();
                format!("(string(self.cpu) == '{c}' && string(self.memory) in [{}])", s.join(", "))
            }
            Memory::Range { lo, hi, step } => format!(
                "(string(self.cpu) == '{c}' && int(self.memory) >= {lo} && int(self.memory) <= {hi} && (int(self.memory) - {lo}) % {step} == 0)"
            ),
        })
        .collect::<Vec<_>>()
        .join(" || ");
    Rule::new(format!("self.launchType != 'FARGATE' || {sizes}")).message(Message::Message(
        format!(
            "cpu/memory is not a Fargate task size (cpu units: memory MiB; {})",
            table()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_table() {
        assert!(is_valid("256", "512") && is_valid("256", "2048"));
        assert!(
            !is_valid("256", "1536"),
            "0.25 vCPU takes 512, 1024 or 2048 only"
        );
        assert!(!is_valid("256", "4096"));
        assert!(is_valid("4096", "30720"));
        assert!(!is_valid("8192", "20000") && is_valid("8192", "20480"));
        assert!(!is_valid("300", "512") && !is_valid("256", "lots"));
    }
}
